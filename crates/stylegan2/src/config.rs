//! Generator configuration and the layer table that weight offsets are indexed by.

use serde::{Deserialize, Serialize};

use hyperstyle_core::{Error, Result};

/// Architecture of a rosinality StyleGAN2 generator (`Generator(size, style_dim, n_mlp,
/// channel_multiplier, blur_kernel, lr_mlp)` upstream).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GeneratorConfig {
    /// Output resolution: a power of two ≥ 8.
    pub size: usize,
    /// Width of z, w and every style vector.
    pub style_dim: usize,
    /// Number of equalized linear layers in the mapping network.
    pub n_mlp: usize,
    /// Channel multiplier (2 for config-f).
    pub channel_multiplier: usize,
    /// 1-D FIR taps of the up-sampling filter, used when a checkpoint carries no kernel buffers.
    pub blur_kernel: Vec<f32>,
    /// Learning-rate multiplier of the mapping network (its weights are stored divided by it).
    pub lr_mlp: f32,
}

impl GeneratorConfig {
    /// A config-f generator of the given size with the upstream defaults.
    pub fn new(size: usize) -> Self {
        Self {
            size,
            style_dim: 512,
            n_mlp: 8,
            channel_multiplier: 2,
            blur_kernel: vec![1.0, 3.0, 3.0, 1.0],
            lr_mlp: 0.01,
        }
    }

    /// FFHQ faces, 1024×1024.
    pub fn ffhq_1024() -> Self {
        Self::new(1024)
    }

    /// Stanford Cars, 512×512 (content in rows 64..448).
    pub fn cars_512() -> Self {
        Self::new(512)
    }

    /// AFHQ wild animals, 512×512.
    pub fn afhq_wild_512() -> Self {
        Self::new(512)
    }

    /// Checks that the numbers describe a generator.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidConfig(m));
        if self.size < 8 || !self.size.is_power_of_two() {
            return bad(format!("size must be a power of two >= 8, got {}", self.size));
        }
        if self.style_dim == 0 || self.n_mlp == 0 || self.channel_multiplier == 0 {
            return bad("style_dim, n_mlp and channel_multiplier must be positive".into());
        }
        if self.channels(self.size) == 0 {
            return bad(format!(
                "channel_multiplier {} leaves no channels at {}",
                self.channel_multiplier, self.size
            ));
        }
        if self.blur_kernel.is_empty() || self.blur_kernel.iter().sum::<f32>() == 0.0 {
            return bad("blur_kernel must have a non-zero sum".into());
        }
        if self.lr_mlp.is_nan() || self.lr_mlp <= 0.0 {
            return bad(format!("lr_mlp must be positive, got {}", self.lr_mlp));
        }
        Ok(())
    }

    /// `log2(size)`.
    pub fn log_size(&self) -> usize {
        self.size.trailing_zeros() as usize
    }

    /// Rows of a W+ code: `2·log2(size) − 2` (18 at 1024, 16 at 512, 14 at 256).
    pub fn n_latent(&self) -> usize {
        (2 * self.log_size()).saturating_sub(2)
    }

    /// Number of noise inputs: `2·(log2(size) − 2) + 1`.
    pub fn num_noise(&self) -> usize {
        self.log_size().saturating_sub(2) * 2 + 1
    }

    /// Number of modulated layers = length of a weight-offset list (26 / 23 / 20).
    pub fn num_weight_layers(&self) -> usize {
        3 * self.log_size().saturating_sub(2) + 2
    }

    /// Feature channels at resolution `res` (512 up to 32, then `16384·cm / res`).
    pub fn channels(&self, res: usize) -> usize {
        (16384 * self.channel_multiplier / res).min(512)
    }

    /// Side of noise input `i` (`noises.noise_i`).
    pub fn noise_size(&self, i: usize) -> usize {
        1 << ((i + 5) / 2)
    }

    /// The modulated layers in weight-offset order: the one layer table of the workspace
    /// (docs/ARCHITECTURE.md §3.6). The generator is built from it and the hypernetwork sizes
    /// its blocks by it.
    pub fn layers(&self) -> Vec<LayerSpec> {
        let c4 = self.channels(4);
        let mut layers = vec![
            LayerSpec {
                index: 0,
                kind: LayerKind::Conv,
                in_channels: c4,
                out_channels: c4,
                kernel: 3,
                latent_row: 0,
                resolution: 4,
            },
            LayerSpec {
                index: 1,
                kind: LayerKind::ToRgb,
                in_channels: c4,
                out_channels: 3,
                kernel: 1,
                latent_row: 1,
                resolution: 4,
            },
        ];
        for block in 0..self.log_size().saturating_sub(2) {
            let res = 8 << block;
            let (cin, cout) = (self.channels(res / 2), self.channels(res));
            let (t, row) = (2 + 3 * block, 2 * block + 1);
            layers.push(LayerSpec {
                index: t,
                kind: LayerKind::ConvUp,
                in_channels: cin,
                out_channels: cout,
                kernel: 3,
                latent_row: row,
                resolution: res,
            });
            layers.push(LayerSpec {
                index: t + 1,
                kind: LayerKind::Conv,
                in_channels: cout,
                out_channels: cout,
                kernel: 3,
                latent_row: row + 1,
                resolution: res,
            });
            layers.push(LayerSpec {
                index: t + 2,
                kind: LayerKind::ToRgb,
                in_channels: cout,
                out_channels: 3,
                kernel: 1,
                latent_row: row + 2,
                resolution: res,
            });
        }
        layers
    }
}

