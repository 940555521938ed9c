//! HyperStyle's training data, as the original reads it (`datasets/`, `utils/data_utils.py`,
//! `configs/transforms_config.py`, `configs/data_configs.py`), and a deterministic loader.
//!
//! * [`list_images`]: the image files of a folder, as `make_dataset` finds them (not recursive;
//!   the extensions of [`IMAGE_EXTENSIONS`], case-sensitive) in sorted order.
//! * [`ImagesDataset`]: pairs the i-th source image with the i-th target image (HyperStyle
//!   trains with the same folder on both sides, and without a source transform the source *is*
//!   the transformed target).
//! * [`LatentsImagesDataset`]: the pre-extracted variant: the W inversion of the i-th target is
//!   `{i+1:05d}.png` in the inversions folder, its W+ code is the entry of that name in a
//!   latents file (`examples/extract_inversions.rs` writes both).
//! * [`Transform`], [`DatasetTransforms`], [`DatasetType`]: `Resize` (Pillow's bilinear filter
//!   with its antialiasing, [`crate::resize`]) → optional `RandomHorizontalFlip(0.5)` →
//!   `ToTensor` → `Normalize(0.5, 0.5)`, per dataset type.
//! * [`DataLoader`]: batches in a shuffled order, dropping the last incomplete batch, as the
//!   original's training loader; every random choice (order, flips) is derived from a seed, the
//!   epoch and the sample index, so a run can resume at any step with the same data.
//!
//! Samples and batches are plain `f32` buffers with their shapes, so that the training code can
//! move them to any device (and [`Batch::to_tensors`] does it for a Burn backend).
//!
//! Differences from the original: the random flips come from this module's generator, not
//! torch's (the same distribution, other draws); source and target folders with different
//! numbers of images are refused (the original pairs them by index and silently ignores, or
//! fails on, the surplus); only PNG and JPEG files decode (`.bmp`, `.ppm`, `.tiff` files are
//! listed as the original lists them and report [`DataError::Image`] when loaded).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use burn::prelude::*;
use hyperstyle_core::checkpoint::{FORMAT, FORMAT_VERSION, KIND};
use hyperstyle_core::{Kind, WeightStore};
use image::RgbImage;

use crate::domain::Domain;
use crate::io::{load_image, normalize};
use crate::resize::resize_bilinear;

pub use hyperstyle_core::checkpoint::IMAGE_EXTENSIONS;

/// Channels of a W code.
pub const LATENT_DIM: usize = 512;

/// Style layers a one-vector latent is repeated to by the original (`latent.repeat(18, 1)`, the
/// 1024×1024 faces generator's count).
pub const DEFAULT_N_STYLES: usize = 18;

