//! Which generator layers the hypernetwork tunes, and with which block
//! (docs/ARCHITECTURE.md §6.2).

use std::fmt;
use std::str::FromStr;

use hyperstyle_core::{parse_name, Error, Result};
use hyperstyle_stylegan2::{GeneratorConfig, LayerSpec};
use serde::{Deserialize, Serialize};

/// The generator layers whose offsets come from the one shared hypernet: the 512→512 3×3 convs
/// at resolutions 4–64.
pub const SHARED_LAYERS: [usize; 9] = [0, 2, 3, 5, 6, 8, 9, 11, 12];

/// The default `layers_to_tune`: every non-ToRGB layer of the 1024 generator.
pub const DEFAULT_LAYERS_TO_TUNE: [usize; 17] = [0, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 23, 24];

/// The hypernetwork variants a checkpoint's `encoder_type` may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum HypernetType {
    /// `SharedWeightsHyperNetResNet`: the released models.
    #[default]
    SharedWeightsHyperNetResNet,
}

impl HypernetType {
    /// Every supported variant.
    pub const ALL: [HypernetType; 1] = [HypernetType::SharedWeightsHyperNetResNet];

    /// The upstream class name (the checkpoint's `encoder_type`).
    pub fn name(self) -> &'static str {
        match self {
            HypernetType::SharedWeightsHyperNetResNet => "SharedWeightsHyperNetResNet",
        }
    }
}

impl fmt::Display for HypernetType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for HypernetType {
    type Err = Error;

    /// Parses the checkpoint's `encoder_type`; other variants (the separable ablation) are
    /// [`Error::Unknown`].
    fn from_str(name: &str) -> Result<Self> {
        parse_name("hypernetwork type", name, &Self::ALL, Self::name)
    }
}

/// The generator layers that receive offsets: upstream's `layers_to_tune` option.
///
/// Parsed from and printed as upstream's comma-separated string (`"0,2,3,5"`; empty means every
/// layer). Indices beyond the generator's layer count are ignored, as upstream does for the
/// 512 and 256 models, which keep the 1024 default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum LayersToTune {
    /// Every modulated layer (an empty `layers_to_tune`).
    All,
    /// These layer indices, sorted and without repeats.
    Only(Vec<usize>),
}

impl Default for LayersToTune {
    fn default() -> Self {
        LayersToTune::Only(DEFAULT_LAYERS_TO_TUNE.to_vec())
    }
}

impl LayersToTune {
    /// The given indices, sorted and deduplicated.
    pub fn only(layers: impl IntoIterator<Item = usize>) -> Self {
        let mut layers: Vec<usize> = layers.into_iter().collect();
        layers.sort_unstable();
        layers.dedup();
        LayersToTune::Only(layers)
    }

    /// The tuned indices of a generator with `n_layers` modulated layers.
    pub fn resolve(&self, n_layers: usize) -> Vec<usize> {
        match self {
            LayersToTune::All => (0..n_layers).collect(),
            LayersToTune::Only(layers) => layers.iter().copied().filter(|&l| l < n_layers).collect(),
        }
    }
}

impl FromStr for LayersToTune {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        if s.trim().is_empty() {
            return Ok(LayersToTune::All);
        }
        let layers = s
            .split(',')
            .map(|l| {
                l.trim()
                    .parse::<usize>()
                    .map_err(|_| Error::InvalidConfig(format!("layers_to_tune: `{l}` is not a layer index")))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self::only(layers))
    }
}

impl fmt::Display for LayersToTune {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayersToTune::All => Ok(()),
            LayersToTune::Only(layers) => {
                let names: Vec<String> = layers.iter().map(usize::to_string).collect();
                f.write_str(&names.join(","))
            }
        }
    }
}

impl TryFrom<String> for LayersToTune {
    type Error = Error;

    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<LayersToTune> for String {
    fn from(layers: LayersToTune) -> String {
        layers.to_string()
    }
}

/// Configuration of a hypernetwork: the generator it serves, the layers it tunes and its variant.
#[derive(Debug, Clone, PartialEq)]
pub struct HypernetConfig {
    /// The generator whose layer table the offsets follow.
    pub generator: GeneratorConfig,
    /// Generator layers that receive offsets.
    pub layers_to_tune: LayersToTune,
    /// Network variant.
    pub kind: HypernetType,
}

impl HypernetConfig {
    /// The released models' configuration for `generator`: the default layers, the
    /// shared-weights variant.
    pub fn new(generator: GeneratorConfig) -> Self {
        Self {
            generator,
            layers_to_tune: LayersToTune::default(),
            kind: HypernetType::default(),
        }
    }

