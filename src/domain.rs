//! The three HyperStyle domains and their geometry (REFERENCE §10).

use serde::{Deserialize, Serialize};

/// What the model was trained on; decides sizes and crops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Domain {
    /// FFHQ faces: 1024 generator, 256×256 inputs.
    Faces,
    /// Stanford Cars: 512 generator whose content is rows 64..448 (384×512), 192×256 inputs.
    Cars,
    /// AFHQ wild animals: 512 generator, 256×256 inputs.
    Wild,
}

impl Domain {
    /// From upstream's `dataset_type` (`ffhq_hypernet`, `cars_hypernet`, `afhq_wild_hypernet`):
    /// upstream switches on the substring `cars`; `afhq`/`wild` select the animals.
    pub fn from_dataset_type(dataset_type: &str) -> Self {
        if dataset_type.contains("cars") {
            Domain::Cars
        } else if dataset_type.contains("afhq") || dataset_type.contains("wild") {
            Domain::Wild
        } else {
            Domain::Faces
        }
    }

    /// From a name on a command line: `faces`, `cars` or `wild`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "faces" | "ffhq" => Some(Domain::Faces),
            "cars" => Some(Domain::Cars),
            "wild" | "afhq" | "animals" => Some(Domain::Wild),
            _ => None,
        }
    }

    /// [`Domain::parse`] with an error message listing the names (for command-line parsers).
    pub fn from_name(name: &str) -> Result<Self, String> {
        Self::parse(name).ok_or_else(|| format!("unknown domain `{name}` (faces, cars, wild)"))
    }

    /// Generator output size of the released models.
    pub fn generator_size(self) -> usize {
        match self {
            Domain::Faces => 1024,
            Domain::Cars | Domain::Wild => 512,
        }
    }

    /// Network input `(height, width)`; also the size each step's image is pooled to.
    pub fn input_size(self) -> (usize, usize) {
        match self {
            Domain::Cars => (192, 256),
            Domain::Faces | Domain::Wild => (256, 256),
        }
    }

    /// Rows of the full-resolution generator output that hold the image (cars: 64..448 of 512).
    pub fn content_rows(self, generator_size: usize) -> (usize, usize) {
        match self {
            Domain::Cars => (generator_size / 8, generator_size - generator_size / 8),
            Domain::Faces | Domain::Wild => (0, generator_size),
        }
    }
}
