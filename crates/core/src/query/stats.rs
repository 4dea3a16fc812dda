//! Seed statistics: a group's summary with its confidence interval, the comparison of a group with
//! the best one (paired by seed when both ran the same seeds, Welch otherwise) with Holm's
//! correction, and the ANOVA decomposition of a grid's variance by swept key. Checked against SciPy
//! (`scripts/parity_stats.py`, `tests/fixtures/stats_scipy.json`).

use statrs::distribution::{ContinuousCDF, FisherSnedecor, StudentsT};

/// Compensated (Neumaier) sum: ten values of 0.8 add up to 8, not 7.999999999999999.
pub fn sum(xs: impl Iterator<Item = f64>) -> f64 {
    let (mut s, mut c) = (0.0f64, 0.0f64);
    for x in xs {
        let t = s + x;
        c += if s.abs() >= x.abs() {
            (s - t) + x
        } else {
            (x - t) + s
        };
        s = t;
    }
    s + c
}

fn mean(xs: &[f64]) -> f64 {
    sum(xs.iter().copied()) / xs.len() as f64
}

/// The sample variance (divisor n − 1); `None` below two values.
fn variance(xs: &[f64]) -> Option<f64> {
    (xs.len() > 1).then(|| {
        let m = mean(xs);
        sum(xs.iter().map(|x| (x - m).powi(2))) / (xs.len() - 1) as f64
    })
}

/// The two-sided Student t quantile for confidence `level` with `df` degrees of freedom.
fn t_crit(df: f64, level: f64) -> f64 {
    StudentsT::new(0.0, 1.0, df)
        .expect("df > 0")
        .inverse_cdf(0.5 + level / 2.0)
}

/// The two-sided p-value of a t statistic.
fn t_p(t: f64, df: f64) -> f64 {
    if t.is_nan() {
        return f64::NAN;
    }
    let d = StudentsT::new(0.0, 1.0, df).expect("df > 0");
    (2.0 * d.cdf(-t.abs())).min(1.0)
}

/// Summary of one group's values.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Stats {
    /// Number of values.
    pub n: usize,
    pub mean: f64,
    /// Sample standard deviation (divisor n − 1); `None` for a single value.
    pub std: Option<f64>,
    /// Standard error of the mean, std / √n; `None` for a single value.
    pub sem: Option<f64>,
    /// The confidence interval of the mean (Student t, n − 1 degrees of freedom); `None` for a
    /// single value.
    pub ci: Option<(f64, f64)>,
    pub min: f64,
    pub max: f64,
    pub median: f64,
}

/// Mean, sample standard deviation, standard error, the `level` confidence interval of the mean,
/// min, max and median; `None` for no values.
pub fn stats(values: &[f64], level: f64) -> Option<Stats> {
    if values.is_empty() {
        return None;
    }
    let n = values.len();
    let m = mean(values);
    let std = variance(values).map(f64::sqrt);
    let sem = std.map(|s| s / (n as f64).sqrt());
    let ci = sem.map(|se| {
        let h = t_crit((n - 1) as f64, level) * se;
        (m - h, m + h)
    });
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let median = if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    };
    Some(Stats {
        n,
        mean: m,
        std,
        sem,
        ci,
        min: sorted[0],
        max: sorted[n - 1],
        median,
    })
}

impl Stats {
    /// `mean ± std` with `d` decimals (the mean alone for one value).
    pub fn mean_std_text(&self, d: usize) -> String {
        match self.std {
            Some(sd) => format!("{:.d$} ± {sd:.d$}", self.mean),
            None => format!("{:.d$}", self.mean),
        }
    }

    /// The interval as `[lo, hi]` with `d` decimals; `None` for one value.
    pub fn ci_text(&self, d: usize) -> Option<String> {
        self.ci.map(|(lo, hi)| format!("[{lo:.d$}, {hi:.d$}]"))
    }
}

impl Comparison {
    /// The signed difference and, when defined, its interval: `-4.00 [-4.50, -3.50]`.
    pub fn diff_text(&self, d: usize) -> String {
        match self.diff_ci {
            Some((lo, hi)) => format!("{:+.d$} [{lo:+.d$}, {hi:+.d$}]", self.diff),
            None => format!("{:+.d$}", self.diff),
        }
    }
}

