//! The small image types of the crate: dlib's gray view of an RGB photo and dlib's rectangles.

use image::RgbImage;

/// An 8-bit gray image as dlib converts an RGB image when a model reads pixel intensities:
/// `(r + g + b) / 3` in integers (truncated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrayImage {
    width: usize,
    height: usize,
    data: Vec<u8>,
}

impl GrayImage {
    /// A black image.
    pub fn new(width: usize, height: usize) -> Self {
        GrayImage {
            width,
            height,
            data: vec![0; width * height],
        }
    }

    /// dlib's gray conversion of `image`.
    pub fn from_rgb(image: &RgbImage) -> Self {
        let data = image
            .pixels()
            .map(|p| ((u32::from(p[0]) + u32::from(p[1]) + u32::from(p[2])) / 3) as u8)
            .collect();
        GrayImage {
            width: image.width() as usize,
            height: image.height() as usize,
            data,
        }
    }

    /// Width in pixels.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> usize {
        self.height
    }

    /// The pixel at column `x`, row `y`, or `None` outside the image.
    pub fn get(&self, x: i64, y: i64) -> Option<u8> {
        if x >= 0 && y >= 0 && (x as usize) < self.width && (y as usize) < self.height {
            Some(self.data[y as usize * self.width + x as usize])
        } else {
            None
        }
    }

    /// Sets the pixel at column `x`, row `y` (which must be inside the image).
    pub fn set(&mut self, x: usize, y: usize, value: u8) {
        self.data[y * self.width + x] = value;
    }

    /// The pixels, row by row.
    pub fn as_raw(&self) -> &[u8] {
        &self.data
    }
}

/// A rectangle with inclusive corners, as dlib's `rectangle`: `right − left + 1` pixels wide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rect {
    /// Leftmost column.
    pub left: i64,
    /// Top row.
    pub top: i64,
    /// Rightmost column (inclusive).
    pub right: i64,
    /// Bottom row (inclusive).
    pub bottom: i64,
}

impl Rect {
    /// The rectangle with these corners.
    pub fn new(left: i64, top: i64, right: i64, bottom: i64) -> Self {
        Rect {
            left,
            top,
            right,
            bottom,
        }
    }

    /// Width in pixels (0 when empty).
    pub fn width(&self) -> i64 {
        (self.right - self.left + 1).max(0)
    }

    /// Height in pixels (0 when empty).
    pub fn height(&self) -> i64 {
        (self.bottom - self.top + 1).max(0)
    }

    /// Number of pixels.
    pub fn area(&self) -> i64 {
        self.width() * self.height()
    }

    /// Whether it holds no pixel.
    pub fn is_empty(&self) -> bool {
        self.left > self.right || self.top > self.bottom
    }
}

/// Reads a PNG or JPEG photo as 8-bit RGB (grayscale replicated, alpha dropped, 16-bit samples
/// scaled), as upstream's `dlib.load_rgb_image` and `Image.open(...).convert('RGB')` see it.
pub fn load_rgb(path: impl AsRef<std::path::Path>) -> crate::Result<RgbImage> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| crate::Error::io(path, e))?;
    decode_rgb(&bytes).map_err(|e| e.with_path(path))
}

/// Decodes the bytes of a PNG or JPEG file as 8-bit RGB.
pub fn decode_rgb(bytes: &[u8]) -> crate::Result<RgbImage> {
    let bad = |reason: String| crate::Error::BadImage {
        path: crate::error::memory(),
        reason,
    };
    let format = image::guess_format(bytes).map_err(|_| bad("not a PNG or JPEG image".into()))?;
    if !matches!(format, image::ImageFormat::Png | image::ImageFormat::Jpeg) {
        return Err(bad(format!(
            "unsupported image format {format:?} (PNG or JPEG expected)"
        )));
    }
    let mut reader = image::ImageReader::with_format(std::io::Cursor::new(bytes), format);
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    reader.limits(limits);
    let image = reader.decode().map_err(|e| bad(format!("cannot decode: {e}")))?;
    if image.width() == 0 || image.height() == 0 {
        return Err(bad("empty image".into()));
    }
    Ok(image.to_rgb8())
}

/// Largest accepted photo side, in pixels.
pub const MAX_SIDE: u32 = 16384;
