//! The objective variants behind one interface, all over the same 5-frame tuples.
//!
//! Every variant reads the batch as R3M's tuples, embeddings `[B, 5, D]` in stack order
//! `[start, end, s0, s1, s2]`, and gives the frames the same roles: the **anchor** is `s2`, its
//! **positive** is `s1` (nearer in time: R3M's ordering rule, or within `--positive-window`), and
//! `s0` is the **in-clip negative** (farther, or beyond `--negative-gap`). Rows whose clip is the
//! same (the loader draws several tuples per clip) are never each other's negatives, except in
//! `r3m-tcn`, which keeps the reference's plain permutations.
//!
//! | name | loss |
//! | --- | --- |
//! | `r3m-tcn` | R3M's time-contrastive InfoNCE ([`crate::R3mObjective`]) |
//! | `triplet` | `mean max(0, ‖a−p‖² − ‖a−n‖² + margin)`; `n` = `s0`, or with hard mining the nearest of `s0` and every frame of the other clips |
//! | `npair` | N-way softmax of `a·p` against `a·x` for every frame `x` of the other clips (Sohn 2016, inner products) |
//! | `simclr` | NT-Xent over the 2B views `{a, p}` with cosine similarity / temperature |
//! | `moco` | InfoNCE of `q = a` against the momentum encoder's `k = p` and a queue of past keys (MoCo v2) |
//! | `byol` | `2 − 2 cos(pred(proj(a)), proj′(p′))`, symmetrised, with a momentum target, no negatives |
//! | `proto` | prototypical networks: each clip a class, `start/end/s0` support, `s1/s2` queries, `−‖q − c‖²` logits |
//!
//! All of them add R3M's `w_l1 · mean‖e‖₁ + w_l2 · mean‖e‖₂`, and the language term when
//! `lang_weight > 0`. The pure losses live in [`crate::losses`] (re-exported here) and, with
//! [`lang_loss`], are checked against PyTorch in `tests/model_parity.rs`; this module holds what
//! has state: the configuration, the heads, the momentum copies and the MoCo queue.

use tch::{nn, nn::Module, nn::ModuleT, Device, Kind, Tensor};

pub use crate::losses::{
    byol_loss, hardest_negatives, moco_logits_loss, normalize, npair, npair_global, nt_xent, nt_xent_global, proto,
    same_clip, triplet,
};
use crate::resnet::{Arch, Encoder};
use crate::{Precision, R3mObjective};

/// Keeps the language term's log away from 0 (the reference's value).
const EPS: f64 = 1e-8;

/// The objective variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectiveKind {
    /// R3M's TCN InfoNCE (the default).
    R3mTcn,
    /// Triplet margin loss on squared L2 distances.
    Triplet,
    /// N-pair softmax (Sohn 2016).
    NPair,
    /// NT-Xent (SimCLR).
    SimClr,
    /// Momentum encoder + queue (MoCo v2).
    Moco,
    /// Online/target networks with a predictor (BYOL).
    Byol,
    /// Prototypical networks over clips (Ni et al. 2022).
    Proto,
}

impl ObjectiveKind {
    /// Whether the objective can take its negatives from every rank's batch (`--global-negatives`).
    pub fn has_global_negatives(self) -> bool {
        matches!(self, ObjectiveKind::SimClr | ObjectiveKind::NPair)
    }

    /// All variants, in the order the ablation reports them.
    pub const ALL: [ObjectiveKind; 7] = [
        ObjectiveKind::R3mTcn,
        ObjectiveKind::Triplet,
        ObjectiveKind::NPair,
        ObjectiveKind::SimClr,
        ObjectiveKind::Moco,
        ObjectiveKind::Byol,
        ObjectiveKind::Proto,
    ];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            ObjectiveKind::R3mTcn => "r3m-tcn",
            ObjectiveKind::Triplet => "triplet",
            ObjectiveKind::NPair => "npair",
            ObjectiveKind::SimClr => "simclr",
            ObjectiveKind::Moco => "moco",
            ObjectiveKind::Byol => "byol",
            ObjectiveKind::Proto => "proto",
        }
    }

    /// The temperature a variant uses unless told otherwise (SimCLR 0.1, MoCo v2 0.2).
    pub fn default_temperature(self) -> f64 {
        match self {
            ObjectiveKind::Moco => 0.2,
            _ => 0.1,
        }
    }

    /// Whether the variant keeps a momentum copy of the encoder.
    pub fn has_target(self) -> bool {
        matches!(self, ObjectiveKind::Moco | ObjectiveKind::Byol)
    }
}

