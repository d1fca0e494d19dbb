//! Adam with its state in plain tensors, so a checkpoint can store it and a resumed run continues
//! bit for bit (tch's built-in optimisers keep their state inside libtorch, out of reach).
//!
//! The update is PyTorch's `torch.optim.Adam` (no weight decay, no amsgrad):
//! `m = β1·m + (1−β1)·g`, `v = β2·v + (1−β2)·g²`, `p -= lr · (m / (1−β1ᵗ)) / (sqrt(v / (1−β2ᵗ)) + ε)`.

use tch::{Kind, Tensor};

/// Adam over a fixed, ordered list of parameters.
#[derive(Debug)]
pub struct Adam {
    /// Learning rate.
    pub lr: f64,
    /// β1.
    pub beta1: f64,
    /// β2.
    pub beta2: f64,
    /// ε.
    pub eps: f64,
    params: Vec<(String, Tensor)>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    step: i64,
}

impl Adam {
    /// Adam with PyTorch's defaults (β = 0.9, 0.999; ε = 1e-8) over `params` (name, tensor).
    pub fn new(params: Vec<(String, Tensor)>, lr: f64) -> Self {
        let m = params.iter().map(|(_, p)| p.zeros_like()).collect();
        let v = params.iter().map(|(_, p)| p.zeros_like()).collect();
        Adam { lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, params, m, v, step: 0 }
    }

    /// Steps taken.
    pub fn steps(&self) -> i64 {
        self.step
    }

    /// Sets every parameter's gradient to zero.
    pub fn zero_grad(&mut self) {
        for (_, p) in &mut self.params {
            let mut g = p.grad();
            if g.defined() {
                let _ = g.zero_();
            }
        }
    }

    /// One update from the parameters' current gradients (parameters without one are left alone).
    pub fn step(&mut self) {
        self.step += 1;
        let t = self.step as f64;
        let (bc1, bc2) = (1.0 - self.beta1.powf(t), 1.0 - self.beta2.powf(t));
        tch::no_grad(|| {
            for (((_, p), m), v) in self.params.iter_mut().zip(&mut self.m).zip(&mut self.v) {
                let g = p.grad();
                if !g.defined() {
                    continue;
                }
                let _ = m.g_mul_scalar_(self.beta1).g_add_(&(&g * (1.0 - self.beta1)));
                let _ = v.g_mul_scalar_(self.beta2).g_add_(&(&g * &g * (1.0 - self.beta2)));
                let denom = (&*v / bc2).sqrt() + self.eps;
                let update = (&*m / bc1) / denom * self.lr;
                let _ = p.g_sub_(&update);
            }
        });
    }

    /// The state as named tensors (`exp_avg.NAME`, `exp_avg_sq.NAME`, `step`), for a checkpoint.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::with_capacity(2 * self.params.len() + 1);
        for (((name, _), m), v) in self.params.iter().zip(&self.m).zip(&self.v) {
            out.push((format!("exp_avg.{name}"), m.shallow_clone()));
            out.push((format!("exp_avg_sq.{name}"), v.shallow_clone()));
        }
        out.push(("step".into(), Tensor::from_slice(&[self.step])));
        out
    }

    /// Restores a state from [`Adam::state`]; fails naming the first missing or mismatched entry.
    pub fn load_state(&mut self, state: &[(String, Tensor)]) -> Result<(), String> {
        let find = |key: &str| state.iter().find(|(n, _)| n == key).map(|(_, t)| t);
        tch::no_grad(|| {
            for (((name, p), m), v) in self.params.iter().zip(&mut self.m).zip(&mut self.v) {
                for (prefix, dst) in [("exp_avg", &mut *m), ("exp_avg_sq", &mut *v)] {
                    let key = format!("{prefix}.{name}");
                    let src = find(&key).ok_or_else(|| format!("optimizer state lacks '{key}'"))?;
                    if src.size() != p.size() {
                        return Err(format!("'{key}' has shape {:?}, parameter has {:?}", src.size(), p.size()));
                    }
                    dst.copy_(&src.to_kind(Kind::Float).to_device(p.device()));
                }
            }
            Ok(())
        })?;
        self.step = find("step").ok_or("optimizer state lacks 'step'")?.int64_value(&[0]);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::nn::OptimizerConfig;
    use tch::{nn, Device};

    fn quadratic_grad(p: &Tensor, target: &Tensor) {
        let loss = (p - target).pow_tensor_scalar(2).sum(Kind::Float);
        loss.backward();
    }

    #[test]
    fn matches_libtorch_adam() {
        tch::manual_seed(0);
        let target = Tensor::randn([7, 3], (Kind::Float, Device::Cpu));
        let init = Tensor::randn([7, 3], (Kind::Float, Device::Cpu));
        // ours
        let p = init.copy().set_requires_grad(true);
        let mut ours = Adam::new(vec![("w".into(), p.shallow_clone())], 0.05);
        // libtorch's
        let vs = nn::VarStore::new(Device::Cpu);
        let q = vs.root().var_copy("w", &init);
        let mut theirs = nn::Adam::default().build(&vs, 0.05).unwrap();
        for _ in 0..20 {
            ours.zero_grad();
            quadratic_grad(&p, &target);
            ours.step();
            theirs.zero_grad();
            quadratic_grad(&q, &target);
            theirs.step();
        }
        let d = (&p - &q).abs().max().double_value(&[]);
        assert!(d < 1e-6, "differs from libtorch's Adam by {d}");
        let moved = (&p - &init).abs().max().double_value(&[]);
        assert!(moved > 0.1, "parameters barely moved ({moved})");
    }

    #[test]
    fn state_round_trip_continues_identically() {
        tch::manual_seed(3);
        let target = Tensor::randn([5], (Kind::Float, Device::Cpu));
        let init = Tensor::randn([5], (Kind::Float, Device::Cpu));
        let a = init.copy().set_requires_grad(true);
        let mut oa = Adam::new(vec![("x".into(), a.shallow_clone())], 0.1);
        for _ in 0..3 {
            oa.zero_grad();
            quadratic_grad(&a, &target);
            oa.step();
        }
        let saved: Vec<(String, Tensor)> = oa.state().into_iter().map(|(n, t)| (n, t.copy())).collect();
        let b = a.detach().copy().set_requires_grad(true);
        let mut ob = Adam::new(vec![("x".into(), b.shallow_clone())], 0.1);
        ob.load_state(&saved).unwrap();
        assert_eq!(ob.steps(), 3);
        for _ in 0..4 {
            oa.zero_grad();
            quadratic_grad(&a, &target);
            oa.step();
            ob.zero_grad();
            quadratic_grad(&b, &target);
            ob.step();
        }
        assert_eq!((&a - &b).abs().max().double_value(&[]), 0.0);
        let mut oc = Adam::new(vec![("y".into(), b.shallow_clone())], 0.1);
        assert!(oc.load_state(&saved).unwrap_err().contains("exp_avg.y"));
    }
}
