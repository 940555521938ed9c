//! The Burn optimizer against the original's trajectory (`fixtures/ranger_golden.safetensors`,
//! see `fixtures/README.md`), through autodiff, the optimizer adaptor and its record.

use burn::backend::{Autodiff, Flex};
use burn::module::{Module, Param};
use burn::optim::{GradientsParams, Optimizer};
use burn::record::{BinBytesRecorder, FullPrecisionSettings, Recorder};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use hyperstyle_testing::values_f64;
use hyperstyle_train::RangerConfig;
use safetensors::SafeTensors;

type B = Autodiff<Flex>;
const STEPS: usize = 12;

#[derive(Module, Debug)]
struct Params<B: Backend> {
    conv: Param<Tensor<B, 4>>,
    fc: Param<Tensor<B, 2>>,
    bias: Param<Tensor<B, 1>>,
}

impl<B: Backend> Params<B> {
    fn values(&self) -> [Vec<f32>; 3] {
        let v = |d: TensorData| d.to_vec::<f32>().unwrap();
        [
            v(self.conv.val().into_data()),
            v(self.fc.val().into_data()),
            v(self.bias.val().into_data()),
        ]
    }
}

fn configs() -> [(&'static str, RangerConfig); 2] {
    [
        ("default", RangerConfig::default()),
        (
            "wd_convonly",
            RangerConfig {
                weight_decay: 1e-2,
                gc_conv_only: true,
                k: 5,
                alpha: 0.7,
                ..Default::default()
            },
        ),
    ]
}

fn read(st: &SafeTensors, key: &str) -> Vec<f64> {
    values_f64(&st.tensor(key).unwrap())
}

fn initial(st: &SafeTensors, name: &str) -> Params<B> {
    let device = Default::default();
    let get = |j: usize| -> Vec<f32> {
        read(st, &format!("{name}.f32.p{j}.step0"))
            .iter()
            .map(|&v| v as f32)
            .collect()
    };
    Params {
        conv: Param::from_tensor(Tensor::from_data(TensorData::new(get(0), [8, 4, 3, 3]), &device)),
        fc: Param::from_tensor(Tensor::from_data(TensorData::new(get(1), [6, 5]), &device)),
        bias: Param::from_tensor(Tensor::from_data(TensorData::new(get(2), [7]), &device)),
    }
}

/// Gradients of `Σ −cos(3p + step) / 3`, which are the fixture's `sin(3p + step)`.
fn grads(module: &Params<B>, step: usize) -> GradientsParams {
    fn term<const D: usize>(p: Tensor<B, D>, step: usize) -> Tensor<B, 1> {
        p.mul_scalar(3.0)
            .add_scalar(step as f32)
            .cos()
            .sum()
            .mul_scalar(-1.0 / 3.0)
    }
    let loss = term(module.conv.val(), step) + term(module.fc.val(), step) + term(module.bias.val(), step);
    GradientsParams::from_grads(loss.backward(), module)
}

#[test]
fn burn_optimizer_follows_the_original() {
    let bytes = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/ranger_golden.safetensors"
    ))
    .unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    for (name, cfg) in configs() {
        let lr = 1e-2;
        let mut optim = cfg.init_burn::<B, Params<B>>().unwrap();
        let mut module = initial(&st, name);
        for step in 1..=STEPS {
            let g = grads(&module, step);
            module = optim.step(lr, module, g);
            // Save the optimizer's record to bytes mid-run (step 3: warm-up, inside a Lookahead
            // period) and resume from them: the run must go on as if nothing happened.
            if step == 3 {
                let recorder = BinBytesRecorder::<FullPrecisionSettings>::default();
                let bytes = recorder.record(optim.to_record(), ()).unwrap();
                let record = recorder.load(bytes, &Default::default()).unwrap();
                optim = cfg.init_burn::<B, Params<B>>().unwrap().load_record(record);
            }
            let (mut worst, mut floor) = (0.0f64, 0.0f64);
            for (j, ours) in module.values().iter().enumerate() {
                let ref32 = read(&st, &format!("{name}.f32.p{j}.step{step}"));
                let ref64 = read(&st, &format!("{name}.f64.p{j}.step{step}"));
                for ((&o, &a), &b) in ours.iter().zip(&ref32).zip(&ref64) {
                    worst = worst.max((o as f64 - b).abs());
                    floor = floor.max((a - b).abs());
                }
            }
            println!("{name} step {step:2}: vs f64 max-abs {worst:.3e}; floor {floor:.3e}");
            // Same bound as the plain optimizer's parity test (floor plus two float32 ulps at
            // 0.5): the gradients here come from autodiff (`cos` backward, a ×3 and a ÷3), so
            // they may differ from the fixture's in the last bit.
            let tol = floor + 1.2e-7;
            assert!(worst <= tol, "{name} step {step}: {worst:e} > {tol:e}");
        }
    }
}