    /// Tunes `layers_to_tune` instead of the default layers.
    pub fn with_layers_to_tune(mut self, layers_to_tune: LayersToTune) -> Self {
        self.layers_to_tune = layers_to_tune;
        self
    }

    /// Another network variant.
    pub fn with_kind(mut self, kind: HypernetType) -> Self {
        self.kind = kind;
        self
    }

    /// Number of generator layers = length of the offset list (26 / 23 / 20).
    pub fn n_outputs(&self) -> usize {
        self.generator.num_weight_layers()
    }

    /// The tuned layers of the generator's layer table, in layer order.
    pub fn tuned_layers(&self) -> Vec<LayerSpec> {
        let layers = self.generator.layers();
        self.layers_to_tune
            .resolve(layers.len())
            .into_iter()
            .map(|j| layers[j])
            .collect()
    }

    /// Checks that the generator is valid and that every tuned shared layer is a 512→512 3×3
    /// conv, the only kernel the shared hypernet makes.
    pub fn validate(&self) -> Result<()> {
        self.generator.validate()?;
        for layer in self.tuned_layers() {
            if is_shared(&layer) && layer.weight_shape() != [512, 512, 3, 3] {
                return Err(Error::InvalidConfig(format!(
                    "layer {} is served by the shared hypernet, which makes [512, 512, 3, 3] offsets, but it is {:?}",
                    layer.index,
                    layer.weight_shape()
                )));
            }
        }
        Ok(())
    }
}

/// Whether `layer` gets its offsets from the shared hypernet.
pub fn is_shared(layer: &LayerSpec) -> bool {
    SHARED_LAYERS.contains(&layer.index)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_to_tune_parsing() {
        let c = HypernetConfig::new(GeneratorConfig::new(512));
        let tuned: Vec<usize> = c.tuned_layers().iter().map(|l| l.index).collect();
        assert_eq!(tuned, [0, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21]);
        let all = HypernetConfig::new(GeneratorConfig::new(256)).with_layers_to_tune("".parse().unwrap());
        assert_eq!(all.tuned_layers().len(), 20);
        assert_eq!(
            " 3, 1,3 ".parse::<LayersToTune>().unwrap(),
            LayersToTune::Only(vec![1, 3])
        );
        assert_eq!(
            LayersToTune::default().to_string(),
            "0,2,3,5,6,8,9,11,12,14,15,17,18,20,21,23,24"
        );
        assert_eq!(LayersToTune::All.to_string(), "");
        assert!(matches!("0,x".parse::<LayersToTune>(), Err(Error::InvalidConfig(_))));
        assert!(matches!(
            "Separable".parse::<HypernetType>(),
            Err(Error::Unknown { .. })
        ));
        assert_eq!(
            "SharedWeightsHyperNetResNet".parse::<HypernetType>().unwrap(),
            HypernetType::SharedWeightsHyperNetResNet
        );
    }

    /// Layer shapes come from the generator's table; spot checks of the 1024 generator.
    #[test]
    fn tuned_layers_follow_the_generator_table() {
        let c = HypernetConfig::new(GeneratorConfig::ffhq_1024()).with_layers_to_tune(LayersToTune::All);
        let layers = c.tuned_layers();
        let shape = |j: usize| (layers[j].kernel, layers[j].in_channels, layers[j].out_channels);
        assert_eq!(shape(0), (3, 512, 512));
        assert_eq!(shape(1), (1, 512, 3));
        assert_eq!(shape(14), (3, 512, 256));
        assert_eq!(shape(16), (1, 256, 3));
        assert_eq!(shape(23), (3, 64, 32));
        assert_eq!(shape(25), (1, 32, 3));
        c.validate().unwrap();
        let mut narrow = GeneratorConfig::ffhq_1024();
        narrow.channel_multiplier = 1;
        let err = HypernetConfig::new(narrow).validate().unwrap_err();
        assert!(matches!(err, Error::InvalidConfig(_)), "{err}");
    }

    #[test]
    fn configs_serialise_as_upstream_strings() {
        let json = serde_json::to_string(&LayersToTune::only([5, 0])).unwrap();
        assert_eq!(json, "\"0,5\"");
        assert_eq!(
            serde_json::from_str::<LayersToTune>(&json).unwrap(),
            LayersToTune::only([0, 5])
        );
        assert_eq!(
            serde_json::to_string(&HypernetType::SharedWeightsHyperNetResNet).unwrap(),
            "\"SharedWeightsHyperNetResNet\""
        );
    }
}
