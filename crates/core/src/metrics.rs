//! The one registry of recorded metrics: each metric's name, family, direction, unit and meaning.
//! `best`, `plot`, the report, `export` and docs/schema.md (a test keeps its table in step) all
//! read it; no other list says whether a metric is better high or low.
//!
//! **Anisotropy is lower-is-better.** The papers simsweep serves read a more isotropic space as the
//! better-behaved one: SimCSE (Gao et al. 2021, §5) shows contrastive learning flattening the
//! singular-value spectrum, and Xiao et al. (2023) track anisotropy falling as a sign of the
//! space spreading out. This is the same sense as `uniformity` (lower = more uniform) and
//! `effective_rank` / `isotropy_partition` (higher = more isotropic). Descriptive quantities with
//! no better side (norms, self-similarity, spectra, the step's optimiser statistics) are
//! [`Direction::Neither`]: asking for their "best" value needs an explicit goal.

use serde::Serialize;

/// Where a metric comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// Recorded by the trainer at every step (loss, learning rate, the batch's metrics).
    Step,
    /// The embedding-geometry probes (every `probe.every` steps; per layer on request).
    Probe,
    /// Evaluation scores (STS-B dev during training; the final test sets).
    Evaluation,
}

impl Family {
    pub fn name(self) -> &'static str {
        match self {
            Family::Step => "step",
            Family::Probe => "probe",
            Family::Evaluation => "evaluation",
        }
    }
}

/// Which side of a metric is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Higher,
    Lower,
    /// Descriptive: no side is better.
    Neither,
}

impl Direction {
    pub fn name(self) -> &'static str {
        match self {
            Direction::Higher => "higher",
            Direction::Lower => "lower",
            Direction::Neither => "neither",
        }
    }
}

/// One metric (or a family of names, for `sv_NN`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Metric {
    /// The name in `metric_values.metric`; `sv_NN` stands for `sv_01` … `sv_64`.
    pub name: &'static str,
    pub family: Family,
    pub direction: Direction,
    /// Unit or scale ("" for dimensionless).
    pub unit: &'static str,
    pub description: &'static str,
}

const fn m(
    name: &'static str,
    family: Family,
    direction: Direction,
    unit: &'static str,
    description: &'static str,
) -> Metric {
    Metric {
        name,
        family,
        direction,
        unit,
        description,
    }
}

use Direction::{Higher, Lower, Neither};
use Family::{Evaluation, Probe, Step};

