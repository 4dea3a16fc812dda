//! Hand-computed cases of the early-stopping decisions.

use super::*;

fn search(method: Method, min_steps: i64, eta: i64, min_runs: i64, goal: Goal) -> Search {
    Search {
        method,
        metric: "stsb_dev".into(),
        goal,
        min_steps,
        reduction_factor: eta,
        min_runs,
    }
}

fn rep<'a>(setting: &'a str, run: &'a str, step: i64, value: f64) -> Report<'a> {
    Report {
        sweep: "s",
        setting,
        run_id: run,
        step,
        value,
        total_steps: 100,
    }
}

/// Feed reports to a board in order; the verdict of each.
fn feed(board: &mut Board, se: &Search, reports: &[Report<'_>]) -> Vec<Verdict> {
    reports
        .iter()
        .map(|r| board.report(se, r).unwrap())
        .collect()
}

fn decided(v: &Verdict) -> &Decision {
    match v {
        Verdict::Decided(d) => d,
        other => panic!("expected a decision, got {other:?}"),
    }
}

fn board() -> (tempfile::TempDir, Board) {
    let dir = tempfile::tempdir().unwrap();
    let b = Board::open(&dir.path().join("search.db")).unwrap();
    (dir, b)
}

#[test]
fn quantiles_interpolate_as_numpy() {
    // numpy.percentile([1, 2, 3, 4], 200/3) = 3.0; median 2.5; one value is itself.
    assert_eq!(quantile(&[4.0, 1.0, 3.0, 2.0], 2.0 / 3.0), 3.0);
    assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
    assert_eq!(quantile(&[7.0], 0.9), 7.0);
    // numpy.percentile([0.4, 0.5], 200/3) = 0.4666…
    assert!((quantile(&[0.5, 0.4], 2.0 / 3.0) - 0.466_666_666_666_666_7).abs() < 1e-12);
}

#[test]
fn rungs_grow_by_eta_below_the_last_step() {
    let se = search(Method::Asha, 10, 3, 5, Goal::Max);
    assert_eq!(se.rungs(100), vec![10, 30, 90]);
    assert_eq!(se.rungs(90), vec![10, 30]);
    assert_eq!(se.rungs(10), Vec::<i64>::new());
}

#[test]
fn asha_keeps_the_top_third_at_each_rung() {
    let (_d, mut b) = board();
    let se = search(Method::Asha, 10, 3, 5, Goal::Max);
    let v = feed(
        &mut b,
        &se,
        &[
            rep("A", "a", 10, 0.5),  // alone at rung 10: continues
            rep("B", "b", 10, 0.4),  // [0.4, 0.5]: threshold 0.4667, pruned
            rep("C", "c", 10, 0.6),  // [0.4, 0.5, 0.6]: threshold 0.5333, continues
            rep("A", "a", 20, 0.9),  // between rungs: nothing
            rep("A", "a", 30, 0.7),  // alone at rung 30: continues
            rep("C", "c", 30, 0.65), // [0.7, 0.65]: threshold 0.6833, pruned
            rep("B", "b", 20, 0.99), // pruned before
        ],
    );
    let a = decided(&v[0]);
    assert!(!a.prune && a.compared == 1 && a.rung == 10 && a.threshold == Some(0.5));
    let b1 = decided(&v[1]);
    assert!(b1.prune, "{b1:?}");
    assert!((b1.threshold.unwrap() - 0.466_666_666_666_666_7).abs() < 1e-12);
    assert!(
        b1.message.contains("asha rung 1 (step 10)"),
        "{}",
        b1.message
    );
    assert!(
        b1.message.contains("below the threshold 0.4667"),
        "{}",
        b1.message
    );
    let c = decided(&v[2]);
    assert!(!c.prune && (c.threshold.unwrap() - 0.533_333_333_333_333_3).abs() < 1e-12);
    assert_eq!(v[3], Verdict::None);
    let a30 = decided(&v[4]);
    assert!(!a30.prune && a30.rung == 30 && a30.compared == 1);
    let c30 = decided(&v[5]);
    assert!(c30.prune && (c30.threshold.unwrap() - 0.683_333_333_333_333_3).abs() < 1e-12);
    match &v[6] {
        Verdict::AlreadyPruned(d) => assert_eq!(d.run_id, "b"),
        other => panic!("{other:?}"),
    }
    assert_eq!(b.pruned("s", "B").unwrap().unwrap().id, b1.id);
    assert!(b.pruned("s", "A").unwrap().is_none());
    assert_eq!(b.decisions("s").unwrap().len(), 5);
}

#[test]
fn asha_judges_a_setting_on_the_mean_of_its_seeds() {
    let (_d, mut b) = board();
    let se = search(Method::Asha, 10, 3, 5, Goal::Max);
    let v = feed(
        &mut b,
        &se,
        &[
            rep("T1", "t1", 10, 0.5),
            rep("T2", "t2", 10, 0.6),
            // A lucky first seed: [0.5, 0.6, 0.9] → threshold 0.7, continues.
            rep("S", "s1", 10, 0.9),
            // Its second seed: S = 0.5; [0.5, 0.5, 0.6] → threshold 0.5333: pruned.
            rep("S", "s2", 10, 0.1),
            // The first seed's next report learns it.
            rep("S", "s1", 20, 0.95),
        ],
    );
    let lucky = decided(&v[2]);
    assert!(!lucky.prune && lucky.seeds == 1);
    assert!((lucky.threshold.unwrap() - 0.7).abs() < 1e-12);
    let d = decided(&v[3]);
    assert!(d.prune && d.seeds == 2 && d.value == Some(0.5), "{d:?}");
    assert!(d.message.contains("mean of 2 seeds"), "{}", d.message);
    assert!(matches!(v[4], Verdict::AlreadyPruned(_)));
}

#[test]
fn asha_with_a_lower_is_better_metric() {
    let (_d, mut b) = board();
    let se = search(Method::Asha, 10, 2, 5, Goal::Min);
    let v = feed(
        &mut b,
        &se,
        &[
            rep("A", "a", 10, 1.0),
            rep("B", "b", 10, 3.0),
            rep("C", "c", 10, 2.0),
        ],
    );
    // [1, 3]: the better half is below 2 → B (3) pruned. [1, 2, 3]: threshold 2 → C continues.
    assert!(decided(&v[1]).prune);
    assert_eq!(decided(&v[1]).threshold, Some(2.0));
    assert!(!decided(&v[2]).prune);
    assert!(decided(&v[1]).message.contains("above the threshold"));
}

#[test]
fn asha_counts_a_report_past_several_rungs_once_at_the_highest() {
    let (_d, mut b) = board();
    let se = search(Method::Asha, 10, 3, 5, Goal::Max);
    // Evaluations every 50 steps: the report at 50 reaches rungs 10 and 30 → rung 30.
    let v = feed(
        &mut b,
        &se,
        &[rep("A", "a", 50, 0.5), rep("A", "a", 95, 0.5)],
    );
    assert_eq!(decided(&v[0]).rung, 30);
    // 95 reaches rung 90.
    assert_eq!(decided(&v[1]).rung, 90);
    // The last step (100) decides nothing, even past a rung: nothing is left to save.
    let v = feed(&mut b, &se, &[rep("B", "b", 100, 0.1)]);
    assert_eq!(v[0], Verdict::None);
}

#[test]
fn median_rule_compares_the_best_so_far_with_running_averages() {
    let (_d, mut b) = board();
    let se = search(Method::Median, 10, 3, 2, Goal::Max);
    let v = feed(
        &mut b,
        &se,
        &[
            rep("A", "a", 10, 1.0), // no other setting: nothing
            rep("A", "a", 20, 2.0),
            rep("B", "b", 10, 3.0), // one other (< min_runs 2): nothing
            rep("B", "b", 20, 4.0),
            rep("C", "c", 10, 0.0), // others at 10: A 1, B 3 → median 2; best 0: pruned
            rep("D", "d", 10, 2.5), // others A 1, B 3, C 0 → median 1: continues
            rep("D", "d", 20, 0.5), // best 2.5; others reaching 20: A (1.5), B (3.5) → 2.5: not worse
        ],
    );
    assert_eq!(v[0], Verdict::None);
    assert_eq!(v[2], Verdict::None);
    let c = decided(&v[4]);
    assert!(
        c.prune && c.threshold == Some(2.0) && c.compared == 2,
        "{c:?}"
    );
    assert!(
        c.message.contains("median rule at step 10"),
        "{}",
        c.message
    );
    let d = decided(&v[5]);
    assert!(!d.prune && d.threshold == Some(1.0) && d.compared == 3);
    let d20 = decided(&v[6]);
    assert!(
        !d20.prune && d20.value == Some(2.5) && d20.threshold == Some(2.5) && d20.compared == 2,
        "{d20:?}"
    );
}

#[test]
fn median_rule_waits_for_min_steps() {
    let (_d, mut b) = board();
    let se = search(Method::Median, 20, 3, 1, Goal::Max);
    let v = feed(
        &mut b,
        &se,
        &[
            rep("A", "a", 10, 5.0),
            rep("B", "b", 10, 0.0),
            rep("B", "b", 20, 0.0),
        ],
    );
    assert_eq!(v[1], Verdict::None);
    // At 20, A has not reached 20: no other setting to compare with.
    assert_eq!(v[2], Verdict::None);
}

#[test]
fn not_a_number_is_the_worst_value_and_decisions_persist() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("search.db");
    let se = search(Method::Asha, 10, 3, 5, Goal::Max);
    {
        let mut b = Board::open(&path).unwrap();
        feed(&mut b, &se, &[rep("A", "a", 10, 0.5)]);
        let v = b.report(&se, &rep("B", "b", 10, f64::NAN)).unwrap();
        let d = decided(&v);
        assert!(d.prune && d.value.is_none());
        assert!(d.message.contains("NaN"));
        // A repeated report (a resumed run evaluating the same step again) is not counted twice.
        assert_eq!(
            b.report(&se, &rep("A", "a", 10, 0.1)).unwrap(),
            Verdict::None
        );
        assert_eq!(b.decisions("s").unwrap().len(), 2);
    }
    let b = Board::open(&path).unwrap();
    assert!(b.pruned("s", "B").unwrap().is_some());
}
