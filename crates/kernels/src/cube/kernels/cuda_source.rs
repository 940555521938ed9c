//! The CUDA C++ of every kernel variant the launchers can pick, generated and compiled to PTX
//! for Ampere, Ada and Hopper without a GPU.
//!
//! A kernel's definition only needs a compute client for its device properties, so a wgpu
//! client (any Vulkan driver, software included) defines it, and the CUDA runtime's own C++
//! compiler turns the definition into source. NVRTC then compiles it with the options the CUDA
//! runtime uses. NVRTC runs without a GPU and without a driver; it is found through
//! `LD_LIBRARY_PATH` and the CUDA headers through `CUDA_PATH` (default `/usr/local/cuda`), as at
//! run time. With `HYPERSTYLE_CUDA_SOURCE_DIR` set, each variant's `.cu` and `.ptx` are written
//! there, for `ptxas` reports (registers, spills).
//!
//! ```text
//! CUDA_PATH=… LD_LIBRARY_PATH=…/nvrtc/lib cargo test --release -p hyperstyle-kernels \
//!     --features cuda,wgpu --lib cuda_source
//! ```

use super::*;
use cubecl::cuda::{install::include_path, CudaCompiler};
use cubecl::prelude::{
    ComputeClient, CubeKernel, ExecutionMode, KernelMetadata, KernelSettings, KernelTask, TensorCompilationArg,
};
use cubecl::wgpu::{WgpuDevice, WgpuRuntime};
use cubecl::{Compiler, CubeTask};
use cudarc::nvrtc::{compile_ptx_with_opts, CompileOptions};

/// Compute capabilities (major · 10 + minor) whose devices list every fragment shape the
/// engines use (f16, bf16 16 × 16 × 16 and TF32 16 × 16 × 8): A100, RTX 40xx / L4, H100 / H200;
/// each with NVRTC's target as the runtime names it (the architecture-specific `a` variant from
/// 9.0 on).
const ARCHS: [(u32, &str); 3] = [(80, "sm_80"), (89, "sm_89"), (90, "sm_90a")];

/// The CUDA C++ of `kernel`, compiled as the CUDA runtime compiles it for a device of compute
/// capability `version`.
// The options' type lives in a crate this one does not name, so it is filled field by field.
#[allow(clippy::field_reassign_with_default)]
fn cuda_source<K: CubeKernel + 'static>(kernel: K, version: u32) -> String {
    let task = KernelTask::<CudaCompiler, K>::new(kernel);
    let mut options = <CudaCompiler as Compiler>::CompilationOptions::default();
    // What the runtime switches on for these compute capabilities (all ≥ 7.5; clusters and
    // elected units from 9.0).
    options.warp_size = 32;
    options.supports_features.fast_math = true;
    options.supports_features.grid_constants = true;
    options.supports_features.fast_tanh = true;
    options.supports_features.clusters = version >= 90;
    options.supports_features.elect_sync = version >= 90;
    let address_type = task.address_type();
    task.compile(
        &mut Default::default(),
        &options,
        ExecutionMode::Unchecked,
        address_type,
    )
    .unwrap_or_else(|error| panic!("CUDA code generation failed: {error:?}"))
    .source
}

/// PTX of `source` from NVRTC with the runtime's options for `target`; a rejection panics with
/// the compiler's log and the source.
fn nvrtc(name: &str, source: &str, target: &'static str) -> String {
    let include = include_path();
    let options = CompileOptions {
        arch: Some(target),
        include_paths: vec![
            include.display().to_string(),
            include.join("cccl").display().to_string(),
        ],
        options: vec!["-lineinfo".into()],
        ..Default::default()
    };
    match compile_ptx_with_opts(source, options) {
        Ok(ptx) => ptx.to_src(),
        Err(error) => panic!("NVRTC rejected {name} for {target}: {error:?}\n{source}"),
    }
}

