//! Tensor comparison by max-abs and mean-abs error.

use burn::prelude::*;
use hyperstyle_core::ErrorStats;

/// [`hyperstyle_core::error_stats`] for tests: slices of different lengths panic.
pub fn error_stats(actual: &[f32], expected: &[f32]) -> ErrorStats {
    hyperstyle_core::error_stats(actual, expected)
        .unwrap_or_else(|| panic!("length mismatch: {} vs {} values", actual.len(), expected.len()))
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

/// Asserts that two lists of named tensors (e.g. a network's parameters after two runs) hold the
/// same names in the same order and bit-identical values; `what` names the comparison in the
/// failure message.
pub fn assert_bit_identical(
    a: &[hyperstyle_core::pattern::NamedTensor],
    b: &[hyperstyle_core::pattern::NamedTensor],
    what: &str,
) {
    assert_eq!(a.len(), b.len(), "{what}: tensor count");
    for ((name, _, x), (other, _, y)) in a.iter().zip(b) {
        assert_eq!(name, other, "{what}: tensor order");
        assert!(
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits()),
            "{name} differs {what}"
        );
    }
}