/// What can go wrong while listing, opening and loading training data.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A dataset root that is not a folder.
    #[error("{path}: not a folder")]
    NotAFolder {
        /// The path given.
        path: PathBuf,
    },
    /// A folder that cannot be listed.
    #[error("{path}: cannot list the folder: {source}")]
    ReadFolder {
        /// The folder.
        path: PathBuf,
        /// What the file system reported.
        #[source]
        source: std::io::Error,
    },
    /// A folder without image files.
    #[error("{path}: no images (files ending in {})", IMAGE_EXTENSIONS.join(", "))]
    Empty {
        /// The folder.
        path: PathBuf,
    },
    /// Source and target folders with different numbers of images.
    #[error("{sources} source images in {source_root} but {targets} target images in {target_root}")]
    CountMismatch {
        /// The source folder.
        source_root: PathBuf,
        /// Its number of images.
        sources: usize,
        /// The target folder.
        target_root: PathBuf,
        /// Its number of images.
        targets: usize,
    },
    /// An inversion image the dataset needs (`{index+1:05d}.png`) is not in the folder.
    #[error("{path}: missing inversion of target {index} ({target})")]
    MissingInversion {
        /// The file expected.
        path: PathBuf,
        /// The target's index.
        index: usize,
        /// The target image.
        target: PathBuf,
    },
    /// The latents file cannot be read (missing, not safetensors, a converted checkpoint of another
    /// kind, ...).
    #[error("{path}: cannot read the latents: {reason}")]
    Latents {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The latents file has no entry for an inversion image.
    #[error("{path}: no latent code named `{name}`")]
    MissingLatent {
        /// The latents file.
        path: PathBuf,
        /// The entry expected (the inversion's file name).
        name: String,
    },
    /// A latent code of another shape than `[n_styles, 512]`, `[1, 512]` or `[512]`.
    #[error("{path}: latent `{name}` has shape {shape:?}, expected [{n_styles}, {LATENT_DIM}], [1, {LATENT_DIM}] or [{LATENT_DIM}]")]
    LatentShape {
        /// The latents file.
        path: PathBuf,
        /// The entry.
        name: String,
        /// Its shape.
        shape: Vec<usize>,
        /// The style layers expected.
        n_styles: usize,
    },
    /// An image that cannot be loaded (unreadable, corrupt, unsupported format, too small).
    #[error(transparent)]
    Image(#[from] Box<crate::Error>),
    /// A sample index beyond the dataset.
    #[error("sample {index} is out of range: the dataset has {len}")]
    OutOfRange {
        /// The index asked for.
        index: usize,
        /// The dataset's length.
        len: usize,
    },
    /// Loader settings that give no batches.
    #[error("invalid loader settings: {0}")]
    Config(String),
}

/// Result with [`DataError`].
pub type DataResult<T> = std::result::Result<T, DataError>;

/// The image files directly inside `dir` whose names end with one of [`IMAGE_EXTENSIONS`], in
/// sorted order (byte order of the names, as Python sorts them). Sub-folders are not entered.
pub fn list_images(dir: impl AsRef<Path>) -> DataResult<Vec<PathBuf>> {
    let dir = dir.as_ref();
    if !dir.is_dir() {
        return Err(DataError::NotAFolder {
            path: dir.to_path_buf(),
        });
    }
    let read_error = |source| DataError::ReadFolder {
        path: dir.to_path_buf(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_error)? {
        let entry = entry.map_err(read_error)?;
        let name = entry.file_name();
        let is_image = IMAGE_EXTENSIONS.iter().any(|ext| name.to_string_lossy().ends_with(ext));
        if is_image && !entry.path().is_dir() {
            files.push(entry.path());
        }
    }
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(files)
}

/// [`list_images`], refusing an empty folder.
fn list_nonempty(dir: &Path) -> DataResult<Vec<PathBuf>> {
    let files = list_images(dir)?;
    if files.is_empty() {
        return Err(DataError::Empty {
            path: dir.to_path_buf(),
        });
    }
    Ok(files)
}

/// One image transform: `Resize((height, width))` (Pillow bilinear, as torchvision resizes PIL
/// images), then `RandomHorizontalFlip(0.5)` if `random_flip`, then `ToTensor` and
/// `Normalize(0.5, 0.5)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transform {
    /// Output `(height, width)`.
    pub size: (usize, usize),
    /// Whether each image is mirrored left-right with probability ½.
    pub random_flip: bool,
}

impl Transform {
    /// Resize and normalise, no flip.
    pub const fn resize(size: (usize, usize)) -> Self {
        Self {
            size,
            random_flip: false,
        }
    }

    /// Resize, flip with probability ½, normalise.
    pub const fn resize_flip(size: (usize, usize)) -> Self {
        Self {
            size,
            random_flip: true,
        }
    }

    /// Applies the transform; `flip` is the coin toss (used only when [`Self::random_flip`]).
    /// Returns `[3, height, width]` values in [−1, 1], channel-major.
    pub fn apply(&self, image: &RgbImage, flip: bool) -> Vec<f32> {
        let (height, width) = self.size;
        let mut resized = if (image.height() as usize, image.width() as usize) == (height, width) {
            image.clone()
        } else {
            resize_bilinear(image, width as u32, height as u32)
        };
        if self.random_flip && flip {
            image::imageops::flip_horizontal_in_place(&mut resized);
        }
        normalize(&resized, (height, width))
    }

    /// `[3, height, width]`.
    pub fn shape(&self) -> [usize; 3] {
        [3, self.size.0, self.size.1]
    }
}

/// The transforms of one dataset type (the original's `TransformsConfig` classes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatasetTransforms {
    /// Targets of the training set (`transform_gt_train`).
    pub target_train: Transform,
    /// Sources (`transform_source`); `None`: the source is the transformed target itself.
    pub source: Option<Transform>,
    /// Targets of the test set (`transform_test`).
    pub test: Transform,
}

