//! Editing an inversion (docs/ARCHITECTURE.md §8): move its W+ codes along a direction and render them with
//! the inversion's weight offsets.
//!
//! * [`InterFaceGanDirection`] (faces, §8.1): `w + factor·n`, for one factor or upstream's
//!   `--factor_range` ([`factor_range`]).
//! * [`GanSpace`] (cars, §8.2): the five named [`CARS_EDITS`], each of which *sets* one PCA
//!   coordinate (computed from W+ row 0) to a strength on a range of rows.
//! * [`Editor`] renders edited codes of each sample with that sample's offsets, stored noise and
//!   at full resolution (cars cropped to their content rows), as upstream's editors do.
//!
//! ```no_run
//! use burn::backend::Flex;
//! use hyperstyle::editing::{factor_range, Editor, InterFaceGanDirection};
//! use hyperstyle::HyperStyle;
//! # fn main() -> hyperstyle::Result<()> {
//! let device = Default::default();
//! let model = HyperStyle::<Flex>::builder()
//!     .model_file("hyperstyle_ffhq.safetensors")
//!     .w_encoder_file("faces_w_encoder.safetensors")
//!     .load(&device)?;
//! let age = InterFaceGanDirection::from_file("age.safetensors", &device)?;
//! # let images = burn::tensor::Tensor::zeros([1, 3, 256, 256], &device);
//! let inversion = model.invert(images, 3)?;
//! let edits = Editor::for_model(&model).interfacegan(inversion.latents, &inversion.offsets, &age, &factor_range(5))?;
//! // edits[b]: [10, 3, 1024, 1024], factors −5..4 of sample b
//! # Ok(()) }
//! ```

use std::path::Path;

use burn::prelude::*;
use hyperstyle_core::checkpoint::BARE_TENSOR_KEY;
use hyperstyle_core::{Error as CoreError, Kind, WeightStore};
use hyperstyle_encoders::latent_avg::STYLE_DIM;
use hyperstyle_stylegan2::{Generator, Noise, WeightOffsets};

use crate::domain::Domain;
use crate::error::{invalid_file, invalid_input, Error, Result};
use crate::image_ops::crop_rows;
use crate::pipeline::HyperStyle;

/// Upstream's factor list for `--factor_range r`: Python's `range(-r, r)`, i.e. `−r, …, r − 1`
/// (+r excluded: docs/ARCHITECTURE.md §8.1, §11.20). `factor_range(5)` is `−5, −4, …, 4`.
pub fn factor_range(range: u32) -> Vec<f32> {
    let r = i64::from(range);
    (-r..r).map(|f| f as f32).collect()
}

/// Reads a float tensor of any shape from `store`, flattened.
fn read_any<B: Backend>(store: &WeightStore, key: &str, device: &B::Device) -> Result<(Vec<usize>, Tensor<B, 1>)> {
    let (shape, values) = store.any_values(key)?;
    let n = values.len();
    Ok((shape, Tensor::from_data(TensorData::new(values, [n]), device)))
}

/// Opens a converted file of `kind` and loads it with `load`; a shape problem `load` reports as
/// invalid input becomes an invalid-file error naming the file.
fn load_file<T>(path: &Path, kind: Kind, load: impl FnOnce(&WeightStore) -> Result<T>) -> Result<T> {
    let store = WeightStore::open_checkpoint(path, &[kind])?;
    load(&store).map_err(|e| match e {
        Error::Core(CoreError::InvalidInput(reason)) => invalid_file(path, reason),
        e => e,
    })
}

/// An InterFaceGAN direction in W space: `[1, rows, 512]`, with `rows` 1 (upstream's `age.pt`,
/// `smile.pt`: one row, broadcast over every W+ row) or the generator's `n_styles` (`pose.pt`,
/// `(1, 18, 512)`).
#[derive(Debug, Clone)]
pub struct InterFaceGanDirection<B: Backend> {
    /// `[1, rows, 512]`.
    direction: Tensor<B, 3>,
}

