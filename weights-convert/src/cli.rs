//! The `weights-convert` command line: arguments, conversion or listing, messages and exit
//! status, written to the given streams so that the whole command can be driven (and fuzzed) as
//! a function. The binary is [`run`] on the process's arguments and standard streams.

use std::ffi::OsString;
use std::io::{self, Write};
use std::path::PathBuf;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Parser, ValueEnum};

use crate::{convert_file, inspect_file, ConvertError, ConvertOptions, DType, Inventory, Kind};

/// Convert a PyTorch checkpoint (.pt) into a safetensors file, without Python.
///
/// Reads both torch.save formats (zip archive and legacy stream), TorchScript archives
/// (torch.jit.save, e.g. CLIP's ViT-B-32.pt; their code is never read) and plain pickles of numpy
/// float arrays (StyleCLIP's S_mean_std) with a restricted unpickler that never executes code
/// from the file: globals outside a small allow-list (tensor rebuilding, OrderedDict,
/// argparse.Namespace, numpy's array reconstruction, ...) are refused.
///
/// Output keys keep the checkpoint's nesting joined with `/` (`state_dict/decoder.conv1.weight`,
/// `g_ema/conv1.conv.weight`, `latent_avg`; a bare tensor is stored as `tensor`; TorchScript
/// modules use their state-dict names). Some kinds rename: styleclip-stats writes `s_mean.{i}` and
/// `s_std.{i}` as f32; moco keeps only the query encoder, under torchvision's ResNet-50 names.
/// Tensors shared under several names are stored once; `__metadata__` records `format`, `kind`,
/// `opts`, `aliases` (alias → canonical), `source_file` and `source_sha256`.
#[derive(Debug, Parser)]
#[command(name = "weights-convert", version, after_help = EXAMPLES)]
struct Cli {
    /// The PyTorch checkpoint to read.
    input: PathBuf,

    /// The safetensors file to write (created atomically; not needed with --list).
    #[arg(required_unless_present = "list")]
    output: Option<PathBuf>,

    /// Print the checkpoint's tensors (key, dtype, shape, aliases) and options, and write nothing.
    #[arg(long, conflicts_with_all = ["output", "kind", "dtype"])]
    list: bool,

    /// Record this checkpoint kind instead of the detected one.
    #[arg(long, value_parser = kind_parser())]
    kind: Option<Kind>,

    /// Cast floating-point tensors (f16/bf16/f32/f64) to this type; integer tensors are kept.
    #[arg(long, value_enum)]
    dtype: Option<DTypeArg>,
}

const EXAMPLES: &str = "Examples:
  weights-convert hyperstyle_ffhq.pt hyperstyle_ffhq.safetensors
  weights-convert --dtype f16 stylegan2-ffhq-config-f.pt ffhq_f16.safetensors
  weights-convert age.pt age.safetensors --kind direction
  weights-convert S_mean_std S_mean_std.safetensors
  weights-convert ViT-B-32.pt clip_vit_b32.safetensors
  weights-convert --list hyperstyle_ffhq.pt";

/// `--kind` accepts the names of `Kind::ALL` (those of the `kind` metadata entry) and lists them
/// in `--help`.
fn kind_parser() -> impl TypedValueParser<Value = Kind> {
    PossibleValuesParser::new(Kind::ALL.map(Kind::name))
        .map(|name| name.parse::<Kind>().expect("only names of Kind::ALL get through"))
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum DTypeArg {
    /// 32-bit float.
    F32,
    /// 16-bit float (IEEE half).
    F16,
}

impl From<DTypeArg> for DType {
    fn from(d: DTypeArg) -> Self {
        match d {
            DTypeArg::F32 => DType::F32,
            DTypeArg::F16 => DType::F16,
        }
    }
}

/// A key from the checkpoint as it may be printed: control characters (terminal escape
/// sequences, newlines) are shown escaped, never sent to the terminal.
fn printable(untrusted: &str) -> String {
    untrusted
        .chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn print_inventory(out: &mut dyn Write, cli: &Cli, inv: &Inventory) -> io::Result<()> {
    let aliases = inv.entries.iter().filter(|e| e.alias_of.is_some()).count();
    let kind = inv
        .kind
        .map_or("unknown (pass --kind when converting)".to_string(), |k| k.to_string());
    writeln!(out, "{}: {}", cli.input.display(), inv.format.describe())?;
    writeln!(out, "kind: {kind}")?;
    writeln!(
        out,
        "tensors: {} ({} stored, {aliases} aliases)",
        inv.entries.len(),
        inv.entries.len() - aliases
    )?;
    let keys: Vec<String> = inv.entries.iter().map(|e| printable(&e.key)).collect();
    let width = keys.iter().map(|k| k.chars().count()).max().unwrap_or(0);
    for (e, key) in inv.entries.iter().zip(&keys) {
        match &e.alias_of {
            Some(canonical) => writeln!(out, "  {key:width$}  = alias of {}", printable(canonical))?,
            None => writeln!(out, "  {key:width$}  {:<5} {:?}", e.dtype.safetensors_name(), e.shape)?,
        }
    }
    if let Some(opts) = &inv.opts {
        writeln!(out, "opts: {opts}")?;
    }
    if !inv.scalars.is_empty() {
        writeln!(out, "scalars: {}", serde_json::Value::Object(inv.scalars.clone()))?;
    }
    Ok(())
}

fn execute(cli: &Cli, out: &mut dyn Write) -> crate::Result<()> {
    let io_error = |e| ConvertError::io("writing to standard output", e);
    if cli.list {
        let inventory = inspect_file(&cli.input)?;
        return print_inventory(out, cli, &inventory).map_err(io_error);
    }
    let Some(output) = &cli.output else {
        // clap enforces OUTPUT without --list; keep a message rather than a panic regardless.
        return Err(ConvertError::Unsupported("missing OUTPUT argument".into()));
    };
    let options = ConvertOptions {
        kind: cli.kind,
        dtype: cli.dtype.map(DType::from),
    };
    let s = convert_file(&cli.input, output, &options)?;
    writeln!(
        out,
        "{} -> {}: {} ({}), {} tensors, {} aliases, {} bytes",
        cli.input.display(),
        output.display(),
        s.kind,
        s.format.describe(),
        s.tensors,
        s.aliases,
        s.bytes
    )
    .map_err(io_error)
}

/// Runs the command on `args` (the program name first), writing results to `out` and messages
/// to `err`; returns the exit status: 0 on success, 1 when the conversion failed, 2 for a usage
/// error (clap's convention; `--help` and `--version` exit 0).
pub fn run<I, T>(args: I, out: &mut dyn Write, err: &mut dyn Write) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let stream: &mut dyn Write = if e.use_stderr() { err } else { out };
            let _ = write!(stream, "{}", e.render());
            return u8::try_from(e.exit_code()).unwrap_or(2);
        }
    };
    match execute(&cli, out) {
        Ok(()) => 0,
        Err(e) => {
            let _ = writeln!(err, "error: {}: {e}", cli.input.display());
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                let _ = writeln!(err, "  caused by: {cause}");
                source = cause.source();
            }
            1
        }
    }
}
