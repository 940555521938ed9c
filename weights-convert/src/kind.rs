//! What a checkpoint is, detected from its structure (recorded as the `kind` metadata entry so
//! that the loader can check it was handed the right file).

pub use hyperstyle_core::Kind;

use crate::pickle::{Arena, Value};

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
    // Plain state dicts of the evaluation metrics' networks.
    let has = |key: &str| top.get(key).is_some();
    if has("features.0.weight") && has("features.10.weight") {
        return Some(Kind::Alexnet);
    }
    if has("lin0.model.1.weight") {
        return Some(Kind::Lpips);
    }
    if has("input_layer.0.weight") && has("output_layer.3.weight") {
        return Some(Kind::Arcface);
    }
    None
}