impl DatasetTransforms {
    /// `EncodeTransforms` (faces, animals) and `CarsEncodeTransforms` (cars, 192×256): flipped
    /// training targets, no source transform.
    pub fn encode(domain: Domain) -> Self {
        let size = domain.input_size();
        Self {
            target_train: Transform::resize_flip(size),
            source: None,
            test: Transform::resize(size),
        }
    }

    /// `NoFlipTransforms` (pre-extracted inversions): 256×256, nothing flipped (a flipped
    /// target would no longer match its inversion and latent code).
    pub fn no_flip() -> Self {
        let plain = Transform::resize((256, 256));
        Self {
            target_train: plain,
            source: Some(plain),
            test: plain,
        }
    }
}

/// The original's dataset types (`configs/data_configs.py`); the folders themselves are the
/// caller's (the original's `paths_config.py`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatasetType {
    /// `ffhq_hypernet`: FFHQ for training, CelebA-HQ test for testing.
    FfhqHypernet,
    /// `ffhq_hypernet_pre_extract`: the same with pre-extracted W inversions and latents.
    FfhqHypernetPreExtract,
    /// `cars_hypernet`: Stanford Cars.
    CarsHypernet,
    /// `afhq_wild_hypernet`: AFHQ wild.
    AfhqWildHypernet,
}

impl DatasetType {
    /// Every type.
    pub const ALL: [DatasetType; 4] = [
        DatasetType::FfhqHypernet,
        DatasetType::FfhqHypernetPreExtract,
        DatasetType::CarsHypernet,
        DatasetType::AfhqWildHypernet,
    ];

    /// The original's name (`--dataset_type`).
    pub fn name(self) -> &'static str {
        match self {
            DatasetType::FfhqHypernet => "ffhq_hypernet",
            DatasetType::FfhqHypernetPreExtract => "ffhq_hypernet_pre_extract",
            DatasetType::CarsHypernet => "cars_hypernet",
            DatasetType::AfhqWildHypernet => "afhq_wild_hypernet",
        }
    }

    /// From the original's name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The domain (input size, crops).
    pub fn domain(self) -> Domain {
        Domain::from_dataset_type(self.name())
    }

    /// Whether the sources are pre-extracted inversions ([`LatentsImagesDataset`]).
    pub fn pre_extracted(self) -> bool {
        self == DatasetType::FfhqHypernetPreExtract
    }

    /// Its transforms.
    pub fn transforms(self) -> DatasetTransforms {
        if self.pre_extracted() {
            DatasetTransforms::no_flip()
        } else {
            DatasetTransforms::encode(self.domain())
        }
    }
}

/// One loaded sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The dataset index.
    pub index: usize,
    /// The source image `[3, h, w]` in [−1, 1] (the network's input; for pre-extracted data, the
    /// W inversion).
    pub source: Vec<f32>,
    /// The target image `[3, h, w]` in [−1, 1].
    pub target: Vec<f32>,
    /// The W+ code `[n_styles, 512]` of a pre-extracted inversion.
    pub latent: Option<Vec<f32>>,
}

/// A set of samples addressed by index.
pub trait Dataset: Sync {
    /// Number of samples.
    fn len(&self) -> usize;

