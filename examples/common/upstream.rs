//! `--layout upstream`: the folders upstream HyperStyle's scripts write, so that its evaluation
//! and editing tools (and anyone used to them) find every file where they expect it.
//!
//! Inversion (upstream `scripts/inference.py`), in the output folder:
//!
//! * `inference_results/<i>/<file>`: refinement step `i` (0-based), one image per input;
//! * `inference_coupled/<file>`: input | step 0 | step 1 | …, side by side;
//! * `latents.npy`: the dict `{file: float32 [n_styles, 512] W+ codes}` as `np.save` writes it,
//!   read with `np.load(path, allow_pickle=True).item()` (see [`InferenceWriter::finish`]);
//! * `weight_deltas/<stem>.npy` (`--save-weight-deltas`): the final offsets, a list with one
//!   entry per generator layer, float32 `[out, in, k, k]` or `None`, as `np.save` writes it (see
//!   [`InferenceWriter::write_weight_deltas`]);
//! * `stats.txt`: `Runtime <mean>+-<std>` seconds per batch.
//!
//! Editing (upstream `editing/inference_face_editing.py`, `inference_cars_editing.py`):
//! `editing_results/<edit>/<file>` (input | inversion | edits) and `editing_coupled/<file>` (the
//! rows of all edits stacked); cars only `editing_coupled/<stem>.jpg` (input | inversion | the five
//! edits).
//!
//! `<file>` is the input's file name (`face.jpg` → `face.jpg`, so the format follows the input's
//! extension, as Pillow's `save` does) and `<stem>` its part before the first dot, as upstream
//! names them; an input whose stem another input already has gets `_2`, `_3`, … (upstream would
//! overwrite), and a name without a PNG / JPEG extension gets `.png`. Images are resized to
//! upstream's `resize_amount` with Pillow's bicubic filter (`Image.resize`'s default), and the
//! input column is the network input converted back as upstream's `tensor2im` does.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use hyperstyle::core::atomic::same_file;
use hyperstyle::io::{images_to_tensor, save_image, tensor_to_images};
use hyperstyle::pickle::{NdArray, Object};
use hyperstyle::stylegan2::{LayerSpec, WeightOffsets};
use hyperstyle::{npy, Domain, HyperStyleConfig, Inversion};
use image::RgbImage;

use super::BoxError;

/// Which files an example writes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Layout {
    /// This project's: every file in the output folder, named after its input (`NAME_step0.png`,
    /// `NAME_grid.png`, …).
    #[default]
    Flat,
    /// Upstream HyperStyle's folders (`inference_results/0/NAME.jpg`, `inference_coupled/`,
    /// `latents.npy`, `editing_results/`, …).
    Upstream,
}

/// Upstream's `resize_amount`, `(width, height)`: the size of every image of the layout. Faces
/// and wild animals: the generator's size, or 256×256 with `--resize-outputs`; cars: 512×384, or
/// 256×192.
pub fn resize_amount(config: &HyperStyleConfig, resize_outputs: bool) -> (u32, u32) {
    match (config.domain, resize_outputs) {
        (Domain::Cars, false) => (512, 384),
        (Domain::Cars, true) => (256, 192),
        (_, false) => (config.output_size as u32, config.output_size as u32),
        (_, true) => (256, 256),
    }
}

/// What upstream shows as the input: the network input (`photo` resized to `(height, width)` and
/// normalised) converted back to 8 bits by `tensor2im`, which truncates.
pub fn network_input_image<Bk: Backend>(
    photo: &RgbImage,
    size: (usize, usize),
    device: &Bk::Device,
) -> Result<RgbImage, BoxError> {
    let tensor = images_to_tensor::<Bk>(std::slice::from_ref(photo), size, device);
    Ok(tensor_to_images(tensor)?.remove(0))
}

// ----------------------------------------------------------------------------------------------
// Pillow's bicubic resize.

pub use hyperstyle::resize::resize_bicubic;

/// [`resize_bicubic`] to `(width, height)`.
fn resized(image: &RgbImage, (width, height): (u32, u32)) -> RgbImage {
    resize_bicubic(image, width, height)
}

