//! The training loss of the original coach (`Coach.calc_loss`): identity (faces) or MoCo
//! (other domains) similarity, L2 and LPIPS, weighted by the lambdas.

use burn::prelude::*;
use burn::tensor::module::adaptive_avg_pool2d;
use hyperstyle_core::weights::tensor_values_f64;
use hyperstyle_core::{Error, Result};
use hyperstyle_metrics::{IdSimilarity, Lpips, MocoSimilarity};
use serde::{Deserialize, Serialize};

/// The loss weights: upstream's `*_lambda` options. A term with weight 0 is not computed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Lambdas {
    /// `lpips_lambda`
    pub lpips: f64,
    /// `l2_lambda`
    pub l2: f64,
    /// `id_lambda` (faces)
    pub id: f64,
    /// `moco_lambda` (other domains)
    pub moco: f64,
}

impl Lambdas {
    /// The released faces model's: LPIPS 0.8, L2 1, ID 0.1 (upstream README).
    pub fn faces() -> Self {
        Self {
            lpips: 0.8,
            l2: 1.0,
            id: 0.1,
            moco: 0.0,
        }
    }

    /// Other domains per upstream README: LPIPS 0.8, L2 1, MoCo 0.5.
    pub fn other_domains() -> Self {
        Self {
            lpips: 0.8,
            l2: 1.0,
            id: 0.0,
            moco: 0.5,
        }
    }

    /// Upstream refuses ID and MoCo together; so does this.
    pub fn validate(&self) -> Result<()> {
        let all = [self.lpips, self.l2, self.id, self.moco];
        if all.iter().any(|v| !v.is_finite() || *v < 0.0) {
            return Err(Error::InvalidConfig(format!(
                "loss lambdas must be finite and ≥ 0: {self:?}"
            )));
        }
        if self.id > 0.0 && self.moco > 0.0 {
            return Err(Error::InvalidConfig(
                "both the ID and the MoCo loss have lambdas > 0; choose one".into(),
            ));
        }
        Ok(())
    }
}

/// The network a similarity loss embeds images with: ArcFace for faces (`IDLoss`), the MoCo v2
/// ResNet-50 for other domains (`MocoLoss`).
// Built once per run; the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum SimilarityNet<B: Backend> {
    /// ArcFace IR-SE-50 on the face crop (`IDLoss`).
    Id(IdSimilarity<B>),
    /// MoCo v2 ResNet-50 (`MocoLoss`).
    Moco(MocoSimilarity<B>),
}

impl<B: Backend> SimilarityNet<B> {
    /// Unit embeddings `[batch, d]` of images `[batch, 3, h, w]` in [−1, 1].
    pub fn features(&self, x: Tensor<B, 4>) -> Result<Tensor<B, 2>> {
        match self {
            SimilarityNet::Id(net) => Ok(net.features(x)?),
            SimilarityNet::Moco(net) => Ok(net.features(x)?),
        }
    }

    /// Which loss term this network makes: `loss_id` or `loss_moco`.
    pub fn kind(&self) -> SimilarityKind {
        match self {
            SimilarityNet::Id(_) => SimilarityKind::Id,
            SimilarityNet::Moco(_) => SimilarityKind::Moco,
        }
    }
}

/// The two similarity losses of the original.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimilarityKind {
    /// `loss_id` (ArcFace).
    Id,
    /// `loss_moco` (MoCo ResNet-50).
    Moco,
}

/// The frozen loss networks (evaluation mode, no gradients of their own).
#[derive(Module, Debug)]
pub struct LossNets<B: Backend> {
    lpips: Option<Lpips<B>>,
    similarity: Option<SimilarityNet<B>>,
}

impl<B: Backend> LossNets<B> {
    /// From the loaded networks; their parameters stop requiring gradients.
    pub fn new(lpips: Option<Lpips<B>>, similarity: Option<SimilarityNet<B>>) -> Self {
        Self { lpips, similarity }.no_grad()
    }

    /// Checks that every term with a positive lambda has its network.
    pub fn check(&self, lambdas: &Lambdas) -> Result<()> {
        lambdas.validate()?;
        let missing = |what: &str| {
            Err(Error::InvalidConfig(format!(
                "{what} lambda > 0 but no {what} network given"
            )))
        };
        if lambdas.lpips > 0.0 && self.lpips.is_none() {
            return missing("LPIPS");
        }
        let kind = self.similarity.as_ref().map(SimilarityNet::kind);
        if lambdas.id > 0.0 && kind != Some(SimilarityKind::Id) {
            return missing("ID (ArcFace)");
        }
        if lambdas.moco > 0.0 && kind != Some(SimilarityKind::Moco) {
            return missing("MoCo");
        }
        Ok(())
    }

