//! One training step of ours next to the original's record of the same step
//! (`fixtures/make_train_golden.py`): the run, the per-tensor summaries and their comparison.
//! The two tests that use it differ only in the float type the step computes in and in the
//! tolerances (`train_parity.rs`: float32, `train_parity_f64.rs`: float64).

use burn::module::Param;
use burn::prelude::*;
use hyperstyle_core::weights::tensor_values_f64;
use hyperstyle_train::{Batch, ParamVisitor};

use super::{diff, values, TrainGolden, B};

/// What one step of ours produced, as the golden records it.
pub struct Step {
    /// Per iteration: loss_id, id_improve, loss_l2, loss_lpips, loss.
    pub losses: Vec<[f64; 5]>,
    /// `image{i}` per iteration and `w_inversion`, full values.
    pub images: Vec<(String, Vec<f64>)>,
    /// `(parameter, element count, summary)` of each gradient (summed over the iterations)…
    pub grads: Vec<(String, usize, Vec<f64>)>,
    /// …of each parameter's change in the optimizer step…
    pub updates: Vec<(String, usize, Vec<f64>)>,
    /// …and of each parameter after the step (its second entry a sum of squares).
    pub after: Vec<(String, usize, Vec<f64>)>,
    /// BatchNorm running statistics after the step.
    pub running: Vec<(String, Vec<f64>)>,
}

/// Names of the loss terms, in the golden's column order.
pub const LOSS_NAMES: [&str; 5] = ["loss_id", "id_improve", "loss_l2", "loss_lpips", "loss"];

/// `[sum, norm (or sum of squares), first 64 values]` of `values`, as the golden stores them.
pub fn summary(values: &[f64], squares: bool) -> Vec<f64> {
    let sum: f64 = values.iter().sum();
    let sq: f64 = values.iter().map(|v| v * v).sum();
    let mut out = vec![sum, if squares { sq } else { sq.sqrt() }];
    out.extend_from_slice(&values[..64]);
    out
}

/// Errors of a summary against a reference summary, each relative to the tensor's scale: the
/// sum against `norm·√n` (its bound), the norm (or sum of squares) against itself, the values
/// against the RMS value `norm/√n`.
pub fn summary_error(ours: &[f64], reference: &[f64], n: usize, second_is_norm: bool) -> [f64; 3] {
    let norm = if second_is_norm {
        reference[1]
    } else {
        reference[1].sqrt()
    };
    let rms = (norm / (n as f64).sqrt()).max(f64::MIN_POSITIVE);
    let sum_scale = (norm * (n as f64).sqrt()).max(f64::MIN_POSITIVE);
    let second = (ours[1] - reference[1]).abs() / reference[1].abs().max(f64::MIN_POSITIVE);
    [
        (ours[0] - reference[0]).abs() / sum_scale,
        second,
        diff(&ours[2..], &reference[2..]).0 / rms,
    ]
}

/// `(name, shape, values)` of each trained parameter.
type Params = Vec<(String, Vec<usize>, Vec<f64>)>;
/// `(name, values)` of each BatchNorm buffer.
type Buffers = Vec<(String, Vec<f64>)>;

/// The trained parameters (and, separately, the BatchNorm buffers) as f64 values.
fn parameters(trainer: &hyperstyle_train::Trainer<B>) -> (Params, Buffers) {
    struct Read(Params, Buffers);
    impl ParamVisitor<B> for Read {
        fn param<const D: usize>(&mut self, name: &str, p: &Param<Tensor<B, D>>) {
            let t = p.val();
            self.0.push((
                name.to_string(),
                t.dims().to_vec(),
                tensor_values_f64(t).expect("values"),
            ));
        }
        fn buffer(&mut self, name: &str, b: &Param<Tensor<B, 1>>) {
            self.1
                .push((name.to_string(), tensor_values_f64(b.val()).expect("values")));
        }
    }
    let mut read = Read(Vec::new(), Vec::new());
    trainer.hypernet().visit(&mut read);
    (read.0, read.1)
}

