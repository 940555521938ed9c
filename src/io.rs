//! Images in and out of tensors, as upstream converts them (docs/ARCHITECTURE.md §7.4).

use std::path::Path;

use burn::prelude::*;
use image::RgbImage;

use crate::error::{Error, Result};
use crate::resize::resize_bilinear;

/// Smallest accepted input side, in pixels: smaller images carry nothing to invert.
pub const MIN_IMAGE_SIDE: u32 = 16;
/// Largest accepted input side, in pixels (the decoder refuses to allocate beyond this).
pub const MAX_IMAGE_SIDE: u32 = 16384;

/// Reads a JPEG or PNG file as 8-bit RGB, as upstream's `Image.open(path).convert('RGB')`:
/// grayscale is replicated, alpha is dropped, 16-bit samples are scaled to 8 bits.
/// Missing, empty, corrupt, tiny or huge files are errors.
pub fn load_image(path: impl AsRef<Path>) -> Result<RgbImage> {
    let path = path.as_ref();
    let bad = |reason: String| Error::BadImage {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|source| hyperstyle_core::Error::io(path, source))?;
    if bytes.is_empty() {
        return Err(bad("empty file".into()));
    }
    let format = image::guess_format(&bytes).map_err(|_| bad("not a PNG or JPEG image".into()))?;
    if !matches!(format, image::ImageFormat::Png | image::ImageFormat::Jpeg) {
        return Err(bad(format!(
            "unsupported image format {format:?} (PNG or JPEG expected)"
        )));
    }
    let mut reader = image::ImageReader::with_format(std::io::Cursor::new(&bytes), format);
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    reader.limits(limits);
    let image = reader.decode().map_err(|e| bad(format!("cannot decode: {e}")))?;
    let (w, h) = (image.width(), image.height());
    if w < MIN_IMAGE_SIDE || h < MIN_IMAGE_SIDE {
        return Err(bad(format!(
            "image is {w}×{h}; at least {MIN_IMAGE_SIDE}×{MIN_IMAGE_SIDE} pixels are needed"
        )));
    }
    Ok(image.to_rgb8())
}

/// Resizes to `(height, width)` with Pillow's bilinear filter (no-op at that size) and
/// normalises like `ToTensor` + `Normalize(0.5, 0.5)`: `(v/255 − 0.5)/0.5` in float32.
/// Returns `[3, height, width]` values, channel-major.
pub fn normalize(image: &RgbImage, (height, width): (usize, usize)) -> Vec<f32> {
    let resized;
    let image = if (image.height() as usize, image.width() as usize) == (height, width) {
        image
    } else {
        resized = resize_bilinear(image, width as u32, height as u32);
        &resized
    };
    let plane = height * width;
    let mut out = vec![0f32; 3 * plane];
    for (i, pixel) in image.pixels().enumerate() {
        for c in 0..3 {
            out[c * plane + i] = (f32::from(pixel.0[c]) / 255.0 - 0.5) / 0.5;
        }
    }
    out
}

/// A batch of images as the network input `[batch, 3, height, width]` in [−1, 1].
pub fn images_to_tensor<B: Backend>(images: &[RgbImage], size: (usize, usize), device: &B::Device) -> Tensor<B, 4> {
    let values: Vec<f32> = images.iter().flat_map(|image| normalize(image, size)).collect();
    Tensor::from_data(TensorData::new(values, [images.len(), 3, size.0, size.1]), device)
}

/// Upstream's `tensor2im`: `v ← (v + 1)/2`, clamp to [0, 1], ×255, cast to u8 by truncation.
/// images: `[batch, 3, h, w]` in nominal [−1, 1] → one RGB image per sample.
pub fn tensor_to_images<B: Backend>(images: Tensor<B, 4>) -> Result<Vec<RgbImage>> {
    let [batch, channels, h, w] = images.dims();
    if channels != 3 {
        return Err(Error::InvalidImageTensor(format!(
            "expected 3 channels, got {channels}"
        )));
    }
    let bytes: Vec<u8> = images
        .add_scalar(1.0)
        .div_scalar(2.0)
        .clamp(0.0, 1.0)
        .mul_scalar(255.0)
        .into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .map_err(|e| Error::InvalidImageTensor(format!("{e:?}")))?
        .into_iter()
        .map(|v| v as u8) // truncation, as `.astype('uint8')`
        .collect();
    let plane = h * w;
    Ok((0..batch)
        .map(|b| {
            let sample = &bytes[b * 3 * plane..(b + 1) * 3 * plane];
            RgbImage::from_fn(w as u32, h as u32, |x, y| {
                let i = y as usize * w + x as usize;
                image::Rgb([sample[i], sample[plane + i], sample[2 * plane + i]])
            })
        })
        .collect())
}

