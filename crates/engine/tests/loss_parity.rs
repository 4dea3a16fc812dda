//! Loss correctness: (1) every loss variant's value and gradient w.r.t. the raw embeddings equal an
//! independent float64 PyTorch implementation (`scripts/loss_fixtures.py` → `tests/fixtures/
//! losses.json`); (2) the gradient rebuilt from the per-anchor components GD, W, R equals autograd's.

use serde_json::Value;
use simsweep_engine::spec::config::LossConfig;
use simsweep_engine::train::loss::{build_loss, Loss, Views};
use tch::{Kind, Tensor};

fn tensor(v: &Value) -> Tensor {
    let rows: Vec<Vec<f32>> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect()
        })
        .collect();
    let (b, h) = (rows.len() as i64, rows[0].len() as i64);
    Tensor::from_slice(&rows.concat()).view([b, h])
}

fn loss_config(v: &Value) -> LossConfig {
    let f = |k: &str| v.get(k).and_then(Value::as_f64);
    let b = |k: &str| v.get(k).and_then(Value::as_bool);
    LossConfig {
        kind: v["kind"].as_str().unwrap().to_string(),
        margin: f("margin"),
        angle: f("angle"),
        gd: b("gd"),
        weight: b("weight"),
        ratio: b("ratio"),
        temperature: f("temperature"),
        ratio_scale: f("ratio_scale"),
        lambda: f("lambda"),
    }
}

/// max |a − b| / max(1, |b|) over all entries.
fn rel_err(a: &Tensor, b: &Tensor) -> f64 {
    let d = (a - b).abs() / b.abs().clamp_min(1.0);
    d.max().double_value(&[])
}

const METRICS: [&str; 8] = [
    "pos_cos",
    "neg_cos",
    "batch_alignment",
    "batch_uniformity",
    "gd_mean",
    "w_entropy",
    "w_max",
    "ratio_mean",
];

fn fixtures() -> Value {
    let text = std::fs::read_to_string(
        std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
            .join("tests/fixtures/losses.json"),
    )
    .unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn every_loss_matches_the_pytorch_reference_in_value_and_gradient() {
    let fx = fixtures();
    let (z1, z2, z3) = (tensor(&fx["z1"]), tensor(&fx["z2"]), tensor(&fx["z3"]));
    let mut worst = (0.0f64, String::new());
    let cases = fx["cases"].as_array().unwrap();
    assert!(cases.len() >= 30);
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let loss = build_loss(
            &loss_config(&c["loss"]),
            c["temperature"].as_f64().unwrap(),
            c.get("hard_negative_weight")
                .and_then(Value::as_f64)
                .unwrap_or(0.0),
        )
        .unwrap();
        let a = z1.copy().set_requires_grad(true);
        let b = z2.copy().set_requires_grad(true);
        let hn = c
            .get("hard_negatives")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let out = loss.forward(&Views {
            z1: &a,
            z2: &b,
            z3: hn.then_some(&z3),
        });
        for m in METRICS {
            let t = &out
                .metrics
                .iter()
                .find(|(n, _)| *n == m)
                .unwrap_or_else(|| panic!("{name}: no {m}"))
                .1;
            assert!(t.double_value(&[]).is_finite(), "{name}: {m} not finite");
        }
        out.loss.backward();
        let want = Tensor::from(c["value"].as_f64().unwrap() as f32);
        let errs = [
            ("value", rel_err(&out.loss.detach(), &want)),
            ("grad_z1", rel_err(&a.grad(), &tensor(&c["grad_z1"]))),
            ("grad_z2", rel_err(&b.grad(), &tensor(&c["grad_z2"]))),
        ];
        for (what, e) in errs {
            assert!(e <= 1e-5, "{name}: {what} differs by {e:e}");
            if e > worst.0 {
                worst = (e, format!("{name} {what}"));
            }
        }
    }
    eprintln!(
        "fixture parity: max rel/abs |Δ| = {:e} ({})",
        worst.0, worst.1
    );
}

