//! Which settings matter: the share of a metric's variance explained by each swept key. For a full
//! grid, the ANOVA decomposition of the grid (main effects, pairwise interactions, higher-order
//! interactions, seeds as the residual; [`super::stats::anova`]); otherwise (random search, a grid
//! with holes) a random forest's out-of-bag permutation importance (smartcore).

use super::*;
use smartcore::ensemble::random_forest_regressor::{
    RandomForestRegressor, RandomForestRegressorParameters,
};
use smartcore::linalg::basic::matrix::DenseMatrix;

/// What [`importance`] found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Importance {
    pub sweep: String,
    pub metric: String,
    pub mode: Mode,
    pub goal: Goal,
    /// `anova` (a full grid) or `random_forest`.
    pub method: &'static str,
    pub keys: Vec<String>,
    /// Runs with a value.
    pub runs: usize,
    /// How the method was chosen and how well it fits (for the table's header).
    pub note: String,
    /// For `random_forest`: the forest's out-of-bag R² (how much of the variance it explains at all).
    pub oob_r2: Option<f64>,
    /// Largest share first, the residual last.
    pub terms: Vec<Term>,
}

/// The share of the variance of `q.metric` (best or final per run) explained by each swept key.
pub fn importance(
    conn: &Connection,
    sweep: &SweepInfo,
    sel: &Selection,
    q: &BestQuery,
) -> Result<Importance> {
    let metric = metric(conn, &q.metric)?;
    let goal = goal_of(&metric, q)?;
    let keys: Vec<String> = sweep
        .swept_keys
        .iter()
        .filter(|k| *k != "seed")
        .cloned()
        .collect();
    if keys.is_empty() {
        return input(format!(
            "sweep {} varies no setting (only seeds): there is nothing to attribute the variance to",
            sweep.name
        ));
    }
    let (runs, values) = selected_values(conn, sweep, sel, &metric, q, goal)?;
    let data: Vec<(&Run, f64)> = runs
        .iter()
        .zip(&values)
        .filter_map(|(r, v)| v.and_then(|v| v.value).map(|x| (r, x)))
        .collect();
    if data.is_empty() {
        let pks: Vec<i64> = runs.iter().map(|r| r.run_pk).collect();
        return no_values_error(conn, &pks, &metric, q.layer);
    }
    // Levels of each key in plan order.
    let mut levels: Vec<Vec<Value>> = vec![Vec::new(); keys.len()];
    for r in &runs {
        for (k, key) in keys.iter().enumerate() {
            let v = r.param(key);
            if !levels[k].contains(&v) {
                levels[k].push(v);
            }
        }
    }
    let level_of = |k: usize, v: &Value| levels[k].iter().position(|x| x == v).expect("a level");
    let coords: Vec<Vec<usize>> = data
        .iter()
        .map(|(r, _)| {
            (0..keys.len())
                .map(|k| level_of(k, &r.param(&keys[k])))
                .collect()
        })
        .collect();
    let n_levels: Vec<usize> = levels.iter().map(Vec::len).collect();
    let full: usize = n_levels.iter().product();
    let mut cells: BTreeMap<Vec<usize>, Vec<f64>> = BTreeMap::new();
    for (c, (_, x)) in coords.iter().zip(&data) {
        cells.entry(c.clone()).or_default().push(*x);
    }
    let (mut terms, method, note, oob_r2) = if cells.len() == full && full > 1 {
        let (cell_levels, cell_values): (Vec<Vec<usize>>, Vec<Vec<f64>>) =
            cells.into_iter().unzip();
        let reps: Vec<usize> = cell_values.iter().map(Vec::len).collect();
        let terms = stats::anova(&keys, &n_levels, &cell_levels, &cell_values)
            .expect("every cell has a value");
        let (lo, hi) = (reps.iter().min().unwrap(), reps.iter().max().unwrap());
        (
            terms,
            "anova",
            format!(
                "full grid {} ({} cells), {} per cell; ANOVA of the grid{}",
                n_levels.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(" × "),
                full,
                match (lo, hi) {
                    (1, 1) => "1 seed".to_string(),
                    (l, h) if l == h => format!("{l} seeds"),
                    (l, h) => format!("{l}–{h} seeds"),
                },
                match (lo, hi) {
                    (1, 1) => " (one seed per cell: no residual, the seeds' share cannot be told apart from the interactions)".to_string(),
                    (l, h) if l == h => String::new(),
                    _ => " (unbalanced: cells weighted equally)".into(),
                }
            ),
            None,
        )
    } else {
        let why = if full <= 1 {
            "one cell".to_string()
        } else {
            format!("{} of the grid's {full} cells have a value", cells.len())
        };
        let (terms, r2) = forest(
            &keys,
            &levels,
            &coords,
            &data.iter().map(|d| d.1).collect::<Vec<_>>(),
        )?;
        (
            terms,
            "random_forest",
            format!("not a full grid ({why}): random forest (300 trees), out-of-bag permutation importance, 10 permutations per key"),
            Some(r2),
        )
    };
    let residual = terms
        .iter()
        .position(|t| t.term == "seed (residual)")
        .map(|i| terms.remove(i));
    terms.sort_by(|a, b| b.share.total_cmp(&a.share));
    terms.extend(residual);
    Ok(Importance {
        sweep: sweep.name.clone(),
        metric: metric.name,
        mode: q.mode,
        goal,
        method,
        keys,
        runs: data.len(),
        note,
        oob_r2,
        terms,
    })
}

