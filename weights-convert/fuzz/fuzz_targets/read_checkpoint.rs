//! Fuzzes the whole reader: container detection, zip directory, legacy stream, restricted
//! unpickler, planning, and the streamed safetensors writer.
//!
//! Properties checked: no panic, no unbounded allocation (libFuzzer's RSS and malloc limits), and
//! whenever a conversion succeeds its output is a valid safetensors file.

#![no_main]

use libfuzzer_sys::fuzz_target;
use safetensors::SafeTensors;
use weights_convert::{convert_bytes, inspect_bytes, ConvertOptions, DType, Kind};

fuzz_target!(|data: &[u8]| {
    // Listing runs the reader and planner without writing.
    let _ = inspect_bytes(data);

    // A forced kind gets past detection so that every readable input is also written; the input
    // length picks whether floats are cast, to exercise both data paths.
    let options = ConvertOptions {
        kind: Some(Kind::Hyperstyle),
        dtype: if data.len().is_multiple_of(2) { Some(DType::F16) } else { None },
    };
    let mut out = Vec::new();
    if let Ok(summary) = convert_bytes(data, "fuzz.pt", &options, &mut out) {
        assert_eq!(summary.bytes, out.len() as u64);
        SafeTensors::deserialize(&out).expect("a successful conversion writes valid safetensors");
    }
});
