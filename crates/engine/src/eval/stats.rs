//! Rank and linear correlation in `f64`, with `scipy.stats` semantics.
//!
//! Undefined results: scipy returns NaN (with a warning) when an input is constant or has fewer than
//! two points. These functions return `None` instead, so the caller decides; [`super::Scores`]
//! records such a task as 0 and flags it (see [`super::TaskScore::undefined`]).

/// Ranks starting at 1, tied values sharing the mean of the ranks they span
/// (`scipy.stats.rankdata(x, method="average")`). Values compare with IEEE total order, so
/// `-0.0` ranks below `0.0`; callers pass finite, NaN-free data.
pub fn average_ranks(x: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..x.len()).collect();
    order.sort_by(|&i, &j| x[i].total_cmp(&x[j]));
    let mut ranks = vec![0.0; x.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && x[order[end]] == x[order[start]] {
            end += 1;
        }
        // Positions start..end (0-based) hold ranks start+1 ..= end; their mean:
        let rank = (start + 1 + end) as f64 / 2.0;
        for &k in &order[start..end] {
            ranks[k] = rank;
        }
        start = end;
    }
    ranks
}

/// Pearson's r (`scipy.stats.pearsonr(x, y)[0]`), clipped to [-1, 1].
///
/// `None` when the lengths differ, there are fewer than two points, either input is constant
/// (all values equal) or contains a non-finite value.
pub fn pearson(x: &[f64], y: &[f64]) -> Option<f64> {
    if x.len() != y.len() || x.len() < 2 {
        return None;
    }
    if x.iter().chain(y).any(|v| !v.is_finite()) {
        return None;
    }
    if x.iter().all(|&v| v == x[0]) || y.iter().all(|&v| v == y[0]) {
        return None;
    }
    let n = x.len() as f64;
    let mx = x.iter().sum::<f64>() / n;
    let my = y.iter().sum::<f64>() / n;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (&a, &b) in x.iter().zip(y) {
        let (da, db) = (a - mx, b - my);
        sxy += da * db;
        sxx += da * da;
        syy += db * db;
    }
    let denom = sxx.sqrt() * syy.sqrt();
    if denom == 0.0 || !denom.is_finite() {
        return None;
    }
    Some((sxy / denom).clamp(-1.0, 1.0))
}

