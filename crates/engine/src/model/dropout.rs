//! Dropout with masks drawn in parallel on the CPU.
//!
//! libtorch's CPU dropout draws its mask one element at a time on one thread (`bernoulli_` through
//! the generator's lock, ~11 ns an element here), then divides and multiplies in two more passes:
//! for a 6-layer, 384-wide encoder at 128 × 32 tokens that is ~350 ms of a ~2.9 s training step
//! while the other core idles. Here the mask — `0` or `1 / (1 − p)` — is written in one parallel
//! pass from a counter-based generator (SplitMix64 of the element's index, keyed by one draw from
//! torch's generator), and applied with one multiplication that autograd differentiates as
//! libtorch's own dropout (`x * mask`). A step's masks therefore still follow `tch::manual_seed`:
//! the same seed gives the same masks, whatever the thread count, and resumed runs stay identical.
//!
//! On CUDA (and for dtypes other than f32) this defers to libtorch's fused dropout kernel.

use rayon::prelude::*;
use tch::{Device, Kind, Tensor};

/// Elements per parallel task (even, so a task starts on a whole 64-bit draw).
const CHUNK: usize = 1 << 15;

/// `x` with each element zeroed with probability `p` and the rest scaled by `1 / (1 − p)` when
/// `train` (identity otherwise), as `torch.nn.functional.dropout`.
pub fn dropout(x: &Tensor, p: f64, train: bool) -> Tensor {
    if !train || p <= 0.0 {
        return x.shallow_clone();
    }
    if p >= 1.0 || x.device() != Device::Cpu || x.kind() != Kind::Float {
        return x.dropout(p, train);
    }
    x * mask(&x.size(), p)
}

/// A dropout mask of `shape` on the CPU: `0` with probability `p`, else `1 / (1 − p)`; keyed by
/// one draw from torch's default generator.
pub fn mask(shape: &[i64], p: f64) -> Tensor {
    let key = Tensor::randint(i64::MAX, [1], (Kind::Int64, Device::Cpu)).int64_value(&[0]) as u64;
    let out = Tensor::empty(shape, (Kind::Float, Device::Cpu));
    let n = out.numel();
    if n == 0 {
        return out;
    }
    // SAFETY: `out` is a fresh, contiguous f32 CPU tensor of `n` elements that nothing else
    // references until this function returns it.
    let data = unsafe { std::slice::from_raw_parts_mut(out.data_ptr() as *mut f32, n) };
    fill(data, key, p);
    out
}

/// Fill `data` with `0` (probability `p`) or `1 / (1 − p)`: element `i` is decided by 32 bits of
/// SplitMix64 of `key` and `i / 2`, so the result does not depend on how the work is split.
fn fill(data: &mut [f32], key: u64, p: f64) {
    // Drop when the 32-bit draw is below the threshold: P(drop) = threshold / 2^32.
    let threshold = (p * 4_294_967_296.0).round().min(u32::MAX as f64) as u32;
    let scale = 1.0f32 / (1.0 - p) as f32;
    data.par_chunks_mut(CHUNK)
        .enumerate()
        .for_each(|(c, chunk)| {
            let first = (c * CHUNK / 2) as u64;
            let mut pairs = chunk.chunks_exact_mut(2);
            let mut j = first;
            for pair in &mut pairs {
                let r = splitmix64(key, j);
                pair[0] = keep(r as u32, threshold, scale);
                pair[1] = keep((r >> 32) as u32, threshold, scale);
                j += 1;
            }
            if let [last] = pairs.into_remainder() {
                *last = keep(splitmix64(key, j) as u32, threshold, scale);
            }
        });
}

#[inline(always)]
fn keep(draw: u32, threshold: u32, scale: f32) -> f32 {
    if draw >= threshold {
        scale
    } else {
        0.0
    }
}