    /// Whether there is none (never, for the datasets of this module).
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Loads sample `index`; `flip` is the coin toss of the random flips. One coin serves both
    /// sides: were the source and the target transform both to flip at random, they would flip
    /// together (the original would toss twice, but none of its configurations flips sources).
    fn sample(&self, index: usize, flip: bool) -> DataResult<Sample>;

    /// `[3, h, w]` of the sources.
    fn source_shape(&self) -> [usize; 3];

    /// `[3, h, w]` of the targets.
    fn target_shape(&self) -> [usize; 3];

    /// `[n_styles, 512]` of the latent codes, if the samples have them.
    fn latent_shape(&self) -> Option<[usize; 2]>;
}

fn load(path: &Path) -> DataResult<RgbImage> {
    load_image(path).map_err(|e| DataError::Image(Box::new(e)))
}

fn check_index(index: usize, len: usize) -> DataResult<()> {
    if index >= len {
        return Err(DataError::OutOfRange { index, len });
    }
    Ok(())
}

/// The original's `ImagesDataset`: sample `i` is the `i`-th image of the sorted source folder
/// and the `i`-th of the sorted target folder.
#[derive(Debug, Clone)]
pub struct ImagesDataset {
    sources: Vec<PathBuf>,
    targets: Vec<PathBuf>,
    target_transform: Transform,
    source_transform: Option<Transform>,
}

impl ImagesDataset {
    /// Lists both folders ([`list_images`]); they must hold the same, non-zero number of images.
    pub fn new(
        source_root: impl AsRef<Path>,
        target_root: impl AsRef<Path>,
        target_transform: Transform,
        source_transform: Option<Transform>,
    ) -> DataResult<Self> {
        let (source_root, target_root) = (source_root.as_ref(), target_root.as_ref());
        let sources = list_nonempty(source_root)?;
        let targets = list_nonempty(target_root)?;
        if sources.len() != targets.len() {
            return Err(DataError::CountMismatch {
                source_root: source_root.to_path_buf(),
                sources: sources.len(),
                target_root: target_root.to_path_buf(),
                targets: targets.len(),
            });
        }
        Ok(Self {
            sources,
            targets,
            target_transform,
            source_transform,
        })
    }

    /// The source files, in sample order.
    pub fn sources(&self) -> &[PathBuf] {
        &self.sources
    }

    /// The target files, in sample order.
    pub fn targets(&self) -> &[PathBuf] {
        &self.targets
    }
}

impl Dataset for ImagesDataset {
    fn len(&self) -> usize {
        self.sources.len()
    }

    fn sample(&self, index: usize, flip: bool) -> DataResult<Sample> {
        check_index(index, self.len())?;
        let target = self.target_transform.apply(&load(&self.targets[index])?, flip);
        let source = match &self.source_transform {
            Some(transform) => transform.apply(&load(&self.sources[index])?, flip),
            None => target.clone(),
        };
        Ok(Sample {
            index,
            source,
            target,
            latent: None,
        })
    }

    fn source_shape(&self) -> [usize; 3] {
        self.source_transform.unwrap_or(self.target_transform).shape()
    }

    fn target_shape(&self) -> [usize; 3] {
        self.target_transform.shape()
    }

    fn latent_shape(&self) -> Option<[usize; 2]> {
        None
    }
}

/// The name of the `index`-th inversion image and of its latent code: `{index+1:05d}.png`.
pub fn inversion_name(index: usize) -> String {
    format!("{:05}.png", index + 1)
}

/// The original's `LatentsImagesDataset`: sample `i` is the inversion `{i+1:05d}.png` of the
/// inversions folder (the source), the `i`-th image of the sorted target folder, and the latent
/// code stored under the inversion's file name.
///
/// The latents file is a safetensors file with one float tensor per inversion, `[n_styles, 512]`
/// or a single W vector `[512]` / `[1, 512]` (repeated to `n_styles` rows, as the original does):
/// what
/// `examples/extract_inversions.rs` writes, or the original's `torch.save`d dict once converted
/// by `weights-convert` (kind `latents`). A converted checkpoint of another kind is refused.
/// Every inversion file and latent entry is checked when the dataset is opened.
pub struct LatentsImagesDataset {
    inversions: Vec<PathBuf>,
    targets: Vec<PathBuf>,
    latents: Mutex<WeightStore>,
    latents_path: PathBuf,
    n_styles: usize,
    target_transform: Transform,
    source_transform: Option<Transform>,
}