/// Every metric simsweep records, in the order docs/schema.md lists them.
#[rustfmt::skip]
pub const METRICS: &[Metric] = &[
    m("loss", Step, Lower, "nats", "the training loss of the step"),
    m("lr", Step, Neither, "", "the learning rate used by the step"),
    m("grad_norm", Step, Neither, "", "global L2 norm of the gradients before clipping"),
    m("pos_cos", Step, Neither, "cosine", "mean cosine of the two views of the same sentence"),
    m("neg_cos", Step, Neither, "cosine", "mean cosine of the off-diagonal pairs (in-batch negatives)"),
    m("batch_alignment", Step, Lower, "", "alignment of the batch's two views (mean squared distance of the normalised positives)"),
    m("batch_uniformity", Step, Lower, "", "uniformity of the batch's sentence vectors"),
    m("gd_mean", Step, Neither, "", "gradient-dissipation factor GD_i averaged over anchors (Li et al. 2024; InfoNCE: 1 − P_ii)"),
    m("w_entropy", Step, Neither, "nats", "entropy of the negatives' weights W_i· averaged over anchors (Li et al. 2024)"),
    m("w_max", Step, Neither, "", "largest negative weight W_ij averaged over anchors: hard-negative concentration"),
    m("ratio_mean", Step, Neither, "", "ratio term R_i averaged over anchors (InfoNCE 1; ArcCon sin(θ_ii + u)/sin θ_ii; MET d_ij*/d_ii)"),
    m("tokens_per_s", Step, Higher, "tokens/s", "training throughput over the metric window"),
    m("token_anisotropy", Probe, Lower, "cosine", "mean cosine between tokens of different sentences, all pairs (closed form)"),
    m("intra_sentence_similarity", Probe, Neither, "cosine", "mean cosine of a sentence's tokens to its mean vector"),
    m("intra_sentence_similarity_adjusted", Probe, Neither, "cosine", "intra_sentence_similarity minus token_anisotropy"),
    m("self_similarity", Probe, Neither, "cosine", "per token type in ≥ 5 probe sentences, mean off-diagonal cosine of its occurrences, averaged over types"),
    m("self_similarity_adjusted", Probe, Neither, "cosine", "self_similarity minus token_anisotropy"),
    m("self_similarity_function", Probe, Neither, "cosine", "self_similarity over function-word types (stopwords-en.txt)"),
    m("self_similarity_function_adjusted", Probe, Neither, "cosine", "self_similarity_function minus token_anisotropy"),
    m("self_similarity_content", Probe, Neither, "cosine", "self_similarity over content-word types"),
    m("self_similarity_content_adjusted", Probe, Neither, "cosine", "self_similarity_content minus token_anisotropy"),
    m("mean_token_norm", Probe, Neither, "", "mean L2 norm of all token vectors, specials included"),
    m("sentence_anisotropy", Probe, Lower, "cosine", "mean pairwise cosine of the sentence vectors"),
    m("alignment", Probe, Lower, "", "mean squared distance of normalised STS-B dev pairs with gold > 4"),
    m("uniformity", Probe, Lower, "", "log mean over pairs of exp(−2‖ẑ_i − ẑ_j‖²)"),
    m("mean_sentence_norm", Probe, Neither, "", "mean L2 norm of the sentence vectors"),
    m("centroid_norm", Probe, Neither, "", "L2 norm of the mean sentence vector"),
    m("effective_rank", Probe, Higher, "", "exp of the entropy of the normalised singular values of the centred sentence matrix"),
    m("isotropy_partition", Probe, Higher, "", "min_c Z(c) / max_c Z(c) over ± the eigenvectors of ZᵀZ (1 = isotropic)"),
    m("rogue_top1_share", Probe, Lower, "", "largest single-dimension share of the mean cosine between sentence vectors (signed)"),
    m("sv_NN", Probe, Neither, "", "the NN-th singular value of the centred sentence matrix over the largest (sv_01 … sv_64)"),
    m("probe_seconds", Probe, Lower, "s", "wall time of the probe (layer −1 only)"),
    m("stsb_dev", Evaluation, Higher, "Spearman × 100", "STS-B development set, during training and for the best checkpoint"),
    m("sts12", Evaluation, Higher, "Spearman × 100", "STS12, all (SentEval), of the final checkpoint"),
    m("sts13", Evaluation, Higher, "Spearman × 100", "STS13, all"),
    m("sts14", Evaluation, Higher, "Spearman × 100", "STS14, all"),
    m("sts15", Evaluation, Higher, "Spearman × 100", "STS15, all"),
    m("sts16", Evaluation, Higher, "Spearman × 100", "STS16, all"),
    m("stsb_test", Evaluation, Higher, "Spearman × 100", "STS-B test set"),
    m("sickr_test", Evaluation, Higher, "Spearman × 100", "SICK-Relatedness test set"),
    m("avg", Evaluation, Higher, "Spearman × 100", "mean of the seven STS test scores (SimCSE's Avg.)"),
    m("mr", Evaluation, Higher, "accuracy × 100", "MR movie-review polarity (SentEval, nested 10-fold in eval.mode test)"),
    m("cr", Evaluation, Higher, "accuracy × 100", "CR product-review polarity (SentEval, nested k-fold)"),
    m("subj", Evaluation, Higher, "accuracy × 100", "SUBJ subjectivity (SentEval, nested k-fold)"),
    m("mpqa", Evaluation, Higher, "accuracy × 100", "MPQA opinion polarity (SentEval, nested k-fold)"),
    m("sst2", Evaluation, Higher, "accuracy × 100", "SST-2 binary sentiment (SentEval, train / dev / test)"),
    m("trec", Evaluation, Higher, "accuracy × 100", "TREC question type, 6 classes (SentEval, k-fold on train, test)"),
    m("mrpc", Evaluation, Higher, "accuracy × 100", "MRPC paraphrase, features [|u − v|, u ∗ v] (SentEval, k-fold on train, test)"),
    m("mrpc_f1", Evaluation, Higher, "F1 × 100", "MRPC: F1 of the paraphrase class on test"),
    m("transfer_avg", Evaluation, Higher, "accuracy × 100", "mean of the seven transfer accuracies (SimCSE's transfer Avg.; MRPC's accuracy)"),
    m("best_step", Evaluation, Neither, "step", "the step of the best checkpoint by stsb_dev, recorded with the final scores"),
];