impl<B: Backend> InterFaceGanDirection<B> {
    /// From a tensor of shape `[512]`, `[1, 512]` or `[1, rows, 512]`.
    pub fn from_tensor<const D: usize>(direction: Tensor<B, D>) -> Result<Self> {
        let dims = direction.dims();
        let rows = match dims.as_slice() {
            [STYLE_DIM] | [1, STYLE_DIM] => 1,
            [1, rows, STYLE_DIM] if *rows > 0 => *rows,
            _ => {
                return Err(invalid_input(format!(
                    "an InterFaceGAN direction must be [1, 512] or [1, rows, 512], got {dims:?}"
                )))
            }
        };
        Ok(Self {
            direction: direction.reshape([1, rows, STYLE_DIM]),
        })
    }

    /// From a converted direction file's tensors: the bare tensor under [`BARE_TENSOR_KEY`], or
    /// the only tensor of a store holding a single one.
    pub fn load(store: &WeightStore, device: &B::Device) -> Result<Self> {
        let keys = store.keys();
        let key = if store.contains(BARE_TENSOR_KEY) {
            BARE_TENSOR_KEY.to_string()
        } else if let [only] = keys.as_slice() {
            only.clone()
        } else {
            return Err(invalid_input(format!(
                "no direction tensor `{BARE_TENSOR_KEY}` among {} tensors",
                keys.len()
            )));
        };
        let (shape, values) = read_any::<B>(store, &key, device)?;
        match shape.as_slice() {
            [STYLE_DIM] | [1, STYLE_DIM] | [1, _, STYLE_DIM] => {
                Self::from_tensor(values.reshape([1, shape.iter().product::<usize>() / STYLE_DIM, STYLE_DIM]))
            }
            _ => Err(invalid_input(format!(
                "direction `{key}` has shape {shape:?}, expected [1, 512] or [1, rows, 512]"
            ))),
        }
    }

    /// [`InterFaceGanDirection::load`] from a file written by `weights-convert` (e.g. from
    /// upstream's `editing/interfacegan_directions/age.pt`).
    pub fn from_file(path: impl AsRef<Path>, device: &B::Device) -> Result<Self> {
        load_file(path.as_ref(), Kind::Direction, |store| Self::load(store, device))
    }

    /// Rows of the direction: 1 (broadcast over W+) or `n_styles`.
    pub fn rows(&self) -> usize {
        self.direction.dims()[1]
    }

    /// The direction, `[1, rows, 512]`.
    pub fn tensor(&self) -> Tensor<B, 3> {
        self.direction.clone()
    }

    fn check_latents(&self, latents: &Tensor<B, 3>) -> Result<()> {
        let [_, n_styles, dim] = latents.dims();
        let rows = self.rows();
        if dim != STYLE_DIM || (rows != 1 && rows != n_styles) {
            return Err(invalid_input(format!(
                "a direction of {rows} rows cannot edit latents {:?} (expected [batch, n_styles, 512] with \
                 n_styles = {rows} or a one-row direction)",
                latents.dims()
            )));
        }
        Ok(())
    }

    /// `latents + factor·direction`, broadcast over rows and batch (upstream's order: the
    /// direction is scaled first). latents: `[batch, n_styles, 512]`.
    pub fn apply(&self, latents: Tensor<B, 3>, factor: f32) -> Result<Tensor<B, 3>> {
        self.check_latents(&latents)?;
        Ok(latents + self.direction.clone().mul_scalar(factor))
    }

    /// One edit per factor: `[batch, n_styles, 512]` → `[batch, n_factors, n_styles, 512]`.
    pub fn apply_factors(&self, latents: Tensor<B, 3>, factors: &[f32]) -> Result<Tensor<B, 4>> {
        self.check_latents(&latents)?;
        if factors.is_empty() {
            return Err(invalid_input("no editing factors given"));
        }
        let edits = factors
            .iter()
            .map(|&f| self.apply(latents.clone(), f))
            .collect::<Result<Vec<_>>>()?;
        Ok(Tensor::stack(edits, 1))
    }
}