impl std::fmt::Debug for LatentsImagesDataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LatentsImagesDataset")
            .field("samples", &self.targets.len())
            .field("latents_path", &self.latents_path)
            .field("n_styles", &self.n_styles)
            .field("target_transform", &self.target_transform)
            .field("source_transform", &self.source_transform)
            .finish_non_exhaustive()
    }
}

impl LatentsImagesDataset {
    /// Lists the targets ([`list_images`]) and checks that each has its inversion image and a
    /// latent code of a valid shape.
    pub fn new(
        inversions_root: impl AsRef<Path>,
        target_root: impl AsRef<Path>,
        latents_path: impl AsRef<Path>,
        n_styles: usize,
        target_transform: Transform,
        source_transform: Option<Transform>,
    ) -> DataResult<Self> {
        let (inversions_root, latents_path) = (inversions_root.as_ref(), latents_path.as_ref());
        let targets = list_nonempty(target_root.as_ref())?;
        if !inversions_root.is_dir() {
            return Err(DataError::NotAFolder {
                path: inversions_root.to_path_buf(),
            });
        }
        let latents = WeightStore::open_checkpoint(latents_path, &[Kind::Latents]).map_err(|e| DataError::Latents {
            path: latents_path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let mut inversions = Vec::with_capacity(targets.len());
        for (index, target) in targets.iter().enumerate() {
            let name = inversion_name(index);
            let path = inversions_root.join(&name);
            if !path.is_file() {
                return Err(DataError::MissingInversion {
                    path,
                    index,
                    target: target.clone(),
                });
            }
            let shape = latents.shape(&name).ok_or_else(|| DataError::MissingLatent {
                path: latents_path.to_path_buf(),
                name: name.clone(),
            })?;
            if shape != [n_styles, LATENT_DIM] && shape != [1, LATENT_DIM] && shape != [LATENT_DIM] {
                return Err(DataError::LatentShape {
                    path: latents_path.to_path_buf(),
                    name,
                    shape,
                    n_styles,
                });
            }
            inversions.push(path);
        }
        Ok(Self {
            inversions,
            targets,
            latents: Mutex::new(latents),
            latents_path: latents_path.to_path_buf(),
            n_styles,
            target_transform,
            source_transform,
        })
    }

    /// The inversion files, in sample order.
    pub fn inversions(&self) -> &[PathBuf] {
        &self.inversions
    }

    /// The target files, in sample order.
    pub fn targets(&self) -> &[PathBuf] {
        &self.targets
    }

    /// The latent code of sample `index`, `[n_styles, 512]` row-major.
    pub fn latent(&self, index: usize) -> DataResult<Vec<f32>> {
        check_index(index, self.len())?;
        let name = inversion_name(index);
        let latents = self.latents.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (_, values) = latents.any_values(&name).map_err(|e| DataError::Latents {
            path: self.latents_path.clone(),
            reason: e.to_string(),
        })?;
        Ok(if values.len() == LATENT_DIM {
            values.repeat(self.n_styles)
        } else {
            values
        })
    }
}

impl Dataset for LatentsImagesDataset {
    fn len(&self) -> usize {
        self.targets.len()
    }

    fn sample(&self, index: usize, flip: bool) -> DataResult<Sample> {
        check_index(index, self.len())?;
        let target = self.target_transform.apply(&load(&self.targets[index])?, flip);
        let source = match &self.source_transform {
            Some(transform) => transform.apply(&load(&self.inversions[index])?, flip),
            None => target.clone(),
        };
        Ok(Sample {
            index,
            source,
            target,
            latent: Some(self.latent(index)?),
        })
    }

    fn source_shape(&self) -> [usize; 3] {
        self.source_transform.unwrap_or(self.target_transform).shape()
    }

    fn target_shape(&self) -> [usize; 3] {
        self.target_transform.shape()
    }

    fn latent_shape(&self) -> Option<[usize; 2]> {
        Some([self.n_styles, LATENT_DIM])
    }
}

/// Writes a latents file for [`LatentsImagesDataset`]: one `[rows, 512]` float32 tensor per
/// name. `codes` holds `(name, values)` with `values.len()` a multiple of 512.
pub fn write_latents(path: impl AsRef<Path>, codes: &[(String, Vec<f32>)]) -> crate::Result<()> {
    let path = path.as_ref();
    let mut bytes: HashMap<&str, (Vec<u8>, [usize; 2])> = HashMap::new();
    for (name, values) in codes {
        if values.is_empty() || values.len() % LATENT_DIM != 0 {
            return Err(crate::error::invalid_input(format!(
                "latent `{name}` has {} values, not a whole number of {LATENT_DIM}-vectors",
                values.len()
            )));
        }
        let raw = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        bytes.insert(name, (raw, [values.len() / LATENT_DIM, LATENT_DIM]));
    }
    let mut views = Vec::with_capacity(bytes.len());
    for (name, (raw, shape)) in &bytes {
        let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.to_vec(), raw)
            .map_err(|e| crate::error::invalid_input(e.to_string()))?;
        views.push((name.to_string(), view));
    }
    views.sort_by(|a, b| a.0.cmp(&b.0));
    let metadata = HashMap::from([
        (FORMAT.to_string(), FORMAT_VERSION.to_string()),
        (KIND.to_string(), Kind::Latents.name().to_string()),
    ]);
    let serialized =
        safetensors::serialize(views, Some(metadata)).map_err(|e| crate::error::invalid_input(e.to_string()))?;
    // Through a temporary file and a rename: an interrupted run leaves no truncated file.
    hyperstyle_core::atomic::write_atomically(path, &serialized)?;
    Ok(())
}

/// Loader settings (the original's `DataLoader` arguments).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoaderConfig {
    /// Samples per batch.
    pub batch_size: usize,
    /// Whether each epoch visits the samples in a new random order (training) or in index order
    /// (testing).
    pub shuffle: bool,
    /// Whether the last, incomplete batch of an epoch is dropped (the original drops it for
    /// training and testing).
    pub drop_last: bool,
    /// Seed of every random choice: orders and flips.
    pub seed: u64,
    /// Threads loading the samples of a batch (0: one per core, at most one per sample).
    pub workers: usize,
}

