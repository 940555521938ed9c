//! CLIP's text tower: token and position embeddings, a causal pre-LayerNorm transformer with
//! QuickGELU MLPs, a final LayerNorm, and the projection of the end-of-text token's features
//! into the joint image-text space.

use burn::prelude::*;
use burn::tensor::activation::{sigmoid, softmax};
use hyperstyle_core::Weights;

use crate::tokenizer::TokenBatch;
use crate::{Error, Result};

/// PyTorch's LayerNorm epsilon, which CLIP keeps.
const LAYER_NORM_EPS: f64 = 1e-5;

/// Hyperparameters of a CLIP text tower.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TextConfig {
    /// Tokens per prompt (77 in every CLIP model).
    pub context_length: usize,
    /// Number of token ids (49 408).
    pub vocab_size: usize,
    /// Transformer width.
    pub width: usize,
    /// Attention heads.
    pub heads: usize,
    /// Residual attention blocks.
    pub layers: usize,
    /// Size of the output features (the joint embedding).
    pub embed_dim: usize,
}

impl TextConfig {
    /// The text tower of OpenAI's ViT-B/32 (also of RN50 and ViT-B/16): width 512, 8 heads,
    /// 12 layers, 512-dimensional features.
    pub fn vit_b_32() -> Self {
        Self {
            context_length: 77,
            vocab_size: 49408,
            width: 512,
            heads: 8,
            layers: 12,
            embed_dim: 512,
        }
    }

    /// Reads the configuration off a state dict's shapes, as OpenAI's `build_model` does: the
    /// vocabulary and width from `token_embedding.weight`, the context from
    /// `positional_embedding`, the feature size from `text_projection`, the depth from the
    /// highest `transformer.resblocks.N` and one head per 64 channels.
    pub fn detect(weights: &Weights) -> Result<Self> {
        let shape = |name: &str| {
            let key = weights.key(name);
            weights.store().shape(&key).ok_or(Error::MissingKey { key })
        };
        let two_d = |name: &str| -> Result<(usize, usize)> {
            let found = shape(name)?;
            match found[..] {
                [a, b] => Ok((a, b)),
                ref other => Err(Error::InvalidConfig(format!(
                    "weight `{}` has shape {other:?}, expected a matrix",
                    weights.key(name)
                ))),
            }
        };
        let (vocab_size, width) = two_d("token_embedding.weight")?;
        let (context_length, _) = two_d("positional_embedding")?;
        let (_, embed_dim) = two_d("text_projection")?;
        let blocks = weights.key("transformer.resblocks.");
        let layers = weights
            .store()
            .keys()
            .iter()
            .filter_map(|k| k.strip_prefix(&blocks)?.split('.').next()?.parse::<usize>().ok())
            .max()
            .map_or(0, |n| n + 1);
        if width % 64 != 0 || layers == 0 {
            return Err(Error::InvalidConfig(format!(
                "not a CLIP text tower: width {width} (a multiple of 64 expected), {layers} residual blocks under `{blocks}`"
            )));
        }
        Ok(Self {
            context_length,
            vocab_size,
            width,
            heads: width / 64,
            layers,
            embed_dim,
        })
    }
}

/// `y = x·Wᵀ + b` with the weight stored transposed.
#[derive(Clone, Debug)]
struct Linear<B: Backend> {
    weight_t: Tensor<B, 2>,
    bias: Tensor<B, 1>,
}

impl<B: Backend> Linear<B> {
    /// Loads PyTorch's `weight [out, in]` and `bias [out]` (under the given names).
    fn load(
        weights: &Weights,
        weight: &str,
        bias: &str,
        n_in: usize,
        n_out: usize,
        device: &B::Device,
    ) -> Result<Self> {
        let raw = weights.values(weight, &[n_out, n_in])?;
        let mut transposed = vec![0f32; raw.len()];
        for o in 0..n_out {
            for i in 0..n_in {
                transposed[i * n_out + o] = raw[o * n_in + i];
            }
        }
        Ok(Self {
            weight_t: Tensor::from_data(TensorData::new(transposed, [n_in, n_out]), device),
            bias: weights.tensor(bias, [n_out], device)?,
        })
    }

    fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let [n, l, c] = x.dims();
        let out = self.weight_t.dims()[1];
        let y = x.reshape([n * l, c]).matmul(self.weight_t.clone()) + self.bias.clone().unsqueeze::<2>();
        y.reshape([n, l, out])
    }
}

