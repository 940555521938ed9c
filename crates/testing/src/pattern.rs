//! The fixtures' deterministic "pattern weights" (tests/fixtures/PATTERN.md).
//!
//! Every float tensor of a fixture checkpoint is filled from its key, the checkpoint's salt and the
//! manifest's mean/std, so the golden outputs need no weight files.

/// 64-bit FNV-1a over the UTF-8 bytes of `s`.
pub fn fnv1a64(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The raw uniform stream in [-1, 1) for `salt:key` (SplitMix64 on a golden-ratio counter).
pub fn uniform(salt: &str, key: &str, n: usize) -> impl Iterator<Item = f64> {
    let seed = fnv1a64(&format!("{salt}:{key}"));
    (0..n as u64).map(move |i| {
        let mut z = seed.wrapping_add((i + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        z ^= z >> 30;
        z = z.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z ^= z >> 27;
        z = z.wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 * (1.0 / (1u64 << 53) as f64) * 2.0 - 1.0
    })
}

/// `n` pattern values for `key`: `mean + std·sqrt(3)·u`, computed in f64 and rounded once to f32.
pub fn pattern_values(salt: &str, key: &str, n: usize, mean: f64, std: f64) -> Vec<f32> {
    let scale = std * 3f64.sqrt();
    uniform(salt, key, n).map(|u| (mean + scale * u) as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_values_from_pattern_md() {
        assert_eq!(fnv1a64("a"), 0xaf63_dc4c_8601_ec8c);
        let u: Vec<f64> = uniform("s", "k", 4).collect();
        assert_eq!(
            u,
            [
                -0.5088574950772882,
                0.3436624326301694,
                0.20913640110857168,
                0.9922726214380073
            ]
        );
        // mean 0, std 1/sqrt(3) gives u itself (rounded to f32).
        let v = pattern_values("s", "k", 4, 0.0, 1.0 / 3f64.sqrt());
        assert_eq!(v[0], -0.5088574950772882f64 as f32);
    }
}
