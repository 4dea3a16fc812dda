//! Sentence poolers, exactly as SimCSE defines them (`simcse/models.py`: `Pooler`, `MLPLayer`),
//! with `avg_first_last` using layer 1, not the embedding output (see docs/metrics.md).

use std::fmt;
use std::str::FromStr;
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

/// Which hidden states become the sentence vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pooling {
    /// The last layer's [CLS] vector, passed through the MLP (dense + tanh) in training, and at
    /// evaluation too unless `mlp_only_train`.
    Cls,
    /// The last layer's [CLS] vector, no MLP.
    ClsBeforePooler,
    /// Mask-weighted mean of the last layer's token vectors.
    Avg,
    /// Mean of the last two layers, then the mask-weighted mean over tokens.
    AvgTop2,
    /// Mean of layer 1 (`hidden_states[1]`) and the last layer, then the mask-weighted mean.
    AvgFirstLast,
}

impl Pooling {
    /// Every pooler, in the order of the documentation.
    pub const ALL: [Pooling; 5] = [
        Pooling::Cls,
        Pooling::ClsBeforePooler,
        Pooling::Avg,
        Pooling::AvgTop2,
        Pooling::AvgFirstLast,
    ];

    /// The name used in sweep files (`model.pooling`): the core's list of pooler names
    /// ([`crate::spec::schema::POOLERS`]), in the order of [`Pooling::ALL`].
    pub fn as_str(self) -> &'static str {
        let i = Pooling::ALL
            .iter()
            .position(|p| *p == self)
            .expect("every pooler is in ALL");
        crate::spec::schema::POOLERS[i]
    }

    /// Pool without the MLP. `hidden_states` as [`super::bert::BertModel::forward_t`] returns them
    /// (index 0 = embeddings, at least one layer), `attention_mask` `[B, T]` (1 = token).
    /// Returns `[B, H]`.
    pub fn pool(self, hidden_states: &[Tensor], attention_mask: &Tensor) -> Tensor {
        let n = hidden_states.len();
        assert!(
            n >= 2,
            "pooling needs the embedding output and at least one layer"
        );
        let last = &hidden_states[n - 1];
        match self {
            Pooling::Cls | Pooling::ClsBeforePooler => last.select(1, 0),
            Pooling::Avg => masked_mean(last, attention_mask),
            Pooling::AvgTop2 => {
                masked_mean(&((last + &hidden_states[n - 2]) / 2.0), attention_mask)
            }
            Pooling::AvgFirstLast => {
                masked_mean(&((&hidden_states[1] + last) / 2.0), attention_mask)
            }
        }
    }
}

impl FromStr for Pooling {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Pooling::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown pooling `{s}` (expected one of: {})",
                    crate::spec::schema::POOLERS.join(", ")
                )
            })
    }
}

impl fmt::Display for Pooling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `Σ_t m_t h_t / Σ_t m_t` over the token axis: `[B, T, H]`, `[B, T]` → `[B, H]`.
pub fn masked_mean(h: &Tensor, attention_mask: &Tensor) -> Tensor {
    let m = attention_mask.to_kind(h.kind());
    (h * m.unsqueeze(-1)).sum_dim_intlist(1, false, None::<Kind>)
        / m.sum_dim_intlist(-1, false, None::<Kind>).unsqueeze(-1)
}

/// SimCSE's `MLPLayer`: dense (H → H) then tanh, under VarStore path `mlp.dense`.
#[derive(Debug)]
pub struct MlpLayer {
    dense: nn::Linear,
}

impl MlpLayer {
    /// Create `weight` / `bias` under `vs / "dense"` (zeros until loaded or initialised).
    pub fn new(vs: &nn::Path, hidden_size: i64) -> Self {
        let dense = nn::linear(
            vs / "dense",
            hidden_size,
            hidden_size,
            nn::LinearConfig {
                ws_init: nn::Init::Const(0.0),
                bs_init: Some(nn::Init::Const(0.0)),
                bias: true,
            },
        );
        Self { dense }
    }
}

impl Module for MlpLayer {
    fn forward(&self, xs: &Tensor) -> Tensor {
        self.dense.forward(xs).tanh()
    }
}

/// A pooler as a run configures it: the pooling and SimCSE's `mlp_only_train` switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pooler {
    /// Which hidden states are pooled.
    pub pooling: Pooling,
    /// With [`Pooling::Cls`]: apply the MLP in training only (SimCSE's unsupervised setting).
    pub mlp_only_train: bool,
}

impl Pooler {
    /// A pooler with `mlp_only_train = false`.
    pub fn new(pooling: Pooling) -> Self {
        Self {
            pooling,
            mlp_only_train: false,
        }
    }

    /// From a run's `model.pooling` and `model.mlp_only_train`.
    pub fn from_config(model: &crate::spec::config::ModelConfig) -> Result<Self, String> {
        Ok(Self {
            pooling: model.pooling.parse()?,
            mlp_only_train: model.mlp_only_train,
        })
    }

    /// The pooler as evaluations apply it: `cls+mlp`, `cls` (mlp_only_train), `avg`, ….
    pub fn describe(&self) -> String {
        if self.uses_mlp(false) {
            format!("{}+mlp", self.pooling)
        } else {
            self.pooling.to_string()
        }
    }

    /// Whether the MLP is applied: `cls` in training always (SimCSE `cl_forward`), at evaluation
    /// unless `mlp_only_train` (SimCSE `sentemb_forward`).
    pub fn uses_mlp(&self, train: bool) -> bool {
        self.pooling == Pooling::Cls && (train || !self.mlp_only_train)
    }