#[derive(Clone, Debug)]
struct LayerNorm<B: Backend> {
    weight: Tensor<B, 1>,
    bias: Tensor<B, 1>,
}

impl<B: Backend> LayerNorm<B> {
    fn load(weights: &Weights, width: usize, device: &B::Device) -> Result<Self> {
        Ok(Self {
            weight: weights.tensor("weight", [width], device)?,
            bias: weights.tensor("bias", [width], device)?,
        })
    }

    fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let mean = x.clone().mean_dim(2);
        let centred = x - mean;
        let var = (centred.clone() * centred.clone()).mean_dim(2);
        let normed = centred / var.add_scalar(LAYER_NORM_EPS).sqrt();
        normed * self.weight.clone().unsqueeze::<3>() + self.bias.clone().unsqueeze::<3>()
    }
}

/// `x + attn(ln_1(x))`, then `x + mlp(ln_2(x))`.
#[derive(Clone, Debug)]
struct ResidualAttentionBlock<B: Backend> {
    ln_1: LayerNorm<B>,
    in_proj: Linear<B>,
    out_proj: Linear<B>,
    ln_2: LayerNorm<B>,
    c_fc: Linear<B>,
    c_proj: Linear<B>,
    heads: usize,
}

impl<B: Backend> ResidualAttentionBlock<B> {
    fn load(weights: &Weights, config: &TextConfig, device: &B::Device) -> Result<Self> {
        let w = config.width;
        let attn = weights.pp("attn");
        let mlp = weights.pp("mlp");
        // The causal mask is an attribute of OpenAI's blocks, not a state-dict entry, but a
        // TorchScript archive stores it with the parameters; it is rebuilt here.
        weights.ignore("attn_mask");
        Ok(Self {
            ln_1: LayerNorm::load(&weights.pp("ln_1"), w, device)?,
            in_proj: Linear::load(&attn, "in_proj_weight", "in_proj_bias", w, 3 * w, device)?,
            out_proj: Linear::load(&attn.pp("out_proj"), "weight", "bias", w, w, device)?,
            ln_2: LayerNorm::load(&weights.pp("ln_2"), w, device)?,
            c_fc: Linear::load(&mlp.pp("c_fc"), "weight", "bias", w, 4 * w, device)?,
            c_proj: Linear::load(&mlp.pp("c_proj"), "weight", "bias", 4 * w, w, device)?,
            heads: config.heads,
        })
    }

    /// `x [n, l, width]`; `mask [1, 1, l, l]` is 0 on and below the diagonal, -inf above.
    fn forward(&self, x: Tensor<B, 3>, mask: Tensor<B, 4>) -> Tensor<B, 3> {
        let [n, l, w] = x.dims();
        let (h, d) = (self.heads, w / self.heads);
        let qkv = self.in_proj.forward(self.ln_1.forward(x.clone()));
        // [n, l, 3·w] → q, k, v as [n, heads, l, d].
        let heads = |part: usize| qkv.clone().narrow(2, part * w, w).reshape([n, l, h, d]).swap_dims(1, 2);
        let (q, k, v) = (heads(0), heads(1), heads(2));
        let scores = q.matmul(k.swap_dims(2, 3)).mul_scalar(1.0 / (d as f64).sqrt()) + mask;
        let attended = softmax(scores, 3).matmul(v).swap_dims(1, 2).reshape([n, l, w]);
        let x = x + self.out_proj.forward(attended);
        let hidden = self.c_fc.forward(self.ln_2.forward(x.clone()));
        // QuickGELU: x·σ(1.702·x).
        let hidden = hidden.clone() * sigmoid(hidden.mul_scalar(1.702));
        x + self.c_proj.forward(hidden)
    }
}

/// CLIP's text encoder: token ids → features in the joint image-text space (not normalised).
#[derive(Clone, Debug)]
pub struct TextTransformer<B: Backend> {
    config: TextConfig,
    token_embedding: Tensor<B, 2>,
    positional_embedding: Tensor<B, 2>,
    blocks: Vec<ResidualAttentionBlock<B>>,
    ln_final: LayerNorm<B>,
    text_projection: Tensor<B, 2>,
    device: B::Device,
}

