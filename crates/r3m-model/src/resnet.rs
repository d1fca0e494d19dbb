//! torchvision ResNets without the classifier, with torchvision's parameter names, and DrQ's
//! shallow ConvNet (the learning-from-scratch baseline's encoder) behind the same interface.

use tch::nn::{self, ModuleT};
use tch::{Kind, Tensor};

/// Which ResNet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Arch {
    /// ResNet-18 (BasicBlock ×[2,2,2,2]), 512-d output.
    Resnet18,
    /// ResNet-34 (BasicBlock ×[3,4,6,3]), 512-d output.
    Resnet34,
    /// ResNet-50 (Bottleneck ×[3,4,6,3]), 2048-d output.
    Resnet50,
    /// DrQ's shallow ConvNet (Kostrikov et al. 2020; the encoder of Hansen et al. 2022's
    /// learning-from-scratch baseline): conv 3→32 3×3 stride 2, three conv 32→32 3×3, ReLU after
    /// each, the map average-pooled to 49×49 (the identity at 112-px input, where DrQ's map is
    /// 49×49; other sizes are resampled to it, so the weights do not depend on the input size),
    /// Linear → 50, LayerNorm, tanh. Input scaled to [-0.5, 0.5] as in DrQ. 50-d output.
    Shallow,
}

/// Side of [`Arch::Shallow`]'s feature map before its linear layer (its map at 112 px).
pub const SHALLOW_SIDE: i64 = 49;

impl Arch {
    /// The per-channel (R, G, B) mean and std the encoder normalises `x / 255` with: ImageNet's
    /// for the ResNets (as torchvision and R3M), and 0.5 / 1 for the shallow ConvNet (DrQ's
    /// `x / 255 − 0.5`).
    pub fn normalization(self) -> ([f64; 3], [f64; 3]) {
        match self {
            Arch::Shallow => ([0.5; 3], [1.0; 3]),
            _ => ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
        }
    }

    /// Embedding size (the width of the removed `fc` layer's input).
    pub fn dim(self) -> i64 {
        match self {
            Arch::Resnet18 | Arch::Resnet34 => 512,
            Arch::Resnet50 => 2048,
            Arch::Shallow => 50,
        }
    }

    /// Name as used on the command line and in checkpoints (`resnet18`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Arch::Resnet18 => "resnet18",
            Arch::Resnet34 => "resnet34",
            Arch::Resnet50 => "resnet50",
            Arch::Shallow => "shallow",
        }
    }

    fn layout(self) -> ([i64; 4], bool) {
        match self {
            Arch::Resnet18 => ([2, 2, 2, 2], false),
            Arch::Resnet34 => ([3, 4, 6, 3], false),
            Arch::Resnet50 => ([3, 4, 6, 3], true),
            Arch::Shallow => ([0; 4], false),
        }
    }
}

impl std::str::FromStr for Arch {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "resnet18" => Ok(Arch::Resnet18),
            "resnet34" => Ok(Arch::Resnet34),
            "resnet50" => Ok(Arch::Resnet50),
            "shallow" => Ok(Arch::Shallow),
            _ => Err(format!("unknown architecture '{s}' (resnet18, resnet34, resnet50, shallow)")),
        }
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

fn conv(p: nn::Path, cin: i64, cout: i64, k: i64, stride: i64, padding: i64) -> nn::Conv2D {
    let cfg = nn::ConvConfig { stride, padding, bias: false, ..Default::default() };
    nn::conv2d(p, cin, cout, k, cfg)
}

fn bn(p: nn::Path, c: i64) -> nn::BatchNorm {
    nn::batch_norm2d(p, c, Default::default())
}

fn downsample(p: nn::Path, cin: i64, cout: i64, stride: i64) -> nn::SequentialT {
    if stride != 1 || cin != cout {
        nn::seq_t().add(conv(&p / "0", cin, cout, 1, stride, 0)).add(bn(&p / "1", cout))
    } else {
        nn::seq_t()
    }
}

fn basic_block(p: nn::Path, cin: i64, cout: i64, stride: i64) -> impl ModuleT {
    let conv1 = conv(&p / "conv1", cin, cout, 3, stride, 1);
    let bn1 = bn(&p / "bn1", cout);
    let conv2 = conv(&p / "conv2", cout, cout, 3, 1, 1);
    let bn2 = bn(&p / "bn2", cout);
    let down = downsample(&p / "downsample", cin, cout, stride);
    nn::func_t(move |xs, train| {
        let ys = xs.apply(&conv1).apply_t(&bn1, train).relu().apply(&conv2).apply_t(&bn2, train);
        (xs.apply_t(&down, train) + ys).relu()
    })
}

