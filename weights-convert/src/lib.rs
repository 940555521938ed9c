//! Converts PyTorch `.pt` checkpoints into safetensors files, without Python and without ever
//! executing code from the checkpoint.
//!
//! Both `torch.save` formats are read: the zip archive (PyTorch ≥ 1.6) and the legacy pickle
//! stream; so are TorchScript archives (`torch.jit.save`: the module tree's tensors, never its
//! code) and plain pickles of numpy float arrays (`pickle.dump`). The pickle is interpreted by a restricted unpickler ([`pickle`]) that knows a fixed
//! allow-list of globals ([`allowlist`]); anything else (`posix.system`, ...) is refused.
//!
//! The output keeps the checkpoint's nesting in its keys (`state_dict/decoder.style.1.weight`,
//! `g_ema/conv1.conv.weight`, `latent_avg`; a bare tensor file stores `tensor`), stores tensors
//! shared under several names once (the other names are listed in the `aliases` metadata entry,
//! alias → canonical), and records the checkpoint's kind, options and provenance in
//! `__metadata__` (see [`metadata`]).
//!
//! ```no_run
//! use std::path::Path;
//! use weights_convert::{convert_file, ConvertOptions};
//!
//! let summary = convert_file(
//!     Path::new("hyperstyle_ffhq.pt"),
//!     Path::new("hyperstyle_ffhq.safetensors"),
//!     &ConvertOptions::default(),
//! )?;
//! println!("{} tensors, {} aliases", summary.tensors, summary.aliases);
//! # Ok::<(), weights_convert::ConvertError>(())
//! ```

#![warn(missing_docs)]

pub mod allowlist;
pub mod cli;
mod convert;
pub mod dtype;
pub mod error;
mod json;
pub mod kind;
mod materialize;
pub mod metadata;
pub mod pickle;
pub mod plan;
pub mod source;
pub mod tensor;
pub mod torch;
pub mod writer;
pub mod zip;

pub use convert::{
    convert_bytes, convert_file, inspect_bytes, inspect_file, ConvertOptions, ConvertSummary, Inventory, InventoryEntry,
};
pub use dtype::DType;
pub use error::{ConvertError, Result};
pub use kind::Kind;
pub use plan::BARE_TENSOR_KEY;
pub use torch::{read_checkpoint, Checkpoint, Format};
