//! A small, seedable, serialisable PRNG (SplitMix64). Its whole state is one `u64`, so a
//! checkpoint can store it and a resumed run draws exactly the same numbers.

/// SplitMix64 (Steele, Lea, Flood 2014): fast, passes BigCrush, state = one u64.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Rng { state: seed }
    }

    /// An independent stream for `stream` (for example one per worker), derived from `seed`.
    pub fn stream(seed: u64, stream: u64) -> Self {
        let mut r = Rng::new(seed ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03));
        r.next_u64();
        r
    }

    /// An independent stream for `key` (for example a group, a clip in it and a tuple), derived
    /// from `seed` by hashing the fields one by one through SplitMix64's mixing function, so any two
    /// different keys give unrelated streams. (Packing fields into the bits of one number, as
    /// [`Rng::stream`] would need, makes keys collide once a field outgrows its bits.)
    pub fn keyed(seed: u64, key: &[u64]) -> Self {
        let mut h = mix(seed ^ (key.len() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        for &k in key {
            // for a fixed h this is a bijection of k, and for a fixed k one of h
            h = mix(h.wrapping_mul(0xD1B5_4A32_D192_ED03) ^ k);
        }
        Rng::new(h)
    }

    /// The state, to store in a checkpoint.
    pub fn state(&self) -> u64 {
        self.state
    }

    /// Restores a stored state.
    pub fn from_state(state: u64) -> Self {
        Rng { state }
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, n)` (Lemire's multiply-shift with rejection: unbiased). `n` must be > 0.
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "Rng::below(0)");
        loop {
            let x = self.next_u64();
            let m = u128::from(x) * u128::from(n);
            let low = m as u64;
            if low >= n.wrapping_neg() % n {
                return (m >> 64) as u64;
            }
        }
    }

    /// Uniform integer in the inclusive range `[lo, hi]`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        assert!(lo <= hi, "empty range {lo}..={hi}");
        lo + self.below((hi - lo) as u64 + 1) as usize
    }

    /// Uniform in `[0, 1)` with 53 bits.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A uniformly random permutation of `0..n` (Fisher–Yates).
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut p: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = self.below(i as u64 + 1) as usize;
            p.swap(i, j);
        }
        p
    }
}

/// How streams are derived from keys: 2 since [`Rng::keyed`] (hashed keys); 1 before (fields packed
/// into one number). Kept in run configs: a run resumes only with the derivation it started with.
pub const STREAMS: u32 = 2;

/// SplitMix64's output function: a bijection of 64-bit values that mixes every input bit.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_resumable() {
        let mut a = Rng::new(42);
        let first: Vec<u64> = (0..5).map(|_| a.next_u64()).collect();
        let saved = a.state();
        let next: Vec<u64> = (0..5).map(|_| a.next_u64()).collect();
        let mut b = Rng::new(42);
        assert_eq!((0..5).map(|_| b.next_u64()).collect::<Vec<_>>(), first);
        let mut c = Rng::from_state(saved);
        assert_eq!((0..5).map(|_| c.next_u64()).collect::<Vec<_>>(), next);
        assert_ne!(Rng::stream(42, 0).next_u64(), Rng::stream(42, 1).next_u64());
    }

    #[test]
    fn below_is_uniform() {
        let mut r = Rng::new(1);
        let mut counts = [0u32; 7];
        for _ in 0..70_000 {
            counts[r.below(7) as usize] += 1;
        }
        // each bucket expects 10,000; 5 sigma is about 460
        assert!(counts.iter().all(|&c| (9_500..10_500).contains(&c)), "{counts:?}");
    }

    #[test]
    fn permutation_is_a_permutation() {
        let mut r = Rng::new(3);
        let mut p = r.permutation(100);
        assert_ne!(p, (0..100).collect::<Vec<_>>());
        p.sort_unstable();
        assert_eq!(p, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn keyed_streams_do_not_repeat() {
        // the grouped loader's key (group, clip in the group, tuple) for a million groups, and the
        // reservoir's (serial, attempt): every stream's first number differs from every other's
        let mut first: Vec<u64> = Vec::with_capacity(5_000_000);
        for group in 0..1_000_000u64 {
            for clip in 0..4u64 {
                first.push(Rng::keyed(7, &[0xA, group, clip, 0]).next_u64());
            }
        }
        for serial in 0..1_000_000u64 {
            first.push(Rng::keyed(7, &[0xB, serial, 1]).next_u64());
        }
        let n = first.len();
        first.sort_unstable();
        first.dedup();
        assert_eq!(first.len(), n, "{} repeated streams", n - first.len());
        // and the old bit-packing did repeat: group 65,536 with attempt 0 met group 0 with attempt 1
        let packed = |group: u64, attempt: u64| (group << 24) ^ (attempt << 40);
        assert_eq!(packed(65_536, 0), packed(0, 1));
        assert_ne!(Rng::keyed(7, &[65_536, 0]).next_u64(), Rng::keyed(7, &[0, 1]).next_u64());
        // deterministic
        assert_eq!(Rng::keyed(3, &[1, 2]).next_u64(), Rng::keyed(3, &[1, 2]).next_u64());
        assert_ne!(Rng::keyed(3, &[1, 2]).next_u64(), Rng::keyed(4, &[1, 2]).next_u64());
    }
}
