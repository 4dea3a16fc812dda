#![allow(clippy::needless_range_loop)]

use super::*;

fn t(rows: &[&[f64]]) -> Tensor {
    let h = rows[0].len() as i64;
    let flat: Vec<f64> = rows.iter().flat_map(|r| r.iter().copied()).collect();
    Tensor::from_slice(&flat).view([-1, h])
}

fn get(v: &[(String, Tensor)], k: &str) -> f64 {
    v.iter()
        .find(|(n, _)| n == k)
        .unwrap_or_else(|| panic!("{k} missing"))
        .1
        .double_value(&[])
}

fn close(a: f64, b: f64, what: &str) {
    assert!(
        (a - b).abs() <= 1e-10 * (1.0 + b.abs()),
        "{what}: {a} vs {b}"
    );
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
fn unit(a: &[f64]) -> Vec<f64> {
    let n = dot(a, a).sqrt();
    a.iter().map(|x| x / n).collect()
}

#[test]
fn sentence_metrics_by_hand() {
    // Two orthogonal unit vectors: mean cosine 0, ‖ẑ1 − ẑ2‖² = 2 → uniformity log e^{−4} = −4;
    // centroid (½, ½); the centred matrix has rank 1 → effective rank 1.
    let z = t(&[&[1.0, 0.0], &[0.0, 1.0]]);
    let m = sentence_metrics(&z);
    close(get(&m, "sentence_anisotropy"), 0.0, "anisotropy");
    close(get(&m, "uniformity"), -4.0, "uniformity");
    close(get(&m, "mean_sentence_norm"), 1.0, "norm");
    close(get(&m, "centroid_norm"), 0.5f64.sqrt(), "centroid");
    close(get(&m, "effective_rank"), 1.0, "erank");
    close(get(&m, "sv_01"), 1.0, "sv_01");
    close(get(&m, "sv_02"), 0.0, "sv_02");
    // ZᵀZ = I: every unit direction is an eigenvector; with c = ±e1, ±e2, Z(c) ∈ {e + 1, e⁻¹ + 1}.
    let iso = get(&m, "isotropy_partition");
    close(
        iso,
        (1.0 + (-1.0f64).exp()) / (1.0 + 1.0f64.exp()),
        "isotropy",
    );

    // Three vectors along one axis (one opposite): pairwise cosines 1, −1, −1 → mean −⅓; all of
    // it in dimension 0 → rogue share 1.
    let z = t(&[&[2.0, 0.0], &[1.0, 0.0], &[-1.0, 0.0]]);
    let m = sentence_metrics(&z);
    close(get(&m, "sentence_anisotropy"), -1.0 / 3.0, "anisotropy");
    close(get(&m, "rogue_top1_share"), 1.0, "rogue");
    close(get(&m, "mean_sentence_norm"), 4.0 / 3.0, "norm");
    close(get(&m, "centroid_norm"), 2.0 / 3.0, "centroid");
    // Distances² 0, 4, 4 → log((1 + 2e^{−8}) / 3).
    close(
        get(&m, "uniformity"),
        ((1.0 + 2.0 * (-8.0f64).exp()) / 3.0).ln(),
        "uniformity",
    );
}

#[test]
fn sentence_metrics_match_brute_force() {
    tch::manual_seed(3);
    let z = Tensor::randn([7, 4], (Kind::Double, Device::Cpu)) + 0.3;
    let m = sentence_metrics(&z);
    let rows: Vec<Vec<f64>> = (0..7)
        .map(|i| Vec::<f64>::try_from(z.get(i)).unwrap())
        .collect();
    let u: Vec<Vec<f64>> = rows.iter().map(|r| unit(r)).collect();
    let (mut cos, mut pairs, mut e) = (0.0, 0.0, 0.0);
    for i in 0..7 {
        for j in 0..7 {
            if i < j {
                let d2: f64 = u[i].iter().zip(&u[j]).map(|(a, b)| (a - b) * (a - b)).sum();
                e += (-2.0 * d2).exp();
                cos += dot(&u[i], &u[j]);
                pairs += 1.0;
            }
        }
    }
    close(get(&m, "sentence_anisotropy"), cos / pairs, "anisotropy");
    close(get(&m, "uniformity"), (e / pairs).ln(), "uniformity");
    // Rogue: per dimension Σ_{i≠j} u_id u_jd over Σ_{i≠j} u_i·u_j.
    let mut best = f64::NEG_INFINITY;
    for d in 0..4 {
        let mut s = 0.0;
        for i in 0..7 {
            for j in 0..7 {
                if i != j {
                    s += u[i][d] * u[j][d];
                }
            }
        }
        best = best.max(s / (2.0 * cos));
    }
    close(get(&m, "rogue_top1_share"), best, "rogue");
    // Effective rank against torch's SVD of the centred matrix.
    let c = &z - z.mean_dim(0, true, Kind::Double);
    let (_, s, _) = c.svd(true, false);
    let s = Vec::<f64>::try_from(&s).unwrap();
    let tot: f64 = s.iter().sum();
    let h: f64 = -s
        .iter()
        .map(|x| x / tot)
        .filter(|p| *p > 0.0)
        .map(|p| p * p.ln())
        .sum::<f64>();
    close(get(&m, "effective_rank"), h.exp(), "erank");
    close(get(&m, "sv_02"), s[1] / s[0], "sv_02");
    // Partition isotropy: eigenvectors of ZᵀZ are the right singular vectors of Z.
    let (_, _, v) = z.svd(true, true);
    let mut zs = Vec::new();
    for k in 0..4 {
        let col = Vec::<f64>::try_from(v.select(1, k)).unwrap();
        for sign in [1.0, -1.0] {
            zs.push(
                rows.iter()
                    .map(|r| (sign * dot(r, &col)).exp())
                    .sum::<f64>(),
            );
        }
    }
    let (lo, hi) = zs
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), &x| (a.min(x), b.max(x)));
    close(get(&m, "isotropy_partition"), lo / hi, "isotropy");
    close(
        alignment(&z.narrow(0, 0, 3), &z.narrow(0, 3, 3)).double_value(&[]),
        (0..3)
            .map(|i| {
                u[i].iter()
                    .zip(&u[i + 3])
                    .map(|(a, b)| (a - b) * (a - b))
                    .sum::<f64>()
            })
            .sum::<f64>()
            / 3.0,
        "alignment",
    );
}

