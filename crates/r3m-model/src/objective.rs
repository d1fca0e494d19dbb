//! R3M's objective, exactly as the reference trainer computes it.
//!
//! Embeddings come per tuple in the reference's stack order `[start, end, s0, s1, s2]`
//! (`[B, 5, D]`). With `sim(a, b) = −‖a − b‖₂` (or cosine):
//!
//! - anchor s2: positive s1, negatives s0 and the s2 of `num_negatives` permuted clips;
//! - anchor s0: positive s1, negatives s2 and the s0 of `num_negatives` permuted clips;
//!
//! `loss_tcn = mean_b ( (ℓ₁ + ℓ₂) / 2 )`, `ℓ = −log(ε + exp(pos) / (ε + exp(pos) + Σ exp(neg)))`,
//! ε = 1e-8, and the total adds `w_l1 · mean‖e‖₁ + w_l2 · mean‖e‖₂` over all 5B embeddings.
//! Alignment accuracy is the reference's `aligned`: the fraction of tuples where
//! `sim(s2, s1) > sim(s2, s0)` and `sim(s1, s0) > sim(s2, s0)`.
//!
//! The permutations are inputs (drawn by the caller's seeded RNG), so a run is reproducible and
//! the PyTorch parity test can use the very same negatives.

use tch::{Kind, Tensor};

/// How frames are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Similarity {
    /// `−‖a − b‖₂` (R3M's default).
    NegL2,
    /// Cosine similarity.
    Cosine,
}

impl std::str::FromStr for Similarity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "l2" | "neg-l2" => Ok(Similarity::NegL2),
            "cosine" | "cos" => Ok(Similarity::Cosine),
            _ => Err(format!("unknown similarity '{s}' (l2, cosine)")),
        }
    }
}

/// Weights and settings of the R3M objective (defaults: the paper's).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct R3mObjective {
    /// Weight of the time-contrastive term.
    pub w_tcn: f64,
    /// Weight of the mean L1 norm of the embeddings.
    pub w_l1: f64,
    /// Weight of the mean L2 norm of the embeddings.
    pub w_l2: f64,
    /// Frame similarity.
    pub similarity: Similarity,
    /// Cross-clip negatives per anchor (permutations of the batch).
    pub num_negatives: usize,
}

impl Default for R3mObjective {
    fn default() -> Self {
        R3mObjective { w_tcn: 1.0, w_l1: 1e-5, w_l2: 1e-5, similarity: Similarity::NegL2, num_negatives: 3 }
    }
}

/// The terms of one evaluation of the objective. Tensors are scalars on the input's device;
/// `total` carries the graph for `backward`.
#[derive(Debug)]
pub struct Loss {
    /// Weighted sum of all terms.
    pub total: Tensor,
    /// Time-contrastive InfoNCE.
    pub tcn: Tensor,
    /// Mean L1 norm of the embeddings.
    pub l1: Tensor,
    /// Mean L2 norm of the embeddings.
    pub l2: Tensor,
    /// Fraction of tuples whose middle frame is nearer than the far pair (no grad).
    pub aligned: Tensor,
}

const EPS: f64 = 1e-8;

impl R3mObjective {
    /// Similarity of matching rows of `a` and `b` (`[B, D]` → `[B]`).
    pub fn sim(&self, a: &Tensor, b: &Tensor) -> Tensor {
        match self.similarity {
            Similarity::NegL2 => -(a - b).linalg_norm(2.0, &[-1i64][..], false, Kind::Float),
            Similarity::Cosine => Tensor::cosine_similarity(a, b, -1, 1e-8),
        }
    }

    /// Evaluates the objective on embeddings `[B, 5, D]` (order `start, end, s0, s1, s2`), with
    /// `perms0[k]` / `perms2[k]` (each a permutation of `0..B`, as i64 tensors) picking the
    /// negatives for the s0 and s2 anchors.
    pub fn loss(&self, emb: &Tensor, perms0: &[Tensor], perms2: &[Tensor]) -> Loss {
        let (b, five) = (emb.size()[0], emb.size()[1]);
        assert_eq!(five, 5, "R3M objective expects 5 frames per tuple, got {five}");
        assert!(
            perms0.len() == self.num_negatives && perms2.len() == self.num_negatives,
            "one permutation per negative"
        );
        let emb = emb.to_kind(Kind::Float);
        let es0 = emb.select(1, 2);
        let es1 = emb.select(1, 3);
        let es2 = emb.select(1, 4);
        let sim_0_2 = self.sim(&es2, &es0);
        let sim_1_2 = self.sim(&es2, &es1);
        let sim_0_1 = self.sim(&es1, &es0);
        let neg0: Vec<Tensor> = perms0.iter().map(|p| self.sim(&es0, &es0.index_select(0, p))).collect();
        let neg2: Vec<Tensor> = perms2.iter().map(|p| self.sim(&es2, &es2.index_select(0, p))).collect();
        let neg0 = Tensor::stack(&neg0, -1).exp().sum_dim_intlist(&[-1i64][..], false, Kind::Float);
        let neg2 = Tensor::stack(&neg2, -1).exp().sum_dim_intlist(&[-1i64][..], false, Kind::Float);
        let l1 = -((sim_1_2.exp() / (sim_0_2.exp() + sim_1_2.exp() + neg2 + EPS)) + EPS).log();
        let l2 = -((sim_0_1.exp() / (sim_0_1.exp() + sim_0_2.exp() + neg0 + EPS)) + EPS).log();
        let tcn = ((l1 + l2) / 2.0).mean(Kind::Float);
        let flat = emb.reshape([b * 5, -1]);
        let norm1 = flat.linalg_norm(1.0, &[-1i64][..], false, Kind::Float).mean(Kind::Float);
        let norm2 = flat.linalg_norm(2.0, &[-1i64][..], false, Kind::Float).mean(Kind::Float);
        let total = &tcn * self.w_tcn + &norm1 * self.w_l1 + &norm2 * self.w_l2;
        let aligned = tch::no_grad(|| {
            (sim_0_2.lt_tensor(&sim_1_2).to_kind(Kind::Float) * sim_0_1.gt_tensor(&sim_0_2).to_kind(Kind::Float))
                .mean(Kind::Float)
        });
        Loss { total, tcn, l1: norm1, l2: norm2, aligned }
    }
}