impl std::str::FromStr for ObjectiveKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        ObjectiveKind::ALL
            .into_iter()
            .find(|k| k.name() == s || (s == "r3m" && *k == ObjectiveKind::R3mTcn))
            .ok_or_else(|| {
                let names: Vec<&str> = ObjectiveKind::ALL.iter().map(|k| k.name()).collect();
                format!("unknown objective '{s}' (one of: {})", names.join(", "))
            })
    }
}

/// Settings of the objective (defaults: R3M's TCN, no language).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ObjectiveConfig {
    /// Which variant.
    pub kind: ObjectiveKind,
    /// R3M's weights (`w_tcn` weighs `r3m-tcn`; `w_l1`/`w_l2` apply to every variant), similarity
    /// and cross-clip negatives.
    pub r3m: R3mObjective,
    /// Triplet margin.
    pub margin: f64,
    /// Triplet: the nearest in-batch negative instead of `s0`.
    pub hard_negatives: bool,
    /// SimCLR / MoCo temperature.
    pub temperature: f64,
    /// MoCo queue length.
    pub queue: usize,
    /// MoCo / BYOL target momentum (`θ′ ← m θ′ + (1 − m) θ`).
    pub momentum: f64,
    /// BYOL projector/predictor hidden width.
    pub byol_hidden: i64,
    /// BYOL projection size.
    pub byol_dim: i64,
    /// Weight of R3M's language term (0: off).
    pub lang_weight: f64,
    /// Width of the language head's hidden layers (R3M: 1024).
    pub lang_hidden: i64,
    /// Data-parallel `simclr` / `npair`: negatives from the global batch
    /// ([`ObjectiveInput::global`]).
    pub global_negatives: bool,
}

impl ObjectiveConfig {
    /// A variant with its defaults.
    pub fn new(kind: ObjectiveKind) -> Self {
        ObjectiveConfig {
            kind,
            r3m: R3mObjective::default(),
            margin: 1.0,
            hard_negatives: false,
            temperature: kind.default_temperature(),
            queue: 4096,
            // short CPU budgets: 0.999 (MoCo's) would leave the key encoder near its init
            momentum: 0.99,
            byol_hidden: 1024,
            byol_dim: 128,
            lang_weight: 0.0,
            lang_hidden: 1024,
            global_negatives: false,
        }
    }

    /// The settings as JSON (stored in every checkpoint).
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "name": self.kind.name(), "w_tcn": self.r3m.w_tcn, "w_l1": self.r3m.w_l1, "w_l2": self.r3m.w_l2,
            "num_negatives": self.r3m.num_negatives, "similarity": format!("{:?}", self.r3m.similarity),
            "margin": self.margin, "hard_negatives": self.hard_negatives, "temperature": self.temperature,
            "queue": self.queue, "momentum": self.momentum, "byol_hidden": self.byol_hidden, "byol_dim": self.byol_dim,
            "lang_weight": self.lang_weight, "lang_hidden": self.lang_hidden,
        });
        // only when on, so configs written before the option compare equal
        if self.global_negatives {
            v["global_negatives"] = serde_json::json!(true);
        }
        v
    }
}

impl Default for ObjectiveConfig {
    fn default() -> Self {
        ObjectiveConfig::new(ObjectiveKind::R3mTcn)
    }
}

/// R3M's language head G(e₀, eₜ, l): an MLP on `[e₀, eₜ, l]` (4 hidden ReLU layers) to a score.
#[derive(Debug)]
pub struct LangHead {
    layers: Vec<nn::Linear>,
}

impl LangHead {
    /// A head for `dim`-d image and `lang_dim`-d text embeddings.
    pub fn new(p: &nn::Path, dim: i64, lang_dim: i64, hidden: i64) -> Self {
        let sizes = [2 * dim + lang_dim, hidden, hidden, hidden, hidden, 1];
        let layers =
            (0..5).map(|i| nn::linear(p / i.to_string(), sizes[i], sizes[i + 1], Default::default())).collect();
        LangHead { layers }
    }