/// Rebuild ∂L/∂z1 from the components: ∂L/∂ẑ1_i = scale_i GD_i Σ_j W_ij (neg_j − R_i ẑ2_i), then the
/// normalisation's chain rule ∂L/∂z1_i = (I − ẑ1_i ẑ1_iᵀ) ∂L/∂ẑ1_i / ‖z1_i‖.
fn rebuilt_vs_autograd(loss: &dyn Loss, z1: &Tensor, z2: &Tensor) -> f64 {
    let a = z1.copy().set_requires_grad(true);
    let v = Views {
        z1: &a,
        z2,
        z3: None,
    };
    loss.forward(&v).loss.backward();
    let comps = loss.components(&v);
    let g = comps.rebuild();
    let norm = z1.norm_scalaropt_dim(2.0, [1], true);
    let u = z1 / &norm;
    let radial = (&g * &u).sum_dim_intlist(1, true, Kind::Float);
    let want = (g - radial * u) / norm;
    let got = a.grad();
    // Scale-free comparison: relative to the largest gradient entry.
    let e = (&got - &want).abs().max().double_value(&[]);
    e / got.abs().max().double_value(&[]).max(1e-12)
}

/// Views of `b` sentences: z2 = z1 + noise. The noise keeps P_ii away from 1 at small τ, where
/// f32 autograd itself loses the gradient to cancellation in `P_ii − 1`.
fn batch(seed: i64, b: i64, h: i64, noise: f64) -> (Tensor, Tensor) {
    tch::manual_seed(seed);
    let z1 = Tensor::randn([b, h], (Kind::Float, tch::Device::Cpu)) * 2.0;
    let z2 = &z1 + Tensor::randn([b, h], (Kind::Float, tch::Device::Cpu)) * noise;
    (z1, z2)
}

fn lc(kind: &str) -> LossConfig {
    loss_config(&serde_json::json!({ "kind": kind }))
}

#[test]
fn infonce_and_arccon_gradients_rebuild_from_their_components() {
    let mut worst = 0.0f64;
    for (kind, tau) in [
        ("infonce", 0.05),
        ("infonce", 0.5),
        ("arccon", 0.05),
        ("arccon", 0.2),
    ] {
        for seed in 0..3 {
            let (z1, z2) = batch(seed, 5, 7, 2.0);
            let loss = build_loss(&lc(kind), tau, 0.0).unwrap();
            let e = rebuilt_vs_autograd(loss.as_ref(), &z1, &z2);
            assert!(
                e < 1e-5,
                "{kind} τ={tau} seed {seed}: rebuilt gradient off by {e:e}"
            );
            worst = worst.max(e);
        }
    }
    eprintln!("gradient reconstruction (infonce, arccon): max relative |Δ| = {worst:e}");
}

/// The same reconstruction for the losses whose components are exact (margin losses, MHE, MHS and the
/// weight-modified Barlow Twins / VICReg, whose weights are positive).
#[test]
fn other_losses_gradients_rebuild_from_their_components() {
    let j = |v: Value| loss_config(&v);
    use serde_json::json;
    let cfgs = [
        j(json!({"kind": "mpt", "margin": 0.23})),
        j(json!({"kind": "met", "margin": 0.45})),
        j(json!({"kind": "mat", "margin": 0.15})),
        j(json!({"kind": "mhe"})),
        j(
            json!({"kind": "mhe", "weight": true, "temperature": 0.1, "ratio": true, "ratio_scale": 1.75}),
        ),
        j(json!({"kind": "mhs"})),
        j(json!({"kind": "mhs", "ratio": true, "ratio_scale": 1.75, "lambda": 2.0})),
        j(
            json!({"kind": "barlow_twins", "weight": true, "temperature": 0.1, "ratio": true, "ratio_scale": 1.5}),
        ),
        j(
            json!({"kind": "vicreg", "weight": true, "temperature": 0.1, "ratio": true, "ratio_scale": 1.5}),
        ),
        j(json!({"kind": "vicreg", "weight": true, "temperature": 0.1, "gd": true, "margin": 2.0})),
    ];
    let mut worst = 0.0f64;
    for c in &cfgs {
        for seed in 0..3 {
            let (z1, z2) = batch(seed, 6, 5, 0.7);
            let loss = build_loss(c, 0.05, 0.0).unwrap();
            let e = rebuilt_vs_autograd(loss.as_ref(), &z1, &z2);
            assert!(e < 1e-5, "{c:?} seed {seed}: rebuilt gradient off by {e:e}");
            worst = worst.max(e);
        }
    }
    eprintln!("gradient reconstruction (other losses): max relative |Δ| = {worst:e}");
}
