//! The seeded random generator behind every random choice (xoshiro256**, seeded by
//! SplitMix64). Its bits are defined here, not taken from a crate, so that a seed
//! gives the same stream on every machine and every future build; it implements
//! rand_core's [`RngCore`] and [`SeedableRng`], so callers seed and draw through the
//! ecosystem's traits (`Rng::seed_from_u64(seed)`, `rng.next_u64()`).

pub use rand_core::{RngCore, SeedableRng};

/// xoshiro256** pseudo-random generator.
#[derive(Clone, Debug)]
pub struct Rng {
    s: [u64; 4],
}

impl SeedableRng for Rng {
    /// The four state words, little endian.
    type Seed = [u8; 32];

    fn from_seed(seed: [u8; 32]) -> Self {
        let word =
            |i: usize| u64::from_le_bytes(seed[8 * i..8 * i + 8].try_into().expect("8 bytes"));
        Rng {
            s: [word(0), word(1), word(2), word(3)],
        }
    }

    /// The state from SplitMix64(`seed`) (the xoshiro authors' seeding), so the
    /// whole stream is fixed by one u64.
    fn seed_from_u64(seed: u64) -> Self {
        let mut z = seed;
        let mut next = || {
            z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut x = z;
            x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            x ^ (x >> 31)
        };
        Rng {
            s: [next(), next(), next(), next()],
        }
    }
}

impl RngCore for Rng {
    /// The high 32 bits of the next 64.
    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    /// Next 64 random bits (xoshiro256**).
    fn next_u64(&mut self) -> u64 {
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

    fn fill_bytes(&mut self, dst: &mut [u8]) {
        rand_core::impls::fill_bytes_via_next(self, dst)
    }
}

impl Rng {
    /// The full internal state (for checkpoints).
    pub fn state(&self) -> [u64; 4] {
        self.s
    }

    /// A generator continuing from a saved state.
    pub fn from_state(s: [u64; 4]) -> Rng {
        Rng { s }
    }

    /// Derive an independent stream for a named purpose (e.g. one per matrix).
    pub fn fork(&mut self, salt: u64) -> Rng {
        Rng::seed_from_u64(self.next_u64() ^ salt.wrapping_mul(0xD605_BBB5_8C8A_BDA1))
    }

    /// Uniform in [0, 1) with 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Shuffle `v` in place (Fisher–Yates from the back: position i swaps with a
    /// uniform j in 0..=i). The one shuffle of the project.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            v.swap(i, self.below(i as u64 + 1) as usize);
        }
    }

    /// Uniform integer in [0, n) (n > 0), by rejection so there is no modulo bias.
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "Rng::below(0)");
        let zone = u64::MAX - (u64::MAX % n);
        loop {
            let x = self.next_u64();
            if x < zone {
                return x % n;
            }
        }
    }

    /// Uniform integer in [lo, hi] (inclusive).
    pub fn range_i64(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo) as u64 + 1) as i64
    }

    /// A fair coin.
    pub fn bit(&mut self) -> bool {
        self.next_u64() >> 63 == 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_published_xoshiro256starstar_and_splitmix64_vectors() {
        // xoshiro256** from state {1, 2, 3, 4} (the authors' reference code), drawn
        // through rand_core's RngCore.
        let mut seed = [0u8; 32];
        for (i, w) in [1u64, 2, 3, 4].iter().enumerate() {
            seed[8 * i..8 * i + 8].copy_from_slice(&w.to_le_bytes());
        }
        let mut r = Rng::from_seed(seed);
        let got: Vec<u64> = (0..4).map(|_| r.next_u64()).collect();
        assert_eq!(got, [11520, 0, 1509978240, 1215971899390074240]);
        // SplitMix64(0)'s first output seeds the first state word.
        assert_eq!(Rng::seed_from_u64(0).state()[0], 0xe220_a839_7b1d_cdaf);
        // fill_bytes and next_u32 come from the same stream.
        let (mut a, mut b) = (Rng::seed_from_u64(7), Rng::seed_from_u64(7));
        let mut buf = [0u8; 8];
        a.fill_bytes(&mut buf);
        assert_eq!(u64::from_le_bytes(buf), b.next_u64());
        assert_eq!(a.next_u32(), (b.next_u64() >> 32) as u32);
    }

    #[test]
    fn rng_same_seed_same_stream_and_seeds_differ() {
        let a: Vec<u64> = {
            let mut r = Rng::seed_from_u64(7);
            (0..8).map(|_| r.next_u64()).collect()
        };
        let b: Vec<u64> = {
            let mut r = Rng::seed_from_u64(7);
            (0..8).map(|_| r.next_u64()).collect()
        };
        let c: Vec<u64> = {
            let mut r = Rng::seed_from_u64(8);
            (0..8).map(|_| r.next_u64()).collect()
        };
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn rng_uniform_mean_and_below_bounds() {
        let mut r = Rng::seed_from_u64(1);
        let n = 100_000;
        let mean = (0..n).map(|_| r.uniform()).sum::<f64>() / n as f64;
        assert!((mean - 0.5).abs() < 0.01, "mean {mean}");
        let mut seen = [0usize; 5];
        for _ in 0..10_000 {
            seen[r.below(5) as usize] += 1;
        }
        assert!(seen.iter().all(|&c| c > 1800 && c < 2200), "{seen:?}");
    }
}
