//! CLIP's byte-level BPE tokenizer.
//!
//! A prompt is [cleaned](crate::clean::clean) (ftfy fixes, HTML unescaping, whitespace collapsed,
//! lower-cased), split into pre-tokens by a regular expression (special tokens, English
//! contractions, runs of letters, single digits, runs of other non-space characters), each
//! pre-token's UTF-8 bytes mapped to printable characters ([`bytes_to_unicode`]) and merged by
//! the vocabulary's ranked byte-pair merges, the last symbol of a word carrying the end-of-word
//! mark `</w>`.
//!
//! The vocabulary is the merges file of OpenAI's CLIP (`bpe_simple_vocab_16e6.txt.gz`): a
//! header line, then one merge (`a b`) per line, best first. Only its first 48 894 merges are
//! used, which with the 256 byte symbols, their 256 end-of-word forms and the two special tokens
//! gives CLIP's 49 408 ids.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use regex::Regex;

use crate::clean::clean;
use crate::{Error, Result};

/// The start-of-text marker, the first id of every tokenised prompt.
pub const START_OF_TEXT: &str = "<|startoftext|>";
/// The end-of-text marker; its id is the largest, and the text tower reads its features.
pub const END_OF_TEXT: &str = "<|endoftext|>";
/// How many merges of the merges file CLIP uses (its vocabulary has 49 408 ids).
pub const MAX_MERGES: usize = 49152 - 256 - 2;
/// The context length of every CLIP model.
pub const CONTEXT_LENGTH: usize = 77;

/// The merges file of OpenAI's CLIP, bundled (MIT licence, see `vocab/LICENSE`).
#[cfg(feature = "bundled-vocab")]
const BUNDLED_VOCAB: &[u8] = include_bytes!("../vocab/bpe_simple_vocab_16e6.txt.gz");

/// GPT-2's reversible map from bytes to printable characters: the printable Latin-1 bytes
/// (`!`..=`~`, `¡`..=`¬`, `®`..=`ÿ`) map to themselves, the other 68 bytes, in increasing
/// order, to U+0100, U+0101, …
///
/// Returned in the order the vocabulary lists the byte symbols: printable bytes first.
pub fn bytes_to_unicode() -> Vec<(u8, char)> {
    let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xa1..=0xac | 0xae..=0xff);
    let mut table: Vec<(u8, char)> = (0..=255u8)
        .filter(|&b| printable(b))
        .map(|b| (b, char::from(b)))
        .collect();
    for (code, b) in (256u32..).zip((0..=255u8).filter(|&b| !printable(b))) {
        table.push((b, char::from_u32(code).expect("below U+0200")));
    }
    table
}

/// The pre-tokenisation pattern of CLIP. The reference matches it case-insensitively on
/// lower-cased text, which changes exactly two things, spelled out here: `ſ` (U+017F) matches
/// like `s`, and U+0345 (combining ypogegrammeni, which folds to the letter ι) is neither a
/// letter nor a non-letter for the `regex` module, so it matches nothing and is dropped.
fn pre_tokens() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(
            r"<\|[sſ]tartoftext\|>|<\|endoftext\|>|'[sſ]|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\s\p{L}\p{N}\x{345}]+",
        )
        .expect("valid pattern")
    })
}

/// A batch of tokenised prompts: `rows × context_length` ids, zero-padded, row-major.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenBatch {
    /// The ids, row-major.
    pub ids: Vec<u32>,
    /// Number of prompts.
    pub rows: usize,
    /// Ids per prompt.
    pub context_length: usize,
}

impl TokenBatch {
    /// The ids of prompt `i` (padding included).
    pub fn row(&self, i: usize) -> &[u32] {
        &self.ids[i * self.context_length..(i + 1) * self.context_length]
    }
}

/// CLIP's tokenizer: a vocabulary of byte-pair merges and the encoding rules of OpenAI's
/// `SimpleTokenizer`.
pub struct Tokenizer {
    byte_encoder: [char; 256],
    byte_decoder: HashMap<char, u8>,
    encoder: HashMap<String, u32>,
    decoder: Vec<String>,
    ranks: HashMap<(String, String), usize>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("vocab_size", &self.vocab_size())
            .finish()
    }
}

impl Tokenizer {
    /// The tokenizer of every OpenAI CLIP model, from the bundled merges file (decompressing and
    /// indexing it takes some tens of milliseconds: build it once).
    #[cfg(feature = "bundled-vocab")]
    pub fn bundled() -> Result<Self> {
        Self::from_bytes(BUNDLED_VOCAB, Path::new("<bundled vocab>"))
    }

