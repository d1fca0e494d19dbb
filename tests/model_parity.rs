//! r3m-model against PyTorch in the venv: the R3M objective (value and gradient, same embeddings,
//! same negative permutations) and ResNet embeddings against torchvision (same weights).
#![allow(clippy::unwrap_used)] // tests and benchmarks: a failure is a failed run

use std::path::Path;
use std::process::Command;

use r3m_model::objectives::{self, LangHead};
use r3m_model::{Arch, Encoder, R3mObjective, Similarity};
use tch::{nn, Device, Kind, Tensor};

fn python(script: &str, args: &[&Path]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join(script);
    let out = Command::new("python3").arg(&script).args(args).output().expect("python3 (run scripts/setup.sh)");
    assert!(out.status.success(), "{}: {}", script.display(), String::from_utf8_lossy(&out.stderr));
}

fn scalar(t: &Tensor) -> f64 {
    t.to_kind(Kind::Double).view([-1]).double_value(&[0])
}

fn objective_parity(obj: R3mObjective, scale: f64, seed: i64) {
    tch::manual_seed(seed);
    let (b, d, k) = (8i64, 32i64, obj.num_negatives as i64);
    let emb = (Tensor::randn([b, 5, d], (Kind::Float, Device::Cpu)) * scale).set_requires_grad(true);
    let perms0: Vec<Tensor> = (0..k).map(|_| Tensor::randperm(b, (Kind::Int64, Device::Cpu))).collect();
    let perms2: Vec<Tensor> = (0..k).map(|_| Tensor::randperm(b, (Kind::Int64, Device::Cpu))).collect();
    let loss = obj.loss(&emb, &perms0, &perms2);
    loss.total.backward();
    let grad = emb.grad();

    let dir = tempfile::tempdir().unwrap();
    let (inp, out) = (dir.path().join("in.safetensors"), dir.path().join("out.safetensors"));
    let weights = Tensor::from_slice(&[obj.w_tcn, obj.w_l1, obj.w_l2]);
    let cosine = Tensor::from_slice(&[i64::from(obj.similarity == Similarity::Cosine)]);
    let p0 = Tensor::stack(&perms0, 0);
    let p2 = Tensor::stack(&perms2, 0);
    let e = emb.detach();
    Tensor::write_safetensors(
        &[("emb", &e), ("perms0", &p0), ("perms2", &p2), ("weights", &weights), ("cosine", &cosine)],
        &inp,
    )
    .unwrap();
    python("tests/refs/ref_r3m_loss.py", &[&inp, &out]);
    let reference: std::collections::HashMap<String, Tensor> =
        Tensor::read_safetensors(&out).unwrap().into_iter().collect();
    for (name, ours) in
        [("total", &loss.total), ("tcn", &loss.tcn), ("l1", &loss.l1), ("l2", &loss.l2), ("aligned", &loss.aligned)]
    {
        let (a, r) = (scalar(ours), scalar(&reference[name]));
        assert!((a - r).abs() <= 1e-5 * r.abs().max(1.0), "{name}: ours {a}, PyTorch {r} ({obj:?})");
    }
    let gdiff = (&grad - &reference["grad"]).abs().max().double_value(&[]);
    let gmax = reference["grad"].abs().max().double_value(&[]);
    assert!(gmax > 1e-4, "reference gradient is ~0: the test would prove nothing");
    assert!(gdiff <= 1e-5, "gradient differs by {gdiff} (max |grad| {gmax}) ({obj:?})");
}

#[test]
fn r3m_objective_matches_pytorch_reference() {
    // R3M's defaults, embeddings at a scale where terms are neither saturated nor trivial
    objective_parity(R3mObjective::default(), 0.2, 1);
    // heavier penalties and more negatives
    objective_parity(R3mObjective { w_l1: 1e-2, w_l2: 1e-2, num_negatives: 5, ..Default::default() }, 0.1, 2);
    // cosine similarity
    objective_parity(R3mObjective { similarity: Similarity::Cosine, ..Default::default() }, 1.0, 3);
}