/// Writes an image atomically (encoded in memory, then a temporary file and a rename, so an
/// interrupted run leaves no half-written file); the format follows the extension (PNG or JPEG).
pub fn save_image(image: &RgbImage, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let image_error = |source| Error::Image {
        path: path.to_path_buf(),
        source,
    };
    let format = image::ImageFormat::from_path(path).map_err(image_error)?;
    let mut bytes = std::io::Cursor::new(Vec::new());
    image.write_to(&mut bytes, format).map_err(image_error)?;
    Ok(hyperstyle_core::atomic::write_atomically(path, bytes.get_ref())?)
}

/// Writes `frames` as a looping animated GIF at `fps` frames per second, atomically. GIF stores
/// 256 colours per frame (each frame is quantised) and delays in hundredths of a second.
pub fn save_gif(frames: &[RgbImage], fps: f32, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    if frames.is_empty() || !(fps > 0.0 && fps <= 100.0) {
        return Err(crate::error::invalid_input(format!(
            "an animation needs at least one frame and 0 < fps ≤ 100 (got {} frames at {fps})",
            frames.len()
        )));
    }
    let image_error = |source| Error::Image {
        path: path.to_path_buf(),
        source,
    };
    let delay = image::Delay::from_numer_denom_ms(1000, fps.round().max(1.0) as u32);
    let mut bytes = Vec::new();
    {
        let mut encoder = image::codecs::gif::GifEncoder::new_with_speed(&mut bytes, 10);
        encoder
            .set_repeat(image::codecs::gif::Repeat::Infinite)
            .map_err(image_error)?;
        for frame in frames {
            let rgba = image::DynamicImage::ImageRgb8(frame.clone()).to_rgba8();
            encoder
                .encode_frame(image::Frame::from_parts(rgba, 0, 0, delay))
                .map_err(image_error)?;
        }
    }
    Ok(hyperstyle_core::atomic::write_atomically(path, &bytes)?)
}

/// Writes `frames` (all the same size) as an H.264/MP4 video at `fps` with the `ffmpeg`
/// program (the one on `PATH`, or the one `HYPERSTYLE_FFMPEG` names): raw RGB frames piped in,
/// `yuv420p` out (what players expect; odd sizes are padded by one pixel). The video goes to a
/// temporary file beside `path`, renamed into place when ffmpeg succeeds. A missing or failing
/// `ffmpeg` is [`Error::External`] with its message; `path` is then left untouched.
pub fn save_mp4(frames: &[RgbImage], fps: f32, path: impl AsRef<Path>) -> Result<()> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let path = path.as_ref();
    let Some(first) = frames.first() else {
        return Err(crate::error::invalid_input("an animation needs at least one frame"));
    };
    if !(fps > 0.0 && fps <= 240.0) || frames.iter().any(|f| f.dimensions() != first.dimensions()) {
        return Err(crate::error::invalid_input(format!(
            "an MP4 needs frames of one size and 0 < fps ≤ 240 (got {fps} fps)"
        )));
    }
    let program = std::env::var("HYPERSTYLE_FFMPEG").unwrap_or_else(|_| "ffmpeg".to_string());
    let external = |reason: String| Error::External {
        program: program.clone(),
        reason,
    };
    let (w, h) = first.dimensions();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let partial = path.with_file_name(format!(".{name}.partial.mp4"));
    let mut child = Command::new(&program)
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
        ])
        .args(["-s", &format!("{w}x{h}"), "-r", &fps.to_string(), "-i", "-"])
        .args([
            "-vf",
            "pad=ceil(iw/2)*2:ceil(ih/2)*2",
            "-pix_fmt",
            "yuv420p",
            "-movflags",
            "+faststart",
        ])
        .arg(&partial)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| external(format!("cannot run it ({e}); install ffmpeg or write a GIF instead")))?;
    let written = {
        let mut stdin = child.stdin.take().ok_or_else(|| external("no input pipe".into()))?;
        frames.iter().try_for_each(|f| stdin.write_all(f.as_raw()))
    };
    let output = child.wait_with_output().map_err(|e| external(e.to_string()))?;
    if !output.status.success() || written.is_err() {
        let _ = std::fs::remove_file(&partial);
        return Err(external(format!(
            "{}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    std::fs::rename(&partial, path).map_err(|e| Error::Core(hyperstyle_core::Error::io(path, e)))
}
