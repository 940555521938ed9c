//! Which generator layers the hypernetwork tunes, and with which block (REFERENCE §6.2–6.3).

use crate::error::{Error, Result};

/// The generator layers whose offsets come from the one shared hypernet: the 512→512 3×3 convs
/// at resolutions 4–64.
pub const SHARED_LAYERS: [usize; 9] = [0, 2, 3, 5, 6, 8, 9, 11, 12];

/// The default `layers_to_tune`: every non-ToRGB layer of the 1024 generator.
pub const DEFAULT_LAYERS_TO_TUNE: &str = "0,2,3,5,6,8,9,11,12,14,15,17,18,20,21,23,24";

/// The hypernetwork variants a checkpoint's `encoder_type` may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HypernetType {
    /// `SharedWeightsHyperNetResNet`: the released models.
    SharedWeightsHyperNetResNet,
}

impl HypernetType {
    /// Parses the checkpoint's `encoder_type`.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "SharedWeightsHyperNetResNet" => Ok(Self::SharedWeightsHyperNetResNet),
            other => Err(Error::UnsupportedEncoderType(other.to_string())),
        }
    }
}

/// Configuration of a hypernetwork.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HypernetConfig {
    /// Output resolution of the generator it serves (1024, 512, 256).
    pub output_size: usize,
    /// Generator layer indices that receive offsets (sorted, unique, < `n_outputs`).
    pub layers_to_tune: Vec<usize>,
    /// Network variant.
    pub kind: HypernetType,
}

impl HypernetConfig {
    /// A configuration from the checkpoint's `opts` values. `layers_to_tune` is upstream's
    /// comma-separated string; empty means every layer. Indices beyond the generator's layer
    /// count are ignored, as upstream does for the 512 models.
    pub fn new(output_size: usize, layers_to_tune: &str, encoder_type: &str) -> Result<Self> {
        let n_outputs = n_outputs(output_size)?;
        let mut layers: Vec<usize> = if layers_to_tune.trim().is_empty() {
            (0..n_outputs).collect()
        } else {
            layers_to_tune
                .split(',')
                .map(|s| {
                    s.trim()
                        .parse::<usize>()
                        .map_err(|_| Error::InvalidConfig(format!("layers_to_tune: `{s}` is not a layer index")))
                })
                .collect::<Result<_>>()?
        };
        layers.retain(|&l| l < n_outputs);
        layers.sort_unstable();
        layers.dedup();
        Ok(Self {
            output_size,
            layers_to_tune: layers,
            kind: HypernetType::parse(encoder_type)?,
        })
    }

    /// The default configuration for a generator size.
    pub fn default_for(output_size: usize) -> Result<Self> {
        Self::new(output_size, DEFAULT_LAYERS_TO_TUNE, "SharedWeightsHyperNetResNet")
    }

    /// Number of generator layers = length of the offset list (26 / 23 / 20).
    pub fn n_outputs(&self) -> usize {
        n_outputs(self.output_size).expect("validated in new")
    }
}

fn n_outputs(output_size: usize) -> Result<usize> {
    match output_size {
        1024 => Ok(26),
        512 => Ok(23),
        256 => Ok(20),
        other => Err(Error::InvalidConfig(format!(
            "no hypernetwork layout for a {other} generator (1024, 512 or 256)"
        ))),
    }
}

/// `[k, in, out]` of generator layer `j` (upstream `PARAMETERS`; the 512/256 generators use its
/// prefix). ToRGB layers are `j ≡ 1 (mod 3)`.
pub fn layer_shape(j: usize) -> (usize, usize, usize) {
    const CHANNELS: [usize; 9] = [512, 512, 512, 512, 512, 256, 128, 64, 32]; // at 4, 8, …, 1024
    let (block, pos) = (j.saturating_sub(1) / 3, j % 3);
    match (j, pos) {
        (0, _) => (3, 512, 512),
        (_, 1) => (1, CHANNELS[j / 3], 3),
        (_, 2) => (3, CHANNELS[block], CHANNELS[block + 1]),
        _ => (3, CHANNELS[j / 3], CHANNELS[j / 3]),
    }
}

/// Whether layer `j` is a ToRGB.
pub fn is_to_rgb(j: usize) -> bool {
    j % 3 == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_shapes_match_reference_table() {
        assert_eq!(layer_shape(0), (3, 512, 512));
        assert_eq!(layer_shape(1), (1, 512, 3));
        assert_eq!(layer_shape(2), (3, 512, 512));
        assert_eq!(layer_shape(12), (3, 512, 512));
        assert_eq!(layer_shape(13), (1, 512, 3));
        assert_eq!(layer_shape(14), (3, 512, 256));
        assert_eq!(layer_shape(15), (3, 256, 256));
        assert_eq!(layer_shape(16), (1, 256, 3));
        assert_eq!(layer_shape(17), (3, 256, 128));
        assert_eq!(layer_shape(23), (3, 64, 32));
        assert_eq!(layer_shape(24), (3, 32, 32));
        assert_eq!(layer_shape(25), (1, 32, 3));
    }

    #[test]
    fn layers_to_tune_parsing() {
        let c = HypernetConfig::new(512, DEFAULT_LAYERS_TO_TUNE, "SharedWeightsHyperNetResNet").unwrap();
        assert_eq!(c.layers_to_tune, [0, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21]);
        assert_eq!(
            HypernetConfig::new(256, "", "SharedWeightsHyperNetResNet")
                .unwrap()
                .layers_to_tune
                .len(),
            20
        );
        assert!(matches!(
            HypernetConfig::new(1024, "0,x", "SharedWeightsHyperNetResNet"),
            Err(Error::InvalidConfig(_))
        ));
        assert!(matches!(
            HypernetConfig::new(1024, "", "Separable"),
            Err(Error::UnsupportedEncoderType(_))
        ));
    }
}