/// A random forest of the metric on the keys (numbers as they are, other values by level index;
/// trees split on order, so no scaling is needed), and each key's out-of-bag permutation
/// importance: the mean increase of the OOB squared error when the key's column is shuffled, as a
/// share of the increases' sum. Returns the terms and the forest's OOB R².
fn forest(
    keys: &[String],
    levels: &[Vec<Value>],
    coords: &[Vec<usize>],
    y: &[f64],
) -> Result<(Vec<Term>, f64)> {
    let n = y.len();
    if n < 10 {
        return input(format!(
            "{n} runs with a value: a random forest needs at least 10 (the sweep is not a full grid, so the ANOVA does not apply)"
        ));
    }
    let feature = |k: usize, l: usize| -> f64 { levels[k][l].as_f64().unwrap_or(l as f64) };
    let x: Vec<Vec<f64>> = coords
        .iter()
        .map(|c| c.iter().enumerate().map(|(k, &l)| feature(k, l)).collect())
        .collect();
    let fail = |e: smartcore::error::Failed| Error::Input(format!("random forest: {e}"));
    let xm = DenseMatrix::from_2d_vec(&x).map_err(fail)?;
    let yv = y.to_vec();
    let params = RandomForestRegressorParameters::default()
        .with_n_trees(300)
        .with_m(keys.len())
        .with_min_samples_leaf(1)
        .with_keep_samples(true)
        .with_seed(0);
    let rf = RandomForestRegressor::fit(&xm, &yv, params).map_err(fail)?;
    let mse = |pred: &Vec<f64>| sum(pred.iter().zip(y).map(|(p, t)| (p - t).powi(2))) / n as f64;
    let base = mse(&rf.predict_oob(&xm).map_err(fail)?);
    let mean_y = sum(y.iter().copied()) / n as f64;
    let var = sum(y.iter().map(|v| (v - mean_y).powi(2))) / n as f64;
    let r2 = if var > 0.0 { 1.0 - base / var } else { 0.0 };
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut imp = Vec::with_capacity(keys.len());
    for k in 0..keys.len() {
        let mut inc = 0.0;
        for _ in 0..10 {
            let perm = crate::data::permutation(n, state);
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let xp: Vec<Vec<f64>> = (0..n)
                .map(|i| {
                    let mut row = x[i].clone();
                    row[k] = x[perm[i]][k];
                    row
                })
                .collect();
            let xpm = DenseMatrix::from_2d_vec(&xp).map_err(fail)?;
            inc += mse(&rf.predict_oob(&xpm).map_err(fail)?) - base;
        }
        imp.push((inc / 10.0).max(0.0));
    }
    let total: f64 = imp.iter().sum();
    let terms = keys
        .iter()
        .zip(&imp)
        .map(|(k, &v)| Term {
            term: k.clone(),
            sum_sq: v,
            df: (levels[keys.iter().position(|x| x == k).unwrap()].len() - 1) as f64,
            share: if total > 0.0 { v / total } else { 0.0 },
            f: None,
            p: None,
        })
        .collect();
    Ok((terms, r2))
}