    /// Scores `[B]` for rows of `e0`, `et` `[B, D]` and `lang` `[B, L]`.
    pub fn score(&self, e0: &Tensor, et: &Tensor, lang: &Tensor) -> Tensor {
        let mut x = Tensor::cat(&[e0, et, lang], -1);
        for (i, l) in self.layers.iter().enumerate() {
            x = l.forward(&x);
            if i + 1 < self.layers.len() {
                x = x.relu();
            }
        }
        x.squeeze_dim(-1)
    }
}

/// R3M's language term, exactly as the reference computes it: three InfoNCE terms whose positive
/// is progress towards the instruction (`(e0, end)`, `(e0, s1)`, `(e0, s2)`) and whose negatives
/// are less progress in the same clip (`(e0, e0)`, `(e0, s0)`, `(e0, s1)`) and the same pair from
/// `perms.len() / 3` other clips under this clip's text. `emb` `[B, 5, D]` with `s0 < s1 < s2` in
/// time; `mask` `[B]` is 1 for rows with a text (the mean is over all rows, as in the reference).
/// Returns the loss and the mean of the three accuracies over rows with a text.
pub fn lang_loss(head: &LangHead, emb: &Tensor, lang: &Tensor, mask: &Tensor, perms: &[Tensor]) -> (Tensor, Tensor) {
    assert!(perms.len().is_multiple_of(3), "three sets of permutations");
    let k = perms.len() / 3;
    let (e0, eg, es0, es1, es2) =
        (emb.select(1, 0), emb.select(1, 1), emb.select(1, 2), emb.select(1, 3), emb.select(1, 4));
    let terms = [(&eg, &e0, &eg), (&es1, &es0, &es1), (&es2, &es1, &es2)];
    // all 3·(2 + k) pairs go through the head as one batch: one GEMM per layer instead of
    // 3·(2 + k) small ones (and, under autocast, one weight cast per layer instead of many)
    let (mut firsts, mut seconds) = (Vec::new(), Vec::new());
    for (t, (pos_e, neg_e, shuf_e)) in terms.iter().enumerate() {
        firsts.extend([e0.shallow_clone(), e0.shallow_clone()]);
        seconds.extend([pos_e.shallow_clone(), neg_e.shallow_clone()]);
        for p in &perms[t * k..(t + 1) * k] {
            firsts.push(e0.index_select(0, p));
            seconds.push(shuf_e.index_select(0, p));
        }
    }
    let pairs = firsts.len() as i64;
    let b = emb.size()[0];
    let scores = head.score(&Tensor::cat(&firsts, 0), &Tensor::cat(&seconds, 0), &lang.repeat([pairs, 1])).view([
        3,
        2 + k as i64,
        b,
    ]);
    let mut loss = Tensor::zeros([b], (Kind::Float, emb.device()));
    let mut acc = Tensor::zeros([b], (Kind::Float, emb.device()));
    for t in 0..3 {
        let s = scores.get(t);
        let pos = s.get(0);
        let negs = s.narrow(0, 1, 1 + k as i64).transpose(0, 1);
        let l = -((pos.exp() / (pos.exp() + negs.exp().sum_dim_intlist(&[-1i64][..], false, Kind::Float) + EPS)) + EPS)
            .log();
        loss += l;
        acc += tch::no_grad(|| negs.amax(&[-1i64][..], false).lt_tensor(&pos).to_kind(Kind::Float));
    }
    let loss = (loss / 3.0 * mask).mean(Kind::Float);
    let acc = tch::no_grad(|| (acc / 3.0 * mask).sum(Kind::Float) / mask.sum(Kind::Float).clamp_min(1.0));
    (loss, acc)
}

/// A two-layer MLP with BatchNorm (BYOL's projector and predictor).
#[derive(Debug)]
struct Mlp {
    l1: nn::Linear,
    bn: nn::BatchNorm,
    l2: nn::Linear,
}

impl Mlp {
    fn new(p: &nn::Path, i: i64, h: i64, o: i64) -> Self {
        Mlp {
            l1: nn::linear(p / "0", i, h, Default::default()),
            bn: nn::batch_norm1d(p / "1", h, Default::default()),
            l2: nn::linear(p / "3", h, o, Default::default()),
        }
    }
    fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        self.l2.forward(&self.bn.forward_t(&self.l1.forward(x), train).relu())
    }
}

