//! What a checkpoint is, detected from its structure (recorded as the `kind` metadata entry so
//! that the loader can check it was handed the right file).

use std::fmt;
use std::str::FromStr;

use crate::pickle::{Arena, Value};

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
}

impl Kind {
    /// Every kind, in `--kind` order.
    pub const ALL: [Kind; 6] = [
        Kind::Hyperstyle,
        Kind::WEncoder,
        Kind::Restyle,
        Kind::Stylegan2,
        Kind::Direction,
        Kind::Ganspace,
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
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Kind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Kind::ALL.into_iter().find(|k| k.name() == s).ok_or_else(|| {
            let names: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
            format!("unknown kind `{s}` (expected one of: {})", names.join(", "))
        })
    }
}

/// Detects the kind of a checkpoint from its top-level object, or `None` if it matches no rule.
pub fn detect(root: &Value, arena: &Arena) -> Option<Kind> {
    if matches!(root, Value::Tensor(_)) {
        return Some(Kind::Direction);
    }
    let top = arena.dict_of(root)?;
    if let Some(state_dict) = top.get("state_dict").and_then(|v| arena.dict_of(v)) {
        let keys: Vec<&str> = state_dict.iter().filter_map(|(k, _)| k.as_str()).collect();
        if keys.iter().any(|k| k.starts_with("hypernet.")) {
            return Some(Kind::Hyperstyle);
        }
        if keys.contains(&"encoder.linear.weight") {
            return Some(Kind::WEncoder);
        }
        if keys.iter().any(|k| k.starts_with("encoder.styles.")) {
            return Some(Kind::Restyle);
        }
    }
    if top.get("g_ema").is_some() {
        return Some(Kind::Stylegan2);
    }
    if ["mean", "comp", "std"].iter().all(|k| top.get(k).is_some()) {
        return Some(Kind::Ganspace);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for kind in Kind::ALL {
            assert_eq!(kind.name().parse::<Kind>(), Ok(kind));
        }
        assert!("gan".parse::<Kind>().is_err());
    }
}