fn bottleneck(p: nn::Path, cin: i64, width: i64, stride: i64) -> impl ModuleT {
    let cout = width * 4;
    let conv1 = conv(&p / "conv1", cin, width, 1, 1, 0);
    let bn1 = bn(&p / "bn1", width);
    let conv2 = conv(&p / "conv2", width, width, 3, stride, 1);
    let bn2 = bn(&p / "bn2", width);
    let conv3 = conv(&p / "conv3", width, cout, 1, 1, 0);
    let bn3 = bn(&p / "bn3", cout);
    let down = downsample(&p / "downsample", cin, cout, stride);
    nn::func_t(move |xs, train| {
        let ys = xs
            .apply(&conv1)
            .apply_t(&bn1, train)
            .relu()
            .apply(&conv2)
            .apply_t(&bn2, train)
            .relu()
            .apply(&conv3)
            .apply_t(&bn3, train);
        (xs.apply_t(&down, train) + ys).relu()
    })
}

/// A ResNet trunk (torchvision layout, `fc` removed) that maps u8 RGB images to embeddings.
#[derive(Debug)]
pub struct Encoder {
    arch: Arch,
    trunk: nn::SequentialT,
    head: Option<nn::Linear>,
    /// Global average pool at the end of the trunk (false: [`Encoder::unpooled`]).
    pool: bool,
    mean: Tensor,
    std: Tensor,
}

impl Encoder {
    /// Builds the encoder's variables under `p` (use the root path to get torchvision names).
    /// Initialisation is tch's default (Kaiming-uniform convs, unit BatchNorm); load weights to
    /// reproduce a trained model.
    pub fn new(p: &nn::Path, arch: Arch) -> Self {
        Self::with_head(p, arch, None)
    }

    /// Like [`Encoder::new`], with an optional linear projection head (`proj.weight`,
    /// `proj.bias`) from the trunk's features to `proj` dimensions.
    pub fn with_head(p: &nn::Path, arch: Arch, proj: Option<i64>) -> Self {
        Self::build(p, arch, proj, true)
    }

    /// The trunk without its global average pool: the last feature map flattened, `[N, C·h·w]`
    /// (ResNet18 at 112 px: 512 × 4 × 4 = 8192), so where a feature fires stays in the code. A
    /// diagnostic readout (`r3m eval bc --encoders random-spatial`); no projection head.
    /// [`Arch::Shallow`] has no global pool to remove: the same as [`Encoder::new`].
    pub fn unpooled(p: &nn::Path, arch: Arch) -> Self {
        Self::build(p, arch, None, false)
    }

