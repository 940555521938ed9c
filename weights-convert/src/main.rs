//! `weights-convert`: PyTorch `.pt` checkpoints to safetensors, without Python. The command is
//! [`weights_convert::cli::run`] on this process's arguments and standard streams.

use std::process::ExitCode;

fn main() -> ExitCode {
    let code = weights_convert::cli::run(std::env::args_os(), &mut std::io::stdout(), &mut std::io::stderr());
    ExitCode::from(code)
}