/// One GANSpace edit: set PCA coordinate `component` to `strength` on W+ rows `start..end`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GanSpaceEdit {
    /// Name on the command line (`pose1`, `pose2`, `cube`, `color`, `grass`).
    pub name: &'static str,
    /// Upstream's label (`Pose I`, …).
    pub label: &'static str,
    /// Index of the principal component.
    pub component: usize,
    /// First edited W+ row.
    pub start: usize,
    /// One past the last edited W+ row.
    pub end: usize,
    /// The value the coordinate is set to.
    pub strength: f32,
}

/// Upstream's five car edits (`editing/cars_editor.py`), in its order.
pub const CARS_EDITS: [GanSpaceEdit; 5] = [
    GanSpaceEdit {
        name: "pose1",
        label: "Pose I",
        component: 0,
        start: 0,
        end: 5,
        strength: 2.0,
    },
    GanSpaceEdit {
        name: "pose2",
        label: "Pose II",
        component: 0,
        start: 0,
        end: 5,
        strength: -2.0,
    },
    GanSpaceEdit {
        name: "cube",
        label: "Cube",
        component: 16,
        start: 3,
        end: 6,
        strength: 25.0,
    },
    GanSpaceEdit {
        name: "color",
        label: "Color",
        component: 22,
        start: 9,
        end: 11,
        strength: -8.0,
    },
    GanSpaceEdit {
        name: "grass",
        label: "Grass",
        component: 41,
        start: 9,
        end: 11,
        strength: -18.0,
    },
];

impl GanSpaceEdit {
    /// One of [`CARS_EDITS`] by its `name` (case-insensitive).
    pub fn by_name(name: &str) -> Option<Self> {
        CARS_EDITS.iter().find(|e| e.name.eq_ignore_ascii_case(name)).copied()
    }
}

/// GANSpace PCA data of W (upstream's `cars_pca.pt`): mean `[1, 512]`, unit-norm components
/// `[k, 512]` (stored `(k, 1, 512)`) and their standard deviations `[k]`.
#[derive(Debug, Clone)]
pub struct GanSpace<B: Backend> {
    mean: Tensor<B, 2>,
    components: Tensor<B, 2>,
    /// Kept on the host: each edit reads one of them as a scalar.
    std: Vec<f32>,
}

impl<B: Backend> GanSpace<B> {
    /// From tensors: mean `[1, 512]`, comp `[k, 1, 512]`, std `[k]`.
    pub fn new(mean: Tensor<B, 2>, comp: Tensor<B, 3>, std: Tensor<B, 1>) -> Result<Self> {
        let k = std.dims()[0];
        if mean.dims() != [1, STYLE_DIM] || comp.dims() != [k, 1, STYLE_DIM] || k == 0 {
            return Err(invalid_input(format!(
                "GANSpace data must be mean [1, 512], comp [k, 1, 512], std [k] with k > 0; got mean {:?}, \
                 comp {:?}, std {:?}",
                mean.dims(),
                comp.dims(),
                std.dims()
            )));
        }
        let std = std
            .into_data()
            .convert::<f32>()
            .to_vec::<f32>()
            .map_err(|e| invalid_input(format!("GANSpace std: {e:?}")))?;
        Ok(Self {
            mean,
            components: comp.reshape([k, STYLE_DIM]),
            std,
        })
    }

    /// From a converted `cars_pca` file's tensors `mean`, `comp`, `std`.
    pub fn load(store: &WeightStore, device: &B::Device) -> Result<Self> {
        let (mean_shape, mean) = read_any::<B>(store, "mean", device)?;
        let (comp_shape, comp) = read_any::<B>(store, "comp", device)?;
        let (std_shape, std) = read_any::<B>(store, "std", device)?;
        let (k, comp_rank_ok) = match comp_shape.as_slice() {
            [k, 1, STYLE_DIM] | [k, STYLE_DIM] => (*k, true),
            _ => (0, false),
        };
        if mean_shape.iter().product::<usize>() != STYLE_DIM || !comp_rank_ok || std_shape != [k] {
            return Err(invalid_input(format!(
                "GANSpace data must be mean (1, 512), comp (k, 1, 512), std (k); got mean {mean_shape:?}, \
                 comp {comp_shape:?}, std {std_shape:?}"
            )));
        }
        Self::new(mean.reshape([1, STYLE_DIM]), comp.reshape([k, 1, STYLE_DIM]), std)
    }

