//! The objectives' pure losses: functions of embeddings and clip ids, no parameters and no state
//! (the heads, momentum encoders and queues that feed them are in [`crate::objectives`]). Each is
//! checked against PyTorch in `tests/model_parity.rs`.

use tch::{Kind, Tensor};

/// Rows `[N, D]` scaled to unit L2 norm (as `F.normalize`, ε = 1e-12).
pub fn normalize(x: &Tensor) -> Tensor {
    x / x.linalg_norm(2.0, &[-1i64][..], true, Kind::Float).clamp_min(1e-12)
}

fn sq_dist(a: &Tensor, b: &Tensor) -> Tensor {
    (a - b).square().sum_dim_intlist(&[-1i64][..], false, Kind::Float)
}

/// `[B, B]`: whether rows `i` and `j` come from the same clip.
pub fn same_clip(clips: &Tensor) -> Tensor {
    clips.unsqueeze(1).eq_tensor(&clips.unsqueeze(0))
}

/// For each row, the hardest negative of the batch: the frame nearest to its anchor (squared L2)
/// among its own `s0` and all five frames of every row of another clip. `emb` `[B, 5, D]`,
/// `clips` `[B]` (i64 clip ids); returns `[B, D]` (gradients flow into the chosen frames).
pub fn hardest_negatives(emb: &Tensor, clips: &Tensor) -> Tensor {
    let (b, d) = (emb.size()[0], emb.size()[2]);
    let flat = emb.reshape([b * 5, d]);
    let anchors = emb.select(1, 4);
    let idx = tch::no_grad(|| {
        let dist =
            (anchors.unsqueeze(1) - flat.unsqueeze(0)).square().sum_dim_intlist(&[-1i64][..], false, Kind::Float);
        let other = same_clip(clips).logical_not().repeat_interleave_self_int(5, Some(1), None);
        let own_s0 = Tensor::eye(b, (Kind::Bool, emb.device()))
            .repeat_interleave_self_int(5, Some(1), None)
            .logical_and(&Tensor::arange(b * 5, (Kind::Int64, emb.device())).remainder(5).eq(2).unsqueeze(0));
        dist.masked_fill(&other.logical_or(&own_s0).logical_not(), f64::INFINITY).argmin(1, false)
    });
    flat.index_select(0, &idx)
}

/// Triplet margin loss `mean max(0, ‖a−p‖² − ‖a−n‖² + margin)` and the fraction of rows with
/// `‖a−p‖² < ‖a−n‖²`. `a`, `p`, `n`: `[B, D]`.
pub fn triplet(a: &Tensor, p: &Tensor, n: &Tensor, margin: f64) -> (Tensor, Tensor) {
    let (dp, dn) = (sq_dist(a, p), sq_dist(a, n));
    let loss = (&dp - &dn + margin).relu().mean(Kind::Float);
    let acc = tch::no_grad(|| dp.lt_tensor(&dn).to_kind(Kind::Float).mean(Kind::Float));
    (loss, acc)
}

/// N-pair loss: for each anchor, softmax cross-entropy of `a·p` against `a·x` for every frame `x`
/// (all five) of the rows of other clips. `a`, `p` `[B, D]`; `emb` `[B, 5, D]`; `clips` `[B]`.
/// Returns the loss and the fraction of anchors whose positive scores highest.
pub fn npair(a: &Tensor, p: &Tensor, emb: &Tensor, clips: &Tensor) -> (Tensor, Tensor) {
    let (b, d) = (emb.size()[0], emb.size()[2]);
    let pos = (a * p).sum_dim_intlist(&[-1i64][..], true, Kind::Float);
    let neg = a.matmul(&emb.reshape([b * 5, d]).tr());
    let same = same_clip(clips).repeat_interleave_self_int(5, Some(1), None);
    let logits = Tensor::cat(&[pos, neg.masked_fill(&same, f64::NEG_INFINITY)], 1);
    let loss = -logits.log_softmax(1, Kind::Float).select(1, 0).mean(Kind::Float);
    let acc = tch::no_grad(|| logits.argmax(1, false).eq(0).to_kind(Kind::Float).mean(Kind::Float));
    (loss, acc)
}

