//! R3M's behaviour-cloning policy: BatchNorm1d over [embedding, proprio] → Linear 256 → tanh →
//! Linear 256 → tanh → Linear(action), the last layer scaled by 0.01 at init.

use tch::nn::{self, Module, ModuleT};
use tch::Tensor;

/// The policy head.
#[derive(Debug)]
pub struct Policy {
    bn: nn::BatchNorm,
    l1: nn::Linear,
    l2: nn::Linear,
    l3: nn::Linear,
}

impl Policy {
    /// Builds the policy's variables under `p`.
    pub fn new(p: &nn::Path, input: i64, action: i64) -> Self {
        let bn = nn::batch_norm1d(p / "bn", input, Default::default());
        let l1 = nn::linear(p / "l1", input, 256, Default::default());
        let l2 = nn::linear(p / "l2", 256, 256, Default::default());
        let mut l3 = nn::linear(p / "l3", 256, action, Default::default());
        tch::no_grad(|| {
            let _ = l3.ws.f_mul_scalar_(0.01);
            if let Some(b) = l3.bs.as_mut() {
                let _ = b.f_mul_scalar_(0.01);
            }
        });
        Policy { bn, l1, l2, l3 }
    }

    /// Actions for inputs `[N, input]` (`train`: batch statistics in BatchNorm).
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let h = self.bn.forward_t(x, train);
        let h = self.l1.forward(&h).tanh();
        let h = self.l2.forward(&h).tanh();
        self.l3.forward(&h)
    }
}