    /// [`GanSpace::load`] from a file written by `weights-convert` from upstream's
    /// `editing/ganspace_directions/cars_pca.pt`.
    pub fn from_file(path: impl AsRef<Path>, device: &B::Device) -> Result<Self> {
        load_file(path.as_ref(), Kind::Ganspace, |store| Self::load(store, device))
    }

    /// Number of principal components.
    pub fn n_components(&self) -> usize {
        self.std.len()
    }

    fn component(&self, index: usize) -> Result<(Tensor<B, 2>, f32)> {
        let std = *self.std.get(index).ok_or_else(|| {
            invalid_input(format!(
                "PCA component {index} does not exist ({} components)",
                self.n_components()
            ))
        })?;
        Ok((self.components.clone().narrow(0, index, 1), std))
    }

    /// The normalised PCA coordinate of W+ row 0 of each sample:
    /// `⟨L[0] − mean, comp[index]⟩ / std[index]`. latents `[batch, n_styles, 512]` → `[batch, 1]`.
    pub fn coordinate(&self, latents: Tensor<B, 3>, index: usize) -> Result<Tensor<B, 2>> {
        let [batch, _, dim] = latents.dims();
        if dim != STYLE_DIM {
            return Err(invalid_input(format!(
                "latents must be [batch, n_styles, 512], got {:?}",
                latents.dims()
            )));
        }
        let (comp, std) = self.component(index)?;
        let centered = latents.narrow(1, 0, 1).reshape([batch, STYLE_DIM]) - self.mean.clone();
        Ok((centered * comp).sum_dim(1).div_scalar(std))
    }

    /// Upstream's `_get_delta` and padding (docs/ARCHITECTURE.md §8.2, §11.21): `δ = (strength − c)·comp·std`
    /// added to rows `start..end`, which *sets* the coordinate (of row 0) to `strength`.
    /// latents: `[batch, n_styles, 512]`.
    pub fn apply(&self, latents: Tensor<B, 3>, edit: &GanSpaceEdit) -> Result<Tensor<B, 3>> {
        let [batch, n_styles, _] = latents.dims();
        if edit.start >= edit.end || edit.end > n_styles {
            return Err(invalid_input(format!(
                "GANSpace edit `{}` rows {}..{} do not fit latents of {n_styles} rows",
                edit.name, edit.start, edit.end
            )));
        }
        let coordinate = self.coordinate(latents.clone(), edit.component)?;
        let (comp, std) = self.component(edit.component)?;
        // Same operation order as upstream: ((strength − c) · comp) · std.
        let delta = (coordinate.neg().add_scalar(edit.strength) * comp).mul_scalar(std);
        let rows = edit.end - edit.start;
        let edited = latents.clone().narrow(1, edit.start, rows) + delta.reshape([batch, 1, STYLE_DIM]);
        let mut parts = Vec::with_capacity(3);
        if edit.start > 0 {
            parts.push(latents.clone().narrow(1, 0, edit.start));
        }
        parts.push(edited);
        if edit.end < n_styles {
            parts.push(latents.narrow(1, edit.end, n_styles - edit.end));
        }
        Ok(Tensor::cat(parts, 1))
    }

    /// Every edit of `edits`: `[batch, n_styles, 512]` → `[batch, n_edits, n_styles, 512]`.
    pub fn apply_all(&self, latents: Tensor<B, 3>, edits: &[GanSpaceEdit]) -> Result<Tensor<B, 4>> {
        if edits.is_empty() {
            return Err(invalid_input("no GANSpace edits given"));
        }
        let edited = edits
            .iter()
            .map(|edit| self.apply(latents.clone(), edit))
            .collect::<Result<Vec<_>>>()?;
        Ok(Tensor::stack(edited, 1))
    }
}

/// Renders edited W+ codes the way upstream's editors do: each sample's edits in one generator
/// batch with that sample's offsets, stored noise (`randomize_noise=False`), full resolution,
/// cars cropped to their content rows.
#[derive(Debug)]
pub struct Editor<'a, B: Backend> {
    generator: &'a Generator<B>,
    domain: Domain,
    noise: Noise<B>,
    max_batch: usize,
}