    fn build(p: &nn::Path, arch: Arch, proj: Option<i64>, pool: bool) -> Self {
        let dev = p.device();
        if arch == Arch::Shallow {
            // DrQ's ConvNet, variables named as in `r3m-bc`'s first version (conv0..3, fc, ln) and
            // drawn in the same order, so a seed gives the same network (checked bit-exact against it
            // before it was removed: the scratch-shallow rows measured with it stand)
            let mut trunk = nn::seq_t();
            for i in 0..4 {
                let cfg = nn::ConvConfig { stride: if i == 0 { 2 } else { 1 }, ..Default::default() };
                let c = nn::conv2d(p / format!("conv{i}"), if i == 0 { 3 } else { 32 }, 32, 3, cfg);
                trunk = trunk.add(c).add_fn(|xs| xs.relu());
            }
            let fc = nn::linear(p / "fc", 32 * SHALLOW_SIDE * SHALLOW_SIDE, 50, Default::default());
            let ln = nn::layer_norm(p / "ln", vec![50], Default::default());
            let trunk = trunk
                .add_fn(|xs| {
                    let s = xs.size();
                    let xs = if s[2] == SHALLOW_SIDE && s[3] == SHALLOW_SIDE {
                        xs.shallow_clone()
                    } else {
                        xs.adaptive_avg_pool2d([SHALLOW_SIDE, SHALLOW_SIDE])
                    };
                    xs.flatten(1, -1)
                })
                .add(fc)
                .add(ln)
                .add_fn(|xs| xs.tanh());
            // x/255 - 0.5, DrQ's scaling, as (x/255 - mean)/std
            let (m, sd) = arch.normalization();
            let mean = Tensor::from_slice(&m.map(|v| v as f32)).view([1, 3, 1, 1]).to_device(dev);
            let std = Tensor::from_slice(&sd.map(|v| v as f32)).view([1, 3, 1, 1]).to_device(dev);
            let head = proj.map(|d| nn::linear(p / "proj", arch.dim(), d, Default::default()));
            return Encoder { arch, trunk, head, mean, std, pool: true };
        }
        let (blocks, bottle) = arch.layout();
        let mut trunk = nn::seq_t()
            .add(conv(p / "conv1", 3, 64, 7, 2, 3))
            .add(bn(p / "bn1", 64))
            .add_fn(|xs| xs.relu().max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false));
        let mut cin = 64;
        for (li, (&n, width)) in blocks.iter().zip([64i64, 128, 256, 512]).enumerate() {
            let lp = p / format!("layer{}", li + 1);
            for b in 0..n {
                let stride = if li > 0 && b == 0 { 2 } else { 1 };
                if bottle {
                    trunk = trunk.add(bottleneck(&lp / b, cin, width, stride));
                    cin = width * 4;
                } else {
                    trunk = trunk.add(basic_block(&lp / b, cin, width, stride));
                    cin = width;
                }
            }
        }
        let trunk = if pool {
            trunk.add_fn(|xs| xs.adaptive_avg_pool2d([1, 1]).flatten(1, -1))
        } else {
            trunk.add_fn(|xs| xs.flatten(1, -1))
        };
        let (m, sd) = arch.normalization();
        let mean = Tensor::from_slice(&m.map(|v| v as f32)).view([1, 3, 1, 1]).to_device(dev);
        let std = Tensor::from_slice(&sd.map(|v| v as f32)).view([1, 3, 1, 1]).to_device(dev);
        let head = proj.map(|d| nn::linear(p / "proj", arch.dim(), d, Default::default()));
        Encoder { arch, trunk, head, mean, std, pool }
    }

    /// The architecture.
    pub fn arch(&self) -> Arch {
        self.arch
    }

    /// Embedding size (the projection head's, when there is one). For an [`Encoder::unpooled`]
    /// trunk, the size per position of the last feature map: see [`Encoder::dim_at`].
    pub fn dim(&self) -> i64 {
        self.head.as_ref().map_or(self.arch.dim(), |h| h.ws.size()[0])
    }

    /// Embedding size for square inputs of side `size`: [`Encoder::dim`], times the last feature
    /// map's h·w when the trunk is unpooled (each of the five stride-2 stages rounds up).
    pub fn dim_at(&self, size: i64) -> i64 {
        if self.pool {
            return self.dim();
        }
        let side = (0..5).fold(size, |s, _| (s + 1) / 2);
        self.dim() * side * side
    }

    /// The projection head's output size, if there is one.
    pub fn proj_dim(&self) -> Option<i64> {
        self.head.as_ref().map(|h| h.ws.size()[0])
    }

    /// u8 (or float in 0..255) images `[N, 3, H, W]` → float normalised as the architecture wants
    /// ([`Arch::normalization`]).
    pub fn preprocess(&self, images: &Tensor) -> Tensor {
        let x = images.to_kind(Kind::Float) / 255.0;
        (x - &self.mean) / &self.std
    }

    /// Embeds u8 RGB images `[N, 3, H, W]` → `[N, dim]`. `train` selects batch statistics and
    /// running-stat updates in BatchNorm.
    pub fn forward_u8(&self, images: &Tensor, train: bool) -> Tensor {
        self.forward_normalized(&self.preprocess(images), train)
    }

    /// Embeds already-normalised float images `[N, 3, H, W]` → `[N, dim]`.
    pub fn forward_normalized(&self, x: &Tensor, train: bool) -> Tensor {
        let f = self.trunk.forward_t(x, train);
        match &self.head {
            Some(h) => f.apply(h),
            None => f,
        }
    }

    /// [`Encoder::forward_u8`] under `precision` (autocast for bf16), returning fp32 embeddings.
    pub fn embed(&self, images: &Tensor, train: bool, precision: crate::Precision) -> Tensor {
        crate::precision::autocast(images.device(), precision, || self.forward_u8(images, train)).to_kind(Kind::Float)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn torchvision_names_and_counts() {
        let vs = nn::VarStore::new(Device::Cpu);
        let _enc = Encoder::new(&vs.root(), Arch::Resnet18);
        let vars = vs.variables();
        for name in [
            "conv1.weight",
            "bn1.running_var",
            "layer1.0.conv2.weight",
            "layer2.0.downsample.0.weight",
            "layer4.1.bn2.bias",
        ] {
            assert!(vars.contains_key(name), "missing {name}");
        }
        // torchvision resnet18 has 11,176,512 parameters without fc (11,689,512 - 513,000)
        let trainable: i64 = vs.trainable_variables().iter().map(|t| t.numel() as i64).sum();
        assert_eq!(trainable, 11_176_512);
    }

    #[test]
    fn resnet50_shapes() {
        let vs = nn::VarStore::new(Device::Cpu);
        let enc = Encoder::new(&vs.root(), Arch::Resnet50);
        let x = Tensor::zeros([2, 3, 64, 64], (Kind::Uint8, Device::Cpu));
        let y = tch::no_grad(|| enc.forward_u8(&x, false));
        assert_eq!(y.size(), vec![2, 2048]);
        // torchvision resnet50 without fc: 25,557,032 - 2,049,000
        let trainable: i64 = vs.trainable_variables().iter().map(|t| t.numel() as i64).sum();
        assert_eq!(trainable, 23_508_032);
    }

    #[test]
    fn shallow_is_drqs_convnet_at_any_size() {
        let vs = nn::VarStore::new(Device::Cpu);
        let enc = Encoder::new(&vs.root(), Arch::Shallow);
        // conv 3→32 (896), three conv 32→32 (9,248 each), Linear 32·49·49 → 50, LayerNorm 50
        let trainable: i64 = vs.trainable_variables().iter().map(|t| t.numel() as i64).sum();
        assert_eq!(trainable, 896 + 3 * 9_248 + (32 * 49 * 49 * 50 + 50) + 100);
        assert!(vs.variables().contains_key("conv3.weight") && vs.variables().contains_key("ln.bias"));
        for size in [112i64, 64, 97] {
            let x = Tensor::rand([2, 3, size, size], (Kind::Float, Device::Cpu)) * 255.0;
            let y = tch::no_grad(|| enc.forward_u8(&x, false));
            assert_eq!(y.size(), vec![2, 50], "{size} px");
            assert_eq!(enc.dim_at(size), 50);
            // tanh output
            assert!(y.abs().max().double_value(&[]) <= 1.0);
        }
        // DrQ's input scaling: a mid-grey image is zero after preprocessing
        let grey = Tensor::full([1, 3, 4, 4], 127.5, (Kind::Float, Device::Cpu));
        assert_eq!(enc.preprocess(&grey).abs().max().double_value(&[]), 0.0);
        assert_eq!("shallow".parse::<Arch>(), Ok(Arch::Shallow));
    }

    #[test]
    fn unpooled_keeps_the_map_and_averages_to_the_pooled_embedding() {
        tch::manual_seed(3);
        let vs = nn::VarStore::new(Device::Cpu);
        let pooled = Encoder::new(&vs.root(), Arch::Resnet18);
        let mut vs2 = nn::VarStore::new(Device::Cpu);
        let unpooled = Encoder::unpooled(&vs2.root(), Arch::Resnet18);
        vs2.copy(&vs).expect("same variable names");
        for (size, side) in [(112i64, 4i64), (64, 2), (97, 4), (33, 2)] {
            assert_eq!(unpooled.dim_at(size), 512 * side * side, "{size} px");
            assert_eq!(pooled.dim_at(size), 512);
            let x = Tensor::rand([2, 3, size, size], (Kind::Float, Device::Cpu)) * 255.0;
            let map = tch::no_grad(|| unpooled.forward_u8(&x, false));
            assert_eq!(map.size(), vec![2, unpooled.dim_at(size)], "{size} px");
            let avg = map.view([2, 512, side * side]).mean_dim(-1, false, Kind::Float);
            let emb = tch::no_grad(|| pooled.forward_u8(&x, false));
            let diff = (avg - emb).abs().max().double_value(&[]);
            assert!(diff < 1e-4, "{size} px: spatial mean differs from the pooled embedding by {diff}");
        }
    }
}
