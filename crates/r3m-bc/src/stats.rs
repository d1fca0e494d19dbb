//! Statistics for closed-loop success that respect how the rollouts were made.
//!
//! Every encoder is evaluated on the same policy seeds × the same evaluation layouts, so one cell
//! set is a `seeds × layouts` matrix of 0/1 outcomes. Rollouts of one seed share a policy and
//! rollouts on one layout share a scene, so they are not independent: a Wilson interval over all
//! of them pooled is too narrow. The bootstrap here resamples seeds and layouts (both with
//! replacement, crossed) and takes the mean of the resampled matrix; the paired difference applies
//! the same resampled seeds and layouts to two encoders' matrices, so the layout difficulty they
//! share cancels.

use r3m_data::Rng;
use serde::{Deserialize, Serialize};

/// A point estimate with a 95% percentile-bootstrap interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// The statistic on the data as measured.
    pub mean: f64,
    /// 2.5th percentile of the bootstrap distribution.
    pub lo: f64,
    /// 97.5th percentile of the bootstrap distribution.
    pub hi: f64,
}

/// Default bootstrap replicates.
pub const REPLICATES: usize = 10_000;

fn check(m: &[Vec<f64>]) -> Option<(usize, usize)> {
    let s = m.len();
    let l = m.first()?.len();
    (l > 0 && m.iter().all(|r| r.len() == l)).then_some((s, l))
}

fn mean(m: &[Vec<f64>]) -> f64 {
    let n: usize = m.iter().map(Vec::len).sum();
    m.iter().flatten().sum::<f64>() / n as f64
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    // linear interpolation between order statistics (numpy's default)
    let pos = q * (sorted.len() - 1) as f64;
    let (i, f) = (pos.floor() as usize, pos - pos.floor());
    if i + 1 < sorted.len() {
        sorted[i] * (1.0 - f) + sorted[i + 1] * f
    } else {
        sorted[i]
    }
}

/// Mean of a `seeds × layouts` matrix with a 95% bootstrap interval that resamples seeds and
/// layouts. `None` for an empty or ragged matrix.
pub fn bootstrap_mean(m: &[Vec<f64>], replicates: usize, seed: u64) -> Option<Interval> {
    let (s, l) = check(m)?;
    let mut rng = Rng::stream(seed, 0xB007);
    let mut stats = Vec::with_capacity(replicates);
    let mut rows = vec![0usize; s];
    let mut cols = vec![0usize; l];
    for _ in 0..replicates.max(1) {
        rows.iter_mut().for_each(|r| *r = rng.below(s as u64) as usize);
        cols.iter_mut().for_each(|c| *c = rng.below(l as u64) as usize);
        let mut sum = 0.0;
        for &r in &rows {
            let row = &m[r];
            sum += cols.iter().map(|&c| row[c]).sum::<f64>();
        }
        stats.push(sum / (s * l) as f64);
    }
    stats.sort_by(f64::total_cmp);
    Some(Interval { mean: mean(m), lo: percentile(&stats, 0.025), hi: percentile(&stats, 0.975) })
}

/// The paired difference `a − b` of two `seeds × layouts` matrices measured on the same seeds and
/// layouts, with the same resampling applied to both. `None` when the shapes differ.
pub fn bootstrap_paired_difference(a: &[Vec<f64>], b: &[Vec<f64>], replicates: usize, seed: u64) -> Option<Interval> {
    let shape = check(a)?;
    if check(b)? != shape {
        return None;
    }
    let d: Vec<Vec<f64>> = a.iter().zip(b).map(|(ra, rb)| ra.iter().zip(rb).map(|(x, y)| x - y).collect()).collect();
    bootstrap_mean(&d, replicates, seed)
}