/// [`npair`] against the global batch (data-parallel): the local anchors `a` (clips `clips`) with
/// their positives `p`, negatives every frame of `emb_all` `[N, 5, D]` from another clip.
pub fn npair_global(a: &Tensor, p: &Tensor, clips: &Tensor, emb_all: &Tensor, clips_all: &Tensor) -> (Tensor, Tensor) {
    let (n, d) = (emb_all.size()[0], emb_all.size()[2]);
    let pos = (a * p).sum_dim_intlist(&[-1i64][..], true, Kind::Float);
    let neg = a.matmul(&emb_all.reshape([n * 5, d]).tr());
    let same = clips.unsqueeze(1).eq_tensor(&clips_all.unsqueeze(0)).repeat_interleave_self_int(5, Some(1), None);
    let logits = Tensor::cat(&[pos, neg.masked_fill(&same, f64::NEG_INFINITY)], 1);
    let loss = -logits.log_softmax(1, Kind::Float).select(1, 0).mean(Kind::Float);
    let acc = tch::no_grad(|| logits.argmax(1, false).eq(0).to_kind(Kind::Float).mean(Kind::Float));
    (loss, acc)
}

/// [`nt_xent`] for this rank's 2B views against the 2N views of the global batch (data-parallel
/// SimCLR): `a_all`/`p_all` `[N, D]` hold every rank's views, this rank's at rows
/// `offset..offset+B` (a leaf whose gradient the trainer sums over ranks, `Dist::backward_global`).
/// Equals [`nt_xent`] when N = B.
#[allow(clippy::too_many_arguments)]
pub fn nt_xent_global(
    a: &Tensor,
    p: &Tensor,
    clips: &Tensor,
    a_all: &Tensor,
    p_all: &Tensor,
    clips_all: &Tensor,
    offset: i64,
    tau: f64,
) -> (Tensor, Tensor) {
    let (b, n) = (a.size()[0], a_all.size()[0]);
    let dev = a.device();
    let zq = normalize(&Tensor::cat(&[a, p], 0));
    let zk = normalize(&Tensor::cat(&[a_all, p_all], 0));
    let sim = zq.matmul(&zk.tr()) / tau;
    let li = Tensor::arange(b, (Kind::Int64, dev)) + offset;
    // each local view's pair among the global views: a_i ↔ p_i
    let pair = Tensor::cat(&[&li + n, li.shallow_clone()], 0);
    let col = Tensor::arange(2 * n, (Kind::Int64, dev));
    let is_pair = pair.unsqueeze(1).eq_tensor(&col.unsqueeze(0));
    let cq = Tensor::cat(&[clips, clips], 0);
    let ck = Tensor::cat(&[clips_all, clips_all], 0);
    // exclude itself and same-clip views other than its pair
    let excluded = cq.unsqueeze(1).eq_tensor(&ck.unsqueeze(0)).logical_and(&is_pair.logical_not());
    pair_softmax(&sim, &excluded, &pair)
}

/// Softmax cross-entropy of each row of `sim` towards its `pair` column, `excluded` columns
/// masked out; the loss and the fraction of rows whose pair scores highest (both NT-Xent forms).
fn pair_softmax(sim: &Tensor, excluded: &Tensor, pair: &Tensor) -> (Tensor, Tensor) {
    let logits = sim.masked_fill(excluded, f64::NEG_INFINITY);
    let logp = logits.log_softmax(1, Kind::Float).gather(1, &pair.unsqueeze(1), false).squeeze_dim(1);
    let loss = -logp.mean(Kind::Float);
    let acc = tch::no_grad(|| logits.argmax(1, false).eq_tensor(pair).to_kind(Kind::Float).mean(Kind::Float));
    (loss, acc)
}