/// `np.concatenate(images, axis=1)`: images of one height, left to right.
pub fn concat_horizontal(images: &[RgbImage]) -> Result<RgbImage, BoxError> {
    let height = images.first().map_or(0, RgbImage::height);
    if images.is_empty() || images.iter().any(|i| i.height() != height) {
        return Err("images to place side by side must be of one height".into());
    }
    let mut out = RgbImage::new(images.iter().map(RgbImage::width).sum(), height);
    let mut x = 0;
    for image in images {
        image::imageops::replace(&mut out, image, i64::from(x), 0);
        x += image.width();
    }
    Ok(out)
}

/// `np.concatenate(images, axis=0)`: images of one width, top to bottom.
pub fn concat_vertical(images: &[RgbImage]) -> Result<RgbImage, BoxError> {
    let width = images.first().map_or(0, RgbImage::width);
    if images.is_empty() || images.iter().any(|i| i.width() != width) {
        return Err("images to stack must be of one width".into());
    }
    let mut out = RgbImage::new(width, images.iter().map(RgbImage::height).sum());
    let mut y = 0;
    for image in images {
        image::imageops::replace(&mut out, image, 0, i64::from(y));
        y += image.height();
    }
    Ok(out)
}

// ----------------------------------------------------------------------------------------------
// Names.

/// An input's names in the layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamName {
    /// The image file name: upstream's `os.path.basename(path)`.
    pub file: String,
    /// The part of `file` before its first dot: upstream's `file.split('.')[0]`, the name of its
    /// weight offsets.
    pub stem: String,
}

/// Gives every input its upstream names, never the same stem twice, and refuses to write over an
/// input.
pub struct UpstreamNames {
    inputs: Vec<PathBuf>,
    used: HashSet<String>,
}

impl UpstreamNames {
    /// Names for a run whose inputs are `inputs` (protected from being overwritten).
    pub fn new(inputs: &[PathBuf]) -> Self {
        Self {
            inputs: inputs.to_vec(),
            used: HashSet::new(),
        }
    }

    /// The names of `input`: its file name, with `_2`, `_3`, … after the stem if an earlier input
    /// had the same stem. Line breaks become `_`.
    pub fn name(&mut self, input: &Path) -> UpstreamName {
        let base: String = input
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
            .chars()
            .map(|c| if c == '\n' || c == '\r' { '_' } else { c })
            .collect();
        let (stem, rest) = match base.find('.') {
            Some(i) => base.split_at(i),
            None => (base.as_str(), ""),
        };
        let stem = if stem.is_empty() { "image" } else { stem };
        let ext = rest.rsplit('.').next().unwrap_or_default().to_ascii_lowercase();
        let suffix = if rest.is_empty() || !matches!(ext.as_str(), "png" | "jpg" | "jpeg") {
            format!("{rest}.png")
        } else {
            rest.to_string()
        };
        let mut unique = stem.to_string();
        let mut n = 1;
        while !self.used.insert(unique.clone()) {
            n += 1;
            unique = format!("{stem}_{n}");
        }
        UpstreamName {
            file: format!("{unique}{suffix}"),
            stem: unique,
        }
    }

    /// `path`, or an error if it is one of the inputs.
    pub fn check(&self, path: PathBuf) -> Result<PathBuf, BoxError> {
        if let Some(input) = self.inputs.iter().find(|input| same_file(input, &path)) {
            return Err(format!("refusing to overwrite the input {} with an output", input.display()).into());
        }
        Ok(path)
    }
}

fn create_dir(path: &Path) -> Result<(), BoxError> {
    std::fs::create_dir_all(path).map_err(|e| format!("cannot create {}: {e}", path.display()).into())
}

// ----------------------------------------------------------------------------------------------
// Inversion.

/// One layer's offset as upstream saves it: `[out, in, k, k]` float32, row-major.
pub type LayerDelta = (Vec<usize>, Vec<f32>);

