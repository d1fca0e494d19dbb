//! r3m-model against PyTorch in the venv: the R3M objective (value and gradient, same embeddings,
//! same negative permutations) and ResNet embeddings against torchvision (same weights).

use std::path::Path;
use std::process::Command;

use r3m_model::{Arch, Encoder, R3mObjective, Similarity};
use tch::{nn, Device, Kind, Tensor};

fn python(script: &str, args: &[&Path]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts").join(script);
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
    python("ref_r3m_loss.py", &[&inp, &out]);
    let reference: std::collections::HashMap<String, Tensor> = Tensor::read_safetensors(&out).unwrap().into_iter().collect();
    for (name, ours) in [("total", &loss.total), ("tcn", &loss.tcn), ("l1", &loss.l1), ("l2", &loss.l2), ("aligned", &loss.aligned)] {
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
    let (w, im, out) = (dir.path().join("w.safetensors"), dir.path().join("im.safetensors"), dir.path().join("out.safetensors"));
    vs.save(&w).unwrap();
    Tensor::write_safetensors(&[("images", &images)], &im).unwrap();
    let arch_name = Path::new(tv_name);
    python("ref_torchvision_embed.py", &[arch_name, &w, &im, &out]);
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
    python("make_fake_r3m_checkpoint.py", &[Path::new("resnet18"), &pt, &im, &emb]);
    python("convert_r3m.py", &[&pt, &out]);
    let cfg: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
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
    let o = Command::new("python3").arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/convert_r3m.py")).arg(&junk).arg(dir.path().join("x")).output().unwrap();
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("junk.pt"));
}