impl LoaderConfig {
    /// The training loader: shuffled, last batch dropped.
    pub fn train(batch_size: usize, seed: u64) -> Self {
        Self {
            batch_size,
            shuffle: true,
            drop_last: true,
            seed,
            workers: 0,
        }
    }

    /// The test loader: index order, last batch dropped (as the original's).
    pub fn test(batch_size: usize) -> Self {
        Self {
            batch_size,
            shuffle: false,
            drop_last: true,
            seed: 0,
            workers: 0,
        }
    }
}

/// Where a loader is: epoch and batch within it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    /// The epoch, from 0.
    pub epoch: u64,
    /// The batch within the epoch, from 0.
    pub batch: usize,
}

/// A batch of samples, each side stacked into one row-major buffer.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Where it comes from.
    pub position: Position,
    /// The dataset index of each sample.
    pub indices: Vec<usize>,
    /// Sources `[batch, 3, h, w]`.
    pub sources: Vec<f32>,
    /// Shape of [`Self::sources`].
    pub source_shape: [usize; 4],
    /// Targets `[batch, 3, h, w]`.
    pub targets: Vec<f32>,
    /// Shape of [`Self::targets`].
    pub target_shape: [usize; 4],
    /// Latent codes `[batch, n_styles, 512]` (pre-extracted data).
    pub latents: Option<Vec<f32>>,
    /// Shape of [`Self::latents`].
    pub latent_shape: Option<[usize; 3]>,
}