/// Sample `b`'s accumulated offsets as upstream's `weights_deltas` of one image: one entry per
/// generator layer (`layers`, the generator's layer table), `None` where the layer is not tuned,
/// else `[out, in, k, k]`. Offsets stored per filter pair (`[…, 1, 1]` on a k×k layer) are
/// repeated over the k×k taps, as upstream's refinement blocks repeat them.
pub fn sample_deltas<Bk: Backend>(
    offsets: &WeightOffsets<Bk>,
    layers: &[LayerSpec],
    b: usize,
) -> Result<Vec<Option<LayerDelta>>, BoxError> {
    if offsets.len() != layers.len() {
        return Err(format!("{} offsets for a generator of {} layers", offsets.len(), layers.len()).into());
    }
    let mut out = Vec::with_capacity(layers.len());
    for (entry, layer) in offsets.iter().zip(layers) {
        let Some(tensor) = entry else {
            out.push(None);
            continue;
        };
        let [batch, o, i, kh, kw] = tensor.dims();
        let sample = if batch == 1 { 0 } else { b };
        if sample >= batch {
            return Err(format!("sample {b} of offsets for {batch} images").into());
        }
        let k = layer.kernel;
        if o != layer.out_channels || i != layer.in_channels || !((kh, kw) == (k, k) || (kh, kw) == (1, 1)) {
            return Err(format!(
                "layer {} offsets have shape {:?}, the layer is {} → {}, {k}×{k}",
                layer.index,
                tensor.dims(),
                layer.in_channels,
                layer.out_channels
            )
            .into());
        }
        let values = tensor
            .clone()
            .narrow(0, sample, 1)
            .into_data()
            .convert::<f32>()
            .to_vec::<f32>()
            .map_err(|e| format!("layer {} offsets: {e:?}", layer.index))?;
        let values = if (kh, kw) == (k, k) {
            values
        } else {
            values.iter().flat_map(|&v| std::iter::repeat_n(v, k * k)).collect()
        };
        out.push(Some((vec![o, i, k, k], values)));
    }
    Ok(out)
}

/// Writes upstream's inversion folders (module docs) while the images are inverted; `finish`
/// writes the files that cover the whole run.
pub struct InferenceWriter {
    dir: PathBuf,
    size: (u32, u32),
    resize_outputs: bool,
    names: UpstreamNames,
    n_styles: usize,
    latent_names: Vec<String>,
    latents: Vec<f32>,
    batch_seconds: Vec<f64>,
}

