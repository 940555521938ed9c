//! The training step of `train_parity.rs` computed in float64 against the original's float64
//! run of it (`fixtures/make_train_golden.py`): ffhq256 pattern model, the two fixture faces,
//! batch 2, two refinement iterations, LPIPS + L2 + ID losses, one Ranger step, every released
//! layer tuned.
//!
//! In float64 both implementations sit ~1e-16 (relative) from the exact result and no
//! pre-activation comes near enough to zero for rounding to move it across a ReLU kink, so
//! every quantity must agree to far below float32's resolution: losses, images, every
//! parameter's gradient (sum, norm and leading values), the Ranger update, the weights after
//! the step and the BatchNorm running statistics. This is what shows the backward pass, the
//! detach points, the loss weighting and the optimizer are the original's; the float32 test
//! then only bounds float32 noise. (Its own process: the default float type is per process.)

mod common;

use burn::tensor::{set_default_dtypes, DType};
use common::parity::{check_family, losses, run_step};
use common::{diff, TrainGolden, B};

/// Largest relative difference allowed between two float64 computations of the step.
///
/// Measured: losses and images agree to ~1e-13, gradients to 8e-12 of their scale (sums of up
/// to 10⁶ products in different orders, through two generator passes and three loss networks),
/// the Ranger update to 6e-11 (centring a gradient cancels digits), the weights after the step
/// to 4e-13. 1e-9 leaves over an order of margin and is still ~10² below float32's resolution:
/// one float32 rounding anywhere in the chain (a constant, a cast) fails it.
const F64_AGREEMENT: f64 = 1e-9;

#[test]
fn one_training_step_in_float64_equals_the_original() {
    set_default_dtypes::<B>(&Default::default(), DType::F64, DType::I32).expect("float64 before any tensor");
    let golden = TrainGolden::load("train_golden.safetensors");
    let step = run_step(&golden);
    let mut failures: Vec<String> = Vec::new();

    for (name, ours, r, _) in losses(&golden, &step) {
        if (ours - r).abs() > F64_AGREEMENT * r.abs().max(1.0) {
            failures.push(format!("{name}: ours {ours:.15} float64 {r:.15}"));
        }
    }

    // Images: the golden keeps every `sample`-th value of the float64 run's images.
    let stride: usize = golden.meta["sample"].parse().unwrap();
    for (name, ours) in &step.images {
        let sampled: Vec<f64> = ours.iter().step_by(stride).copied().collect();
        let (max, mean) = diff(&sampled, golden.get(&format!("{name}/f64sample")));
        println!("{name}: max-abs {max:.3e} mean-abs {mean:.3e} (float64 vs float64)");
        // Pixel values are O(1).
        if max > F64_AGREEMENT {
            failures.push(format!("{name}: max-abs {max:.3e}"));
        }
    }

    // Every component of every summary, relative to the tensor's scale.
    for (family, entries, norm) in [
        ("grad", &step.grads, true),
        ("update", &step.updates, true),
        ("after", &step.after, false),
    ] {
        failures.extend(check_family(family, &golden, entries, norm, &[0, 1, 2], |_| {
            F64_AGREEMENT
        }));
    }

    let mut worst: f64 = 0.0;
    for (name, ours) in &step.running {
        let (err, _) = diff(ours, golden.get(&format!("bn/{name}/f64")));
        worst = worst.max(err);
        // Running means and variances are O(1).
        if err > F64_AGREEMENT {
            failures.push(format!("{name}: {err:.3e}"));
        }
    }
    println!("running statistics: worst max-abs {worst:.3e}");
    assert!(
        failures.is_empty(),
        "{} checks failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
