//! What a checkpoint is, detected from its structure (recorded as the `kind` metadata entry so
//! that the loader can check it was handed the right file), and how each kind names its tensors
//! in the output.

pub use hyperstyle_core::Kind;

use hyperstyle_core::checkpoint::IMAGE_EXTENSIONS;

use crate::dtype::DType;
use crate::pickle::{Arena, Dict, Obj, Value};

/// The prefix of the MoCo v2 query encoder's keys inside its checkpoint's `state_dict` (saved
/// from a `DistributedDataParallel` wrapper, hence `module.`), as flattened by the converter.
const MOCO_QUERY_PREFIX: &str = "state_dict/module.encoder_q.";

/// Blocks per stage of torchvision's ResNet-34 (`BasicBlock`s).
const RESNET34_BLOCKS: [usize; 4] = [3, 4, 6, 3];

/// Detects the kind of a checkpoint from its top-level object, or `None` if it matches no rule.
pub fn detect(root: &Value, arena: &Arena) -> Option<Kind> {
    if matches!(root, Value::Tensor(_)) {
        return Some(Kind::Direction);
    }
    if is_styleclip_stats(root, arena) {
        return Some(Kind::StyleclipStats);
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
        if keys.contains(&"module.encoder_q.conv1.weight") {
            return Some(Kind::Moco);
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
    // CLIP: a state dict, or a TorchScript module tree holding the same names.
    let has_module_key = |key: &str| lookup(top, arena, key).is_some();
    if has_module_key("token_embedding.weight") && has_module_key("transformer.resblocks.0.attn.in_proj_weight") {
        return Some(Kind::Clip);
    }
    if is_resnet34(&has) {
        return Some(Kind::Resnet34);
    }
    if is_latents(top) {
        return Some(Kind::Latents);
    }
    None
}

/// Pre-extracted latents: a non-empty dict whose every key is an image file name (an ending of
/// [`IMAGE_EXTENSIONS`] in any case, after at least one character) and whose every value is a
/// tensor (`torch.save` of `{name: code}`).
fn is_latents(top: &Dict) -> bool {
    let image_name = |key: &str| {
        let lower = key.to_ascii_lowercase();
        IMAGE_EXTENSIONS
            .iter()
            .any(|ext| lower.len() > ext.len() && lower.ends_with(&ext.to_ascii_lowercase()))
    };
    !top.is_empty()
        && top
            .iter()
            .all(|(k, v)| k.as_str().is_some_and(image_name) && matches!(v, Value::Tensor(_)))
}

/// The output key of the tensor the converter flattened to `key` in a checkpoint of `kind`, or
/// `None` if the tensor is not written:
///
/// * `styleclip-stats`: `0/{i}` → `s_mean.{i}`, `1/{i}` → `s_std.{i}`;
/// * `moco`: `state_dict/module.encoder_q.{name}` → `{name}` (torchvision's ResNet-50 names),
///   except the projection head `fc.*`; everything else (the key encoder `encoder_k`, the
///   `queue`, the optimizer state) is dropped, as the MoCo loss loads it;
/// * every other kind keeps its keys.
pub fn output_key(kind: Kind, key: &str) -> Option<String> {
    match kind {
        Kind::StyleclipStats => Some(match key.split_once('/') {
            Some(("0", layer)) if is_index(layer) => format!("s_mean.{layer}"),
            Some(("1", layer)) if is_index(layer) => format!("s_std.{layer}"),
            _ => key.to_string(),
        }),
        Kind::Moco => key
            .strip_prefix(MOCO_QUERY_PREFIX)
            .filter(|name| !name.starts_with("fc."))
            .map(str::to_string),
        _ => Some(key.to_string()),
    }
}

/// The float type a kind's tensors are written in when no `--dtype` is given, if not their own:
/// StyleCLIP's statistics are stored as float64 arrays but used as float32 (`.float()`), so
/// they are rounded once here, exactly as that cast does.
pub fn default_cast(kind: Kind) -> Option<DType> {
    match kind {
        Kind::StyleclipStats => Some(DType::F32),
        _ => None,
    }
}

fn is_index(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// `[s_mean, s_std]`: a list of two equally long, non-empty lists of numpy arrays.
fn is_styleclip_stats(root: &Value, arena: &Arena) -> bool {
    let list = |v: &Value| match v {
        Value::List(id) => match arena.get(*id) {
            Obj::List(items) => Some(items.clone()),
            _ => None,
        },
        _ => None,
    };
    let is_array = |v: &Value| matches!(v, Value::Object(id) if matches!(arena.get(*id), Obj::Array(Some(_))));
    let Some(halves) = list(root) else { return false };
    let [mean, std] = &halves[..] else { return false };
    match (list(mean), list(std)) {
        (Some(mean), Some(std)) => !mean.is_empty() && mean.len() == std.len() && mean.iter().chain(&std).all(is_array),
        _ => false,
    }
}

/// The value under a state-dict key: the key itself, or (in a TorchScript module tree) its
/// dotted components one attribute at a time.
fn lookup<'a>(top: &'a Dict, arena: &'a Arena, key: &str) -> Option<&'a Value> {
    if let Some(v) = top.get(key) {
        return Some(v);
    }
    let (first, rest) = key.split_once('.')?;
    let inner = arena.dict_of(top.get(first)?)?;
    lookup(inner, arena, rest)
}

/// torchvision's ResNet-34: `conv1`, `bn1`, `fc` and exactly 3, 4, 6 and 3 basic blocks (two
/// convolutions each, no `conv3`, which a ResNet-50's bottleneck blocks have).
fn is_resnet34(has: &dyn Fn(&str) -> bool) -> bool {
    let stem = ["conv1.weight", "bn1.weight", "bn1.running_mean", "fc.weight"]
        .iter()
        .all(|k| has(k));
    stem && !has("layer1.0.conv3.weight")
        && RESNET34_BLOCKS.iter().enumerate().all(|(stage, &blocks)| {
            let layer = stage + 1;
            has(&format!("layer{layer}.{}.conv2.weight", blocks - 1))
                && !has(&format!("layer{layer}.{blocks}.conv1.weight"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_keys() {
        assert_eq!(output_key(Kind::StyleclipStats, "0/12").as_deref(), Some("s_mean.12"));
        assert_eq!(output_key(Kind::StyleclipStats, "1/0").as_deref(), Some("s_std.0"));
        assert_eq!(output_key(Kind::StyleclipStats, "2/0").as_deref(), Some("2/0"));
        assert_eq!(
            output_key(
                Kind::Moco,
                "state_dict/module.encoder_q.layer1.0.downsample.1.running_var"
            )
            .as_deref(),
            Some("layer1.0.downsample.1.running_var")
        );
        for dropped in [
            "state_dict/module.encoder_q.fc.0.weight",
            "state_dict/module.encoder_k.conv1.weight",
            "state_dict/module.queue",
            "optimizer/state/0/momentum_buffer",
        ] {
            assert_eq!(output_key(Kind::Moco, dropped), None, "{dropped}");
        }
        assert_eq!(
            output_key(Kind::Clip, "visual.conv1.weight").as_deref(),
            Some("visual.conv1.weight")
        );
        assert_eq!(default_cast(Kind::StyleclipStats), Some(DType::F32));
        assert_eq!(default_cast(Kind::Clip), None);
    }
}