impl InferenceWriter {
    /// The layout in `dir` for a model of `config` (`resize_outputs`: upstream's flag), whose
    /// inputs are `inputs` (never overwritten). Creates `inference_results/` and
    /// `inference_coupled/`.
    pub fn new(
        dir: &Path,
        inputs: &[PathBuf],
        config: &HyperStyleConfig,
        resize_outputs: bool,
    ) -> Result<Self, BoxError> {
        create_dir(&dir.join("inference_results"))?;
        create_dir(&dir.join("inference_coupled"))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            size: resize_amount(config, resize_outputs),
            resize_outputs,
            names: UpstreamNames::new(inputs),
            n_styles: config.n_styles(),
            latent_names: Vec::new(),
            latents: Vec::new(),
            batch_seconds: Vec::new(),
        })
    }

    /// The names of `input` in this run.
    pub fn name(&mut self, input: &Path) -> UpstreamName {
        self.names.name(input)
    }

    /// The path of file `file_name` in the output folder; an error if it is one of the inputs.
    pub fn file(&self, file_name: &str) -> Result<PathBuf, BoxError> {
        self.names.check(self.dir.join(file_name))
    }

    /// The size every image is written at, `(width, height)`.
    pub fn size(&self) -> (u32, u32) {
        self.size
    }

    /// Records the inversion time of one batch, for `stats.txt`.
    pub fn record_batch_time(&mut self, seconds: f64) {
        self.batch_seconds.push(seconds);
    }

    /// Writes sample `b` of `inversion`: each step's image (the full-resolution one, or the
    /// pooled one with `--resize-outputs`, as upstream's `resize` flag selects) and the coupled
    /// image, `input` being the network input as an image ([`network_input_image`]); keeps its
    /// latents for `latents.npy`.
    pub fn write_sample<Bk: Backend>(
        &mut self,
        name: &UpstreamName,
        input: &RgbImage,
        inversion: &Inversion<Bk>,
        b: usize,
    ) -> Result<(), BoxError> {
        let mut steps = Vec::with_capacity(inversion.steps.len());
        for step in &inversion.steps {
            let image = if self.resize_outputs { &step.pooled } else { &step.image };
            steps.push(tensor_to_images(image.clone().narrow(0, b, 1))?.remove(0));
        }
        self.write_images(name, input, &steps)?;
        let codes = inversion
            .latents
            .clone()
            .narrow(0, b, 1)
            .into_data()
            .convert::<f32>()
            .to_vec::<f32>()
            .map_err(|e| format!("latents: {e:?}"))?;
        self.add_latents(name, codes)
    }

    /// Writes `inference_results/<i>/<file>` for every step image and
    /// `inference_coupled/<file>`: `input | step 0 | …`, every image resized to the layout's size.
    pub fn write_images(&self, name: &UpstreamName, input: &RgbImage, steps: &[RgbImage]) -> Result<(), BoxError> {
        let mut row = vec![resized(input, self.size)];
        for (i, step) in steps.iter().enumerate() {
            let image = resized(step, self.size);
            let dir = self.dir.join("inference_results").join(i.to_string());
            create_dir(&dir)?;
            save_image(&image, self.names.check(dir.join(&name.file))?)?;
            row.push(image);
        }
        let coupled = concat_horizontal(&row)?;
        save_image(
            &coupled,
            self.names.check(self.dir.join("inference_coupled").join(&name.file))?,
        )?;
        Ok(())
    }

    /// Keeps one image's W+ codes (`n_styles × 512` values) for `latents.npy`.
    pub fn add_latents(&mut self, name: &UpstreamName, codes: Vec<f32>) -> Result<(), BoxError> {
        if codes.len() != self.n_styles * 512 {
            return Err(format!("{} latent values, expected {} × 512", codes.len(), self.n_styles).into());
        }
        self.latent_names.push(name.file.clone());
        self.latents.extend(codes);
        Ok(())
    }

    /// Writes one image's final offsets (`deltas`, from [`sample_deltas`]) to
    /// `weight_deltas/<stem>.npy` as upstream saves them: `np.save` of the per-layer list, an
    /// object array of shape `(n_layers,)` whose entries are float32 `[out, in, k, k]` arrays or
    /// `None` (untuned layers). `np.load(path, allow_pickle=True)` reads it, as upstream's
    /// StyleCLIP editing script does. Returns the file's path.
    pub fn write_weight_deltas(&self, name: &UpstreamName, deltas: &[Option<LayerDelta>]) -> Result<PathBuf, BoxError> {
        let dir = self.dir.join("weight_deltas");
        create_dir(&dir)?;
        let path = self.names.check(dir.join(format!("{}.npy", name.stem)))?;
        let items = deltas
            .iter()
            .map(|delta| match delta {
                Some((shape, values)) => Object::Array(NdArray::f32(shape, values)),
                None => Object::None,
            })
            .collect();
        npy::write_object(&path, &[deltas.len()], items)?;
        Ok(path)
    }

    /// Writes `latents.npy` and `stats.txt`.
    ///
    /// `latents.npy` is upstream's: `np.save` of the dict `{file name: float32 [n_styles, 512]}`
    /// in the order the images were inverted, a 0-d object array that
    /// `np.load(path, allow_pickle=True).item()` turns back into the dict (the bytes NumPy 1.x
    /// writes, see [`hyperstyle::npy::write_pickled`]). `stats.txt` is upstream's
    /// `Runtime <mean>+-<std>` over the batches' inversion times in seconds (population standard
    /// deviation, as `np.std`).
    pub fn finish(self) -> Result<(), BoxError> {
        let size = self.n_styles * 512;
        let dict = self
            .latent_names
            .iter()
            .zip(self.latents.chunks(size))
            .map(|(file, codes)| {
                (
                    Object::str(file.as_str()),
                    Object::Array(NdArray::f32(&[self.n_styles, 512], codes)),
                )
            })
            .collect();
        npy::write_pickled(self.names.check(self.dir.join("latents.npy"))?, Object::Dict(dict))?;
        if !self.batch_seconds.is_empty() {
            let count = self.batch_seconds.len() as f64;
            let mean = self.batch_seconds.iter().sum::<f64>() / count;
            let var = self.batch_seconds.iter().map(|t| (t - mean).powi(2)).sum::<f64>() / count;
            hyperstyle::core::atomic::write_atomically(
                &self.names.check(self.dir.join("stats.txt"))?,
                format!("Runtime {mean:.4}+-{:.4}", var.sqrt()).as_bytes(),
            )?;
        }
        Ok(())
    }
}

