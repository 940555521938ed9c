//! A small seeded random source for fresh initialisations (SplitMix64; normals by Box–Muller).
//!
//! Fresh networks only need the right distributions, not PyTorch's exact random stream, so a
//! self-contained generator keeps initialisation reproducible from a seed on every backend.

/// Seeded SplitMix64 generator.
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
    spare: Option<f64>,
}

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            state: seed,
            spare: None,
        }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Standard normal.
    fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        let u1 = 1.0 - self.unit();
        let u2 = self.unit();
        let r = (-2.0 * u1.ln()).sqrt();
        let theta = 2.0 * std::f64::consts::PI * u2;
        self.spare = Some(r * theta.sin());
        r * theta.cos()
    }

    /// `n` values uniform in `[−bound, bound)`.
    pub fn uniform_vec(&mut self, n: usize, bound: f64) -> Vec<f32> {
        (0..n).map(|_| ((2.0 * self.unit() - 1.0) * bound) as f32).collect()
    }

    /// `n` values normal with mean 0 and standard deviation `std`.
    pub fn normal_vec(&mut self, n: usize, std: f64) -> Vec<f32> {
        (0..n).map(|_| (self.normal() * std) as f32).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_are_right() {
        let mut rng = Rng::new(7);
        let n = 200_000;
        let v = rng.normal_vec(n, 2.0);
        let mean = v.iter().map(|&x| f64::from(x)).sum::<f64>() / n as f64;
        let var = v.iter().map(|&x| (f64::from(x) - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.02 && (var.sqrt() - 2.0).abs() < 0.02, "{mean} {var}");
        let u = rng.uniform_vec(n, 0.5);
        assert!(u.iter().all(|&x| (-0.5..0.5).contains(&x)));
        let mean = u.iter().map(|&x| f64::from(x)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.005, "{mean}");
        assert_eq!(Rng::new(3).normal_vec(4, 1.0), Rng::new(3).normal_vec(4, 1.0));
    }
}