/// Spearman's ρ with average ranks for ties (`scipy.stats.spearmanr(x, y)[0]`): Pearson's r of
/// the [`average_ranks`]. `None` under the same conditions as [`pearson`].
pub fn spearman(x: &[f64], y: &[f64]) -> Option<f64> {
    if x.len() != y.len() || x.iter().chain(y).any(|v| !v.is_finite()) {
        return None;
    }
    pearson(&average_ranks(x), &average_ranks(y))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-12, "{a} != {b}");
    }

    #[test]
    fn ranks_average_ties() {
        assert_eq!(
            average_ranks(&[10.0, 20.0, 10.0, 30.0, 20.0, 20.0]),
            vec![1.5, 4.0, 1.5, 6.0, 4.0, 4.0]
        );
        assert_eq!(average_ranks(&[3.0, 1.0, 2.0]), vec![3.0, 1.0, 2.0]);
        assert_eq!(average_ranks(&[]), Vec::<f64>::new());
        assert_eq!(average_ranks(&[7.0, 7.0, 7.0]), vec![2.0, 2.0, 2.0]);
    }

    #[test]
    fn spearman_by_hand_without_ties() {
        // ranks x = 1..5, ranks y = [2,1,4,3,5]; d² = 1+1+1+1+0 = 4; ρ = 1 − 6·4/(5·24) = 0.8
        close(
            spearman(&[1.0, 2.0, 3.0, 4.0, 5.0], &[0.2, 0.1, 0.4, 0.3, 0.9]).unwrap(),
            0.8,
        );
        // Monotone but non-linear: ρ = 1 while r < 1.
        let x = [1.0, 2.0, 3.0, 4.0];
        let y = [1.0, 4.0, 9.0, 100.0];
        close(spearman(&x, &y).unwrap(), 1.0);
        assert!(pearson(&x, &y).unwrap() < 0.9);
        close(spearman(&x, &[4.0, 3.0, 2.0, 1.0]).unwrap(), -1.0);
    }

    #[test]
    fn spearman_by_hand_with_ties() {
        // x ranks [1, 2.5, 2.5, 4], y ranks [1, 2, 3, 4]: centred x = [-1.5, 0, 0, 1.5],
        // centred y = [-1.5, -0.5, 0.5, 1.5]; ρ = 4.5 / sqrt(4.5 · 5) = sqrt(0.9).
        close(
            spearman(&[1.0, 2.0, 2.0, 3.0], &[1.0, 2.0, 3.0, 4.0]).unwrap(),
            0.9f64.sqrt(),
        );
        // Both tied: x ranks [1.5,1.5,3,4], y ranks [1,2.5,2.5,4];
        // centred x = [-1,-1,.5,1.5], y = [-1.5,0,0,1.5]; Σxy = 1.5+2.25 = 3.75;
        // Σx² = 4.5, Σy² = 4.5; ρ = 3.75/4.5.
        close(
            spearman(&[5.0, 5.0, 6.0, 9.0], &[0.0, 1.0, 1.0, 2.0]).unwrap(),
            3.75 / 4.5,
        );
        // Ties in both, longer runs (scipy 1.17's spearmanr agrees: 0.8333…):
        let x = [1.0, 2.0, 2.0, 3.0, 3.0, 3.0, 4.0];
        let y = [2.0, 1.0, 2.0, 4.0, 3.0, 4.0, 4.0];
        let rx = [1.0, 2.5, 2.5, 5.0, 5.0, 5.0, 7.0];
        let ry = [2.5, 1.0, 2.5, 6.0, 4.0, 6.0, 6.0];
        assert_eq!(average_ranks(&x), rx);
        assert_eq!(average_ranks(&y), ry);
        // mean rank 4: cx = [-3,-1.5,-1.5,1,1,1,3], cy = [-1.5,-3,-1.5,2,0,2,2]
        // Σcxcy = 4.5+4.5+2.25+2+0+2+6 = 21.25; Σcx² = 9+2.25+2.25+1+1+1+9 = 25.5;
        // Σcy² = 2.25+9+2.25+4+0+4+4 = 25.5 → ρ = 21.25/25.5
        close(spearman(&x, &y).unwrap(), 21.25 / 25.5);
    }

    #[test]
    fn pearson_by_hand() {
        // centred x = [-1,0,1], y = [-2,1,1]: Σxy = 3, Σx² = 2, Σy² = 6 → r = 3/sqrt(12)
        close(
            pearson(&[1.0, 2.0, 3.0], &[0.0, 3.0, 3.0]).unwrap(),
            3.0 / 12f64.sqrt(),
        );
        close(pearson(&[1.0, 2.0], &[5.0, -5.0]).unwrap(), -1.0);
    }

    #[test]
    fn undefined_cases_are_none() {
        // Constant input (scipy: NaN with ConstantInputWarning).
        assert_eq!(spearman(&[1.0, 2.0, 3.0], &[4.0, 4.0, 4.0]), None);
        assert_eq!(
            pearson(
                &[0.1; 10],
                &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0]
            ),
            None
        );
        // Too short, mismatched, non-finite.
        assert_eq!(spearman(&[1.0], &[2.0]), None);
        assert_eq!(spearman(&[], &[]), None);
        assert_eq!(spearman(&[1.0, 2.0], &[1.0, 2.0, 3.0]), None);
        assert_eq!(spearman(&[1.0, f64::NAN, 3.0], &[1.0, 2.0, 3.0]), None);
        assert_eq!(pearson(&[1.0, f64::INFINITY, 3.0], &[1.0, 2.0, 3.0]), None);
    }
}
