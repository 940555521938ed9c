//! Images into network inputs: exact agreement with upstream's inputs, and every kind of bad
//! file is a typed error.

use hyperstyle::backend::Cpu;
use hyperstyle::io::{images_to_tensor, load_image};
use hyperstyle::Error;
use hyperstyle_testing::{assert_close, fixtures_dir, Fixture};
use image::{ImageBuffer, Luma, LumaA, Rgb, Rgba};

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("hyperstyle-image-input-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn inputs_at_network_size_reproduce_upstream_inputs_bit_for_bit() {
    let device = Default::default();
    for (config, files) in [
        ("ffhq256", vec!["ffhq256_input0.png", "ffhq256_input1.png"]),
        ("cars512", vec!["cars512_input0.png"]),
    ] {
        let fixture = Fixture::load(config);
        let images: Vec<_> = files
            .iter()
            .map(|f| load_image(fixtures_dir().join("images").join(f)).unwrap())
            .collect();
        let (shape, _) = fixture.golden.get("input");
        let tensor = images_to_tensor::<Cpu>(&images, (shape[2], shape[3]), &device);
        assert_close(
            &format!("{config} input"),
            tensor,
            fixture.golden.get("input"),
            0.0,
            0.0,
        );
    }
}

#[test]
fn source_photos_resize_to_upstream_inputs_exactly() {
    // The photos at their own size go through the Pillow-compatible resize.
    let device = Default::default();
    let fixture = Fixture::load("ffhq256");
    let images: Vec<_> = ["astronaut.png", "chelsea.png"]
        .iter()
        .map(|f| load_image(fixtures_dir().join("images").join(f)).unwrap())
        .collect();
    let tensor = images_to_tensor::<Cpu>(&images, (256, 256), &device);
    assert_close(
        "ffhq256 input from source photos",
        tensor,
        fixture.golden.get("input"),
        0.0,
        0.0,
    );
}

#[test]
fn bad_files_are_typed_errors() {
    let missing = scratch("missing.png");
    assert!(matches!(
        load_image(&missing),
        Err(Error::Core(hyperstyle::core::Error::Io { .. }))
    ));

    let empty = scratch("empty.png");
    std::fs::write(&empty, b"").unwrap();
    let err = load_image(&empty).unwrap_err();
    assert!(err.to_string().contains("empty file"), "{err}");

    let text = scratch("notes.png");
    std::fs::write(&text, b"these are not pixels").unwrap();
    let err = load_image(&text).unwrap_err();
    assert!(matches!(err, Error::BadImage { .. }), "{err}");

    // A JPEG start-of-image marker followed by garbage.
    let corrupt = scratch("corrupt.jpg");
    let mut bytes = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10];
    bytes.extend(std::iter::repeat_n(0x5A, 200));
    std::fs::write(&corrupt, bytes).unwrap();
    let err = load_image(&corrupt).unwrap_err();
    assert!(err.to_string().contains("cannot decode"), "{err}");

    let tiny = scratch("tiny.png");
    ImageBuffer::from_pixel(1, 1, Rgb([10u8, 20, 30])).save(&tiny).unwrap();
    let err = load_image(&tiny).unwrap_err();
    assert!(err.to_string().contains("1×1"), "{err}");

    // A PNG header that claims 100000×100000 pixels: refused before any allocation.
    let huge = scratch("huge.png");
    let mut png = Vec::new();
    png.extend_from_slice(b"\x89PNG\r\n\x1a\n");
    let ihdr = [
        &100_000u32.to_be_bytes()[..],
        &100_000u32.to_be_bytes()[..],
        &[8, 2, 0, 0, 0],
    ]
    .concat();
    png.extend_from_slice(&(ihdr.len() as u32).to_be_bytes());
    png.extend_from_slice(b"IHDR");
    png.extend_from_slice(&ihdr);
    png.extend_from_slice(&crc32(&[b"IHDR".as_slice(), &ihdr].concat()).to_be_bytes());
    std::fs::write(&huge, png).unwrap();
    let err = load_image(&huge).unwrap_err();
    assert!(matches!(err, Error::BadImage { .. }), "{err}");

    let bmp = scratch("image.bmp");
    ImageBuffer::from_pixel(32, 32, Rgb([1u8, 2, 3]))
        .save(&bmp)
        .unwrap_or_else(|_| std::fs::write(&bmp, b"BM\x00\x00").unwrap());
    let err = load_image(&bmp).unwrap_err();
    assert!(matches!(err, Error::BadImage { .. }), "{err}");
}

#[test]
fn grayscale_rgba_and_16_bit_images_convert_to_rgb() {
    let gray = scratch("gray.png");
    ImageBuffer::from_fn(20, 20, |x, _| Luma([(x * 10) as u8]))
        .save(&gray)
        .unwrap();
    let image = load_image(&gray).unwrap();
    assert_eq!(image.get_pixel(3, 5).0, [30, 30, 30]);

    let gray_alpha = scratch("gray_alpha.png");
    ImageBuffer::from_pixel(20, 20, LumaA([77u8, 0]))
        .save(&gray_alpha)
        .unwrap();
    assert_eq!(load_image(&gray_alpha).unwrap().get_pixel(0, 0).0, [77, 77, 77]);

    // Alpha is dropped, not composited (Pillow's convert('RGB')).
    let rgba = scratch("rgba.png");
    ImageBuffer::from_pixel(20, 20, Rgba([200u8, 100, 50, 0]))
        .save(&rgba)
        .unwrap();
    assert_eq!(load_image(&rgba).unwrap().get_pixel(7, 7).0, [200, 100, 50]);

    let deep = scratch("deep.png");
    ImageBuffer::from_pixel(20, 20, Rgb([65535u16, 0, 32896]))
        .save(&deep)
        .unwrap();
    assert_eq!(load_image(&deep).unwrap().get_pixel(1, 1).0, [255, 0, 128]);
}

/// CRC-32 of PNG chunks.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
