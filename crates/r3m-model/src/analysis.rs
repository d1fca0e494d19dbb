//! What `r3m view` shows about embeddings, computed with libtorch: pairwise distances and a 3-D
//! PCA projection.

use tch::{Kind, Tensor};

/// Euclidean distances between all rows of `e` `[N, D]` → `[N, N]`.
pub fn distance_matrix(e: &Tensor) -> Tensor {
    let e = e.to_kind(Kind::Float);
    Tensor::cdist(&e, &e, 2.0, None::<i64>)
}

/// Projects the rows of `e` `[N, D]` onto their top-3 principal components → `[N, 3]` (zeros
/// pad the missing components when N or D is below 3).
pub fn pca3(e: &Tensor) -> Tensor {
    let e = e.to_kind(Kind::Double);
    let n = e.size()[0];
    let centred = &e - e.mean_dim(0, true, Kind::Double);
    // reduced SVD: V is [D, min(N, D)], columns ordered by singular value
    let (_, _, v) = centred.svd(true, true);
    let k = v.size()[1].min(3);
    let proj = centred.matmul(&v.narrow(1, 0, k));
    if k < 3 {
        Tensor::cat(&[proj, Tensor::zeros([n, 3 - k], (Kind::Double, e.device()))], 1).to_kind(Kind::Float)
    } else {
        proj.to_kind(Kind::Float)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn pca_finds_the_spread_direction_and_distances_are_euclidean() {
        // points on a line along (1, 2, 2)/3 in 5-D, plus tiny noise
        let t = Tensor::arange(10, (Kind::Float, Device::Cpu)).view([10, 1]);
        let dir = Tensor::from_slice(&[1.0f32, 2.0, 2.0, 0.0, 0.0]).view([1, 5]) / 3.0;
        let e = t.matmul(&dir) + Tensor::randn([10, 5], (Kind::Float, Device::Cpu)) * 1e-4;
        let p = pca3(&e);
        assert_eq!(p.size(), vec![10, 3]);
        // the first component carries the spread (|p0| grows by 1 per step)
        let first = p.select(1, 0);
        let step = (first.get(9) - first.get(0)).abs().double_value(&[]) / 9.0;
        assert!((step - 1.0).abs() < 1e-3, "{step}");
        let d = distance_matrix(&e);
        assert!((d.double_value(&[0, 9]) - 9.0).abs() < 1e-3);
        assert!(d.double_value(&[3, 3]).abs() < 1e-3);
        assert_eq!(pca3(&e.narrow(0, 0, 2)).size(), vec![2, 3]);
    }
}
