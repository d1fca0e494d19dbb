//! Adam with its state in plain tensors, so a checkpoint can store it and a resumed run continues
//! bit for bit (tch's built-in optimisers keep their state inside libtorch, out of reach).
//!
//! The update is PyTorch's `torch.optim.Adam` (no weight decay, no amsgrad):
//! `m = β1·m + (1−β1)·g`, `v = β2·v + (1−β2)·g²`, `p -= lr · (m / (1−β1ᵗ)) / (sqrt(v / (1−β2ᵗ)) + ε)`.

use std::ffi::{c_char, c_void, CStr};

use tch::{Device, Kind, Tensor};

extern "C" {
    fn r3m_fused_adam(
        params: *const *mut c_void,
        grads: *const *mut c_void,
        exp_avgs: *const *mut c_void,
        exp_avg_sqs: *const *mut c_void,
        n: usize,
        step: *mut c_void,
        lr: f64,
        beta1: f64,
        beta2: f64,
        eps: f64,
        err: *mut c_char,
        len: usize,
    ) -> i32;
}

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
    /// `step` on the parameters' device for the fused update (kept there: uploading it each step
    /// would make the host wait for a GPU); float32, exact to 2^24 steps.
    step_t: Option<Tensor>,
}

impl Adam {
    /// Adam with PyTorch's defaults (β = 0.9, 0.999; ε = 1e-8) over `params` (name, tensor).
    pub fn new(params: Vec<(String, Tensor)>, lr: f64) -> Self {
        let m = params.iter().map(|(_, p)| p.zeros_like()).collect();
        let v = params.iter().map(|(_, p)| p.zeros_like()).collect();
        Adam { lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, params, m, v, step: 0, step_t: None }
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

    /// One update from the parameters' current gradients (parameters without one are left alone):
    /// the fused form ([`Adam::step_fused`]) on CUDA, where it replaces about 8 kernel launches
    /// per parameter tensor with a few for all of them; this loop on the CPU (it is what resumed
    /// CPU runs were trained with, bit for bit).
    pub fn step(&mut self) {
        if matches!(self.params.first().map(|(_, p)| p.device()), Some(Device::Cuda(_))) {
            if let Err(e) = self.step_fused() {
                panic!("fused Adam on CUDA: {e}");
            }
            return;
        }
        self.step_loop();
    }

    /// [`Adam::step`] through `at::_fused_adam_` (PyTorch's `torch.optim.Adam(fused=True)`), on any
    /// device: the same update to 1e-6 (the test compares them on the CPU).
    pub fn step_fused(&mut self) -> Result<(), String> {
        let live: Vec<usize> = (0..self.params.len()).filter(|&i| self.params[i].1.grad().defined()).collect();
        self.step += 1;
        if live.is_empty() {
            self.step_t = None;
            return Ok(());
        }
        let dev = self.params[live[0]].1.device();
        let step = self.step;
        let step_t = match &mut self.step_t {
            Some(t) => {
                let _ = t.g_add_scalar_(1.0);
                t
            }
            None => self.step_t.insert(Tensor::from_slice(&[step as f32]).to_device(dev)),
        };
        let mut p: Vec<Tensor> = live.iter().map(|&i| self.params[i].1.shallow_clone()).collect();
        let mut g: Vec<Tensor> = live.iter().map(|&i| self.params[i].1.grad()).collect();
        let mut m: Vec<Tensor> = live.iter().map(|&i| self.m[i].shallow_clone()).collect();
        let mut v: Vec<Tensor> = live.iter().map(|&i| self.v[i].shallow_clone()).collect();
        let ptrs =
            |ts: &mut [Tensor]| -> Vec<*mut c_void> { ts.iter_mut().map(|t| t.as_mut_ptr() as *mut c_void).collect() };
        let (pp, gp, mp, vp) = (ptrs(&mut p), ptrs(&mut g), ptrs(&mut m), ptrs(&mut v));
        let mut err = vec![0 as c_char; 512];
        // SAFETY: four arrays of `live.len()` live tensor handles (tch's handle is an at::Tensor*),
        // a live step tensor, and an error buffer of the length given
        let rc = tch::no_grad(|| unsafe {
            r3m_fused_adam(
                pp.as_ptr(),
                gp.as_ptr(),
                mp.as_ptr(),
                vp.as_ptr(),
                live.len(),
                step_t.as_mut_ptr() as *mut c_void,
                self.lr,
                self.beta1,
                self.beta2,
                self.eps,
                err.as_mut_ptr(),
                err.len(),
            )
        });
        if rc != 0 {
            // SAFETY: the shim writes a NUL-terminated message into err
            return Err(unsafe { CStr::from_ptr(err.as_ptr()) }.to_string_lossy().into_owned());
        }
        Ok(())
    }

    fn step_loop(&mut self) {
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
        self.step_t = None;
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

    #[test]
    fn the_fused_update_equals_the_loop() {
        // several tensors of several shapes, one without a gradient, 30 steps at R3M's lr and a
        // larger one
        for lr in [1e-4, 0.05] {
            tch::manual_seed(11);
            let shapes: [&[i64]; 4] = [&[7, 3], &[16], &[4, 2, 3, 3], &[5]];
            let inits: Vec<Tensor> = shapes.iter().map(|s| Tensor::randn(*s, (Kind::Float, Device::Cpu))).collect();
            let targets: Vec<Tensor> = shapes.iter().map(|s| Tensor::randn(*s, (Kind::Float, Device::Cpu))).collect();
            let make = || -> (Vec<Tensor>, Adam) {
                let ps: Vec<Tensor> = inits.iter().map(|t| t.copy().set_requires_grad(true)).collect();
                let named = ps.iter().enumerate().map(|(i, p)| (format!("p{i}"), p.shallow_clone())).collect();
                (ps, Adam::new(named, lr))
            };
            let ((a, mut loop_), (b, mut fused)) = (make(), make());
            for _ in 0..30 {
                for (ps, opt, fused_now) in [(&a, &mut loop_, false), (&b, &mut fused, true)] {
                    opt.zero_grad();
                    // the last parameter gets no gradient
                    let loss = ps[..3]
                        .iter()
                        .zip(&targets)
                        .map(|(p, t)| (p - t).pow_tensor_scalar(2).sum(Kind::Float))
                        .fold(Tensor::zeros([], (Kind::Float, Device::Cpu)), |acc, l| acc + l);
                    loss.backward();
                    if fused_now {
                        opt.step_fused().unwrap();
                    } else {
                        opt.step();
                    }
                }
            }
            assert_eq!(loop_.steps(), fused.steps());
            for (i, (x, y)) in a.iter().zip(&b).enumerate() {
                let d = (x - y).abs().max().double_value(&[]);
                let moved = (x - &inits[i]).abs().max().double_value(&[]);
                assert!(d < 1e-6, "lr {lr}: parameter {i} differs by {d} (moved {moved})");
            }
            assert!((&a[3] - &inits[3]).abs().max().double_value(&[]) == 0.0, "no gradient, no update");
            // the moments, relative to their size (fp32 rounds at 6e-8 of a value)
            for (x, y) in loop_.state().iter().zip(&fused.state()) {
                let (x1, y1) = (x.1.to_kind(Kind::Double), y.1.to_kind(Kind::Double));
                let d = (&x1 - &y1).abs().max().double_value(&[]) / x1.abs().max().double_value(&[]).max(1e-30);
                assert!(d < 1e-6, "lr {lr}: {} differs by {d} (relative)", x.0);
            }
        }
    }
}
