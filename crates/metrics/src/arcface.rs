//! ArcFace IR-SE-50 with its output layer (the face-recognition network HyperStyle's identity
//! loss uses, `model_ir_se50.pth`), and the identity similarity measured with it.
//!
//! The backbone is [`hyperstyle_encoders::IrSe50`], the very network HyperStyle's W encoder is
//! built on; the output layer is `BatchNorm2d(512)` → (dropout, inactive) → flatten →
//! `Linear(512·7·7, 512)` → `BatchNorm1d(512)`, and the embedding is divided by its L2 norm.

use burn::module::Param;
use burn::prelude::*;
use burn::tensor::module::adaptive_avg_pool2d;
use hyperstyle_core::Weights;
use hyperstyle_encoders::batch_norm::BatchNorm;
use hyperstyle_encoders::ir_se50::FEATURE_CHANNELS;
use hyperstyle_encoders::IrSe50;

use crate::{check_images, check_pair, Error, Result};

/// Input side of the network.
pub const INPUT_SIDE: usize = 112;
/// Length of the embedding.
pub const EMBEDDING: usize = 512;
/// Side of the backbone's last feature map for a 112×112 input.
const FEATURE_SIDE: usize = INPUT_SIDE / 16;

/// Rows `35..223` and columns `32..220` of a 256×256 aligned face: the region upstream's
/// `IDLoss.extract_feats` crops before pooling it to 112×112.
pub const FACE_ROWS: (usize, usize) = (35, 223);
/// See [`FACE_ROWS`].
pub const FACE_COLS: (usize, usize) = (32, 220);

/// ArcFace `Backbone(112, 50, mode='ir_se')`: `[batch, 3, 112, 112]` → L2-normalised
/// embeddings `[batch, 512]`.
#[derive(Module, Debug)]
pub struct ArcFace<B: Backend> {
    backbone: IrSe50<B>,
    /// `output_layer.0`.
    feature_norm: BatchNorm<B>,
    /// `output_layer.3.weight`, transposed: `[512·7·7, 512]`.
    linear_weight: Param<Tensor<B, 2>>,
    /// `output_layer.3.bias`.
    linear_bias: Param<Tensor<B, 1>>,
    /// `output_layer.4`, applied as `[batch, 512, 1, 1]`.
    embedding_norm: BatchNorm<B>,
}

impl<B: Backend> ArcFace<B> {
    /// Loads `input_layer.*`, `body.*` and `output_layer.{0,3,4}.*` (the keys of
    /// `model_ir_se50.pth`; BatchNorms' `num_batches_tracked` are accepted and unused). Fails on
    /// missing keys, wrong shapes and any other tensor under `weights`.
    pub fn load(weights: &Weights, device: &B::Device) -> Result<Self> {
        let backbone = IrSe50::load(weights, 3, device)?;
        let output = weights.pp("output_layer");
        let n_in = FEATURE_CHANNELS * FEATURE_SIDE * FEATURE_SIDE;
        let linear = output.pp(3);
        let raw = linear.values("weight", &[EMBEDDING, n_in])?;
        let mut transposed = vec![0f32; raw.len()];
        for (o, row) in raw.chunks_exact(n_in).enumerate() {
            for (i, &v) in row.iter().enumerate() {
                transposed[i * EMBEDDING + o] = v;
            }
        }
        let arcface = Self {
            backbone,
            feature_norm: BatchNorm::load(&output.pp(0), FEATURE_CHANNELS, device)?,
            linear_weight: Param::from_tensor(Tensor::from_data(
                TensorData::new(transposed, [n_in, EMBEDDING]),
                device,
            )),
            linear_bias: Param::from_tensor(linear.tensor("bias", [EMBEDDING], device)?),
            embedding_norm: BatchNorm::load(&output.pp(4), EMBEDDING, device)?,
        };
        weights.check_all_used()?;
        Ok(arcface)
    }

