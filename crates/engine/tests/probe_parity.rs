//! Probe parity: simsweep's probe metrics on all-MiniLM-L6-v2 with the default probe set (first
//! 1000 sentence1 of STS-B dev, max_len 32, last layer, avg pooling) against the independent Python
//! reference (`scripts/probe_reference.py`, committed output `tests/fixtures/probe_minilm.json`).
//! Every metric within 1e-4 relative (1e-6 absolute near zero). Runs when SIMSWEEP_MINILM names
//! the checkpoint (scripts/test provisions it) and the shared STS data are present.

mod common;

use simsweep_engine::model::{Init, LoadedModel, Pooler, Pooling};
use simsweep_engine::probe::{probe, ProbeSet};
use std::path::PathBuf;

#[test]
fn probe_metrics_match_the_python_reference_on_minilm() {
    let Some(model_dir) = std::env::var_os("SIMSWEEP_MINILM").map(PathBuf::from) else {
        common::missing("SIMSWEEP_MINILM not set (scripts/test sets it from scripts/minilm.sh)");
        return;
    };
    let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    let data = std::env::var_os("SIMSWEEP_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("../shared/data"));
    if !data
        .join("SentEval/data/downstream/STS/STSBenchmark/sts-dev.csv")
        .is_file()
    {
        common::missing(&format!("shared data not found at {}", data.display()));
        return;
    }
    let fixture: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("tests/fixtures/probe_minilm.json")).unwrap(),
    )
    .unwrap();
    let model = LoadedModel::load(
        &model_dir,
        Init::Pretrained { seed: 0 },
        &Default::default(),
        tch::Device::Cpu,
    )
    .unwrap();
    let set = ProbeSet::from_settings(&model, &data, "stsb-dev", 1000, 32).unwrap();
    assert_eq!(set.len() as u64, fixture["size"].as_u64().unwrap());
    assert_eq!(
        set.types.len() as u64,
        fixture["self_similarity_types"].as_u64().unwrap()
    );
    assert_eq!(
        set.alignment_pairs as u64,
        fixture["alignment_pairs"].as_u64().unwrap()
    );
    let rows = probe(&model, &Pooler::new(Pooling::Avg), &set, &[]).unwrap();
    let want = fixture["metrics"].as_object().unwrap();
    let mut failures = Vec::new();
    let mut worst = 0.0f64;
    for (name, v) in want {
        let v = v.as_f64().unwrap();
        let Some(got) = rows.iter().find(|r| r.0 == -1 && &r.1 == name).map(|r| r.2) else {
            failures.push(format!("{name}: missing"));
            continue;
        };
        let rel = (got - v).abs() / v.abs().max(1e-300);
        worst = worst.max(rel);
        eprintln!("{name:40} rust {got:.10e} python {v:.10e} rel {rel:.2e}");
        if (got - v).abs() > 1e-4 * v.abs() && (got - v).abs() > 1e-6 {
            failures.push(format!("{name}: rust {got} python {v} (rel {rel:.2e})"));
        }
    }
    // Every metric simsweep records at layer −1 is covered by the fixture.
    for r in &rows {
        assert!(want.contains_key(&r.1), "{} is not in the fixture", r.1);
    }
    eprintln!("max relative difference {worst:.2e}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