/// Outcomes (`true` = success) as a 0/1 matrix.
pub fn as_matrix(rows: &[Vec<bool>]) -> Vec<Vec<f64>> {
    rows.iter().map(|r| r.iter().map(|&x| f64::from(u8::from(x))).collect()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_matrices_have_degenerate_intervals() {
        let ones = vec![vec![1.0; 20]; 3];
        let i = bootstrap_mean(&ones, 500, 1).unwrap();
        assert_eq!((i.mean, i.lo, i.hi), (1.0, 1.0, 1.0));
        let zeros = vec![vec![0.0; 20]; 3];
        let d = bootstrap_paired_difference(&ones, &zeros, 500, 1).unwrap();
        assert_eq!((d.mean, d.lo, d.hi), (1.0, 1.0, 1.0));
        let same = bootstrap_paired_difference(&ones, &ones, 500, 1).unwrap();
        assert_eq!((same.mean, same.lo, same.hi), (0.0, 0.0, 0.0));
    }

    #[test]
    fn one_seed_matches_the_binomial_standard_error() {
        // one seed, 400 layouts, 30% successes: the layout bootstrap's 95% interval is about
        // p ± 1.96·sqrt(p(1-p)/n) = 0.30 ± 0.045
        let row: Vec<f64> = (0..400).map(|i| f64::from(u8::from(i % 10 < 3))).collect();
        let i = bootstrap_mean(&[row], 4000, 7).unwrap();
        assert!((i.mean - 0.3).abs() < 1e-12);
        assert!((i.lo - 0.255).abs() < 0.012 && (i.hi - 0.345).abs() < 0.012, "{i:?}");
    }

    #[test]
    fn seed_variation_widens_the_interval() {
        // seeds that differ a lot (one policy solves everything, one nothing) must give a wider
        // interval than the same number of successes spread evenly over seeds
        let layouts = 50;
        let split: Vec<Vec<f64>> = (0..4).map(|s| vec![if s < 2 { 1.0 } else { 0.0 }; layouts]).collect();
        let even: Vec<Vec<f64>> =
            (0..4).map(|_| (0..layouts).map(|l| f64::from(u8::from(l % 2 == 0))).collect()).collect();
        let a = bootstrap_mean(&split, 2000, 3).unwrap();
        let b = bootstrap_mean(&even, 2000, 3).unwrap();
        assert_eq!(a.mean, 0.5);
        assert_eq!(b.mean, 0.5);
        assert!(a.hi - a.lo > 2.0 * (b.hi - b.lo), "split {a:?} vs even {b:?}");
    }

    #[test]
    fn pairing_cancels_shared_layout_difficulty() {
        // both encoders solve the same easy layouts; `a` also solves 5 more. Unpaired intervals
        // overlap; the paired difference is 5/50 with a tight interval above zero.
        let easy: Vec<f64> = (0..50).map(|l| f64::from(u8::from(l < 20))).collect();
        let better: Vec<f64> = (0..50).map(|l| f64::from(u8::from(l < 25))).collect();
        let a = vec![better; 3];
        let b = vec![easy; 3];
        let (ia, ib) = (bootstrap_mean(&a, 2000, 5).unwrap(), bootstrap_mean(&b, 2000, 5).unwrap());
        assert!(ia.lo < ib.hi, "unpaired intervals overlap: {ia:?} {ib:?}");
        let d = bootstrap_paired_difference(&a, &b, 2000, 5).unwrap();
        assert!((d.mean - 0.1).abs() < 1e-12);
        assert!(d.lo > 0.0 && d.hi <= 0.2 + 1e-12, "{d:?}");
    }

    #[test]
    fn deterministic_and_shape_checked() {
        let m = as_matrix(&[vec![true, false, true], vec![false, false, true]]);
        assert_eq!(bootstrap_mean(&m, 300, 9), bootstrap_mean(&m, 300, 9));
        assert!(bootstrap_mean(&[], 10, 0).is_none());
        assert!(bootstrap_mean(&[vec![1.0], vec![1.0, 0.0]], 10, 0).is_none());
        assert!(bootstrap_paired_difference(&m, &m[..1], 10, 0).is_none());
        let p = percentile(&[0.0, 1.0, 2.0, 3.0, 4.0], 0.5);
        assert_eq!(p, 2.0);
        assert!((percentile(&[0.0, 10.0], 0.025) - 0.25).abs() < 1e-12);
    }
}