// ----------------------------------------------------------------------------------------------
// Editing.

/// Writes upstream's editing folders (module docs).
pub struct EditWriter {
    dir: PathBuf,
    size: (u32, u32),
    names: UpstreamNames,
}

impl EditWriter {
    /// The layout in `dir` for a model of `config` (`resize_outputs`: upstream's flag; cars
    /// ignore it, as upstream's cars script does), whose inputs are `inputs`. Creates
    /// `editing_coupled/`.
    pub fn new(
        dir: &Path,
        inputs: &[PathBuf],
        config: &HyperStyleConfig,
        resize_outputs: bool,
    ) -> Result<Self, BoxError> {
        create_dir(&dir.join("editing_coupled"))?;
        let size = resize_amount(config, resize_outputs && config.domain != Domain::Cars);
        Ok(Self {
            dir: dir.to_path_buf(),
            size,
            names: UpstreamNames::new(inputs),
        })
    }

    /// The names of `input` in this run.
    pub fn name(&mut self, input: &Path) -> UpstreamName {
        self.names.name(input)
    }

    /// Faces: for each `(edit name, edited images)`, the row `input | inversion | edits`, every
    /// image resized to the layout's size, to `editing_results/<edit>/<file>`; all rows stacked
    /// in order to `editing_coupled/<file>`. `input` is the network input as an image,
    /// `inversion` the final pooled reconstruction (what upstream's editing script shows).
    /// Returns the coupled image's path.
    pub fn write_faces(
        &self,
        name: &UpstreamName,
        input: &RgbImage,
        inversion: &RgbImage,
        edits: &[(String, Vec<RgbImage>)],
    ) -> Result<PathBuf, BoxError> {
        let head = [resized(input, self.size), resized(inversion, self.size)];
        let mut rows = Vec::with_capacity(edits.len());
        for (edit, images) in edits {
            let mut row = head.to_vec();
            row.extend(images.iter().map(|i| resized(i, self.size)));
            let row = concat_horizontal(&row)?;
            let dir = self.dir.join("editing_results").join(edit);
            create_dir(&dir)?;
            save_image(&row, self.names.check(dir.join(&name.file))?)?;
            rows.push(row);
        }
        let path = self.names.check(self.dir.join("editing_coupled").join(&name.file))?;
        save_image(&concat_vertical(&rows)?, &path)?;
        Ok(path)
    }

    /// Cars: `input | inversion | edits` to `editing_coupled/<stem>.jpg`; the input is resized
    /// to 512×384, the generator's images are used as they are (upstream's cars script).
    /// Returns the path.
    pub fn write_cars(
        &self,
        name: &UpstreamName,
        input: &RgbImage,
        inversion: &RgbImage,
        edits: &[RgbImage],
    ) -> Result<PathBuf, BoxError> {
        let mut row = vec![resized(input, self.size), inversion.clone()];
        row.extend(edits.iter().cloned());
        let path = self
            .names
            .check(self.dir.join("editing_coupled").join(format!("{}.jpg", name.stem)))?;
        save_image(&concat_horizontal(&row)?, &path)?;
        Ok(path)
    }
}