impl<'a, B: Backend> Editor<'a, B> {
    /// An editor for `generator` of a model of `domain`.
    pub fn new(generator: &'a Generator<B>, domain: Domain) -> Self {
        Self {
            generator,
            domain,
            noise: Noise::Stored,
            max_batch: 8,
        }
    }

    /// An editor for a loaded HyperStyle model's generator and domain.
    pub fn for_model(model: &'a HyperStyle<B>) -> Self {
        Self::new(model.generator(), model.config().domain)
    }

    /// Another noise source than the stored buffers.
    pub fn with_noise(mut self, noise: Noise<B>) -> Self {
        self.noise = noise;
        self
    }

    /// At most `max_batch` images per generator call (memory: a 1024² image's activations are
    /// about 0.5 GB). At least 1.
    pub fn with_max_batch(mut self, max_batch: usize) -> Self {
        self.max_batch = max_batch.max(1);
        self
    }

    /// The generator.
    pub fn generator(&self) -> &Generator<B> {
        self.generator
    }

    /// Images of W+ codes `[n, n_styles, 512]` with one sample's offsets (batch 1, or `None`):
    /// `[n, 3, H, W]` at full resolution, cars cropped to rows 64..448 of 512. Raw values.
    pub fn render(&self, latents: Tensor<B, 3>, offsets: Option<&WeightOffsets<B>>) -> Result<Tensor<B, 4>> {
        if let Some(offsets) = offsets {
            if let Some(o) = offsets.iter().flatten().find(|o| o.dims()[0] != 1) {
                return Err(invalid_input(format!(
                    "render takes one sample's offsets (batch 1), got an offset of shape {:?}",
                    o.dims()
                )));
            }
        }
        let n = latents.dims()[0];
        let (top, bottom) = self.domain.content_rows(self.generator.config().size);
        let mut images = Vec::with_capacity(n.div_ceil(self.max_batch));
        for start in (0..n).step_by(self.max_batch) {
            let chunk = latents.clone().narrow(0, start, self.max_batch.min(n - start));
            let image = self.generator.synthesis(chunk, &self.noise, offsets)?;
            images.push(crop_rows(image, top, bottom));
        }
        if images.is_empty() {
            return Err(invalid_input("no latents to render"));
        }
        Ok(Tensor::cat(images, 0))
    }

    /// Renders `[batch, n_edits, n_styles, 512]` edits, sample by sample with its own offsets:
    /// one `[n_edits, 3, H, W]` tensor per sample.
    pub fn render_edits(&self, edits: Tensor<B, 4>, offsets: &WeightOffsets<B>) -> Result<Vec<Tensor<B, 4>>> {
        let [batch, n_edits, n_styles, dim] = edits.dims();
        (0..batch)
            .map(|b| {
                let latents = edits.clone().narrow(0, b, 1).reshape([n_edits, n_styles, dim]);
                self.render(latents, Some(&offsets.sample(b)?))
            })
            .collect()
    }

    /// InterFaceGAN (docs/ARCHITECTURE.md §8.1): for each sample, one image per factor of
    /// `latents + factor·direction`. latents `[batch, n_styles, 512]` → per sample
    /// `[n_factors, 3, H, W]`.
    pub fn interfacegan(
        &self,
        latents: Tensor<B, 3>,
        offsets: &WeightOffsets<B>,
        direction: &InterFaceGanDirection<B>,
        factors: &[f32],
    ) -> Result<Vec<Tensor<B, 4>>> {
        self.render_edits(direction.apply_factors(latents, factors)?, offsets)
    }

    /// GANSpace (docs/ARCHITECTURE.md §8.2): for each sample, one image per edit. latents
    /// `[batch, n_styles, 512]` → per sample `[n_edits, 3, H, W]` (cars: 384×512).
    pub fn ganspace(
        &self,
        latents: Tensor<B, 3>,
        offsets: &WeightOffsets<B>,
        ganspace: &GanSpace<B>,
        edits: &[GanSpaceEdit],
    ) -> Result<Vec<Tensor<B, 4>>> {
        self.render_edits(ganspace.apply_all(latents, edits)?, offsets)
    }
}