    /// `Coach.calc_loss` on a reconstruction `y_hat` of `y` (both `[batch, 3, h, w]`, the
    /// pooled and, for cars, cropped images): the weighted total (`[1]`, differentiable) and
    /// the values of every term. The original is called with `x = y`, so the identity
    /// improvement is `mean(⟨ŷ, y⟩ − ⟨y, y⟩)`. `resized` is the size the perceptual terms see
    /// (256×256 faces, 192×256 cars: `face_pool` / `AdaptiveAvgPool2d((192, 256))`).
    pub fn loss(
        &self,
        y_hat: Tensor<B, 4>,
        y: Tensor<B, 4>,
        lambdas: &Lambdas,
        resized: [usize; 2],
    ) -> Result<(Tensor<B, 1>, LossDict)> {
        let pool = |t: Tensor<B, 4>| {
            let [_, _, h, w] = t.dims();
            if [h, w] == resized {
                t
            } else {
                adaptive_avg_pool2d(t, resized)
            }
        };
        let (y_hat_resized, y_resized) = (pool(y_hat.clone()), pool(y.clone()));
        let mut dict = LossDict::default();
        let mut total: Option<Tensor<B, 1>> = None;
        let mut add = |term: Tensor<B, 1>, lambda: f64| {
            let weighted = term.mul_scalar(lambda);
            total = Some(match total.take() {
                Some(t) => t + weighted,
                None => weighted,
            });
        };
        let sim_lambda = lambdas.id.max(lambdas.moco);
        if sim_lambda > 0.0 {
            let net = self
                .similarity
                .as_ref()
                .ok_or_else(|| Error::InvalidConfig("no similarity network".into()))?;
            let batch = y_hat.dims()[0];
            let features = net.features(Tensor::cat(vec![y_hat_resized.clone(), y_resized.clone()], 0))?;
            let f_hat = features.clone().narrow(0, 0, batch);
            let f_y = features.narrow(0, batch, batch).detach();
            let target = (f_hat * f_y.clone()).sum_dim(1).reshape([batch]);
            let views = (f_y.clone() * f_y).sum_dim(1).reshape([batch]);
            let improve = scalar(target.clone().detach() - views)? / batch as f64;
            let term = target.neg().add_scalar(1.0).mean();
            let value = scalar(term.clone())?;
            match net.kind() {
                SimilarityKind::Id => dict.loss_id = Some(value),
                SimilarityKind::Moco => dict.loss_moco = Some(value),
            }
            dict.id_improve = Some(improve);
            add(term, sim_lambda);
        }
        if lambdas.l2 > 0.0 {
            // `F.mse_loss`: the mean over ~4·10⁵ values, reduced one axis at a time (pairwise-like
            // accuracy; one flat float32 sum drifts by ~1e-4 relative at this size).
            let term = (y_hat - y)
                .powi_scalar(2)
                .mean_dim(3)
                .mean_dim(2)
                .mean_dim(1)
                .mean_dim(0)
                .reshape([1]);
            dict.loss_l2 = Some(scalar(term.clone())?);
            add(term, lambdas.l2);
        }
        if lambdas.lpips > 0.0 {
            let net = self
                .lpips
                .as_ref()
                .ok_or_else(|| Error::InvalidConfig("no LPIPS network".into()))?;
            let term = net.loss(y_hat_resized, y_resized)?;
            dict.loss_lpips = Some(scalar(term.clone())?);
            add(term, lambdas.lpips);
        }
        let total = total.ok_or_else(|| Error::InvalidConfig("every loss lambda is 0".into()))?;
        dict.loss = scalar(total.clone())?;
        Ok((total, dict))
    }
}

/// The sum of a tensor's values as f64.
fn scalar<B: Backend, const D: usize>(t: Tensor<B, D>) -> Result<f64> {
    Ok(tensor_values_f64(t.detach().sum())?
        .first()
        .copied()
        .unwrap_or(f64::NAN))
}

/// One iteration's loss values under upstream's names (`None`: the term is off).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LossDict {
    /// `loss_id`: mean of `1 − ⟨ŷ, y⟩` of the ArcFace embeddings.
    pub loss_id: Option<f64>,
    /// `id_improve`: mean of `⟨ŷ, y⟩ − ⟨y, x⟩` (here `x = y`).
    pub id_improve: Option<f64>,
    /// `loss_l2`: mean squared error.
    pub loss_l2: Option<f64>,
    /// `loss_lpips`: LPIPS (AlexNet), mean over the batch.
    pub loss_lpips: Option<f64>,
    /// `loss_moco`: mean of `1 − ⟨ŷ, y⟩` of the MoCo embeddings.
    pub loss_moco: Option<f64>,
    /// `loss`: the weighted total.
    pub loss: f64,
}

impl LossDict {
    /// The terms that are on, as `(name, value)` in upstream's order.
    pub fn entries(&self) -> Vec<(&'static str, f64)> {
        let mut out: Vec<(&'static str, f64)> = [
            ("loss_id", self.loss_id),
            ("id_improve", self.id_improve),
            ("loss_l2", self.loss_l2),
            ("loss_lpips", self.loss_lpips),
            ("loss_moco", self.loss_moco),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect();
        out.push(("loss", self.loss));
        out
    }

    /// The mean of several dictionaries, term by term (`train_utils.aggregate_loss_dict`).
    pub fn mean(dicts: &[LossDict]) -> LossDict {
        let n = dicts.len().max(1) as f64;
        let avg = |f: fn(&LossDict) -> Option<f64>| -> Option<f64> {
            let values: Vec<f64> = dicts.iter().filter_map(f).collect();
            (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
        };
        LossDict {
            loss_id: avg(|d| d.loss_id),
            id_improve: avg(|d| d.id_improve),
            loss_l2: avg(|d| d.loss_l2),
            loss_lpips: avg(|d| d.loss_lpips),
            loss_moco: avg(|d| d.loss_moco),
            loss: dicts.iter().map(|d| d.loss).sum::<f64>() / n,
        }
    }
}