fn randomize(vs: &nn::VarStore) {
    // random BatchNorm statistics and affine parameters, so eval-mode BN is not the identity
    tch::no_grad(|| {
        for (name, mut t) in vs.variables() {
            if name.ends_with("running_var") {
                t.copy_(&(Tensor::rand_like(&t) + 0.5));
            } else if name.ends_with("running_mean") || name.contains("bn") && name.ends_with("bias") {
                t.copy_(&(Tensor::randn_like(&t) * 0.1));
            } else if name.contains("bn") && name.ends_with("weight") {
                t.copy_(&(Tensor::rand_like(&t) + 0.5));
            }
        }
    });
}

fn torchvision_parity(arch: Arch, tv_name: &str) {
    tch::manual_seed(11);
    let mut vs = nn::VarStore::new(Device::Cpu);
    let enc = Encoder::new(&vs.root(), arch);
    randomize(&vs);
    vs.freeze();
    let images = Tensor::randint(256, [3, 3, 96, 128], (Kind::Uint8, Device::Cpu));
    let ours = tch::no_grad(|| enc.forward_u8(&images, false));

    let dir = tempfile::tempdir().unwrap();
    let (w, im, out) =
        (dir.path().join("w.safetensors"), dir.path().join("im.safetensors"), dir.path().join("out.safetensors"));
    vs.save(&w).unwrap();
    Tensor::write_safetensors(&[("images", &images)], &im).unwrap();
    let arch_name = Path::new(tv_name);
    python("tests/refs/ref_torchvision_embed.py", &[arch_name, &w, &im, &out]);
    let theirs = Tensor::read_safetensors(&out).unwrap().into_iter().find(|(n, _)| n == "emb").unwrap().1;
    assert_eq!(ours.size(), theirs.size());
    let diff = (&ours - &theirs).abs().max().double_value(&[]);
    let spread = theirs.std(true).double_value(&[]);
    assert!(spread > 1e-3, "torchvision output is constant: the test would prove nothing");
    assert!(diff <= 1e-4, "{tv_name}: embeddings differ from torchvision by {diff}");
}

#[test]
fn resnet18_embeddings_match_torchvision() {
    torchvision_parity(Arch::Resnet18, "resnet18");
}

#[test]
fn resnet50_embeddings_match_torchvision() {
    torchvision_parity(Arch::Resnet50, "resnet50");
}

#[test]
fn convert_r3m_checkpoint_then_embed_like_torchvision() {
    let dir = tempfile::tempdir().unwrap();
    let (pt, im, emb, out) = (
        dir.path().join("model.pt"),
        dir.path().join("im.safetensors"),
        dir.path().join("emb.safetensors"),
        dir.path().join("converted"),
    );
    tch::manual_seed(4);
    let images = Tensor::randint(256, [2, 3, 64, 80], (Kind::Uint8, Device::Cpu));
    Tensor::write_safetensors(&[("images", &images)], &im).unwrap();
    python("tests/refs/make_fake_r3m_checkpoint.py", &[Path::new("resnet18"), &pt, &im, &emb]);
    python("python/r3m_tools/convert_r3m.py", &[&pt, &out]);
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["arch"], "resnet18");
    assert!(cfg["source"]["dropped"].to_string().contains("lang_rew"), "{cfg}");
    let mut vs = nn::VarStore::new(Device::Cpu);
    let enc = Encoder::new(&vs.root(), Arch::Resnet18);
    r3m_model::checkpoint::load(&out, &mut vs).unwrap();
    let ours = tch::no_grad(|| enc.forward_u8(&images, false));
    let theirs = Tensor::read_safetensors(&emb).unwrap().remove(0).1;
    let diff = (&ours - &theirs).abs().max().double_value(&[]);
    assert!(diff <= 1e-4, "converted R3M weights embed differently from torchvision: {diff}");
    // a file that is not a checkpoint is refused with its name
    let junk = dir.path().join("junk.pt");
    std::fs::write(&junk, b"not a pickle").unwrap();
    let o = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("python/r3m_tools/convert_r3m.py"))
        .arg(&junk)
        .arg(dir.path().join("x"))
        .output()
        .unwrap();
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("junk.pt"));
}