/// How a group's mean compares with the best group's.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Comparison {
    /// mean(group) − mean(best).
    pub diff: f64,
    /// The confidence interval of the difference; `None` when it cannot be computed (a group of
    /// one value, or a paired difference of fewer than two seeds).
    pub diff_ci: Option<(f64, f64)>,
    /// The two-sided p-value of the test; `None` as for `diff_ci`.
    pub p: Option<f64>,
    /// After Holm's correction over the comparisons of one table.
    pub p_adjusted: Option<f64>,
    /// `paired` (a paired t-test over the seeds both groups ran) or `welch`.
    pub test: &'static str,
    /// The group cannot be told apart from the best at the table's level: its adjusted p-value is
    /// at least 1 − level, or it cannot be tested (then it is not marked as tied).
    pub tied_with_best: bool,
}

/// A paired t-test of `a − b` over matched values: (diff, ci, p); `None` below two pairs.
pub fn paired(a: &[f64], b: &[f64], level: f64) -> Option<(f64, (f64, f64), f64)> {
    assert_eq!(a.len(), b.len());
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    let n = d.len();
    let v = variance(&d)?;
    let m = mean(&d);
    let se = (v / n as f64).sqrt();
    let df = (n - 1) as f64;
    let h = t_crit(df, level) * se;
    let p = if se == 0.0 {
        if m == 0.0 {
            1.0
        } else {
            0.0
        }
    } else {
        t_p(m / se, df)
    };
    Some((m, (m - h, m + h), p))
}

/// Welch's t-test of mean(a) − mean(b) (unequal variances, Welch–Satterthwaite degrees of
/// freedom): (diff, ci, p); `None` when either side has fewer than two values.
pub fn welch(a: &[f64], b: &[f64], level: f64) -> Option<(f64, (f64, f64), f64)> {
    let (va, vb) = (variance(a)?, variance(b)?);
    let (na, nb) = (a.len() as f64, b.len() as f64);
    let diff = mean(a) - mean(b);
    let (qa, qb) = (va / na, vb / nb);
    let se2 = qa + qb;
    if se2 == 0.0 {
        let p = if diff == 0.0 { 1.0 } else { 0.0 };
        return Some((diff, (diff, diff), p));
    }
    let df = se2 * se2 / (qa * qa / (na - 1.0) + qb * qb / (nb - 1.0));
    let se = se2.sqrt();
    let h = t_crit(df, level) * se;
    Some((diff, (diff - h, diff + h), t_p(diff / se, df)))
}

/// Holm's step-down adjustment of p-values (family-wise error), in their given order.
pub fn holm(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&i, &j| p[i].total_cmp(&p[j]));
    let mut adj = vec![0.0; m];
    let mut running = 0.0f64;
    for (rank, &i) in order.iter().enumerate() {
        let v = ((m - rank) as f64 * p[i]).min(1.0);
        running = running.max(v);
        adj[i] = running;
    }
    adj
}

/// Compare every group with group `best`: groups are (seed, value) pairs. Paired by seed when the
/// two groups ran exactly the same seeds (at least two), Welch otherwise; Holm over the groups
/// that could be tested. The best group itself gets `None`.
pub fn compare_with_best(
    groups: &[Vec<(i64, f64)>],
    best: usize,
    level: f64,
) -> Vec<Option<Comparison>> {
    let b = &groups[best];
    let mut out: Vec<Option<Comparison>> = groups
        .iter()
        .enumerate()
        .map(|(i, g)| {
            if i == best || g.is_empty() || b.is_empty() {
                return None;
            }
            let mut gs: Vec<(i64, f64)> = g.clone();
            let mut bs: Vec<(i64, f64)> = b.clone();
            gs.sort_by_key(|x| x.0);
            bs.sort_by_key(|x| x.0);
            // Paired only when each group ran each seed once (a group pooling other settings
            // has a seed several times: nothing to pair by) and both ran the same seeds.
            let distinct = |v: &[(i64, f64)]| v.windows(2).all(|w| w[0].0 != w[1].0);
            let same_seeds = gs.len() == bs.len()
                && distinct(&gs)
                && distinct(&bs)
                && gs.iter().zip(&bs).all(|(x, y)| x.0 == y.0);
            let gv: Vec<f64> = gs.iter().map(|x| x.1).collect();
            let bv: Vec<f64> = bs.iter().map(|x| x.1).collect();
            let (test, r) = if same_seeds {
                ("paired", paired(&gv, &bv, level))
            } else {
                ("welch", welch(&gv, &bv, level))
            };
            Some(Comparison {
                diff: mean(&gv) - mean(&bv),
                diff_ci: r.map(|r| r.1),
                p: r.map(|r| r.2),
                p_adjusted: None,
                test,
                tied_with_best: false,
            })
        })
        .collect();
    let tested: Vec<usize> = (0..out.len())
        .filter(|&i| out[i].is_some_and(|c| c.p.is_some()))
        .collect();
    let ps: Vec<f64> = tested.iter().map(|&i| out[i].unwrap().p.unwrap()).collect();
    for (&i, adj) in tested.iter().zip(holm(&ps)) {
        let c = out[i].as_mut().unwrap();
        c.p_adjusted = Some(adj);
        c.tied_with_best = adj >= 1.0 - level;
    }
    out
}