/// `(name, CUDA source)` of every convolution variant: for each storage type, the plain engine,
/// the tensor-core engine as the launcher asks for it (TF32 for f32) and the emulated one, each
/// direct and transposed.
fn conv_sources(client: &ComputeClient<WgpuRuntime>, version: u32) -> Vec<(String, String)> {
    let settings = KernelSettings::default().cube_dim(CubeDim::new_2d(UNITS as u32, UNITS as u32));
    let mut sources = Vec::new();
    for dtype in [DType::F32, DType::F16, DType::BF16] {
        let engines = [TensorCores::Never, TensorCores::Tf32, TensorCores::Emulated]
            .map(|setting| Multiply::wanted(dtype, setting));
        for engine in engines {
            let (stage, operand, k) = engine.types(dtype.into());
            for transposed in [false, true] {
                macro_rules! define {
                    ($engine:ty) => {
                        conv_kernel::ConvKernel::<$engine, WgpuRuntime>::new(
                            settings.clone(),
                            client.clone(),
                            TensorCompilationArg { inplace: None },
                            TensorCompilationArg { inplace: None },
                            TensorCompilationArg { inplace: None },
                            (),
                            (),
                            (),
                            (),
                            (),
                            (),
                            (),
                            (),
                            (),
                            (),
                            (),
                            transposed,
                            k,
                            dtype.into(),
                            stage,
                            operand,
                        )
                    };
                }
                let (name, source) = match engine {
                    Multiply::Units => ("units", cuda_source(define!(Units), version)),
                    Multiply::Wmma { .. } => ("wmma", cuda_source(define!(Wmma), version)),
                    Multiply::Emulated { .. } => ("emulated", cuda_source(define!(EmulatedWmma), version)),
                };
                let geometry = if transposed { "_transposed" } else { "" };
                sources.push((format!("conv_{name}_{dtype:?}{geometry}").to_lowercase(), source));
            }
        }
    }
    sources
}

/// `(name, CUDA source)` of the FIR kernel for each storage type.
fn upfirdn_sources(client: &ComputeClient<WgpuRuntime>, version: u32) -> Vec<(String, String)> {
    let settings = KernelSettings::default().cube_dim(CubeDim::new_1d(256));
    [DType::F32, DType::F16, DType::BF16]
        .into_iter()
        .map(|dtype| {
            let source = cuda_source(
                upfirdn_kernel::UpfirdnKernel::<WgpuRuntime>::new(
                    settings.clone(),
                    client.clone(),
                    TensorCompilationArg { inplace: None },
                    TensorCompilationArg { inplace: None },
                    TensorCompilationArg { inplace: None },
                    (),
                    (),
                    (),
                    (),
                    (),
                    (),
                    (),
                    (),
                    dtype.into(),
                ),
                version,
            );
            (format!("upfirdn_{dtype:?}").to_lowercase(), source)
        })
        .collect()
}

#[test]
fn every_variant_compiles_for_ampere_ada_and_hopper() {
    let client = WgpuRuntime::client(&WgpuDevice::default());
    let out = std::env::var_os("HYPERSTYLE_CUDA_SOURCE_DIR").map(std::path::PathBuf::from);
    for (version, target) in ARCHS {
        let mut sources = conv_sources(&client, version);
        sources.extend(upfirdn_sources(&client, version));
        // 3 storage types × 3 engines × 2 geometries, and a FIR kernel per storage type.
        assert_eq!(sources.len(), 21);
        for (name, source) in &sources {
            // The tensor-core variants really issue matrix instructions (two accumulators per
            // group, at least one step each); the others issue none.
            let mma = source.matches("mma_sync(").count();
            if name.contains("wmma") {
                assert!(mma >= 2, "{name}: {mma} mma_sync calls");
            } else {
                assert_eq!(mma, 0, "{name}: {mma} mma_sync calls");
            }
            let ptx = nvrtc(name, source, target);
            assert!(ptx.contains(".entry"), "{name}: no kernel entry in the PTX");
            assert_eq!(
                ptx.contains("wmma.mma.sync"),
                name.contains("wmma"),
                "{name}: matrix instructions in the PTX"
            );
            if let Some(dir) = &out {
                std::fs::create_dir_all(dir).unwrap();
                std::fs::write(dir.join(format!("{name}.sm_{version}.cu")), source).unwrap();
                std::fs::write(dir.join(format!("{name}.sm_{version}.ptx")), &ptx).unwrap();
            }
        }
    }
}