/// What one evaluation of the objective needs from a training step.
pub struct ObjectiveInput<'a> {
    /// Online embeddings `[B, 5, D]` (with grad).
    pub emb: &'a Tensor,
    /// The images they came from, `[B·5, 3, H, W]` u8 (for the momentum encoders).
    pub images: &'a Tensor,
    /// Clip id of each row, `[B]` i64.
    pub clips: &'a Tensor,
    /// `r3m-tcn`'s negatives: permutations of `0..B` for the s0 and s2 anchors.
    pub perms0: &'a [Tensor],
    /// See `perms0`.
    pub perms2: &'a [Tensor],
    /// Language: text embeddings `[B, L]`, mask `[B]`, `3k` permutations, and `[B]` bool for rows
    /// whose `s0 > s2` (the language term wants them in time order).
    pub lang: Option<(&'a Tensor, &'a Tensor, &'a [Tensor], &'a Tensor)>,
    /// Arithmetic of the momentum encoder's forward pass.
    pub precision: Precision,
    /// Data-parallel with global negatives: the global batch's embeddings `[W·B, 5, D]` (a leaf
    /// whose gradient the trainer sums over ranks and sends back through each rank's own rows),
    /// their clip ids `[W·B]`, and this rank's first row in them. The anchors are always this
    /// rank's own rows of `emb`.
    pub global: Option<(&'a Tensor, &'a Tensor, i64)>,
}

/// One evaluation's terms (scalars); `total` carries the graph.
#[derive(Debug)]
pub struct Terms {
    /// Everything, weighted.
    pub total: Tensor,
    /// The variant's own loss.
    pub main: Tensor,
    /// R3M's TCN term (unweighted), measured for every variant.
    pub tcn: Tensor,
    /// The variant's own accuracy (positive ranked first; for `byol`, cosine > 0 of its pairs).
    pub main_acc: Tensor,
    /// Mean L1 norm of the embeddings.
    pub l1: Tensor,
    /// Mean L2 norm.
    pub l2: Tensor,
    /// R3M's alignment accuracy under −L2, the same measure for every variant.
    pub aligned: Tensor,
    /// Language term and its accuracy, when on.
    pub lang: Option<(Tensor, Tensor)>,
}

/// The objective with its state: trainable heads (language head, BYOL projector/predictor) in
/// `heads`, which the optimiser updates with the encoder, and the momentum copies and MoCo queue in
/// `momentum`, which only [`Objective::after_step`] changes. Both are saved beside the model in a
/// checkpoint's `objective.safetensors`.
pub struct Objective {
    /// Settings.
    pub cfg: ObjectiveConfig,
    /// Trainable heads.
    pub heads: nn::VarStore,
    /// Momentum networks and queue (no gradients).
    pub momentum: nn::VarStore,
    target: Option<Encoder>,
    projector: Option<Mlp>,
    predictor: Option<Mlp>,
    target_projector: Option<Mlp>,
    lang: Option<LangHead>,
    queue: Option<Tensor>,
    queue_ptr: Option<Tensor>,
    /// `queue_ptr`'s value on the host once read (the queue's pointer changes only here, so one
    /// read after building or loading serves every step: no wait for the device per step).
    queue_start: Option<i64>,
    pending_keys: Option<Tensor>,
}

impl std::fmt::Debug for Objective {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Objective").field("cfg", &self.cfg).finish_non_exhaustive()
    }
}

/// Text embedding size the language head expects by default (all-MiniLM-L6-v2).
pub const LANG_DIM: i64 = 384;

