//! What a converted checkpoint says about itself, and where in it a network's keys are.
//!
//! `weights-convert` writes every upstream `.pt` file as safetensors with `__metadata__` entries
//! (the `kind` of checkpoint, its training `opts`, the `aliases` of tensors stored once under
//! several names) and keeps the checkpoint's nesting in the keys (`state_dict/decoder.…`,
//! `g_ema/…`). Loaders read both through this module, so that a file of the wrong kind is a
//! typed error naming the file, and a checkpoint saved with or without the `state_dict/` level
//! (or a bare generator) is found the same way.

use std::fmt;
use std::str::FromStr;

use crate::error::{parse_name, Error, Result};
use crate::weights::WeightStore;

/// Value of the `format` metadata entry of converted checkpoints.
pub const FORMAT_VERSION: &str = "hyperstyle-rs/1";
/// Metadata key: format version.
pub const FORMAT: &str = "format";
/// Metadata key: the checkpoint's [`Kind`].
pub const KIND: &str = "kind";
/// Metadata key: the checkpoint's training options (`opts`) as a JSON object.
pub const OPTS: &str = "opts";
/// Metadata key: alias map as a JSON object, full alias key → full canonical key.
pub const ALIASES: &str = "aliases";
/// Metadata key: the converted file's name.
pub const SOURCE_FILE: &str = "source_file";
/// Metadata key: SHA-256 of the converted file.
pub const SOURCE_SHA256: &str = "source_sha256";
/// Metadata key: other non-tensor top-level values as JSON.
pub const SCALARS: &str = "scalars";
/// Key of the one tensor of a file converted from a bare tensor (an edit direction `.pt`).
pub const BARE_TENSOR_KEY: &str = "tensor";
/// The level under which HyperStyle, W-encoder and ReStyle checkpoints keep their networks.
pub const STATE_DICT_PREFIX: &str = "state_dict/";

/// The file-name endings the original accepts as images (`IMG_EXTENSIONS`), case-sensitive: the
/// training data's image listing, and the keys of a [`Kind::Latents`] dict.
pub const IMAGE_EXTENSIONS: [&str; 11] = [
    ".jpg", ".JPG", ".jpeg", ".JPEG", ".png", ".PNG", ".ppm", ".PPM", ".bmp", ".BMP", ".tiff",
];

/// The kinds of checkpoint the project loads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A HyperStyle model: `state_dict` with `hypernet.*` keys (plus decoder, `latent_avg`, `opts`).
    Hyperstyle,
    /// A W-encoder (e4e-style) as HyperStyle uses it: `state_dict` with `encoder.linear.weight`.
    WEncoder,
    /// A ReStyle-e4e model: `state_dict` with `encoder.styles.*`.
    Restyle,
    /// A rosinality StyleGAN2 checkpoint: top-level `g_ema`.
    Stylegan2,
    /// An InterFaceGAN edit direction: the file is a bare tensor.
    Direction,
    /// GANSpace PCA data: a dict with `mean`, `comp` and `std`.
    Ganspace,
    /// torchvision's AlexNet state dict (`features.*`, `classifier.*`): the LPIPS backbone.
    Alexnet,
    /// The LPIPS linear layers (`lin{i}.model.1.weight`, the LPIPS release's `alex.pth`).
    Lpips,
    /// ArcFace IR-SE-50 (`input_layer.*`, `body.*`, `output_layer.*`, `model_ir_se50.pth`): the
    /// identity metric's face recognizer.
    Arcface,
    /// StyleCLIP's StyleSpace channel statistics (`S_mean_std`): `s_mean.{i}` and `s_std.{i}`,
    /// one f32 vector per StyleSpace layer.
    StyleclipStats,
    /// OpenAI CLIP (`ViT-B-32.pt`): the model's state-dict keys (`token_embedding.weight`,
    /// `transformer.resblocks.*`, `visual.*`, ...).
    Clip,
    /// The MoCo v2 ResNet-50 query encoder (`moco_v2_800ep_pretrain.pt`) under torchvision's
    /// ResNet-50 key names, without its projection head: the MoCo similarity loss's backbone.
    Moco,
    /// torchvision's ResNet-34 state dict (`resnet34-333f7ec4.pth`): the hypernetwork's
    /// initialisation.
    Resnet34,
    /// Pre-extracted latent codes for training on stored inversions: a dict from an inversion
    /// image's file name (`00001.png`) to its W vector `[512]` or W+ codes `[n_styles, 512]`.
    Latents,
}

impl Kind {
    /// Every kind, in command-line order.
    pub const ALL: [Kind; 14] = [
        Kind::Hyperstyle,
        Kind::WEncoder,
        Kind::Restyle,
        Kind::Stylegan2,
        Kind::Direction,
        Kind::Ganspace,
        Kind::Alexnet,
        Kind::Lpips,
        Kind::Arcface,
        Kind::StyleclipStats,
        Kind::Clip,
        Kind::Moco,
        Kind::Resnet34,
        Kind::Latents,
    ];

