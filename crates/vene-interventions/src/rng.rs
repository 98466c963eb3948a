//! numpy's legacy `RandomState` normal generator (MT19937 + polar Box–Muller), so that seeded
//! noise and initialisations are reproducible, and Noise matches pyvene's numbers.

/// numpy's `np.random.RandomState(seed)`, `randn` only.
#[derive(Debug, Clone)]
pub(crate) struct NumpyRandomState {
    mt: Box<[u32; 624]>,
    pos: usize,
    gauss: Option<f64>,
}

impl NumpyRandomState {
    /// `RandomState(seed)` for an integer seed (numpy's `mt19937_seed`).
    pub(crate) fn new(seed: u32) -> Self {
        let mut mt = Box::new([0u32; 624]);
        let mut s = seed;
        for (i, slot) in mt.iter_mut().enumerate() {
            *slot = s;
            s = 1_812_433_253u32
                .wrapping_mul(s ^ (s >> 30))
                .wrapping_add(i as u32 + 1);
        }
        Self {
            mt,
            pos: 624,
            gauss: None,
        }
    }

    fn twist(&mut self) {
        const UPPER: u32 = 0x8000_0000;
        const LOWER: u32 = 0x7fff_ffff;
        for i in 0..624 {
            let y = (self.mt[i] & UPPER) | (self.mt[(i + 1) % 624] & LOWER);
            let mut v = self.mt[(i + 397) % 624] ^ (y >> 1);
            if y & 1 == 1 {
                v ^= 0x9908_b0df;
            }
            self.mt[i] = v;
        }
        self.pos = 0;
    }

    fn next_u32(&mut self) -> u32 {
        if self.pos >= 624 {
            self.twist();
        }
        let mut y = self.mt[self.pos];
        self.pos += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    fn next_f64(&mut self) -> f64 {
        let a = (self.next_u32() >> 5) as f64;
        let b = (self.next_u32() >> 6) as f64;
        (a * 67_108_864.0 + b) / 9_007_199_254_740_992.0
    }

    /// One standard normal sample (numpy's `legacy_gauss`).
    pub(crate) fn gauss(&mut self) -> f64 {
        if let Some(g) = self.gauss.take() {
            return g;
        }
        loop {
            let x1 = 2.0 * self.next_f64() - 1.0;
            let x2 = 2.0 * self.next_f64() - 1.0;
            let r2 = x1 * x1 + x2 * x2;
            if r2 < 1.0 && r2 != 0.0 {
                let f = (-2.0 * r2.ln() / r2).sqrt();
                self.gauss = Some(f * x1);
                return f * x2;
            }
        }
    }

    /// `n` standard normal samples (numpy's `randn(n)`).
    pub(crate) fn randn(&mut self, n: usize) -> Vec<f64> {
        (0..n).map(|_| self.gauss()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_numpy_seed_1() {
        // np.random.RandomState(1).randn(5), the well-known values.
        let want = [
            1.62434536,
            -0.61175641,
            -0.52817175,
            -1.07296862,
            0.86540763,
        ];
        let got = NumpyRandomState::new(1).randn(5);
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-8, "{g} vs {w}");
        }
    }
}
