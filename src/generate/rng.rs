//! A small deterministic PRNG (xoshiro256** seeded through SplitMix64) and
//! the few distributions the generator needs. No external crate, so the
//! output is stable across dependency upgrades.

/// One step of SplitMix64: a good 64-bit mixing function.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Independent random streams, one per purpose, so that changing how one
/// table is generated does not change the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    Customer = 1,
    Subscriptions = 2,
    Usage = 3,
    Tickets = 4,
    Surveys = 5,
    BadRows = 6,
    Spend = 7,
    Fx = 8,
}

/// xoshiro256** generator.
#[derive(Debug, Clone)]
pub(crate) struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// The generator for `(seed, stream, index)`: e.g. the usage stream of
    /// customer 123. Streams of different indexes are independent, so the
    /// output does not depend on how customers are chunked.
    pub(crate) fn derive(seed: u64, stream: Stream, index: u64) -> Self {
        let mut k = seed;
        let a = splitmix64(&mut k);
        let mut k = (stream as u64).wrapping_mul(0xD1B5_4A32_D192_ED03) ^ a;
        let b = splitmix64(&mut k);
        let mut state = b ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17);
        let mut s = [0u64; 4];
        for w in &mut s {
            *w = splitmix64(&mut state);
        }
        if s == [0; 4] {
            s[0] = 1;
        }
        Rng { s }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in `[0, 1)`.
    pub(crate) fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `(0, 1]`, safe for `ln`.
    fn open_f64(&mut self) -> f64 {
        1.0 - self.f64()
    }

    /// Uniform integer in `0..n` (`n > 0`).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0);
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// Uniform integer in `lo..=hi`.
    pub(crate) fn range(&mut self, lo: i64, hi: i64) -> i64 {
        debug_assert!(lo <= hi);
        lo + self.below((hi - lo) as u64 + 1) as i64
    }

    /// `true` with probability `p`.
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        self.f64() < p
    }

    /// Exponential with the given mean.
    pub(crate) fn exp(&mut self, mean: f64) -> f64 {
        -self.open_f64().ln() * mean
    }

    /// Standard normal (Box-Muller, one value per call).
    pub(crate) fn normal(&mut self) -> f64 {
        let u1 = self.open_f64();
        let u2 = self.f64();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Log-normal with the given median and log-space sigma.
    pub(crate) fn lognormal(&mut self, median: f64, sigma: f64) -> f64 {
        median * (sigma * self.normal()).exp()
    }

    /// Number of failures before the first success of a Bernoulli(p) trial
    /// sequence, `p` in `(0, 1]`. One draw whatever the result.
    pub(crate) fn geometric(&mut self, p: f64) -> u32 {
        if p >= 1.0 {
            return 0;
        }
        let g = (self.open_f64().ln() / (1.0 - p).ln()).floor();
        if g >= u32::MAX as f64 {
            u32::MAX
        } else {
            g as u32
        }
    }

    /// A uniformly chosen element of a non-empty slice.
    pub(crate) fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    /// An index chosen with the given (non-negative, not all zero) weights.
    pub(crate) fn weighted(&mut self, weights: &[f64]) -> usize {
        let total: f64 = weights.iter().sum();
        let mut x = self.f64() * total;
        for (i, w) in weights.iter().enumerate() {
            if x < *w {
                return i;
            }
            x -= w;
        }
        weights.len() - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_deterministic_and_distinct() {
        let a: Vec<u64> = {
            let mut r = Rng::derive(42, Stream::Usage, 7);
            (0..4).map(|_| r.next_u64()).collect()
        };
        let b: Vec<u64> = {
            let mut r = Rng::derive(42, Stream::Usage, 7);
            (0..4).map(|_| r.next_u64()).collect()
        };
        let c: Vec<u64> = {
            let mut r = Rng::derive(42, Stream::Usage, 8);
            (0..4).map(|_| r.next_u64()).collect()
        };
        let d: Vec<u64> = {
            let mut r = Rng::derive(42, Stream::Tickets, 7);
            (0..4).map(|_| r.next_u64()).collect()
        };
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
    }

    #[test]
    fn distributions_stay_in_range() {
        let mut r = Rng::derive(1, Stream::Customer, 0);
        let mut sum = 0.0;
        for _ in 0..10_000 {
            let x = r.f64();
            assert!((0.0..1.0).contains(&x));
            sum += x;
            let k = r.range(-3, 3);
            assert!((-3..=3).contains(&k));
            assert!(r.exp(2.0) >= 0.0);
            assert!(r.weighted(&[0.0, 1.0, 0.0]) == 1);
        }
        let mean = sum / 10_000.0;
        assert!((mean - 0.5).abs() < 0.02, "mean {mean}");
    }
}
