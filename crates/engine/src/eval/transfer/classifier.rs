//! SentEval's classifier, as SimCSE's evaluation runs it (docs/cli.md, `simsweep eval`): a logistic regression (one linear layer with bias, no hidden layer) on frozen
//! embeddings, trained with mini-batches of mean cross-entropy, coupled L2 (weight decay inside
//! the optimizer, on the bias too), early stopping on a validation part by accuracy with a
//! cumulative tenacity, and the seeded randomness of numpy's legacy generator: every classifier
//! reseeds, so fits are independent of each other and run in parallel.

/// numpy's legacy `RandomState`: MT19937 seeded by `init_genrand`, with numpy's bounded integers
/// (`random_interval`) and its `shuffle` / `permutation`.
#[derive(Clone)]
pub struct Mt19937 {
    mt: [u32; 624],
    i: usize,
}

impl Mt19937 {
    pub fn new(seed: u32) -> Mt19937 {
        let mut mt = [0u32; 624];
        mt[0] = seed;
        for i in 1..624 {
            mt[i] = 1_812_433_253u32
                .wrapping_mul(mt[i - 1] ^ (mt[i - 1] >> 30))
                .wrapping_add(i as u32);
        }
        Mt19937 { mt, i: 624 }
    }

    pub fn next_u32(&mut self) -> u32 {
        if self.i >= 624 {
            for k in 0..624 {
                let y = (self.mt[k] & 0x8000_0000) | (self.mt[(k + 1) % 624] & 0x7fff_ffff);
                let mut v = self.mt[(k + 397) % 624] ^ (y >> 1);
                if y & 1 != 0 {
                    v ^= 0x9908_b0df;
                }
                self.mt[k] = v;
            }
            self.i = 0;
        }
        let mut y = self.mt[self.i];
        self.i += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// A uniform integer in `0..=max` by rejection on the smallest covering bit mask (numpy's
    /// `random_interval`, for `max < 2^32`).
    pub fn interval(&mut self, max: u32) -> u32 {
        if max == 0 {
            return 0;
        }
        let mut mask = max;
        mask |= mask >> 1;
        mask |= mask >> 2;
        mask |= mask >> 4;
        mask |= mask >> 8;
        mask |= mask >> 16;
        loop {
            let v = self.next_u32() & mask;
            if v <= max {
                return v;
            }
        }
    }

    /// numpy's legacy in-place shuffle (Fisher–Yates from the end).
    pub fn shuffle<T>(&mut self, a: &mut [T]) {
        for i in (1..a.len()).rev() {
            let j = self.interval(i as u32) as usize;
            a.swap(i, j);
        }
    }

    /// `np.random.permutation(n)`.
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut p: Vec<usize> = (0..n).collect();
        self.shuffle(&mut p);
        p
    }
}

/// Cross-validation folds: (train indices, test indices) each.
pub type Folds = Vec<(Vec<usize>, Vec<usize>)>;

/// scikit-learn's `StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(y)`: for
/// each fold, (train indices, test indices), both ascending. Classes are coded by first
/// appearance; every call draws from a fresh generator, so the same labels give the same folds.
pub fn stratified_kfold(y: &[usize], k: usize, seed: u32) -> Result<Folds, String> {
    let mut code_of: Vec<(usize, usize)> = Vec::new();
    let codes: Vec<usize> = y
        .iter()
        .map(|&l| match code_of.iter().find(|(lab, _)| *lab == l) {
            Some(&(_, c)) => c,
            None => {
                code_of.push((l, code_of.len()));
                code_of.len() - 1
            }
        })
        .collect();
    let n_classes = code_of.len();
    let mut counts = vec![0usize; n_classes];
    for &c in &codes {
        counts[c] += 1;
    }
    if k < 2 || counts.iter().all(|&c| c < k) {
        return Err(format!(
            "{k}-fold cross-validation needs a class with at least {k} examples (class sizes {counts:?})"
        ));
    }
    let mut sorted = codes.clone();
    sorted.sort_unstable();
    // alloc[i][c]: positions p ≡ i (mod k) of the sorted codes holding class c.
    let mut alloc = vec![vec![0usize; n_classes]; k];
    for (p, &c) in sorted.iter().enumerate() {
        alloc[p % k][c] += 1;
    }
    let mut rng = Mt19937::new(seed);
    let mut fold_of = vec![0usize; y.len()];
    for c in 0..n_classes {
        let mut folds: Vec<usize> = alloc
            .iter()
            .enumerate()
            .flat_map(|(i, row)| std::iter::repeat_n(i, row[c]))
            .collect();
        rng.shuffle(&mut folds);
        let mut it = folds.into_iter();
        for (j, &cj) in codes.iter().enumerate() {
            if cj == c {
                fold_of[j] = it.next().expect("a fold for every example of the class");
            }
        }
    }
    Ok((0..k)
        .map(|f| {
            let (test, train): (Vec<usize>, Vec<usize>) =
                (0..y.len()).partition(|&j| fold_of[j] == f);
            (train, test)
        })
        .collect())
}