// ---- objective variants against tests/refs/ref_objectives.py ------------------------------------

/// Runs the reference for variant `which` on `tensors` (plus `which`, `params`) and checks the
/// loss, the accuracy and the gradient of `wrt`.
fn variant_parity(
    which: i64,
    params: [f64; 3],
    tensors: &[(&str, &Tensor)],
    loss: &Tensor,
    acc: &Tensor,
    wrt: &Tensor,
    what: &str,
) {
    loss.backward();
    let grad = wrt.grad();
    let dir = tempfile::tempdir().unwrap();
    let (inp, out) = (dir.path().join("in.safetensors"), dir.path().join("out.safetensors"));
    let w = Tensor::from_slice(&[which]);
    let p = Tensor::from_slice(&params);
    let mut all: Vec<(&str, Tensor)> = vec![("which", w), ("params", p)];
    all.extend(tensors.iter().map(|(n, t)| (*n, t.detach().contiguous())));
    Tensor::write_safetensors(&all, &inp).unwrap();
    python("tests/refs/ref_objectives.py", &[&inp, &out]);
    let reference: std::collections::HashMap<String, Tensor> =
        Tensor::read_safetensors(&out).unwrap().into_iter().collect();
    let (ours, theirs) = (scalar(loss), scalar(&reference["loss"]));
    assert!((ours - theirs).abs() <= 1e-4 * theirs.abs().max(1.0), "{what}: loss ours {ours}, PyTorch {theirs}");
    assert!(theirs.abs() > 1e-3, "{what}: reference loss {theirs} is ~0: the test would prove nothing");
    let (oa, ta) = (scalar(acc), scalar(&reference["acc"]));
    assert!((oa - ta).abs() <= 1e-6, "{what}: accuracy ours {oa}, PyTorch {ta}");
    let gmax = reference["grad"].abs().max().double_value(&[]);
    let gdiff = (&grad - &reference["grad"]).abs().max().double_value(&[]);
    assert!(gmax > 1e-5, "{what}: reference gradient is ~0");
    assert!(gdiff <= 1e-4 * gmax.max(1e-2), "{what}: gradient differs by {gdiff} (max |grad| {gmax})");
}

/// A batch of 8 rows from 4 clips (two tuples each, as the loader draws them).
fn batch(seed: i64, d: i64, scale: f64) -> (Tensor, Tensor) {
    tch::manual_seed(seed);
    let emb = (Tensor::randn([8, 5, d], (Kind::Float, Device::Cpu)) * scale).set_requires_grad(true);
    let clips = Tensor::from_slice(&[3i64, 3, 7, 7, 1, 1, 9, 9]);
    (emb, clips)
}

#[test]
fn triplet_matches_pytorch_with_and_without_hard_negatives() {
    for (hard, seed) in [(false, 1), (true, 2)] {
        let (emb, clips) = batch(seed, 16, 0.3);
        let neg = if hard { objectives::hardest_negatives(&emb, &clips) } else { emb.select(1, 2) };
        let (loss, acc) = objectives::triplet(&emb.select(1, 4), &emb.select(1, 3), &neg, 1.0);
        let what = if hard { "triplet (hard negatives)" } else { "triplet" };
        variant_parity(
            0,
            [1.0, f64::from(u8::from(hard)), 0.1],
            &[("emb", &emb), ("clips", &clips)],
            &loss,
            &acc,
            &emb,
            what,
        );
    }
}