    /// x: `[batch, 3, 112, 112]` in [−1, 1] → unit-length embeddings `[batch, 512]`.
    pub fn forward(&self, x: Tensor<B, 4>) -> Result<Tensor<B, 2>> {
        check_images("arcface", &x, (INPUT_SIDE, INPUT_SIDE))?;
        let [batch, _, h, w] = x.dims();
        if (h, w) != (INPUT_SIDE, INPUT_SIDE) {
            return Err(Error::InvalidInput(format!(
                "arcface: expected [batch, 3, {INPUT_SIDE}, {INPUT_SIDE}] images, got {:?}",
                x.dims()
            )));
        }
        let features = self.feature_norm.forward(self.backbone.forward(x)?);
        let flat = features.reshape([batch, FEATURE_CHANNELS * FEATURE_SIDE * FEATURE_SIDE]);
        let embedding = flat.matmul(self.linear_weight.val()) + self.linear_bias.val().unsqueeze_dim(0);
        let embedding = self
            .embedding_norm
            .forward(embedding.reshape([batch, EMBEDDING, 1, 1]))
            .reshape([batch, EMBEDDING]);
        let norm = embedding.clone().powi_scalar(2).sum_dim(1).sqrt();
        Ok(embedding / norm)
    }
}

/// Identity similarity as HyperStyle's `IDLoss` measures it: crop the face region of each
/// 256×256 aligned face ([`FACE_ROWS`], [`FACE_COLS`]), average-pool it to 112×112 (adaptive
/// pooling), embed it with [`ArcFace`] and take the dot product of the two unit embeddings.
#[derive(Module, Debug)]
pub struct IdSimilarity<B: Backend> {
    arcface: ArcFace<B>,
}

impl<B: Backend> IdSimilarity<B> {
    /// Wraps a loaded [`ArcFace`].
    pub fn new(arcface: ArcFace<B>) -> Self {
        Self { arcface }
    }

    /// Loads ArcFace (see [`ArcFace::load`]).
    pub fn load(weights: &Weights, device: &B::Device) -> Result<Self> {
        Ok(Self::new(ArcFace::load(weights, device)?))
    }

    /// The network.
    pub fn arcface(&self) -> &ArcFace<B> {
        &self.arcface
    }

    /// Upstream's `extract_feats`: `[batch, 3, h, w]` in [−1, 1] (upstream feeds 256×256; at
    /// least 223×220 is needed for the crop) → embeddings `[batch, 512]`.
    pub fn features(&self, x: Tensor<B, 4>) -> Result<Tensor<B, 2>> {
        check_images("id similarity", &x, (FACE_ROWS.1, FACE_COLS.1))?;
        let face = x.slice(s![.., .., FACE_ROWS.0..FACE_ROWS.1, FACE_COLS.0..FACE_COLS.1]);
        self.arcface
            .forward(adaptive_avg_pool2d(face, [INPUT_SIDE, INPUT_SIDE]))
    }

    /// The similarity of each pair, `[batch]`: 1 for the same face, around 0 for unrelated ones.
    pub fn forward(&self, x: Tensor<B, 4>, y: Tensor<B, 4>) -> Result<Tensor<B, 1>> {
        check_pair("id similarity", &x, &y, (FACE_ROWS.1, FACE_COLS.1))?;
        let batch = x.dims()[0];
        let both = self.features(Tensor::cat(vec![x, y], 0))?;
        let (fx, fy) = (both.clone().narrow(0, 0, batch), both.narrow(0, batch, batch));
        Ok((fx * fy).sum_dim(1).reshape([batch]))
    }

    /// The identity loss of a reconstruction `y_hat` of `y` (`IDLoss.forward`'s first output):
    /// `mean(1 − similarity)`, `[1]`.
    pub fn loss(&self, y_hat: Tensor<B, 4>, y: Tensor<B, 4>) -> Result<Tensor<B, 1>> {
        Ok(self.forward(y_hat, y)?.neg().add_scalar(1.0).mean())
    }
}
