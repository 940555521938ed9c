//! The whole inversion with every tensor in bfloat16 (`set_precision` before loading) against
//! upstream's float32 goldens. A device's precision is fixed for the life of the process, so each
//! half type has its own test binary.

mod common;

use hyperstyle::backend::Precision;

#[test]
fn ffhq256_inversion_in_bf16() {
    common::check_half_precision_inversion(Precision::BF16);
}
