//! CLIP's text side on Burn: prompts → token ids → text features, as OpenAI's CLIP computes
//! them (the first half of text-driven edits such as StyleCLIP's global directions).
//!
//! * [`Tokenizer`]: OpenAI's byte-level BPE tokenizer (`clip.tokenize`), with its text cleaning
//!   ([`clean`]: the ftfy fixes, HTML unescaping, whitespace, lower case).
//! * [`TextTransformer`]: the text tower (token + position embeddings, causal residual attention
//!   blocks with QuickGELU, final LayerNorm, projection of the end-of-text token), loaded from a
//!   state dict with OpenAI's key names through [`hyperstyle_core::Weights`].
//!
//! ```no_run
//! use burn::backend::Flex;
//! use hyperstyle_clip::{TextTransformer, Tokenizer, CONTEXT_LENGTH};
//! use hyperstyle_core::WeightStore;
//! # fn main() -> Result<(), hyperstyle_clip::Error> {
//! let device = Default::default();
//! let tokenizer = Tokenizer::bundled()?;
//! // A CLIP checkpoint converted to safetensors (its keys as in OpenAI's state dict).
//! let weights = WeightStore::open("clip_vit_b_32.safetensors")?;
//! let text = TextTransformer::<Flex>::load_detected(&weights.root(), &device)?;
//! let tokens = tokenizer.tokenize(&["a face", "a face with a smile"], CONTEXT_LENGTH, false)?;
//! let features = text.encode(&tokens)?; // [2, 512]
//! # Ok(()) }
//! ```
//!
//! # The vocabulary
//!
//! The tokenizer needs OpenAI's merges file, `bpe_simple_vocab_16e6.txt.gz`. It is bundled
//! (feature `bundled-vocab`, on by default; [`Tokenizer::bundled`]): it is 1.3 MB, MIT-licensed
//! (its notice is in `vocab/LICENSE`), identical for every OpenAI CLIP model, and a text
//! encoder is useless without it, so asking every user to fetch it would only add a failure mode.
//! Bundling also lets the tests compare with CLIP's own tokenisation on the real vocabulary.
//! Without the feature, [`Tokenizer::open`] reads the file (gzip-compressed or plain) from a
//! path.
//!
//! # Weights
//!
//! [`TextTransformer::load`] takes OpenAI's state-dict keys (the text side of any OpenAI CLIP
//! checkpoint; `visual.*` and `logit_scale` are ignored), as safetensors through
//! [`hyperstyle_core::WeightStore`]. OpenAI distributes its models (`ViT-B-32.pt`, …) as
//! TorchScript archives in float16, which `weights-convert` does not read yet (it refuses
//! TorchScript archives); a state dict saved with `torch.save` converts as usual.
//!
//! # Fidelity
//!
//! Token ids equal those of OpenAI's `clip.tokenize` (with ftfy installed, as OpenAI's code
//! requires) on the test strings, except for mojibake repair (see [`clean`]). Features match
//! OpenAI's `encode_text` in float32 to the float32 noise floor (`crates/clip/tests`).

#![warn(missing_docs)]

pub mod clean;
pub mod text;
pub mod tokenizer;

pub use hyperstyle_core::{Error, Result};
pub use text::{TextConfig, TextTransformer};
pub use tokenizer::{TokenBatch, Tokenizer, CONTEXT_LENGTH, END_OF_TEXT, START_OF_TEXT};