impl<B: Backend> TextTransformer<B> {
    /// Loads the text tower from a view holding OpenAI's state-dict keys
    /// (`token_embedding.weight`, `positional_embedding`,
    /// `transformer.resblocks.N.{ln_1,attn,ln_2,mlp}.*`, `ln_final.*`, `text_projection`),
    /// checking every shape against `config`. Other keys of a full CLIP checkpoint (`visual.*`,
    /// `logit_scale`) are left alone; unknown keys under `transformer.` are an error.
    pub fn load(weights: &Weights, config: &TextConfig, device: &B::Device) -> Result<Self> {
        if config.heads == 0 || config.width % config.heads != 0 || config.context_length == 0 {
            return Err(Error::InvalidConfig(format!(
                "CLIP text tower with width {} and {} heads, context {}",
                config.width, config.heads, config.context_length
            )));
        }
        let w = config.width;
        let resblocks = weights.pp("transformer").pp("resblocks");
        let blocks = (0..config.layers)
            .map(|i| ResidualAttentionBlock::load(&resblocks.pp(i), config, device))
            .collect::<Result<Vec<_>>>()?;
        let model = Self {
            token_embedding: weights.tensor("token_embedding.weight", [config.vocab_size, w], device)?,
            positional_embedding: weights.tensor("positional_embedding", [config.context_length, w], device)?,
            blocks,
            ln_final: LayerNorm::load(&weights.pp("ln_final"), w, device)?,
            text_projection: weights.tensor("text_projection", [w, config.embed_dim], device)?,
            config: config.clone(),
            device: device.clone(),
        };
        weights.pp("transformer").check_all_used()?;
        Ok(model)
    }

    /// [`TextConfig::detect`] then [`TextTransformer::load`].
    pub fn load_detected(weights: &Weights, device: &B::Device) -> Result<Self> {
        Self::load(weights, &TextConfig::detect(weights)?, device)
    }

    /// The configuration.
    pub fn config(&self) -> &TextConfig {
        &self.config
    }

    /// Features `[rows, embed_dim]` of tokenised prompts (OpenAI's `encode_text`): the final
    /// LayerNorm's output at each row's end-of-text token (its largest id, first occurrence),
    /// times `text_projection`.
    ///
    /// Rows must be `context_length` long. Attention is causal, so positions after the last
    /// end-of-text token of the batch cannot change the result and are not computed.
    pub fn encode(&self, tokens: &TokenBatch) -> Result<Tensor<B, 2>> {
        let ctx = self.config.context_length;
        if tokens.rows == 0 {
            return Err(Error::InvalidInput("no prompts to encode".into()));
        }
        if tokens.context_length != ctx || tokens.ids.len() != tokens.rows * ctx {
            return Err(Error::InvalidInput(format!(
                "token rows of length {} ({} ids for {} rows); this text tower takes {ctx}",
                tokens.context_length,
                tokens.ids.len(),
                tokens.rows
            )));
        }
        if let Some(&bad) = tokens.ids.iter().find(|&&id| id as usize >= self.config.vocab_size) {
            return Err(Error::InvalidInput(format!(
                "token id {bad} is not below the vocabulary size {}",
                self.config.vocab_size
            )));
        }
        let n = tokens.rows;
        // The pooled position of each row: its largest id, first occurrence (torch's argmax).
        let eot: Vec<usize> = (0..n)
            .map(|r| {
                let row = tokens.row(r);
                let max = row.iter().copied().max().unwrap_or(0);
                row.iter().position(|&id| id == max).unwrap_or(0)
            })
            .collect();
        let l = eot.iter().max().map_or(1, |m| m + 1);
        let w = self.config.width;

        let ids: Vec<i64> = (0..n)
            .flat_map(|r| tokens.row(r)[..l].iter().map(|&id| i64::from(id)))
            .collect();
        let ids = Tensor::<B, 1, Int>::from_data(TensorData::new(ids, [n * l]), &self.device);
        let positions = self.positional_embedding.clone().slice([0..l, 0..w]);
        let mut x = self.token_embedding.clone().select(0, ids).reshape([n, l, w]) + positions.unsqueeze::<3>();

        let mask: Vec<f32> = (0..l)
            .flat_map(|i| (0..l).map(move |j| if j > i { f32::NEG_INFINITY } else { 0.0 }))
            .collect();
        let mask = Tensor::<B, 4>::from_data(TensorData::new(mask, [1, 1, l, l]), &self.device);
        for block in &self.blocks {
            x = block.forward(x, mask.clone());
        }
        let x = self.ln_final.forward(x).reshape([n * l, w]);
        let rows: Vec<i64> = eot.iter().enumerate().map(|(r, &p)| (r * l + p) as i64).collect();
        let rows = Tensor::<B, 1, Int>::from_data(TensorData::new(rows, [n]), &self.device);
        Ok(x.select(0, rows).matmul(self.text_projection.clone()))
    }
}
