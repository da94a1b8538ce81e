//! The simulation's seeded random number generator.
//!
//! This is wyrand, the generator behind `fastrand`, written out here because the transports
//! package does not depend on `fastrand` yet (its manifest belongs to another work area). It
//! is not for anything but fault injection: it is fast and reproducible, not secure.

/// A seeded, reproducible random number generator.
#[derive(Debug, Clone)]
pub(crate) struct SimRng {
    state: u64,
}

impl SimRng {
    /// A generator whose whole output is a function of `seed`.
    pub(crate) const fn with_seed(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 random bits.
    pub(crate) fn u64(&mut self) -> u64 {
        const INCREMENT: u64 = 0xa076_1d64_78bd_642f;
        const MIX: u64 = 0xe703_7ed1_a0b4_28db;
        self.state = self.state.wrapping_add(INCREMENT);
        let wide = u128::from(self.state) * u128::from(self.state ^ MIX);
        // Folding the 128-bit product: the truncations are the algorithm, not an accident.
        #[allow(clippy::cast_possible_truncation)]
        let folded = (wide as u64) ^ ((wide >> 64) as u64);
        folded
    }

    /// A uniform float in `[0, 1)`.
    pub(crate) fn f64(&mut self) -> f64 {
        // 53 random mantissa bits, the usual construction.
        #[allow(clippy::cast_precision_loss)]
        let value = (self.u64() >> 11) as f64 / (1u64 << 53) as f64;
        value
    }

    /// `true` with probability `p` (clamped to `[0, 1]`); draws nothing when `p <= 0`.
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.f64() < p
    }

    /// A uniform integer in `[low, high]`; `low` if the range is empty.
    pub(crate) fn in_range(&mut self, low: u64, high: u64) -> u64 {
        if high <= low {
            return low;
        }
        let span = high - low;
        match span.checked_add(1) {
            Some(width) => low + self.u64() % width,
            None => self.u64(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_ranges_hold() {
        let mut a = SimRng::with_seed(7);
        let mut b = SimRng::with_seed(7);
        for _ in 0..1000 {
            assert_eq!(a.u64(), b.u64());
            let x = a.in_range(3, 9);
            assert!((3..=9).contains(&x));
            b.in_range(3, 9);
            let f = a.f64();
            assert!((0.0..1.0).contains(&f));
            b.f64();
        }
        assert_eq!(a.in_range(5, 5), 5);
        assert!(!a.chance(0.0));
        assert!(a.chance(1.0));
    }
}