impl Objective {
    /// Builds the objective for an encoder `arch` with optional projection `proj_dim`, embedding
    /// size `dim`, text size `lang_dim`. Momentum copies start equal to `online`.
    pub fn new(
        cfg: ObjectiveConfig,
        arch: Arch,
        proj_dim: Option<i64>,
        dim: i64,
        lang_dim: i64,
        online: &nn::VarStore,
    ) -> Self {
        let device = online.device();
        let heads = nn::VarStore::new(device);
        let mut momentum = nn::VarStore::new(device);
        let (mut target, mut projector, mut predictor, mut target_projector, mut queue, mut queue_ptr) =
            (None, None, None, None, None, None);
        if cfg.kind.has_target() {
            let enc = Encoder::with_head(&(momentum.root() / "encoder"), arch, proj_dim);
            target = Some(enc);
        }
        if cfg.kind == ObjectiveKind::Byol {
            projector = Some(Mlp::new(&(heads.root() / "projector"), dim, cfg.byol_hidden, cfg.byol_dim));
            predictor = Some(Mlp::new(&(heads.root() / "predictor"), cfg.byol_dim, cfg.byol_hidden, cfg.byol_dim));
            target_projector = Some(Mlp::new(&(momentum.root() / "projector"), dim, cfg.byol_hidden, cfg.byol_dim));
        }
        if cfg.kind == ObjectiveKind::Moco {
            let root = momentum.root();
            let mut q = root.var("queue", &[cfg.queue.max(1) as i64, dim], nn::Init::Randn { mean: 0.0, stdev: 1.0 });
            tch::no_grad(|| {
                let n = normalize(&q);
                q.copy_(&n)
            });
            queue = Some(q);
            // the write position, as a float so the whole state is one kind of tensor (exact to 2²⁴)
            queue_ptr = Some(root.zeros_no_train("queue_ptr", &[1]));
        }
        let lang =
            (cfg.lang_weight > 0.0).then(|| LangHead::new(&(heads.root() / "lang"), dim, lang_dim, cfg.lang_hidden));
        momentum.freeze();
        let obj = Objective {
            cfg,
            heads,
            momentum,
            target,
            projector,
            predictor,
            target_projector,
            lang,
            queue,
            queue_ptr,
            queue_start: None,
            pending_keys: None,
        };
        obj.copy_online_into_target(online);
        obj
    }

    fn pairs(&self, online: &nn::VarStore) -> Vec<(Tensor, Tensor)> {
        let mine = self.momentum.variables();
        let theirs = online.variables();
        let heads = self.heads.variables();
        let mut out = Vec::new();
        for (name, t) in &mine {
            if let Some(rest) = name.strip_prefix("encoder.") {
                if let Some(o) = theirs.get(rest) {
                    out.push((t.shallow_clone(), o.shallow_clone()));
                }
            } else if name.starts_with("projector.") {
                if let Some(o) = heads.get(name) {
                    out.push((t.shallow_clone(), o.shallow_clone()));
                }
            }
        }
        out
    }

    fn copy_online_into_target(&self, online: &nn::VarStore) {
        tch::no_grad(|| {
            for (mut t, o) in self.pairs(online) {
                t.copy_(&o);
            }
        });
    }