    /// The name used on the command line and in the `kind` metadata entry.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Hyperstyle => "hyperstyle",
            Kind::WEncoder => "w-encoder",
            Kind::Restyle => "restyle",
            Kind::Stylegan2 => "stylegan2",
            Kind::Direction => "direction",
            Kind::Ganspace => "ganspace",
            Kind::Alexnet => "alexnet",
            Kind::Lpips => "lpips",
            Kind::Arcface => "arcface",
            Kind::StyleclipStats => "styleclip-stats",
            Kind::Clip => "clip",
            Kind::Moco => "moco",
            Kind::Resnet34 => "resnet34",
            Kind::Latents => "latents",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Kind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        parse_name("checkpoint kind", s, &Kind::ALL, Kind::name)
    }
}

impl WeightStore {
    /// Opens a safetensors file and checks that it is a checkpoint of one of the `expected`
    /// kinds. Files without a `kind` entry (not written by `weights-convert`) are accepted: their
    /// keys are checked when a network loads from them.
    pub fn open_checkpoint(path: impl AsRef<std::path::Path>, expected: &[Kind]) -> Result<Self> {
        let store = Self::open(path)?;
        store.expect_kind(expected)?;
        Ok(store)
    }

    /// The `kind` the converter recorded, if any.
    pub fn kind(&self) -> Result<Option<Kind>> {
        self.metadata()
            .get(KIND)
            .map(|name| {
                name.parse().map_err(|_| Error::InvalidFile {
                    path: self.path().to_path_buf(),
                    reason: format!("metadata `{KIND}` names no known checkpoint kind: `{name}`"),
                })
            })
            .transpose()
    }

    /// Fails with [`Error::InvalidFile`] if the file records a kind that is not one of `expected`.
    pub fn expect_kind(&self, expected: &[Kind]) -> Result<()> {
        match self.kind()? {
            Some(kind) if !expected.contains(&kind) => {
                let names: Vec<&str> = expected.iter().map(|k| k.name()).collect();
                Err(Error::InvalidFile {
                    path: self.path().to_path_buf(),
                    reason: format!(
                        "is a converted `{kind}` checkpoint, expected a `{}` one",
                        names.join("` or `")
                    ),
                })
            }
            _ => Ok(()),
        }
    }

    /// The checkpoint's training options (`opts` metadata, a JSON object), or JSON `null` when
    /// the file has none. Malformed JSON is [`Error::InvalidFile`].
    pub fn opts(&self) -> Result<serde_json::Value> {
        match self.metadata().get(OPTS) {
            None => Ok(serde_json::Value::Null),
            Some(json) => serde_json::from_str(json).map_err(|e| Error::InvalidFile {
                path: self.path().to_path_buf(),
                reason: format!("metadata `{OPTS}` is not valid JSON: {e}"),
            }),
        }
    }

    /// The first of `candidates` under which `probe` exists (`"{candidate}{probe}"`).
    pub fn find_prefix<'p>(&self, candidates: &[&'p str], probe: &str) -> Option<&'p str> {
        candidates
            .iter()
            .copied()
            .find(|prefix| self.contains(&format!("{prefix}{probe}")))
    }

    /// The prefix of a network saved under `name` in a checkpoint's state dict: with the
    /// converter's `state_dict/` level (`state_dict/decoder.`) when `probe` (a key the network
    /// always has, relative to it) exists there, else without it (`decoder.`).
    pub fn state_dict_prefix(&self, name: &str, probe: &str) -> String {
        let nested = format!("{STATE_DICT_PREFIX}{name}");
        if self.contains(&format!("{nested}{probe}")) {
            nested
        } else {
            name.to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_round_trip() {
        for kind in Kind::ALL {
            assert_eq!(kind.name().parse::<Kind>().unwrap(), kind);
        }
        let err = "gan".parse::<Kind>().unwrap_err().to_string();
        assert!(err.contains("`gan`") && err.contains("w-encoder"), "{err}");
    }

    #[test]
    fn prefixes_are_probed_in_order() {
        let store = WeightStore::from_tensors([
            ("state_dict/decoder.conv1.conv.weight".to_string(), vec![1], vec![0.0]),
            ("encoder.linear.weight".to_string(), vec![1], vec![0.0]),
        ])
        .unwrap();
        assert_eq!(
            store.state_dict_prefix("decoder.", "conv1.conv.weight"),
            "state_dict/decoder."
        );
        assert_eq!(store.state_dict_prefix("encoder.", "linear.weight"), "encoder.");
        assert_eq!(
            store.find_prefix(&["g_ema/", "state_dict/decoder."], "conv1.conv.weight"),
            Some("state_dict/decoder.")
        );
        assert_eq!(store.find_prefix(&["g_ema/"], "conv1.conv.weight"), None);
        assert_eq!(store.opts().unwrap(), serde_json::Value::Null);
        assert_eq!(store.kind().unwrap(), None);
        store.expect_kind(&[Kind::Hyperstyle]).unwrap();
    }
}