/// The registry entry of a recorded name (`sv_07` finds `sv_NN`).
pub fn lookup(name: &str) -> Option<&'static Metric> {
    let key = match name.strip_prefix("sv_") {
        Some(d) if d.len() == 2 && d.bytes().all(|b| b.is_ascii_digit()) => "sv_NN",
        _ => name,
    };
    METRICS.iter().find(|m| m.name == key)
}

/// Which side of `name` is better. Names outside the registry (a custom evaluation task) read as
/// scores — higher is better — unless they end in `loss`.
pub fn direction(name: &str) -> Direction {
    match lookup(name) {
        Some(m) => m.direction,
        None if name.ends_with("loss") => Lower,
        None => Higher,
    }
}

/// The step metrics the trainer records, in its order.
pub fn step_metrics() -> impl Iterator<Item = &'static str> {
    METRICS.iter().filter(|m| m.family == Step).map(|m| m.name)
}

/// The registry as the Markdown table of docs/schema.md.
pub fn markdown_table() -> String {
    let mut s =
        String::from("| metric | family | better | unit | meaning |\n|---|---|---|---|---|\n");
    for m in METRICS {
        let name = if m.name == "sv_NN" {
            "`sv_01` … `sv_64`".to_string()
        } else {
            format!("`{}`", m.name)
        };
        s.push_str(&format!(
            "| {name} | {} | {} | {} | {} |\n",
            m.family.name(),
            m.direction.name(),
            m.unit,
            m.description
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_once_and_directions_as_documented() {
        for (i, a) in METRICS.iter().enumerate() {
            assert!(
                METRICS[i + 1..].iter().all(|b| b.name != a.name),
                "{} twice",
                a.name
            );
        }
        assert_eq!(direction("token_anisotropy"), Lower);
        assert_eq!(direction("sentence_anisotropy"), Lower);
        assert_eq!(direction("uniformity"), Lower);
        assert_eq!(direction("stsb_dev"), Higher);
        assert_eq!(direction("sv_07"), Neither);
        assert_eq!(direction("sv_7"), Higher, "not a registry name: a score");
        assert_eq!(direction("my_loss"), Lower);
        assert_eq!(direction("mr"), Higher);
        assert_eq!(step_metrics().count(), 12);
        assert_eq!(lookup("avg").map(|m| m.family), Some(Evaluation));
        assert_eq!(lookup("sv_64").map(|m| m.name), Some("sv_NN"));
    }

    /// docs/schema.md holds the registry's table between its markers, exactly; `SIMSWEEP_BLESS=1`
    /// rewrites it.
    #[test]
    fn schema_doc_lists_the_registry() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/schema.md");
        let doc = std::fs::read_to_string(path).unwrap();
        let (begin, end) = ("<!-- metrics:begin -->\n", "<!-- metrics:end -->");
        let a = doc
            .find(begin)
            .expect("docs/schema.md: metrics:begin marker")
            + begin.len();
        let b = doc.find(end).expect("docs/schema.md: metrics:end marker");
        if std::env::var_os("SIMSWEEP_BLESS").is_some() && doc[a..b] != markdown_table() {
            std::fs::write(
                path,
                format!("{}{}{}", &doc[..a], markdown_table(), &doc[b..]),
            )
            .unwrap();
            return;
        }
        assert_eq!(
            &doc[a..b],
            markdown_table(),
            "docs/schema.md's metric table differs from simsweep_core::metrics::METRICS; paste the registry's table (simsweep_core::metrics::markdown_table) between the markers"
        );
    }
}
