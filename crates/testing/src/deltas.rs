//! Checks of weight offsets against the goldens' delta statistics (`delta{j}{suffix}_head`,
//! `_sum`, `_sumsq`: the first 256 values, sum and sum of squares per batch item).

use burn::prelude::*;

use crate::compare::to_vec;
use crate::golden::Golden;

// Tolerances as ratios. The float32 floor measured on every ffhq256 layer (upstream's float32 run
// against its float64 run): head max-abs / max|head| ≤ 2.6e-6; sum error / sqrt(N·sumsq) ≤
// 1.4e-8; sumsq relative ≤ 4.3e-6. We allow about 10× each.
const HEAD_RATIO: f64 = 3e-5;
const SUM_RATIO: f64 = 2e-7;
const SUMSQ_RATIO: f64 = 5e-5;

/// Asserts that `delta` (generator layer `j`, batch first) matches the golden statistics
/// `delta{j}{suffix}_*` (suffix `""` for the accumulated offsets, `"_step0"` for step 0 alone).
/// A per-filter-pair offset `[batch, out, in, 1, 1]` is compared as upstream's repetition over
/// the golden's `k×k` taps.
pub fn check_delta_stats<B: Backend>(golden: &Golden, j: usize, suffix: &str, delta: &Tensor<B, 5>) {
    let expected_shape: Vec<usize> = golden
        .get(&format!("delta{j}_shape"))
        .1
        .iter()
        .map(|&v| v as usize)
        .collect();
    let mut delta = delta.clone();
    let [_, _, _, kh, kw] = delta.dims();
    if (kh, kw) == (1, 1) && expected_shape.len() == 5 {
        delta = delta.repeat_dim(3, expected_shape[3]).repeat_dim(4, expected_shape[4]);
    }
    let (shape, values) = to_vec(delta);
    assert_eq!(shape, expected_shape, "delta{j} shape");
    let batch = shape[0];
    let per_item = values.len() / batch;
    let (_, head) = golden.get(&format!("delta{j}{suffix}_head"));
    let (_, sums) = golden.get(&format!("delta{j}{suffix}_sum"));
    let (_, sumsqs) = golden.get(&format!("delta{j}{suffix}_sumsq"));
    let head_len = head.len() / batch;
    for b in 0..batch {
        let item = &values[b * per_item..(b + 1) * per_item];
        let expected_head = &head[b * head_len..(b + 1) * head_len];
        let head_err = item
            .iter()
            .zip(expected_head)
            .map(|(a, e)| (a - e).abs())
            .fold(0f32, f32::max);
        let head_max = expected_head.iter().fold(0f32, |m, v| m.max(v.abs()));
        let sum: f64 = item.iter().map(|&v| f64::from(v)).sum();
        let sumsq: f64 = item.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
        let (gs, gss) = (f64::from(sums[b]), f64::from(sumsqs[b]));
        let head_ratio = f64::from(head_err / head_max);
        let sum_ratio = (sum - gs).abs() / (per_item as f64 * gss).sqrt();
        let sumsq_ratio = (sumsq - gss).abs() / gss;
        println!("delta{j}{suffix}[{b}]: head {head_ratio:.2e}, sum {sum_ratio:.2e}, sumsq {sumsq_ratio:.2e}");
        assert!(
            head_ratio <= HEAD_RATIO,
            "delta{j}{suffix}[{b}] head: {head_ratio:.3e} (max-abs {head_err:.3e})"
        );
        assert!(
            sum_ratio <= SUM_RATIO,
            "delta{j}{suffix}[{b}] sum {sum} vs {gs}: {sum_ratio:.3e}"
        );
        assert!(
            sumsq_ratio <= SUMSQ_RATIO,
            "delta{j}{suffix}[{b}] sumsq {sumsq} vs {gss}: {sumsq_ratio:.3e}"
        );
    }
}

/// [`check_delta_stats`] for every tuned layer of an offset list.
pub fn check_all_delta_stats<B: Backend>(golden: &Golden, suffix: &str, offsets: &[Option<Tensor<B, 5>>]) {
    for (j, delta) in offsets.iter().enumerate() {
        if let Some(delta) = delta {
            check_delta_stats(golden, j, suffix, delta);
        }
    }
}