/// A [`Batch`] as Burn tensors.
#[derive(Debug, Clone)]
pub struct BatchTensors<B: Backend> {
    /// `[batch, 3, h, w]`.
    pub sources: Tensor<B, 4>,
    /// `[batch, 3, h, w]`.
    pub targets: Tensor<B, 4>,
    /// `[batch, n_styles, 512]`.
    pub latents: Option<Tensor<B, 3>>,
}

impl Batch {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    /// Whether it has no samples (never, for a loader's batches).
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// Copies the buffers to `device`.
    pub fn to_tensors<B: Backend>(&self, device: &B::Device) -> BatchTensors<B> {
        BatchTensors {
            sources: Tensor::from_data(TensorData::new(self.sources.clone(), self.source_shape), device),
            targets: Tensor::from_data(TensorData::new(self.targets.clone(), self.target_shape), device),
            latents: self
                .latents
                .as_ref()
                .zip(self.latent_shape)
                .map(|(values, shape)| Tensor::from_data(TensorData::new(values.clone(), shape), device)),
        }
    }
}

/// SplitMix64: a small, fast generator whose whole state is one word, so that any draw can be
/// recomputed from the seed alone.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A generator for one purpose: the seed mixed with `words`.
    fn derived(seed: u64, words: &[u64]) -> Self {
        let mut state = SplitMix64(seed);
        let mut mixed = state.next();
        for &word in words {
            state = SplitMix64(mixed ^ word);
            mixed = state.next();
        }
        SplitMix64(mixed)
    }

    /// Uniform in `0..n` (n ≥ 1), without modulo bias.
    fn below(&mut self, n: u64) -> u64 {
        let zone = u64::MAX - u64::MAX % n;
        loop {
            let x = self.next();
            if x < zone {
                return x % n;
            }
        }
    }
}

/// Purposes of the derived generators.
const ORDER: u64 = 1;
const FLIP: u64 = 2;

/// Batches of a [`Dataset`] in a seeded order.
///
/// Epoch `e` visits the samples in the permutation [`Self::order`]`(e)` (a Fisher–Yates shuffle
/// seeded by the seed and `e`; index order without `shuffle`), cut into batches of
/// `batch_size`. Whether sample `i` is flipped in epoch `e` is a coin derived from the seed, `e`
/// and `i`. Nothing depends on what was loaded before, so batch `b` of epoch `e` is the same in
/// any run with the same seed: a run resumed at global step `s` continues with
/// [`Self::stream`]`(s)`.
pub struct DataLoader<D: Dataset> {
    dataset: D,
    config: LoaderConfig,
}

impl<D: Dataset> DataLoader<D> {
    /// Fails if `batch_size` is 0, or if `drop_last` leaves no batch at all.
    pub fn new(dataset: D, config: LoaderConfig) -> DataResult<Self> {
        if config.batch_size == 0 {
            return Err(DataError::Config("the batch size must be at least 1".into()));
        }
        if config.drop_last && dataset.len() < config.batch_size {
            return Err(DataError::Config(format!(
                "{} samples cannot fill one batch of {} (the last incomplete batch is dropped)",
                dataset.len(),
                config.batch_size
            )));
        }
        Ok(Self { dataset, config })
    }

    /// The dataset.
    pub fn dataset(&self) -> &D {
        &self.dataset
    }

    /// The settings.
    pub fn config(&self) -> &LoaderConfig {
        &self.config
    }

    /// Batches in one epoch.
    pub fn batches_per_epoch(&self) -> usize {
        let (n, size) = (self.dataset.len(), self.config.batch_size);
        if self.config.drop_last {
            n / size
        } else {
            n.div_ceil(size)
        }
    }

