//! How far values are from reference values: max-abs and mean-abs error.

use std::fmt;

/// Error statistics of `actual` against `expected`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ErrorStats {
    /// Largest absolute difference (infinite if any difference is NaN).
    pub max_abs: f64,
    /// Mean absolute difference.
    pub mean_abs: f64,
    /// Largest absolute value in `expected` (gives the scale of the errors).
    pub max_expected: f64,
    /// Number of compared values.
    pub count: usize,
}

impl fmt::Display for ErrorStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "max-abs {:.3e}, mean-abs {:.3e} over {} values (|expected| <= {:.3})",
            self.max_abs, self.mean_abs, self.count, self.max_expected
        )
    }
}

/// Compares two slices value by value; `None` if their lengths differ.
pub fn error_stats(actual: &[f32], expected: &[f32]) -> Option<ErrorStats> {
    if actual.len() != expected.len() {
        return None;
    }
    let mut max_abs = 0f64;
    let mut sum = 0f64;
    let mut max_expected = 0f64;
    for (&a, &e) in actual.iter().zip(expected) {
        let d = (f64::from(a) - f64::from(e)).abs();
        // NaN must fail a comparison, not vanish in `max`.
        max_abs = if d.is_nan() { f64::INFINITY } else { max_abs.max(d) };
        sum += d;
        max_expected = max_expected.max(f64::from(e).abs());
    }
    Some(ErrorStats {
        max_abs,
        mean_abs: sum / actual.len().max(1) as f64,
        max_expected,
        count: actual.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_of_known_differences() {
        let s = error_stats(&[1.0, 2.0, 3.0], &[1.0, 2.5, 2.0]).unwrap();
        assert_eq!((s.max_abs, s.mean_abs, s.max_expected, s.count), (1.0, 0.5, 2.5, 3));
        assert_eq!(error_stats(&[f32::NAN], &[0.0]).unwrap().max_abs, f64::INFINITY);
        assert!(error_stats(&[1.0], &[]).is_none());
    }
}
