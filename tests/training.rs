//! A checkpoint saved by `hyperstyle-train` is a HyperStyle model: the facade loads it and its
//! inversion reproduces the trainer's validation images.
//!
//! The ffhq256 pattern model is trained for two steps (one non-shared layer, L2 loss only, a
//! large learning rate, so the hypernetwork and its BatchNorm running statistics move away from
//! the fixture's), saved with `Trainer::save_model`, loaded with `HyperStyle::builder()` and
//! run on the same faces.

use burn::backend::{Autodiff, Flex};
use burn::prelude::*;
use hyperstyle::HyperStyle;
use hyperstyle_hypernet::{HypernetConfig, LayersToTune};
use hyperstyle_stylegan2::GeneratorConfig;
use hyperstyle_testing::{hyperstyle_stores, Fixture};
use hyperstyle_train::{
    Batch, FrozenNetworks, Lambdas, LossNets, OptimizerChoice, RangerConfig, TrainConfig, TrainableHypernetwork,
    Trainer,
};

type Train = Autodiff<Flex>;

fn faces(device: &Device<Train>) -> Tensor<Train, 4> {
    let images: Vec<Tensor<Train, 4>> = (0..2)
        .map(|k| {
            let path = hyperstyle_testing::fixtures_dir().join(format!("images/ffhq256_input{k}.png"));
            let image = image::open(path).unwrap().to_rgb8();
            let n = 256 * 256;
            let mut values = vec![0f32; 3 * n];
            for (i, p) in image.pixels().enumerate() {
                for c in 0..3 {
                    values[c * n + i] = (f32::from(p.0[c]) / 255.0 - 0.5) / 0.5;
                }
            }
            Tensor::from_data(TensorData::new(values, [1, 3, 256, 256]), device)
        })
        .collect();
    Tensor::cat(images, 0)
}

#[test]
fn a_trained_checkpoint_loads_in_the_facade_and_reproduces_validation() {
    let device = Default::default();
    let fixture = Fixture::load("ffhq256");
    let (model, w_encoder) = hyperstyle_stores(&fixture.manifest);
    let hypernet_config = HypernetConfig::new(GeneratorConfig::new(256)).with_layers_to_tune(LayersToTune::only([18]));
    let view = model.scope("hypernet.");
    for key in model.keys() {
        if key.starts_with("hypernet.refinement_blocks.") && !key.starts_with("hypernet.refinement_blocks.18.") {
            view.ignore(&key["hypernet.".len()..]);
        }
    }
    let hypernet = TrainableHypernetwork::load(&view, &hypernet_config, &device).unwrap();
    let frozen =
        FrozenNetworks::from_checkpoint(&model, Some(&w_encoder), &GeneratorConfig::new(256), &device).unwrap();
    let config = TrainConfig {
        lambdas: Lambdas {
            lpips: 0.0,
            l2: 1.0,
            id: 0.0,
            moco: 0.0,
        },
        n_iters_per_batch: 2,
        learning_rate: 1e-2,
        optimizer: OptimizerChoice::Ranger(RangerConfig::default()),
        dataset_type: "ffhq_hypernet".into(),
    };
    let mut trainer = Trainer::new(hypernet, hypernet_config, frozen, LossNets::new(None, None), config).unwrap();
    let x = faces(&device);
    for _ in 0..2 {
        trainer.train_step(Batch::images(x.clone())).unwrap();
    }
    let validation = trainer.validate(&Batch::images(x.clone())).unwrap();

    let dir = std::env::temp_dir().join(format!("hyperstyle-training-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("model.safetensors");
    trainer.save_model(&path).unwrap();
    drop(trainer);

    let model = HyperStyle::<Flex>::builder()
        .model_file(&path)
        .w_encoder_weights(w_encoder)
        .load(&device)
        .unwrap();
    assert_eq!(model.config().layers_to_tune, LayersToTune::only([18]));
    let inversion = model.invert(x.inner(), 2).unwrap();
    for (i, (step, ours)) in inversion.steps.iter().zip(&validation.images).enumerate() {
        let a = step.pooled.clone().into_data().to_vec::<f32>().unwrap();
        let b = ours.clone().into_data().to_vec::<f32>().unwrap();
        let max = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
        println!("step {i}: max-abs {max:.3e}");
        // The facade folds the BatchNorms into the convolutions and runs the CPU kernels; the
        // trainer normalises explicitly on the tensor-operation path. Same arithmetic up to
        // float32 rounding: the inversion's own float32 floor is 4.7e-5 max-abs (ffhq256,
        // tests/common), so 5× that.
        assert!(max < 2.5e-4, "step {i}: max-abs {max}");
    }
    std::fs::remove_dir_all(&dir).ok();
}