/// The optimizer of a mode: PyTorch's defaults for each.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Optim {
    /// Adam, lr 1e-3, betas (0.9, 0.999), eps 1e-8.
    Adam,
    /// RMSprop, lr 1e-2, alpha 0.99, eps 1e-8, no momentum.
    RmsProp,
}

/// The classifier's training settings (SimCSE's `test` or `fasttest`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FitConfig {
    pub optim: Optim,
    pub batch_size: usize,
    pub tenacity: usize,
    pub epoch_size: usize,
    pub max_epoch: usize,
    pub seed: u32,
}

/// Rows of a row-major `f32` matrix.
#[derive(Clone, Copy)]
pub struct Rows<'a> {
    pub data: &'a [f32],
    pub dim: usize,
}

impl<'a> Rows<'a> {
    pub fn row(&self, i: usize) -> &'a [f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }
    pub fn len(&self) -> usize {
        self.data.len() / self.dim.max(1)
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A fitted linear classifier: `w` is `[classes, dim]`, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Linear {
    pub w: Vec<f32>,
    pub b: Vec<f32>,
    pub dim: usize,
    pub classes: usize,
}

/// Dot product with eight partial sums (so the compiler vectorises it).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

impl Linear {
    /// PyTorch's default `nn.Linear` initialisation from a generator seeded with `seed`: weight then
    /// bias, each uniform in ±1/√dim (torch's CPU `uniform_`: 24 random bits per value), bit for bit
    /// what `torch.manual_seed(seed); nn.Linear(dim, classes)` holds.
    pub fn init(dim: usize, classes: usize, seed: u32) -> Linear {
        let mut g = Mt19937::new(seed);
        // kaiming_uniform_(a = √5) for the weight, as torch computes its bound; 1/√fan_in for the bias.
        let a = 5f64.sqrt();
        let gain = (2.0 / (1.0 + a * a)).sqrt();
        let w_bound = 3f64.sqrt() * (gain / (dim as f64).sqrt());
        let b_bound = 1.0 / (dim as f64).sqrt();
        // The bounds as float32, the arithmetic in double (torch's `uniform_real_distribution`).
        let mut draw = |bound: f64| {
            let (from, to) = (f64::from(-bound as f32), f64::from(bound as f32));
            ((g.next_u32() & 0xFF_FFFF) as f64 / 16_777_216.0 * (to - from) + from) as f32
        };
        let w: Vec<f32> = (0..dim * classes).map(|_| draw(w_bound)).collect();
        let b: Vec<f32> = (0..classes).map(|_| draw(b_bound)).collect();
        Linear { w, b, dim, classes }
    }

    fn logits(&self, x: &[f32], z: &mut [f32]) {
        for (k, zk) in z.iter_mut().enumerate() {
            *zk = dot(&self.w[k * self.dim..(k + 1) * self.dim], x) + self.b[k];
        }
    }

    /// The predicted class of one row (the first of equal logits).
    pub fn predict(&self, x: &[f32]) -> usize {
        let mut z = vec![0f32; self.classes];
        self.logits(x, &mut z);
        let mut best = 0;
        for k in 1..z.len() {
            if z[k] > z[best] {
                best = k;
            }
        }
        best
    }

    /// Fraction of `rows` (indices into `x`) predicted as their label.
    pub fn accuracy(&self, x: Rows<'_>, rows: &[usize], y: &[usize]) -> f64 {
        if rows.is_empty() {
            return 0.0;
        }
        let right = rows
            .iter()
            .zip(y)
            .filter(|(&r, &l)| self.predict(x.row(r)) == l)
            .count();
        right as f64 / rows.len() as f64
    }
}

/// Where a fit's early stopping looks.
pub enum Validation<'a> {
    /// Given rows (indices into `.0`) and labels.
    Data(Rows<'a>, &'a [usize], &'a [usize]),
    /// A fraction of the training rows, drawn by the fit's generator (`validation_split`).
    Split(f64),
}

/// Train a classifier with L2 penalty `reg` on `rows` (indices into `x`, in the order SentEval
/// hands them to its classifier) labelled `y`; early stopping on `val`. Returns the kept model
/// (the best by validation accuracy) and that accuracy.
pub fn fit(
    x: Rows<'_>,
    rows: &[usize],
    y: &[usize],
    val: Validation<'_>,
    classes: usize,
    reg: f32,
    cfg: &FitConfig,
) -> (Linear, f64) {
    let mut rng = Mt19937::new(cfg.seed);
    let mut dev_x = x;
    let (train_rows, train_y, dev_rows, dev_y): (Vec<usize>, Vec<usize>, Vec<usize>, Vec<usize>) =
        match val {
            Validation::Data(vx, r, l) => {
                dev_x = vx;
                (rows.to_vec(), y.to_vec(), r.to_vec(), l.to_vec())
            }
            Validation::Split(frac) => {
                let perm = rng.permutation(rows.len());
                let nd = (frac * rows.len() as f64) as usize;
                let pick = |p: &[usize]| -> (Vec<usize>, Vec<usize>) {
                    (
                        p.iter().map(|&i| rows[i]).collect(),
                        p.iter().map(|&i| y[i]).collect(),
                    )
                };
                let (dr, dl) = pick(&perm[..nd]);
                let (tr, tl) = pick(&perm[nd..]);
                (tr, tl, dr, dl)
            }
        };
    let dim = x.dim;
    let mut model = Linear::init(dim, classes, cfg.seed);
    let np = dim * classes + classes;
    // Parameters flat: weight then bias; optimizer state alike.
    let mut grad = vec![0f32; np];
    let mut m1 = vec![0f32; np];
    let mut m2 = vec![0f32; np];
    let mut t = 0i32;
    let mut z = vec![0f32; classes];
    let mut best = -1.0f64;
    let mut kept = model.clone();
    let (mut bad, mut nepoch, mut stop) = (0usize, 0usize, false);
    while !stop && nepoch <= cfg.max_epoch {
        for _ in 0..cfg.epoch_size {
            let perm = rng.permutation(train_rows.len());
            for batch in perm.chunks(cfg.batch_size) {
                grad.iter_mut().for_each(|g| *g = 0.0);
                let nb = batch.len() as f32;
                for &p in batch {
                    let xr = x.row(train_rows[p]);
                    model.logits(xr, &mut z);
                    let mx = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    let mut sum = 0f32;
                    for v in z.iter_mut() {
                        *v = (*v - mx).exp();
                        sum += *v;
                    }
                    for (k, v) in z.iter_mut().enumerate() {
                        let target = if k == train_y[p] { 1.0 } else { 0.0 };
                        *v = (*v / sum - target) / nb;
                    }
                    for (k, &gk) in z.iter().enumerate() {
                        let gw = &mut grad[k * dim..(k + 1) * dim];
                        for (g, &xv) in gw.iter_mut().zip(xr) {
                            *g += gk * xv;
                        }
                        grad[dim * classes + k] += gk;
                    }
                }
                t += 1;
                step(&mut model, &grad, &mut m1, &mut m2, t, reg, cfg.optim);
            }
        }
        nepoch += cfg.epoch_size;
        let acc = model.accuracy(dev_x, &dev_rows, &dev_y);
        if acc > best {
            best = acc;
            kept = model.clone();
        } else {
            if bad >= cfg.tenacity {
                stop = true;
            }
            bad += 1;
        }
    }
    (kept, best)
}

/// One optimizer step with coupled weight decay (`g + reg·θ`), in the form of `torch.optim`'s
/// single-tensor Adam and RMSprop with `weight_decay = reg`: their constants `1 − β` and the bias
/// corrections in double, the updates as its `lerp`, `addcmul` and `addcdiv`.
fn step(
    model: &mut Linear,
    grad: &[f32],
    m1: &mut [f32],
    m2: &mut [f32],
    t: i32,
    reg: f32,
    optim: Optim,
) {
    let dw = model.w.len();
    let (b1, b2) = (0.9f64, 0.999f64);
    let step_size = (1e-3 / (1.0 - b1.powf(f64::from(t)))) as f32;
    let bc2_sqrt = (1.0 - b2.powf(f64::from(t))).powf(0.5) as f32;
    let (w1, w2) = ((1.0 - b1) as f32, (1.0 - b2) as f32);
    let (alpha, w_rms) = (0.99f32, (1.0 - 0.99f64) as f32);
    let update = |i: usize, theta: &mut f32, m1: &mut f32, m2: &mut f32| {
        let g = grad[i] + reg * *theta;
        match optim {
            Optim::Adam => {
                *m1 += w1 * (g - *m1);
                *m2 = *m2 * (b2 as f32) + w2 * g * g;
                let denom = m2.sqrt() / bc2_sqrt + 1e-8;
                *theta += -step_size * *m1 / denom;
            }
            Optim::RmsProp => {
                *m2 = *m2 * alpha + w_rms * g * g;
                let avg = m2.sqrt() + 1e-8;
                *theta += -1e-2 * g / avg;
            }
        }
    };
    let (m1w, m1b) = m1.split_at_mut(dw);
    let (m2w, m2b) = m2.split_at_mut(dw);
    for (i, ((th, a), b)) in model.w.iter_mut().zip(m1w).zip(m2w).enumerate() {
        update(i, th, a, b);
    }
    for (i, ((th, a), b)) in model.b.iter_mut().zip(m1b).zip(m2b).enumerate() {
        update(dw + i, th, a, b);
    }
}
