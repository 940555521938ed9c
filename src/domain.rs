//! The three HyperStyle domains and their geometry (docs/ARCHITECTURE.md §7.4).

use std::fmt;
use std::str::FromStr;

use hyperstyle_core::Error;
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

    /// The name on a command line: `faces`, `cars` or `wild`.
    pub fn name(self) -> &'static str {
        match self {
            Domain::Faces => "faces",
            Domain::Cars => "cars",
            Domain::Wild => "wild",
        }
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

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Domain {
    type Err = Error;

    /// `faces` (or `ffhq`), `cars`, `wild` (or `afhq`, `animals`).
    fn from_str(name: &str) -> Result<Self, Error> {
        match name {
            "faces" | "ffhq" => Ok(Domain::Faces),
            "cars" => Ok(Domain::Cars),
            "wild" | "afhq" | "animals" => Ok(Domain::Wild),
            _ => Err(Error::unknown("domain", name, &["faces", "cars", "wild"])),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for domain in [Domain::Faces, Domain::Cars, Domain::Wild] {
            assert_eq!(domain.to_string().parse::<Domain>().unwrap(), domain);
        }
        assert_eq!("afhq".parse::<Domain>().unwrap(), Domain::Wild);
        assert!(matches!("dogs".parse::<Domain>(), Err(Error::Unknown { .. })));
        assert_eq!(Domain::from_dataset_type("cars_hypernet"), Domain::Cars);
        assert_eq!(Domain::from_dataset_type("afhq_wild_hypernet"), Domain::Wild);
        assert_eq!(Domain::from_dataset_type("ffhq_hypernet"), Domain::Faces);
    }
}
