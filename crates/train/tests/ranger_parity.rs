//! Ranger against the original implementation: `fixtures/ranger_golden.safetensors` holds the
//! parameters after each of 12 steps of the original optimizer, run in float32 and (with its
//! internal float32 casts disabled) in float64, for two configurations. See `fixtures/README.md`.

use hyperstyle_testing::values_f64;
use hyperstyle_train::{Ranger, RangerConfig, RangerState};
use safetensors::SafeTensors;

const SHAPES: [&[usize]; 3] = [&[8, 4, 3, 3], &[6, 5], &[7]];
const STEPS: usize = 12;

fn configs() -> [(&'static str, RangerConfig); 2] {
    [
        (
            "default",
            RangerConfig {
                lr: 1e-2,
                ..Default::default()
            },
        ),
        (
            "wd_convonly",
            RangerConfig {
                lr: 1e-2,
                weight_decay: 1e-2,
                gc_conv_only: true,
                k: 5,
                alpha: 0.7,
                ..Default::default()
            },
        ),
    ]
}

fn golden() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/ranger_golden.safetensors"
    ))
    .unwrap()
}

/// A fixture tensor as f64, whatever its stored dtype.
fn read(st: &SafeTensors, key: &str) -> Vec<f64> {
    values_f64(&st.tensor(key).unwrap())
}

/// The fixture's gradient: `sin(3·p + step)`, in float32 as the reference computes it.
fn grad(p: &[f32], step: usize) -> Vec<f32> {
    p.iter().map(|&v| (v * 3.0 + step as f32).sin()).collect()
}

fn max_abs(a: &[f64], b: &[f64]) -> (f64, f64) {
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| (x - y).abs()).collect();
    let max = d.iter().cloned().fold(0.0, f64::max);
    (max, d.iter().sum::<f64>() / d.len() as f64)
}

#[test]
fn matches_original_ranger_every_step() {
    let bytes = golden();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    for (name, cfg) in configs() {
        let mut opt = Ranger::new(cfg).unwrap();
        let mut params: Vec<Vec<f32>> = (0..SHAPES.len())
            .map(|j| {
                read(&st, &format!("{name}.f32.p{j}.step0"))
                    .iter()
                    .map(|&v| v as f32)
                    .collect()
            })
            .collect();
        for step in 1..=STEPS {
            let (mut worst_f64, mut worst_f32, mut floor) = (0.0f64, 0.0f64, 0.0f64);
            let mut mean_f64 = 0.0;
            for (j, p) in params.iter_mut().enumerate() {
                let g = grad(p, step);
                opt.step(&format!("p{j}"), p, SHAPES[j], &g).unwrap();
                let ours: Vec<f64> = p.iter().map(|&v| v as f64).collect();
                let ref32 = read(&st, &format!("{name}.f32.p{j}.step{step}"));
                let ref64 = read(&st, &format!("{name}.f64.p{j}.step{step}"));
                let (m64, a64) = max_abs(&ours, &ref64);
                worst_f64 = worst_f64.max(m64);
                mean_f64 += a64 / SHAPES.len() as f64;
                worst_f32 = worst_f32.max(max_abs(&ours, &ref32).0);
                floor = floor.max(max_abs(&ref32, &ref64).0);
            }
            println!(
                "{name} step {step:2}: vs f64 max-abs {worst_f64:.3e} mean-abs {mean_f64:.3e}, \
                 vs f32 max-abs {worst_f32:.3e}; f32-vs-f64 floor {floor:.3e}"
            );
            // The floor is what the original itself loses in float32 against float64 at this
            // step: measured 2.7e-8 to 1.7e-7 over the 12 steps (parameters up to 0.5 in
            // magnitude, where one float32 ulp is 6e-8). Our float32 run sums the centralization
            // mean in another order and takes `sin` from another library, so it may land a
            // rounding or two away from the original's float32 run: measured at most one ulp
            // (6e-8) from it, and at most 2.4e-8 beyond the floor from the float64 run. The
            // floor plus two ulps bounds both.
            let tol = floor + 1.2e-7;
            assert!(worst_f64 <= tol, "{name} step {step}: vs f64 {worst_f64:e} > {tol:e}");
            assert!(worst_f32 <= tol, "{name} step {step}: vs f32 {worst_f32:e} > {tol:e}");
        }
    }
}

#[test]
fn save_restore_continues_identically() {
    for (_, cfg) in configs() {
        let init = |j: usize| -> Vec<f32> {
            let n: usize = SHAPES[j].iter().product();
            (0..n).map(|i| 0.5 * (0.37 * i as f32 + 0.9 * j as f32).sin()).collect()
        };
        let run = |opt: &mut Ranger, params: &mut [Vec<f32>], steps: std::ops::Range<usize>| {
            for step in steps {
                for (j, p) in params.iter_mut().enumerate() {
                    let g = grad(p, step);
                    opt.step(&format!("p{j}"), p, SHAPES[j], &g).unwrap();
                }
            }
        };
        let mut straight = Ranger::new(cfg.clone()).unwrap();
        let mut a: Vec<Vec<f32>> = (0..3).map(init).collect();
        run(&mut straight, &mut a, 1..STEPS + 1);

        let mut first = Ranger::new(cfg).unwrap();
        let mut b: Vec<Vec<f32>> = (0..3).map(init).collect();
        // Stop in the middle of a Lookahead period and of the warm-up.
        run(&mut first, &mut b, 1..4);
        let json = serde_json::to_string(first.state()).unwrap();
        drop(first);
        let state: RangerState = serde_json::from_str(&json).unwrap();
        let mut resumed = Ranger::from_state(state).unwrap();
        run(&mut resumed, &mut b, 4..STEPS + 1);

        assert_eq!(a, b, "resumed parameters differ");
        assert_eq!(straight.state(), resumed.state(), "resumed state differs");
    }
}

#[test]
fn restore_rejects_inconsistent_state() {
    let mut opt = Ranger::new(RangerConfig::default()).unwrap();
    let mut p = vec![0.1f32; 30];
    opt.step("w", &mut p, &[6, 5], &[0.2; 30]).unwrap();
    let mut state = opt.into_state();
    state.params.get_mut("w").unwrap().slow.pop();
    assert!(Ranger::from_state(state).is_err());
}