#[test]
fn npair_simclr_proto_match_pytorch() {
    let (emb, clips) = batch(3, 16, 0.3);
    let (loss, acc) = objectives::npair(&emb.select(1, 4), &emb.select(1, 3), &emb, &clips);
    variant_parity(1, [0.0, 0.0, 0.1], &[("emb", &emb), ("clips", &clips)], &loss, &acc, &emb, "npair");

    let (emb, clips) = batch(4, 16, 1.0);
    let (loss, acc) = objectives::nt_xent(&emb.select(1, 4), &emb.select(1, 3), &clips, 0.1);
    variant_parity(2, [0.0, 0.0, 0.1], &[("emb", &emb), ("clips", &clips)], &loss, &acc, &emb, "simclr");

    let (emb, clips) = batch(5, 16, 0.5);
    let support = Tensor::stack(&[emb.select(1, 0), emb.select(1, 1), emb.select(1, 2)], 1);
    let query = Tensor::stack(&[emb.select(1, 3), emb.select(1, 4)], 1);
    let (loss, acc) = objectives::proto(&support, &query, &clips);
    variant_parity(5, [0.0, 0.0, 0.1], &[("emb", &emb), ("clips", &clips)], &loss, &acc, &emb, "proto");
}

#[test]
fn moco_and_byol_losses_match_pytorch() {
    let (emb, clips) = batch(6, 16, 1.0);
    let key = Tensor::randn([8, 16], (Kind::Float, Device::Cpu));
    let queue = Tensor::randn([32, 16], (Kind::Float, Device::Cpu));
    let (loss, acc) = objectives::moco_logits_loss(&emb.select(1, 4), &key, &queue, 0.2);
    variant_parity(
        3,
        [0.0, 0.0, 0.2],
        &[("emb", &emb), ("clips", &clips), ("key", &key), ("queue", &queue)],
        &loss,
        &acc,
        &emb,
        "moco",
    );

    let pred = Tensor::randn([16, 8], (Kind::Float, Device::Cpu)).set_requires_grad(true);
    let target = Tensor::randn([16, 8], (Kind::Float, Device::Cpu));
    let loss = objectives::byol_loss(&pred, &target);
    let acc = tch::no_grad(|| {
        (objectives::normalize(&pred) * objectives::normalize(&target))
            .sum_dim_intlist(&[-1i64][..], false, Kind::Float)
            .gt(0.0)
            .to_kind(Kind::Float)
            .mean(Kind::Float)
    });
    variant_parity(
        4,
        [0.0, 0.0, 0.1],
        &[("emb", &emb), ("clips", &clips), ("pred", &pred), ("target", &target)],
        &loss,
        &acc,
        &pred,
        "byol",
    );
}

#[test]
fn language_term_matches_pytorch() {
    let (emb, clips) = batch(7, 16, 0.5);
    let vs = nn::VarStore::new(Device::Cpu);
    let head = LangHead::new(&(vs.root() / "lang"), 16, 12, 32);
    let lang = Tensor::randn([8, 12], (Kind::Float, Device::Cpu));
    // two rows without a text
    let mask = Tensor::from_slice(&[1.0f32, 1., 0., 1., 1., 1., 0., 1.]);
    let perms: Vec<Tensor> = (0..9).map(|_| Tensor::randperm(8, (Kind::Int64, Device::Cpu))).collect();
    let (loss, acc) = objectives::lang_loss(&head, &emb, &lang, &mask, &perms);
    let vars = vs.variables();
    let p = Tensor::stack(&perms, 0);
    let mut tensors: Vec<(String, Tensor)> = vec![("lang".into(), lang), ("mask".into(), mask), ("perms".into(), p)];
    for i in 0..5 {
        tensors.push((format!("w{i}"), vars[&format!("lang.{i}.weight")].shallow_clone()));
        tensors.push((format!("b{i}"), vars[&format!("lang.{i}.bias")].shallow_clone()));
    }
    let mut refs: Vec<(&str, &Tensor)> = vec![("emb", &emb), ("clips", &clips)];
    refs.extend(tensors.iter().map(|(n, t)| (n.as_str(), t)));
    variant_parity(6, [0.0, 0.0, 0.1], &refs, &loss, &acc, &emb, "language");
}