/// SplitMix64's output for counter `j` of the stream `key` (Steele, Lea & Flood 2014).
#[inline(always)]
fn splitmix64(key: u64, j: u64) -> u64 {
    let mut z = key.wrapping_add(j.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(t: &Tensor) -> Vec<f32> {
        Vec::<f32>::try_from(t.flatten(0, -1)).unwrap()
    }

    #[test]
    fn drops_the_expected_share_and_scales_the_rest() {
        for p in [0.1, 0.5, 0.9] {
            let mut data = vec![f32::NAN; 1_000_001];
            fill(&mut data, 42, p);
            let scale = 1.0f32 / (1.0 - p) as f32;
            let dropped = data.iter().filter(|&&v| v == 0.0).count();
            assert!(
                data.iter().all(|&v| v == 0.0 || v == scale),
                "only 0 and 1/(1-p)"
            );
            let share = dropped as f64 / data.len() as f64;
            // Binomial standard deviation ≤ 0.0005 at n = 10^6: allow 6σ.
            assert!((share - p).abs() < 0.003, "p {p}: dropped {share}");
            // The mean is preserved in expectation.
            let mean = data.iter().map(|&v| v as f64).sum::<f64>() / data.len() as f64;
            assert!((mean - 1.0).abs() < 0.01, "p {p}: mean {mean}");
        }
    }

    #[test]
    fn masks_depend_on_the_key_only_and_look_independent() {
        let mut a = vec![0.0; 100_000];
        let mut b = vec![0.0; 100_000];
        fill(&mut a, 7, 0.5);
        fill(&mut b, 7, 0.5);
        assert_eq!(a, b, "same key, same mask (whatever the split)");
        // The split into tasks does not matter: one element at a time from the same counters.
        let direct: Vec<f32> = (0..a.len())
            .map(|i| {
                let r = splitmix64(7, (i / 2) as u64);
                let d = if i % 2 == 0 {
                    r as u32
                } else {
                    (r >> 32) as u32
                };
                keep(d, 1 << 31, 2.0)
            })
            .collect();
        assert_eq!(a, direct);
        fill(&mut b, 8, 0.5);
        let same = a.iter().zip(&b).filter(|(x, y)| x == y).count();
        assert!(
            (same as f64 / a.len() as f64 - 0.5).abs() < 0.01,
            "another key agrees on about half the elements, not {same}"
        );
        // Neighbours are uncorrelated: P(both kept) ≈ 1/4.
        let both = a.windows(2).filter(|w| w[0] > 0.0 && w[1] > 0.0).count();
        assert!((both as f64 / (a.len() - 1) as f64 - 0.25).abs() < 0.01);
    }

    #[test]
    fn follows_torch_seed_and_differentiates_as_a_multiplication() {
        let _rng = super::super::tests::rng_lock();
        let x = Tensor::ones([3, 1001], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        tch::manual_seed(5);
        let y1 = dropout(&x, 0.25, true);
        let y2 = dropout(&x, 0.25, true);
        tch::manual_seed(5);
        let y3 = dropout(&x, 0.25, true);
        assert!(y1.equal(&y3), "the same torch seed gives the same mask");
        assert!(!y1.equal(&y2), "successive calls draw new masks");
        // d(sum y)/dx is the mask itself.
        y1.sum(Kind::Float).backward();
        assert_eq!(values(&x.grad()), values(&y1.detach()));
        // Evaluation, p = 0: the input itself.
        assert!(dropout(&x, 0.25, false).equal(&x));
        assert!(dropout(&x, 0.0, true).equal(&x));
        // Other dtypes fall back to libtorch's dropout, with its semantics.
        let d = Tensor::ones([1000], (Kind::Double, Device::Cpu));
        let yd = dropout(&d, 0.5, true);
        assert_eq!(yd.kind(), Kind::Double);
        let kept = values(&yd.to_kind(Kind::Float))
            .iter()
            .filter(|&&v| v > 0.0)
            .count();
        assert!((300..700).contains(&kept));
    }
}