    /// The position of global step `step` (batches counted from the first of epoch 0).
    pub fn position(&self, step: u64) -> Position {
        let per_epoch = self.batches_per_epoch() as u64;
        Position {
            epoch: step / per_epoch,
            batch: (step % per_epoch) as usize,
        }
    }

    /// The sample order of `epoch`.
    pub fn order(&self, epoch: u64) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.dataset.len()).collect();
        if self.config.shuffle {
            let mut rng = SplitMix64::derived(self.config.seed, &[ORDER, epoch]);
            for i in (1..order.len()).rev() {
                let j = rng.below(i as u64 + 1) as usize;
                order.swap(i, j);
            }
        }
        order
    }

    /// Whether sample `index` is flipped in `epoch` (when its transform flips at random).
    pub fn flip(&self, epoch: u64, index: usize) -> bool {
        SplitMix64::derived(self.config.seed, &[FLIP, epoch, index as u64]).next() >> 63 == 1
    }

    /// The dataset indices of batch `position.batch` of `position.epoch`.
    pub fn batch_indices(&self, position: Position) -> DataResult<Vec<usize>> {
        let per_epoch = self.batches_per_epoch();
        if position.batch >= per_epoch {
            return Err(DataError::OutOfRange {
                index: position.batch,
                len: per_epoch,
            });
        }
        let order = self.order(position.epoch);
        let start = position.batch * self.config.batch_size;
        let end = (start + self.config.batch_size).min(order.len());
        Ok(order[start..end].to_vec())
    }

    /// Loads one batch, its samples on up to [`LoaderConfig::workers`] threads.
    pub fn batch(&self, position: Position) -> DataResult<Batch> {
        let indices = self.batch_indices(position)?;
        let samples = self.load_samples(&indices, position.epoch)?;
        let n = samples.len();
        let [c, h, w] = self.dataset.source_shape();
        let [tc, th, tw] = self.dataset.target_shape();
        let mut batch = Batch {
            position,
            indices,
            sources: Vec::with_capacity(n * c * h * w),
            source_shape: [n, c, h, w],
            targets: Vec::with_capacity(n * tc * th * tw),
            target_shape: [n, tc, th, tw],
            latents: None,
            latent_shape: self.dataset.latent_shape().map(|[s, d]| [n, s, d]),
        };
        let mut latents = Vec::new();
        for sample in samples {
            batch.sources.extend_from_slice(&sample.source);
            batch.targets.extend_from_slice(&sample.target);
            if let Some(latent) = sample.latent {
                latents.extend_from_slice(&latent);
            }
        }
        if batch.latent_shape.is_some() {
            batch.latents = Some(latents);
        }
        Ok(batch)
    }

    fn load_samples(&self, indices: &[usize], epoch: u64) -> DataResult<Vec<Sample>> {
        let workers = match self.config.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
        .clamp(1, indices.len().max(1));
        let load = |&index: &usize| self.dataset.sample(index, self.flip(epoch, index));
        if workers == 1 {
            return indices.iter().map(load).collect();
        }
        let chunk = indices.len().div_ceil(workers);
        std::thread::scope(|scope| {
            let handles: Vec<_> = indices
                .chunks(chunk)
                .map(|part| scope.spawn(move || part.iter().map(load).collect::<DataResult<Vec<_>>>()))
                .collect();
            let mut samples = Vec::with_capacity(indices.len());
            for handle in handles {
                let part = handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
                samples.extend(part);
            }
            Ok(samples)
        })
    }

    /// The batches of one epoch, in order.
    pub fn epoch(&self, epoch: u64) -> impl Iterator<Item = DataResult<Batch>> + '_ {
        (0..self.batches_per_epoch()).map(move |batch| self.batch(Position { epoch, batch }))
    }

    /// Every batch from global step `step` on, epoch after epoch (the original's training loop
    /// runs until its step limit): `(step, batch)`.
    pub fn stream(&self, step: u64) -> impl Iterator<Item = (u64, DataResult<Batch>)> + '_ {
        (step..).map(move |s| (s, self.batch(self.position(s))))
    }
}
