//! The library's demo data: configurations by name, upstream's outputs by key and sample, and no
//! panic on a photo or sample the upstream run did not have.

use burn::prelude::*;
use hyperstyle::backend::Cpu;
use hyperstyle::core::Error as CoreError;
use hyperstyle::demo::Demo;
use hyperstyle::Error;

#[test]
fn samples_and_references_are_looked_up_safely() {
    let demo = Demo::load("ffhq256").unwrap();
    assert_eq!(demo.n_iters().unwrap(), 3);
    assert_eq!(demo.config().unwrap().output_size, 256);
    assert_eq!(demo.sample_of("astronaut"), Some(0));
    assert_eq!(demo.sample_of("chelsea"), Some(1));
    assert_eq!(demo.sample_of("ffhq256_input1"), Some(1));
    assert_eq!(demo.sample_of("ffhq256_input9"), Some(9));
    assert_eq!(demo.sample_of("holiday"), None);
    assert!(demo.has_reference("w_codes") && !demo.has_reference("restyle_codes"));

    let device = Default::default();
    let zeros = Tensor::<Cpu, 3>::zeros([1, 14, 512], &device);
    let stats = demo.compare("w_codes", 1, &zeros).unwrap();
    assert_eq!(stats.count, 14 * 512);
    assert!(stats.max_abs > 0.0);
    // A sample the run did not have, a key it did not write, a tensor of another size: no
    // comparison, and no panic.
    assert!(demo.compare("w_codes", 9, &zeros).is_none());
    assert!(demo.compare("restyle_codes", 0, &zeros).is_none());
    assert!(demo
        .compare("w_codes", 0, &Tensor::<Cpu, 3>::zeros([1, 2, 512], &device))
        .is_none());
}

#[test]
fn unknown_configurations_are_errors() {
    match Demo::load("ffhq2048") {
        Err(Error::Core(CoreError::Unknown { name, expected, .. })) => {
            assert_eq!(name, "ffhq2048");
            assert!(expected.contains("ffhq1024"), "{expected}");
        }
        other => panic!("expected an unknown-configuration error, got {:?}", other.err()),
    }
}

/// `--domain` (the builder's `domain`) changes only the domain: a 256 checkpoint stays a 256
/// model instead of asking for a 1024 generator's layers.
#[test]
fn a_domain_override_keeps_the_checkpoint_size() {
    use hyperstyle::{Domain, HyperStyle};
    let demo = Demo::load("ffhq256").unwrap();
    let model = HyperStyle::<Cpu>::builder()
        .model_weights(
            demo.weights("hyperstyle", &["hypernet.", "decoder.", "latent_avg"])
                .unwrap(),
        )
        .w_encoder_weights(demo.weights("w_encoder", &["encoder."]).unwrap())
        .config(demo.config().unwrap())
        .domain(Domain::Wild)
        .load(&Default::default())
        .unwrap();
    assert_eq!(model.config().domain, Domain::Wild);
    assert_eq!(model.config().output_size, 256);
    assert_eq!(model.generator().config().size, 256);
}
