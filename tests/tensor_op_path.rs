//! The generic tensor-operation path of the networks — what every backend but the CPU one runs
//! (GPUs, autodiff, half precision) — against the upstream goldens, on the CPU.
//!
//! On the CPU backend the generator and encoders run `hyperstyle::kernels` instead. Wrapping
//! that backend in `Autodiff` makes the kernels decline (they run only on plain burn-flex), so
//! this test checks the other path end to end within the same bounds as the main parity suite.

mod common;

use burn::backend::Autodiff;
use hyperstyle::backend::Cpu;
use hyperstyle_testing::Fixture;

type Generic = Autodiff<Cpu>;

#[test]
fn ffhq256_inversion_without_the_cpu_kernels() {
    let fixture = Fixture::load("ffhq256");
    let model = common::fixture_model_on::<Generic>(&fixture);
    let input = fixture.golden.tensor("input", &Default::default());
    assert!(!hyperstyle::kernels::flex::accelerates(&input));
    let n_iters = fixture.manifest.meta_usize("n_iters").unwrap();
    let inversion = model.invert(input, n_iters).unwrap();
    common::check_inversion("ffhq256 (tensor operations)", &fixture, &inversion);
}