/// Runs the step the golden records (its layers, iterations, lambdas and learning rate) on the
/// ffhq256 pattern model and the two fixture faces, in the device's default float type.
pub fn run_step(golden: &TrainGolden) -> Step {
    let lambdas: serde_json::Value = serde_json::from_str(&golden.meta["lambdas"]).unwrap();
    let n_iters: usize = golden.meta["n_iters"].parse().unwrap();
    let lr: f64 = golden.meta["lr"].parse().unwrap();
    let layers = golden.meta["layers_to_tune"].clone();
    let upstream_params: Vec<String> = serde_json::from_str(&golden.meta["params"]).unwrap();

    let mut config = super::faces_config(n_iters, lr);
    config.lambdas = hyperstyle_train::Lambdas {
        lpips: lambdas["lpips"].as_f64().unwrap(),
        l2: lambdas["l2"].as_f64().unwrap(),
        id: lambdas["id"].as_f64().unwrap(),
        moco: 0.0,
    };
    let mut trainer = super::ffhq256_trainer(&layers, config);
    assert_eq!(
        trainer.hypernet().param_names(),
        upstream_params,
        "parameter names and order"
    );
    let device = Default::default();
    let (before, _) = parameters(&trainer);

    let (output, grads) = trainer
        .compute_gradients(Batch::images(super::ffhq256_batch(&device)))
        .unwrap();
    let mut grad_summaries = Vec::new();
    grads
        .for_each(trainer.hypernet(), |name, shape, values| {
            grad_summaries.push((name.to_string(), shape.iter().product(), summary(&values, false)));
        })
        .unwrap();
    trainer.apply_gradients(grads);
    let (after, running) = parameters(&trainer);
    let tracked = golden.get("bn/bn1.num_batches_tracked/f32")[0];
    assert_eq!(
        trainer.hypernet().batches_tracked() as f64,
        tracked,
        "num_batches_tracked"
    );

    let losses = output
        .losses
        .iter()
        .map(|d| {
            [
                d.loss_id.unwrap_or(f64::NAN),
                d.id_improve.unwrap_or(f64::NAN),
                d.loss_l2.unwrap_or(f64::NAN),
                d.loss_lpips.unwrap_or(f64::NAN),
                d.loss,
            ]
        })
        .collect();
    let mut images: Vec<(String, Vec<f64>)> = output
        .images
        .iter()
        .enumerate()
        .map(|(i, t)| (format!("image{i}"), values(t.clone())))
        .collect();
    images.push(("w_inversion".into(), values(output.w_inversion.clone())));

    let (mut updates, mut after_summaries) = (Vec::new(), Vec::new());
    for ((name, shape, b), (_, _, a)) in before.iter().zip(&after) {
        let n = shape.iter().product();
        let delta: Vec<f64> = a.iter().zip(b).map(|(a, b)| a - b).collect();
        updates.push((name.clone(), n, summary(&delta, false)));
        after_summaries.push((name.clone(), n, summary(a, true)));
    }
    Step {
        losses,
        images,
        grads: grad_summaries,
        updates,
        after: after_summaries,
        running,
    }
}

/// Compares one family of summaries (`grad`, `update` or `after`) with the golden's float64
/// run, on `components` (0 the sum, 1 the norm, 2 the values): `bound(float32 floor)` is the
/// largest error allowed for a component given the original's own float32 error on it. Prints the five
/// worst ratios; returns one line per failure.
pub fn check_family(
    family: &str,
    golden: &TrainGolden,
    ours: &[(String, usize, Vec<f64>)],
    second_is_norm: bool,
    components: &[usize],
    bound: impl Fn(f64) -> f64,
) -> Vec<String> {
    let mut worst = Vec::new();
    let mut failures = Vec::new();
    for (name, n, summary) in ours {
        let g32 = golden.get(&format!("{family}/{name}/f32"));
        let g64 = golden.get(&format!("{family}/{name}/f64"));
        let e = summary_error(summary, g64, *n, second_is_norm);
        let f = summary_error(g32, g64, *n, second_is_norm);
        for &k in components {
            let limit = bound(f[k]);
            worst.push((e[k] / limit, name.clone(), k, e[k], f[k]));
            if e[k] > limit {
                failures.push(format!(
                    "{family} {name}[{k}]: ours {:.3e}, bound {limit:.3e} (float32 floor {:.3e})",
                    e[k], f[k]
                ));
            }
        }
    }
    worst.sort_by(|a, b| b.0.total_cmp(&a.0));
    println!("{family}: {} tensors; worst error / bound:", ours.len());
    for (ratio, name, k, e, f) in worst.iter().take(5) {
        println!("  {name}[{k}] ours {e:.3e}, float32 floor {f:.3e}, ratio {ratio:.3}");
    }
    failures
}

/// Prints every loss term of every iteration next to the float64 and float32 runs; returns
/// `(name, ours, float64, float32)` per term.
pub fn losses(golden: &TrainGolden, step: &Step) -> Vec<(String, f64, f64, f64)> {
    let (l32, l64) = (golden.get("loss/f32"), golden.get("loss/f64"));
    let mut out = Vec::new();
    for (i, terms) in step.losses.iter().enumerate() {
        for (k, name) in LOSS_NAMES.iter().enumerate() {
            let (ours, r, f) = (terms[k], l64[i * 5 + k], l32[i * 5 + k]);
            println!(
                "iteration {i} {name}: ours {ours:.10} float64 {r:.10} err {:.2e} float32 floor {:.2e}",
                (ours - r).abs(),
                (f - r).abs()
            );
            out.push((format!("iteration {i} {name}"), ours, r, f));
        }
    }
    out
}