/// One term of a grid's variance decomposition.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Term {
    /// A swept key, `A × B` for a pair, `higher-order interactions`, or `seed (residual)`.
    pub term: String,
    pub sum_sq: f64,
    pub df: f64,
    /// Of the total sum of squares.
    pub share: f64,
    /// The F-test against the residual (seeds), when there are replicates.
    pub f: Option<f64>,
    pub p: Option<f64>,
}

/// The ANOVA decomposition of a full grid: `cells[c]` are the values (one per seed) of the cell
/// whose level of key k is `levels[c][k]`; `n_levels[k]` levels per key. Main effects and pairwise
/// interactions of the cell means (every cell weighted by the mean number of seeds: the exact
/// two-way … k-way ANOVA for a balanced grid), the rest of the between-cell variance as
/// higher-order interactions, and the within-cell (seed) residual. `None` when a cell is empty.
pub fn anova(
    keys: &[String],
    n_levels: &[usize],
    levels: &[Vec<usize>],
    cells: &[Vec<f64>],
) -> Option<Vec<Term>> {
    if cells.is_empty() || cells.iter().any(|c| c.is_empty()) {
        return None;
    }
    let k = keys.len();
    let n_cells = cells.len();
    let means: Vec<f64> = cells.iter().map(|c| mean(c)).collect();
    let r = cells.iter().map(Vec::len).sum::<usize>() as f64 / n_cells as f64;
    let grand = mean(&means);
    // Marginal means of each key's levels and each pair's level combinations.
    let marginal = |key: usize| -> Vec<f64> {
        let mut s = vec![0.0; n_levels[key]];
        let mut c = vec![0usize; n_levels[key]];
        for (cell, m) in levels.iter().zip(&means) {
            s[cell[key]] += m;
            c[cell[key]] += 1;
        }
        s.iter().zip(&c).map(|(s, c)| s / *c as f64).collect()
    };
    let mains: Vec<Vec<f64>> = (0..k).map(marginal).collect();
    let mut terms = Vec::new();
    let mut explained = 0.0;
    for (i, key) in keys.iter().enumerate() {
        let ss = r * sum(levels.iter().map(|c| (mains[i][c[i]] - grand).powi(2)));
        explained += ss;
        terms.push(Term {
            term: key.clone(),
            sum_sq: ss,
            df: (n_levels[i] - 1) as f64,
            share: 0.0,
            f: None,
            p: None,
        });
    }
    for i in 0..k {
        for j in i + 1..k {
            let (ni, nj) = (n_levels[i], n_levels[j]);
            let mut s = vec![0.0; ni * nj];
            let mut c = vec![0usize; ni * nj];
            for (cell, m) in levels.iter().zip(&means) {
                s[cell[i] * nj + cell[j]] += m;
                c[cell[i] * nj + cell[j]] += 1;
            }
            let ss = r * sum(levels.iter().map(|cell| {
                let ij = s[cell[i] * nj + cell[j]] / c[cell[i] * nj + cell[j]] as f64;
                (ij - mains[i][cell[i]] - mains[j][cell[j]] + grand).powi(2)
            }));
            explained += ss;
            terms.push(Term {
                term: format!("{} × {}", keys[i], keys[j]),
                sum_sq: ss,
                df: ((ni - 1) * (nj - 1)) as f64,
                share: 0.0,
                f: None,
                p: None,
            });
        }
    }
    let between = r * sum(means.iter().map(|m| (m - grand).powi(2)));
    let df_between = (n_cells - 1) as f64;
    let df_used: f64 = terms.iter().map(|t| t.df).sum();
    if k > 2 {
        terms.push(Term {
            term: "higher-order interactions".into(),
            sum_sq: (between - explained).max(0.0),
            df: df_between - df_used,
            share: 0.0,
            f: None,
            p: None,
        });
    }
    let within = sum(cells
        .iter()
        .zip(&means)
        .flat_map(|(c, m)| c.iter().map(move |x| (x - m).powi(2))));
    let n_values: usize = cells.iter().map(Vec::len).sum();
    let df_within = (n_values - n_cells) as f64;
    terms.push(Term {
        term: "seed (residual)".into(),
        sum_sq: within,
        df: df_within,
        share: 0.0,
        f: None,
        p: None,
    });
    let total: f64 = terms.iter().map(|t| t.sum_sq).sum();
    let ms_within = (df_within > 0.0).then(|| within / df_within);
    for t in &mut terms {
        t.share = if total > 0.0 { t.sum_sq / total } else { 0.0 };
        if t.term != "seed (residual)" && t.df > 0.0 {
            if let Some(msw) = ms_within.filter(|m| *m > 0.0) {
                let f = (t.sum_sq / t.df) / msw;
                t.f = Some(f);
                t.p = FisherSnedecor::new(t.df, df_within).ok().map(|d| d.sf(f));
            }
        }
    }
    Some(terms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// Equal to 1e-9, relative to the larger of |want| and 1 (p-values: relative to |want|).
    fn close(got: f64, want: f64, rel_only: bool, what: &str) {
        let scale = if rel_only {
            want.abs()
        } else {
            want.abs().max(1.0)
        };
        assert!(
            (got - want).abs() <= 1e-9 * scale,
            "{what}: {got} vs SciPy {want} (diff {:e})",
            (got - want).abs()
        );
    }

    fn opt(v: &Value) -> Option<f64> {
        v.as_f64()
    }

    #[test]
    fn hand_computed_small_cases() {
        // n = 3, values 70, 72, 74: t(0.975, 2) = 4.302652729911275 (SciPy), sem = 2/√3.
        let s = stats(&[74.0, 70.0, 72.0], 0.95).unwrap();
        assert_eq!((s.n, s.mean, s.std, s.median), (3, 72.0, Some(2.0), 72.0));
        let h = 4.302652729911275 * 2.0 / 3f64.sqrt();
        let (lo, hi) = s.ci.unwrap();
        assert!((lo - (72.0 - h)).abs() < 1e-9 && (hi - (72.0 + h)).abs() < 1e-9);
        // One value: no spread, no interval (not zero).
        let one = stats(&[5.0], 0.95).unwrap();
        assert_eq!((one.std, one.sem, one.ci), (None, None, None));
        assert_eq!(stats(&[1.0, 2.0, 3.0, 10.0], 0.9).unwrap().median, 2.5);
        // Holm: sorted p 0.01, 0.04, 0.03 → 0.03, 0.06, 0.06 (the running maximum).
        assert_eq!(holm(&[0.01, 0.04, 0.03]), vec![0.03, 0.06, 0.06]);
        assert_eq!(holm(&[0.5, 0.9]), vec![1.0, 1.0]);
        // Paired differences all equal: no variance, p = 0 (or 1 when they are all zero).
        let (d, ci, p) = paired(&[2.0, 3.0], &[1.0, 2.0], 0.95).unwrap();
        assert_eq!((d, ci, p), (1.0, (1.0, 1.0), 0.0));
        assert!(paired(&[1.0], &[2.0], 0.95).is_none());
        assert!(welch(&[1.0, 2.0], &[3.0], 0.95).is_none());
        // Same seeds → paired; other seeds → Welch; a single value → untestable, not tied.
        let groups = vec![
            vec![(1, 10.0), (2, 12.0), (3, 11.0)],
            vec![(1, 9.0), (2, 12.5), (3, 10.0)],
            vec![(4, 1.0), (5, 1.5), (6, 0.5)],
            vec![(1, 10.5)],
        ];
        let c = compare_with_best(&groups, 0, 0.95);
        assert!(c[0].is_none());
        let (a, b, d) = (c[1].unwrap(), c[2].unwrap(), c[3].unwrap());
        assert_eq!((a.test, b.test, d.test), ("paired", "welch", "welch"));
        assert!(a.tied_with_best && !b.tied_with_best && !d.tied_with_best);
        assert_eq!((d.p, d.p_adjusted, d.diff_ci), (None, None, None));
        assert!((d.diff - (10.5 - 11.0)).abs() < 1e-12);
    }

    #[test]
    fn every_statistic_matches_scipy() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/stats_scipy.json");
        check(&serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap());
    }

    /// Fresh cases from SciPy (another seed than the committed fixture's), when the reference
    /// Python is there; required in CI (CI=true or SIMSWEEP_REQUIRE_DATA=1).
    #[test]
    fn fresh_cases_match_scipy() {
        let required = std::env::var("CI").is_ok_and(|v| v == "true")
            || std::env::var("SIMSWEEP_REQUIRE_DATA").is_ok_and(|v| v == "1");
        let Ok(py) = std::env::var("SIMSWEEP_PYREF") else {
            assert!(
                !required,
                "SIMSWEEP_PYREF is not set: the SciPy parity of the statistics cannot run"
            );
            eprintln!("skipped: SIMSWEEP_PYREF is not set (scripts/pyref.sh)");
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("fresh.json");
        let script =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/parity_stats.py");
        let st = std::process::Command::new(py)
            .arg(script)
            .args(["--seed", "20261201", "--cases", "60", "--out"])
            .arg(&out)
            .status()
            .unwrap();
        assert!(st.success());
        check(&serde_json::from_str(&std::fs::read_to_string(out).unwrap()).unwrap());
    }

    fn check(doc: &Value) {
        let mut n_checked = 0;
        for (ci, case) in doc["comparisons"].as_array().unwrap().iter().enumerate() {
            let level = case["level"].as_f64().unwrap();
            let groups: Vec<Vec<(i64, f64)>> = case["groups"]
                .as_array()
                .unwrap()
                .iter()
                .map(|g| {
                    g.as_array()
                        .unwrap()
                        .iter()
                        .map(|p| (p[0].as_i64().unwrap(), p[1].as_f64().unwrap()))
                        .collect()
                })
                .collect();
            for (g, want) in groups.iter().zip(case["summaries"].as_array().unwrap()) {
                let v: Vec<f64> = g.iter().map(|p| p.1).collect();
                let s = stats(&v, level).unwrap();
                let w = |k: &str| opt(&want[k]);
                close(s.mean, w("mean").unwrap(), false, "mean");
                close(s.median, w("median").unwrap(), false, "median");
                assert_eq!(
                    s.std.is_some(),
                    w("std").is_some(),
                    "case {ci}: std defined"
                );
                if let (Some(sd), Some(wsd)) = (s.std, w("std")) {
                    close(sd, wsd, false, "std");
                    close(s.sem.unwrap(), w("sem").unwrap(), false, "sem");
                    close(s.ci.unwrap().0, w("ci_low").unwrap(), false, "ci_low");
                    close(s.ci.unwrap().1, w("ci_high").unwrap(), false, "ci_high");
                }
                n_checked += 1;
            }
            let got = compare_with_best(&groups, 0, level);
            for (g, want) in got[1..].iter().zip(case["comparisons"].as_array().unwrap()) {
                let g = g.unwrap();
                assert_eq!(g.test, want["test"].as_str().unwrap(), "case {ci}");
                close(g.diff, want["diff"].as_f64().unwrap(), false, "diff");
                assert_eq!(
                    g.p.is_some(),
                    opt(&want["p"]).is_some(),
                    "case {ci}: p defined"
                );
                if let Some(p) = g.p {
                    close(p, opt(&want["p"]).unwrap(), true, "p");
                    close(
                        g.p_adjusted.unwrap(),
                        opt(&want["p_adjusted"]).unwrap(),
                        true,
                        "p_adjusted",
                    );
                    let (lo, hi) = g.diff_ci.unwrap();
                    close(lo, opt(&want["ci_low"]).unwrap(), false, "diff ci_low");
                    close(hi, opt(&want["ci_high"]).unwrap(), false, "diff ci_high");
                }
                n_checked += 1;
            }
        }
        for case in doc["anova"].as_array().unwrap() {
            let keys: Vec<String> = case["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k.as_str().unwrap().to_string())
                .collect();
            let n_levels: Vec<usize> = case["n_levels"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as usize)
                .collect();
            let levels: Vec<Vec<usize>> = case["levels"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| {
                    l.as_array()
                        .unwrap()
                        .iter()
                        .map(|v| v.as_u64().unwrap() as usize)
                        .collect()
                })
                .collect();
            let cells: Vec<Vec<f64>> = case["cells"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| {
                    c.as_array()
                        .unwrap()
                        .iter()
                        .map(|v| v.as_f64().unwrap())
                        .collect()
                })
                .collect();
            let terms = anova(&keys, &n_levels, &levels, &cells).unwrap();
            let want = case["terms"].as_array().unwrap();
            assert_eq!(terms.len(), want.len());
            for (t, w) in terms.iter().zip(want) {
                assert_eq!(t.term, w["term"].as_str().unwrap());
                close(t.sum_sq, w["sum_sq"].as_f64().unwrap(), false, &t.term);
                close(t.share, w["share"].as_f64().unwrap(), false, &t.term);
                if let Some(wf) = opt(&w["f"]) {
                    close(t.f.unwrap(), wf, false, "F");
                    close(t.p.unwrap(), opt(&w["p"]).unwrap(), true, "F p");
                }
                n_checked += 1;
            }
        }
        assert!(n_checked > 200, "{n_checked} values");
    }
}