/// NT-Xent over the 2B views `[a; p]` (cosine similarity / `tau`): each view's positive is its
/// pair, its negatives every other view of another clip. Returns the loss and the fraction of
/// views whose pair scores highest.
pub fn nt_xent(a: &Tensor, p: &Tensor, clips: &Tensor, tau: f64) -> (Tensor, Tensor) {
    let b = a.size()[0];
    let dev = a.device();
    let z = normalize(&Tensor::cat(&[a, p], 0));
    let sim = z.matmul(&z.tr()) / tau;
    let c2 = Tensor::cat(&[clips, clips], 0);
    let idx = Tensor::arange(2 * b, (Kind::Int64, dev));
    let pair = (&idx + b).remainder(2 * b);
    // exclude itself and same-clip views other than its pair
    let pair_mask = idx
        .unsqueeze(1)
        .eq_tensor(&idx.unsqueeze(0))
        .logical_not()
        .logical_and(&pair.unsqueeze(1).eq_tensor(&idx.unsqueeze(0)));
    let excluded = same_clip(&c2).logical_and(&pair_mask.logical_not());
    pair_softmax(&sim, &excluded, &pair)
}

/// MoCo's InfoNCE: `q` `[B, D]` against its key `k` `[B, D]` (no grad) and the queue `[K, D]` of
/// past keys, all L2-normalised, over temperature `tau`. Returns the loss and the fraction of
/// queries whose key scores highest.
pub fn moco_logits_loss(q: &Tensor, k: &Tensor, queue: &Tensor, tau: f64) -> (Tensor, Tensor) {
    let q = normalize(q);
    let k = normalize(k);
    let pos = (&q * &k).sum_dim_intlist(&[-1i64][..], true, Kind::Float);
    let neg = q.matmul(&normalize(queue).tr());
    let logits = Tensor::cat(&[pos, neg], 1) / tau;
    let loss = -logits.log_softmax(1, Kind::Float).select(1, 0).mean(Kind::Float);
    let acc = tch::no_grad(|| logits.argmax(1, false).eq(0).to_kind(Kind::Float).mean(Kind::Float));
    (loss, acc)
}

/// BYOL's regression loss `mean(2 − 2 cos(pred, target))` over matching rows.
pub fn byol_loss(pred: &Tensor, target: &Tensor) -> Tensor {
    let cos = (normalize(pred) * normalize(target)).sum_dim_intlist(&[-1i64][..], false, Kind::Float);
    (cos * -2.0 + 2.0).mean(Kind::Float)
}

/// Prototypical-network loss: each distinct clip of the batch is a class whose prototype is the
/// mean of its rows' `support` frames (`[B, S, D]`); each `query` frame (`[B, Q, D]`) is classified
/// by `−‖q − c‖²` over the prototypes. Returns the mean cross-entropy and the accuracy.
pub fn proto(support: &Tensor, query: &Tensor, clips: &Tensor) -> (Tensor, Tensor) {
    let (b, s, d) = (support.size()[0], support.size()[1], support.size()[2]);
    let q = query.size()[1];
    let dev = support.device();
    // class index of each row: position of its clip among the distinct clips
    let (uniq, inverse, _) = clips.unique_dim(0, true, true, false);
    let n = uniq.size()[0];
    let onehot =
        inverse.unsqueeze(1).eq_tensor(&Tensor::arange(n, (Kind::Int64, dev)).unsqueeze(0)).to_kind(Kind::Float);
    let sums = onehot.tr().matmul(&support.sum_dim_intlist(&[1i64][..], false, Kind::Float));
    let counts = onehot.sum_dim_intlist(&[0i64][..], false, Kind::Float) * s as f64;
    let protos = sums / counts.unsqueeze(1);
    let qs = query.reshape([b * q, d]);
    let logits = -(qs.unsqueeze(1) - protos.unsqueeze(0)).square().sum_dim_intlist(&[-1i64][..], false, Kind::Float);
    let target = inverse.repeat_interleave_self_int(q, Some(0), None);
    let loss = -logits.log_softmax(1, Kind::Float).gather(1, &target.unsqueeze(1), false).mean(Kind::Float);
    let acc = tch::no_grad(|| logits.argmax(1, false).eq_tensor(&target).to_kind(Kind::Float).mean(Kind::Float));
    (loss, acc)
}