    /// Reads a merges file, gzip-compressed (as OpenAI ships `bpe_simple_vocab_16e6.txt.gz`) or
    /// plain text.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::from_bytes(&bytes, path)
    }

    /// Parses a merges file held in memory (gzip-compressed or plain text); `path` names it in
    /// errors.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self> {
        let invalid = |reason: String| Error::InvalidFile {
            path: path.to_path_buf(),
            reason,
        };
        let decompressed;
        let bytes = if bytes.starts_with(&[0x1f, 0x8b]) {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(bytes)
                .read_to_end(&mut out)
                .map_err(|e| invalid(format!("not a valid gzip file: {e}")))?;
            decompressed = out;
            &decompressed[..]
        } else {
            bytes
        };
        let text = std::str::from_utf8(bytes).map_err(|e| invalid(format!("merges file is not UTF-8: {e}")))?;
        Self::from_merges(text, path)
    }

    /// Builds the tokenizer from the text of a merges file: a header line, then one merge of two
    /// symbols per line (at most [`MAX_MERGES`] are used, as CLIP does).
    pub fn from_merges(text: &str, path: &Path) -> Result<Self> {
        let invalid = |reason: String| Error::InvalidFile {
            path: PathBuf::from(path),
            reason,
        };
        let lines: Vec<&str> = text.split('\n').collect();
        let used = &lines[1.min(lines.len())..lines.len().min(MAX_MERGES + 1)];
        let mut merges = Vec::with_capacity(used.len());
        for (i, line) in used.iter().enumerate() {
            // A file's final newline leaves an empty last line.
            if line.is_empty() && i + 2 == lines.len() {
                continue;
            }
            let parts: Vec<&str> = line.split_whitespace().collect();
            let [a, b] = parts[..] else {
                return Err(invalid(format!(
                    "line {} is not a merge of two symbols: {:?}",
                    i + 2,
                    line.chars().take(80).collect::<String>()
                )));
            };
            merges.push((a.to_string(), b.to_string()));
        }
        if merges.is_empty() {
            return Err(invalid("no merges: not a CLIP merges file".into()));
        }

        let table = bytes_to_unicode();
        let mut byte_encoder = ['\0'; 256];
        for &(b, c) in &table {
            byte_encoder[b as usize] = c;
        }
        let byte_decoder = table.iter().map(|&(b, c)| (c, b)).collect();
        let mut vocab: Vec<String> = table.iter().map(|&(_, c)| c.to_string()).collect();
        vocab.extend(table.iter().map(|&(_, c)| format!("{c}</w>")));
        vocab.extend(merges.iter().map(|(a, b)| format!("{a}{b}")));
        vocab.push(START_OF_TEXT.into());
        vocab.push(END_OF_TEXT.into());
        // As in a Python dict built from the list: a repeated entry keeps its last id.
        let encoder = vocab.iter().enumerate().map(|(i, s)| (s.clone(), i as u32)).collect();
        let ranks = merges.into_iter().enumerate().map(|(i, m)| (m, i)).collect();
        Ok(Self {
            byte_encoder,
            byte_decoder,
            encoder,
            decoder: vocab,
            ranks,
        })
    }

    /// Number of ids (49 408 for CLIP's vocabulary).
    pub fn vocab_size(&self) -> usize {
        self.decoder.len()
    }

    /// The id of [`START_OF_TEXT`].
    pub fn start_of_text(&self) -> u32 {
        self.decoder.len() as u32 - 2
    }

    /// The id of [`END_OF_TEXT`] (the largest id).
    pub fn end_of_text(&self) -> u32 {
        self.decoder.len() as u32 - 1
    }

    /// The BPE symbols of one pre-token (already mapped to byte characters).
    fn bpe(&self, token: &str) -> Vec<String> {
        if token == START_OF_TEXT || token == END_OF_TEXT {
            return vec![token.to_string()];
        }
        let chars: Vec<char> = token.chars().collect();
        let Some((last, init)) = chars.split_last() else {
            return Vec::new();
        };
        let mut word: Vec<String> = init.iter().map(|c| c.to_string()).collect();
        word.push(format!("{last}</w>"));
        while word.len() > 1 {
            // The adjacent pair with the best (lowest) rank; merge all its occurrences.
            let best = word
                .windows(2)
                .filter_map(|w| self.ranks.get(&(w[0].clone(), w[1].clone())).map(|&r| (r, w)))
                .min_by_key(|&(r, _)| r);
            let Some((_, pair)) = best else { break };
            let (first, second) = (pair[0].clone(), pair[1].clone());
            let mut merged = Vec::with_capacity(word.len());
            let mut i = 0;
            while i < word.len() {
                if i + 1 < word.len() && word[i] == first && word[i + 1] == second {
                    merged.push(format!("{first}{second}"));
                    i += 2;
                } else {
                    merged.push(std::mem::take(&mut word[i]));
                    i += 1;
                }
            }
            word = merged;
        }
        word
    }

    /// The ids of a prompt, without start / end markers (OpenAI's `SimpleTokenizer.encode`).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let text = clean(text);
        let mut ids = Vec::new();
        for m in pre_tokens().find_iter(&text) {
            let token: String = m.as_str().bytes().map(|b| self.byte_encoder[b as usize]).collect();
            for symbol in self.bpe(&token) {
                let id = self.encoder.get(&symbol).ok_or_else(|| {
                    Error::InvalidConfig(format!("the vocabulary has no entry for BPE symbol {symbol:?}"))
                })?;
                ids.push(*id);
            }
        }
        Ok(ids)
    }

    /// The text of a list of ids: symbols joined, bytes decoded as UTF-8 (invalid sequences
    /// replaced by U+FFFD), each end-of-word mark replaced by a space.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        let mut bytes = Vec::new();
        for &id in ids {
            let symbol = self.decoder.get(id as usize).ok_or_else(|| {
                Error::InvalidInput(format!(
                    "token id {id} is not below the vocabulary size {}",
                    self.vocab_size()
                ))
            })?;
            // Every vocabulary character is a byte character (the special tokens and `</w>` are
            // printable ASCII).
            bytes.extend(symbol.chars().filter_map(|c| self.byte_decoder.get(&c)));
        }
        Ok(String::from_utf8_lossy(&bytes).replace("</w>", " "))
    }

    /// CLIP's `tokenize`: each prompt as [`START_OF_TEXT`], its ids, [`END_OF_TEXT`], zero-padded
    /// to `context_length` ([`CONTEXT_LENGTH`] for every CLIP model).
    ///
    /// A prompt with more ids than fit is an [`Error::InvalidInput`] naming it, unless
    /// `truncate` is set: then it keeps its first `context_length` ids, the last replaced by
    /// [`END_OF_TEXT`].
    pub fn tokenize<S: AsRef<str>>(&self, texts: &[S], context_length: usize, truncate: bool) -> Result<TokenBatch> {
        if context_length == 0 {
            return Err(Error::InvalidInput("the context length must be at least 1".into()));
        }
        let mut ids = vec![0u32; texts.len() * context_length];
        for (i, text) in texts.iter().enumerate() {
            let text = text.as_ref();
            let mut tokens = Vec::with_capacity(context_length);
            tokens.push(self.start_of_text());
            tokens.extend(self.encode(text)?);
            tokens.push(self.end_of_text());
            if tokens.len() > context_length {
                if !truncate {
                    return Err(Error::InvalidInput(format!(
                        "prompt {i} ({:?}) is {} tokens long with its start and end markers, more than the context length {context_length}",
                        text.chars().take(100).collect::<String>(),
                        tokens.len()
                    )));
                }
                tokens.truncate(context_length);
                tokens[context_length - 1] = self.end_of_text();
            }
            ids[i * context_length..i * context_length + tokens.len()].copy_from_slice(&tokens);
        }
        Ok(TokenBatch {
            ids,
            rows: texts.len(),
            context_length,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_table() {
        let table = bytes_to_unicode();
        assert_eq!(table.len(), 256);
        assert_eq!(table[0], (b'!', '!'));
        assert_eq!(table[188], (0, '\u{100}'));
        assert_eq!(table[255], (0xad, '\u{143}'));
        assert_eq!(table.iter().find(|(b, _)| *b == b' '), Some(&(b' ', '\u{120}')));
    }

    #[test]
    fn small_vocabulary() {
        let tok = Tokenizer::from_merges("#version: 0.2\nh i</w>\nh e\nhe l\n", Path::new("test")).unwrap();
        assert_eq!(tok.vocab_size(), 512 + 3 + 2);
        let ids = tok.encode("Hi hello").unwrap();
        assert_eq!(ids, [512, 514, tok.encoder["l"], tok.encoder["o</w>"]]);
        assert_eq!(tok.decode(&ids).unwrap(), "hi hello ");
    }
}