    /// The sentence vectors `[B, H]`.
    pub fn forward_t(
        &self,
        hidden_states: &[Tensor],
        attention_mask: &Tensor,
        mlp: &MlpLayer,
        train: bool,
    ) -> Tensor {
        let pooled = self.pooling.pool(hidden_states, attention_mask);
        if self.uses_mlp(train) {
            mlp.forward(&pooled)
        } else {
            pooled
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn t(v: &[f32], shape: &[i64]) -> Tensor {
        Tensor::from_slice(v).reshape(shape)
    }

    fn vals(x: &Tensor) -> Vec<f32> {
        Vec::<f32>::try_from(x.flatten(0, -1)).unwrap()
    }

    /// Hand-made hidden states: 2 sentences, 3 token slots (second sentence has 2 tokens), H = 2,
    /// embedding output + 2 layers.
    fn states() -> (Vec<Tensor>, Tensor) {
        let h0 = t(&[100.; 12], &[2, 3, 2]);
        let h1 = t(
            &[
                1., 2., 3., 4., 5., 6., /* s2 */ 7., 8., 9., 10., 99., 99.,
            ],
            &[2, 3, 2],
        );
        let h2 = t(
            &[
                10., 20., 30., 40., 50., 60., /* s2 */ 70., 80., 90., 100., -99., -99.,
            ],
            &[2, 3, 2],
        );
        let mask = Tensor::from_slice(&[1i64, 1, 1, 1, 1, 0]).reshape([2, 3]);
        (vec![h0, h1, h2], mask)
    }

    #[test]
    fn poolers_on_hand_made_states() {
        let (hs, mask) = states();
        assert_eq!(vals(&Pooling::Cls.pool(&hs, &mask)), [10., 20., 70., 80.]);
        assert_eq!(
            vals(&Pooling::ClsBeforePooler.pool(&hs, &mask)),
            [10., 20., 70., 80.]
        );
        // avg: s1 mean of (10,20),(30,40),(50,60) = (30,40); s2 mean of (70,80),(90,100) = (80,90).
        assert_eq!(vals(&Pooling::Avg.pool(&hs, &mask)), [30., 40., 80., 90.]);
        // avg_top2: layers 1 and 2 averaged: s1 (16.5, 22), s2 (44, 49.5).
        assert_eq!(
            vals(&Pooling::AvgTop2.pool(&hs, &mask)),
            [16.5, 22., 44., 49.5]
        );
        // avg_first_last with 2 layers: layer 1 + layer 2 — the embedding output (100s) is unused.
        assert_eq!(
            vals(&Pooling::AvgFirstLast.pool(&hs, &mask)),
            [16.5, 22., 44., 49.5]
        );
        // With 3 layers avg_first_last and avg_top2 differ: first = layer 1, top2 = layers 2, 3.
        let h3 = &hs[2] * 2.0;
        let hs3 = vec![
            hs[0].shallow_clone(),
            hs[1].shallow_clone(),
            hs[2].shallow_clone(),
            h3,
        ];
        // first_last: (layer1 + 2*layer2)/2: s1 tokens (10.5,21),(31.5,42),(52.5,63) → (31.5, 42).
        assert_eq!(
            vals(&Pooling::AvgFirstLast.pool(&hs3, &mask)),
            [31.5, 42., 84., 94.5]
        );
        // top2: (layer2 + 2*layer2)/2 = 1.5*layer2 → (45, 60), (120, 135).
        assert_eq!(
            vals(&Pooling::AvgTop2.pool(&hs3, &mask)),
            [45., 60., 120., 135.]
        );
    }

    #[test]
    fn mlp_only_in_the_right_modes() {
        let vs = nn::VarStore::new(Device::Cpu);
        let mlp = MlpLayer::new(&(vs.root() / "mlp"), 2);
        tch::no_grad(|| {
            let vars = vs.variables();
            vars["mlp.dense.weight"]
                .shallow_clone()
                .copy_(&t(&[1., 0., 0., 1.], &[2, 2]));
            vars["mlp.dense.bias"]
                .shallow_clone()
                .copy_(&t(&[0., 1.], &[2]));
        });
        let (hs, mask) = states();
        let cls = Pooler::new(Pooling::Cls);
        let with_mlp: Vec<f32> = vals(&cls.forward_t(&hs, &mask, &mlp, true));
        let expect: Vec<f32> = [10f32, 21., 70., 81.].iter().map(|x| x.tanh()).collect();
        assert_eq!(with_mlp, expect);
        assert_eq!(vals(&cls.forward_t(&hs, &mask, &mlp, false)), expect);
        let only_train = Pooler {
            pooling: Pooling::Cls,
            mlp_only_train: true,
        };
        assert_eq!(vals(&only_train.forward_t(&hs, &mask, &mlp, true)), expect);
        assert_eq!(
            vals(&only_train.forward_t(&hs, &mask, &mlp, false)),
            [10., 20., 70., 80.]
        );
        let before = Pooler::new(Pooling::ClsBeforePooler);
        assert_eq!(
            vals(&before.forward_t(&hs, &mask, &mlp, true)),
            [10., 20., 70., 80.]
        );
        assert!(vs.variables().contains_key("mlp.dense.weight"));
    }

    #[test]
    fn names_round_trip() {
        for p in Pooling::ALL {
            assert_eq!(p.as_str().parse::<Pooling>().unwrap(), p);
        }
        assert!("mean"
            .parse::<Pooling>()
            .unwrap_err()
            .contains("unknown pooling"));
    }
}
