//! Tensor comparison by max-abs and mean-abs error.

use std::fmt;

use burn::prelude::*;

/// Error statistics of `actual` against `expected`.
#[derive(Debug, Clone, Copy)]
pub struct ErrorStats {
    /// Largest absolute difference.
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

/// Compares two equally long slices.
pub fn error_stats(actual: &[f32], expected: &[f32]) -> ErrorStats {
    assert_eq!(actual.len(), expected.len(), "length mismatch");
    let mut max_abs = 0f64;
    let mut sum = 0f64;
    let mut max_expected = 0f64;
    for (&a, &e) in actual.iter().zip(expected) {
        let d = (f64::from(a) - f64::from(e)).abs();
        // NaN must fail the comparison, not vanish in `max`.
        max_abs = if d.is_nan() { f64::INFINITY } else { max_abs.max(d) };
        sum += d;
        max_expected = max_expected.max(f64::from(e).abs());
    }
    ErrorStats {
        max_abs,
        mean_abs: sum / actual.len().max(1) as f64,
        max_expected,
        count: actual.len(),
    }
}

/// The values of a tensor as f32 (shape, values).
pub fn to_vec<B: Backend, const D: usize>(t: Tensor<B, D>) -> (Vec<usize>, Vec<f32>) {
    let shape = t.dims().to_vec();
    let values = t.into_data().convert::<f32>().to_vec::<f32>().expect("f32 tensor data");
    (shape, values)
}

/// Asserts that `actual` matches `expected` (same shape; max-abs ≤ `max_tol` and mean-abs ≤
/// `mean_tol`), printing both statistics either way so test logs record the measured error.
pub fn assert_close<B: Backend, const D: usize>(
    what: &str,
    actual: Tensor<B, D>,
    expected: (&[usize], &[f32]),
    max_tol: f64,
    mean_tol: f64,
) -> ErrorStats {
    let (shape, values) = to_vec(actual);
    assert_eq!(shape, expected.0, "{what}: shape");
    let stats = error_stats(&values, expected.1);
    println!("{what}: {stats} (tolerance max {max_tol:.1e}, mean {mean_tol:.1e})");
    assert!(
        stats.max_abs <= max_tol && stats.mean_abs <= mean_tol,
        "{what}: {stats} exceeds tolerance max {max_tol:.1e} / mean {mean_tol:.1e}"
    );
    stats
}