#[test]
fn token_metrics_match_brute_force() {
    tch::manual_seed(5);
    // Sentences of 2, 3 and 4 tokens; types: token (sentence, position) → type id or none.
    let lens = [2usize, 3, 4];
    let n: usize = lens.iter().sum();
    let x = Tensor::randn([n as i64, 3], (Kind::Double, Device::Cpu)) + 0.5;
    let rows: Vec<Vec<f64>> = (0..n as i64)
        .map(|i| Vec::<f64>::try_from(x.get(i)).unwrap())
        .collect();
    let sent: Vec<i64> = lens
        .iter()
        .enumerate()
        .flat_map(|(k, &l)| std::iter::repeat_n(k as i64, l))
        .collect();
    // Type 0 at tokens 1, 3, 6 (one per sentence); type 1 at tokens 4, 7 (a function word).
    let n_k = Tensor::from_slice(&lens.map(|l| l as f64));
    let mut acc = TokenAcc::new(3, 2, Device::Cpu);
    // In two chunks to check the accumulation: sentences {0, 1} then {2}.
    acc.add(
        &x.narrow(0, 0, 5),
        &Tensor::from_slice(&sent[..5]),
        &n_k.narrow(0, 0, 2),
        2,
        &Tensor::from_slice(&[1i64, 3, 4]),
        &Tensor::from_slice(&[0i64, 0, 1]),
    );
    acc.add(
        &x.narrow(0, 5, 4),
        &Tensor::from_slice(&[0i64, 0, 0, 0]),
        &n_k.narrow(0, 2, 1),
        1,
        &Tensor::from_slice(&[1i64, 2]),
        &Tensor::from_slice(&[0i64, 1]),
    );
    let m = Tensor::from_slice(&[3.0, 2.0]);
    let f = Tensor::from_slice(&[0.0, 1.0]);
    let s2: f64 = lens.iter().map(|&l| (l * l) as f64).sum();
    let out: Vec<(String, Tensor)> = acc
        .finish(3, n as f64, s2, &m, &f)
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    let u: Vec<Vec<f64>> = rows.iter().map(|r| unit(r)).collect();
    let (mut c, mut p) = (0.0, 0.0);
    for i in 0..n {
        for j in 0..n {
            if sent[i] != sent[j] {
                c += dot(&u[i], &u[j]);
                p += 1.0;
            }
        }
    }
    let ta = c / p;
    close(get(&out, "token_anisotropy"), ta, "token anisotropy");
    let mut intra = 0.0;
    let mut start = 0;
    for &l in &lens {
        let mut mean = vec![0.0; 3];
        for r in &rows[start..start + l] {
            for d in 0..3 {
                mean[d] += r[d] / l as f64;
            }
        }
        let mh = unit(&mean);
        intra += u[start..start + l].iter().map(|v| dot(v, &mh)).sum::<f64>() / l as f64 / 3.0;
        start += l;
    }
    close(get(&out, "intra_sentence_similarity"), intra, "intra");
    close(
        get(&out, "intra_sentence_similarity_adjusted"),
        intra - ta,
        "intra adjusted",
    );
    let pair_mean = |idx: &[usize]| {
        let (mut s, mut k) = (0.0, 0.0);
        for &a in idx {
            for &b in idx {
                if a != b {
                    s += dot(&u[a], &u[b]);
                    k += 1.0;
                }
            }
        }
        s / k
    };
    let (s0, s1) = (pair_mean(&[1, 3, 6]), pair_mean(&[4, 7]));
    close(get(&out, "self_similarity"), (s0 + s1) / 2.0, "self");
    close(get(&out, "self_similarity_function"), s1, "function");
    close(get(&out, "self_similarity_content"), s0, "content");
    close(
        get(&out, "self_similarity_content_adjusted"),
        s0 - ta,
        "content adj",
    );
    let norms: f64 = rows.iter().map(|r| dot(r, r).sqrt()).sum::<f64>() / n as f64;
    close(get(&out, "mean_token_norm"), norms, "token norm");
}

#[test]
fn layers_parse_and_resolve() {
    use serde_json::json;
    assert_eq!(Layers::from_value(&json!("last")).unwrap(), Layers::Last);
    assert_eq!(
        Layers::parse("all").unwrap().resolve(2).unwrap(),
        vec![0, 1, 2]
    );
    assert_eq!(
        Layers::from_value(&json!([2, 0]))
            .unwrap()
            .resolve(2)
            .unwrap(),
        vec![0, 2]
    );
    assert_eq!(
        Layers::parse("1,0").unwrap().resolve(6).unwrap(),
        vec![0, 1]
    );
    assert!(Layers::parse("3").unwrap().resolve(2).is_err());
    assert!(Layers::parse("x").is_err());
    assert!(Layers::Last.resolve(2).unwrap().is_empty());
    assert_eq!(sv_name(0), "sv_01");
    assert_eq!(sv_name(63), "sv_64");
}