/// What a modulated layer does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerKind {
    /// 3×3 styled conv at the same resolution.
    Conv,
    /// 3×3 styled conv that doubles the resolution (transposed conv + FIR blur).
    ConvUp,
    /// 1×1 modulated conv to RGB without demodulation.
    ToRgb,
}

/// One modulated layer of the generator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerSpec {
    /// Position in a weight-offset list.
    pub index: usize,
    /// Kind of layer.
    pub kind: LayerKind,
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Kernel size.
    pub kernel: usize,
    /// W+ row that styles it.
    pub latent_row: usize,
    /// Output resolution.
    pub resolution: usize,
}

impl LayerSpec {
    /// Shape of this layer's stored weight without the leading 1: `[out, in, k, k]`.
    pub fn weight_shape(&self) -> [usize; 4] {
        [self.out_channels, self.in_channels, self.kernel, self.kernel]
    }

    /// Whether this is a ToRGB layer (1×1, not demodulated).
    pub fn is_to_rgb(&self) -> bool {
        self.kind == LayerKind::ToRgb
    }

    /// The module holding this layer in a rosinality checkpoint: `conv1`, `to_rgb1`,
    /// `convs.{n}` or `to_rgbs.{n}` (the modulated conv itself is `<module>.conv`).
    pub fn module_key(&self) -> String {
        match (self.index, self.kind) {
            (0, _) => "conv1".into(),
            (1, _) => "to_rgb1".into(),
            (_, LayerKind::ToRgb) => format!("to_rgbs.{}", (self.index - 4) / 3),
            // Block b has its up conv at 2 + 3b (convs.2b) and its conv at 3 + 3b (convs.2b+1).
            (i, LayerKind::ConvUp) => format!("convs.{}", 2 * ((i - 2) / 3)),
            (i, LayerKind::Conv) => format!("convs.{}", 2 * ((i - 3) / 3) + 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_table_matches_reference() {
        let c = GeneratorConfig::ffhq_1024();
        let layers = c.layers();
        assert_eq!(layers.len(), 26);
        assert_eq!((c.n_latent(), c.num_noise()), (18, 17));
        // Spot checks against the table in docs/ARCHITECTURE.md §3.6.
        let l14 = layers[14];
        assert_eq!(
            (l14.kind, l14.in_channels, l14.out_channels, l14.latent_row),
            (LayerKind::ConvUp, 512, 256, 9)
        );
        let l25 = layers[25];
        assert_eq!(
            (l25.kind, l25.in_channels, l25.latent_row, l25.resolution),
            (LayerKind::ToRgb, 32, 17, 1024)
        );
        for l in &layers {
            let expected = match l.index % 3 {
                1 => LayerKind::ToRgb,
                2 => LayerKind::ConvUp,
                _ => LayerKind::Conv,
            };
            assert_eq!(l.kind, expected, "layer {}", l.index);
        }
        assert_eq!(GeneratorConfig::new(512).num_weight_layers(), 23);
        assert_eq!(GeneratorConfig::new(256).num_weight_layers(), 20);
        let keys: Vec<String> = layers.iter().take(8).map(LayerSpec::module_key).collect();
        assert_eq!(
            keys,
            [
                "conv1",
                "to_rgb1",
                "convs.0",
                "convs.1",
                "to_rgbs.0",
                "convs.2",
                "convs.3",
                "to_rgbs.1"
            ]
        );
        assert_eq!(layers[24].module_key(), "convs.15");
        assert_eq!(layers[25].module_key(), "to_rgbs.7");
        assert_eq!(c.noise_size(0), 4);
        assert_eq!(c.noise_size(16), 1024);
    }

    #[test]
    fn invalid_sizes_are_errors() {
        for size in [0, 4, 6, 100] {
            assert!(matches!(
                GeneratorConfig::new(size).validate(),
                Err(Error::InvalidConfig(_))
            ));
        }
    }
}