    /// Trainable head parameters, named `objective.<name>` (for the optimiser).
    pub fn trainable(&self) -> Vec<(String, Tensor)> {
        let mut v: Vec<(String, Tensor)> = self
            .heads
            .variables()
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .map(|(n, t)| (format!("objective.{n}"), t))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Every state tensor (heads, momentum networks, queue), named for `objective.safetensors`.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let mut v: Vec<(String, Tensor)> =
            self.heads.variables().into_iter().map(|(n, t)| (format!("heads.{n}"), t.contiguous())).collect();
        v.extend(self.momentum.variables().into_iter().map(|(n, t)| (format!("momentum.{n}"), t.contiguous())));
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Restores what [`Objective::state`] wrote; every tensor must be there with its shape.
    pub fn load_state(&mut self, state: &[(String, Tensor)]) -> Result<(), String> {
        self.queue_start = None;
        let by_name: std::collections::HashMap<&str, &Tensor> = state.iter().map(|(n, t)| (n.as_str(), t)).collect();
        tch::no_grad(|| {
            for (prefix, vs) in [("heads", &self.heads), ("momentum", &self.momentum)] {
                for (name, mut t) in vs.variables() {
                    let key = format!("{prefix}.{name}");
                    let src = by_name.get(key.as_str()).ok_or_else(|| format!("missing '{key}'"))?;
                    if src.size() != t.size() {
                        return Err(format!("'{key}' has shape {:?}, expected {:?}", src.size(), t.size()));
                    }
                    t.copy_(src);
                }
            }
            Ok(())
        })
    }

    /// Evaluates the objective on one batch.
    pub fn loss(&mut self, inp: &ObjectiveInput) -> Terms {
        let emb = inp.emb.to_kind(Kind::Float);
        let (a, p, n) = (emb.select(1, 4), emb.select(1, 3), emb.select(1, 2));
        let r3m = &self.cfg.r3m;
        // R3M's TCN pieces: the loss for r3m-tcn, the shared alignment measure for everyone
        let tcn = r3m.loss(&emb, inp.perms0, inp.perms2);
        let (main, main_acc) = match self.cfg.kind {
            ObjectiveKind::R3mTcn => (&tcn.tcn * r3m.w_tcn, tcn.aligned.shallow_clone()),
            ObjectiveKind::Triplet => {
                let neg = if self.cfg.hard_negatives { hardest_negatives(&emb, inp.clips) } else { n };
                triplet(&a, &p, &neg, self.cfg.margin)
            }
            ObjectiveKind::NPair => match inp.global.filter(|_| self.cfg.global_negatives) {
                Some((all, clips_all, _)) => npair_global(&a, &p, inp.clips, &all.to_kind(Kind::Float), clips_all),
                None => npair(&a, &p, &emb, inp.clips),
            },
            ObjectiveKind::SimClr => match inp.global.filter(|_| self.cfg.global_negatives) {
                Some((all, clips_all, offset)) => {
                    let all = all.to_kind(Kind::Float);
                    nt_xent_global(
                        &a,
                        &p,
                        inp.clips,
                        &all.select(1, 4),
                        &all.select(1, 3),
                        clips_all,
                        offset,
                        self.cfg.temperature,
                    )
                }
                None => nt_xent(&a, &p, inp.clips, self.cfg.temperature),
            },
            ObjectiveKind::Moco => {
                let k = self.target_embed(inp, &[3]).squeeze_dim(1);
                let out =
                    moco_logits_loss(&a, &k, self.queue.as_ref().expect("moco has a queue"), self.cfg.temperature);
                // enqueued after the step (MoCo: the queue holds keys of earlier batches only)
                self.pending_keys = Some(normalize(&k));
                out
            }
            ObjectiveKind::Byol => {
                // built by `Objective::new` for Byol
                let (Some(proj), Some(pred), Some(tproj)) =
                    (self.projector.as_ref(), self.predictor.as_ref(), self.target_projector.as_ref())
                else {
                    unreachable!("Objective::new builds BYOL's projector, predictor and target projector")
                };
                let online = pred.forward(&proj.forward(&Tensor::cat(&[&a, &p], 0), true), true);
                let t = self.target_embed(inp, &[3, 4]);
                let target = tch::no_grad(|| tproj.forward(&Tensor::cat(&[t.select(1, 0), t.select(1, 1)], 0), true));
                let loss = byol_loss(&online, &target);
                let acc = tch::no_grad(|| {
                    (normalize(&online) * normalize(&target))
                        .sum_dim_intlist(&[-1i64][..], false, Kind::Float)
                        .gt(0.0)
                        .to_kind(Kind::Float)
                        .mean(Kind::Float)
                });
                (loss, acc)
            }
            ObjectiveKind::Proto => {
                let support = Tensor::stack(&[emb.select(1, 0), emb.select(1, 1), n], 1);
                let query = Tensor::stack(&[p, a], 1);
                proto(&support, &query, inp.clips)
            }
        };
        let mut total = &main + &tcn.l1 * r3m.w_l1 + &tcn.l2 * r3m.w_l2;
        let lang = match (&self.lang, inp.lang) {
            (Some(head), Some((text, mask, perms, backward))) => {
                // the language term reads progress: put each row's s0/s2 in time order
                let bw = backward.unsqueeze(-1);
                let (s0, s2) = (emb.select(1, 2), emb.select(1, 4));
                let ordered = Tensor::stack(
                    &[
                        emb.select(1, 0),
                        emb.select(1, 1),
                        s0.where_self(&bw.logical_not(), &s2),
                        emb.select(1, 3),
                        s2.where_self(&bw.logical_not(), &s0),
                    ],
                    1,
                );
                let (l, acc) = lang_loss(head, &ordered, text, mask, perms);
                total += &l * self.cfg.lang_weight;
                Some((l, acc))
            }
            _ => None,
        };
        Terms { total, main, main_acc, tcn: tcn.tcn, l1: tcn.l1, l2: tcn.l2, aligned: tcn.aligned, lang }
    }

    /// The momentum encoder's embeddings of the given tuple slots, `[B, slots, D]`, no grad.
    /// Data-parallel MoCo: replaces the keys waiting to be enqueued by `gather(keys)` (every
    /// rank's keys, in rank order), so every rank's queue holds the global batch's keys and the
    /// queues stay identical.
    pub fn gather_pending_keys<E>(&mut self, gather: impl FnOnce(&Tensor) -> Result<Tensor, E>) -> Result<(), E> {
        if let Some(k) = self.pending_keys.take() {
            self.pending_keys = Some(gather(&k)?);
        }
        Ok(())
    }

    fn target_embed(&self, inp: &ObjectiveInput, slots: &[i64]) -> Tensor {
        let enc = self.target.as_ref().expect("a target encoder");
        let b = inp.emb.size()[0];
        let s = inp.images.size();
        let imgs = inp.images.reshape([b, 5, s[1], s[2], s[3]]);
        let idx = Tensor::from_slice(slots).to_device(inp.images.device());
        let x = imgs.index_select(1, &idx).reshape([b * slots.len() as i64, s[1], s[2], s[3]]);
        tch::no_grad(|| enc.embed(&x, true, inp.precision).to_kind(Kind::Float).view([b, slots.len() as i64, -1]))
    }

    /// After the optimiser step: momentum update of the targets, and MoCo's queue takes this
    /// batch's keys.
    pub fn after_step(&mut self, online: &nn::VarStore) {
        if !self.cfg.kind.has_target() {
            return;
        }
        let m = self.cfg.momentum;
        let keys = self.pending_keys.take();
        tch::no_grad(|| {
            for (mut t, o) in self.pairs(online) {
                if t.is_floating_point() && o.requires_grad() {
                    t.copy_(&(&t * m + &o * (1.0 - m)));
                }
            }
            if let (Some(keys), Some(queue), Some(ptr)) = (keys, self.queue.as_mut(), self.queue_ptr.as_mut()) {
                let k = queue.size()[0];
                // the pointer as the tensor holds it (after building, loading or a broadcast from
                // rank 0), read once
                let start = *self.queue_start.get_or_insert_with(|| ptr.double_value(&[0]) as i64);
                let n = keys.size()[0];
                let idx = (Tensor::arange(n, (Kind::Int64, queue.device())) + start).remainder(k);
                let _ = queue.index_copy_(0, &idx, &keys.to_kind(queue.kind()));
                let _ = ptr.fill_(((start + n) % k) as f64);
                self.queue_start = Some((start + n) % k);
            }
        });
    }

    /// The device.
    pub fn device(&self) -> Device {
        self.heads.device()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_variants_equal_the_local_ones_on_one_rank_and_see_more_negatives_on_two() {
        tch::manual_seed(1);
        let emb = Tensor::randn([6, 5, 8], (Kind::Float, tch::Device::Cpu));
        let clips = Tensor::from_slice(&[0i64, 1, 2, 2, 3, 4]);
        let (a, p) = (emb.select(1, 4), emb.select(1, 3));
        let (l1, c1) = nt_xent(&a, &p, &clips, 0.1);
        let (l2, c2) = nt_xent_global(&a, &p, &clips, &a, &p, &clips, 0, 0.1);
        assert!(
            (l1.double_value(&[]) - l2.double_value(&[])).abs() < 1e-6 && c1.double_value(&[]) == c2.double_value(&[])
        );
        let (l1, _) = npair(&a, &p, &emb, &clips);
        let (l2, _) = npair_global(&a, &p, &clips, &emb, &clips);
        assert!((l1.double_value(&[]) - l2.double_value(&[])).abs() < 1e-6);
        // as rank 1 of 2: rows 6..12 of a 12-row global batch; more negatives, a larger loss
        let other = Tensor::randn([6, 5, 8], (Kind::Float, tch::Device::Cpu));
        let all = Tensor::cat(&[&other, &emb], 0);
        let clips_all = Tensor::cat(&[&(&clips + 10), &clips], 0);
        let (lg, _) = nt_xent_global(&a, &p, &clips, &all.select(1, 4), &all.select(1, 3), &clips_all, 6, 0.1);
        let (ll, _) = nt_xent(&a, &p, &clips, 0.1);
        assert!(lg.double_value(&[]) > ll.double_value(&[]), "more negatives raise the loss");
    }
}
