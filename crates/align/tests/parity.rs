//! Parity with dlib and with upstream's `align_face` on the goldens of `tests/fixtures`
//! (README.md there says how they were made).
//!
//! Always run: the truncated public-domain 5-point predictor against dlib's landmarks, the
//! alignment against upstream's images, Pillow's Lanczos resize. With
//! `HYPERSTYLE_ALIGN_MODELS` naming a folder with dlib's `shape_predictor_68_face_landmarks.dat`
//! and `shape_predictor_5_face_landmarks.dat`, the full models are compared too.

use std::path::{Path, PathBuf};

use hyperstyle_align::{align_face, load_rgb, pil, AlignOptions, GrayImage, Point, ShapePredictor};
use image::RgbImage;
use serde_json::Value;

mod common;
use common::{fixtures, golden, rects};

fn points(v: &Value) -> Vec<Point> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|p| Point {
            x: p[0].as_i64().unwrap(),
            y: p[1].as_i64().unwrap(),
        })
        .collect()
}

/// Compares a predictor's landmarks with dlib's on every golden box of every photo.
fn check_predictor(predictor: &ShapePredictor, key: &str) {
    let golden = golden();
    let mut compared = 0;
    for (name, entry) in golden.as_object().unwrap() {
        let photo = load_rgb(fixtures().join(name)).unwrap();
        let gray = GrayImage::from_rgb(&photo);
        for (rect, expected) in rects(&entry["boxes"]).into_iter().zip(entry[key].as_array().unwrap()) {
            let got = predictor.predict(&gray, rect);
            assert_eq!(got, points(expected), "{key}: {name}, box {rect:?}");
            compared += 1;
        }
    }
    assert!(compared >= 8, "only {compared} boxes compared");
}

#[test]
fn truncated_5_point_predictor_matches_dlib() {
    let predictor = ShapePredictor::load(fixtures().join("5pt_truncated.dat")).unwrap();
    assert_eq!(predictor.num_parts(), 5);
    check_predictor(&predictor, "landmarks5_truncated");
}

fn model(name: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("HYPERSTYLE_ALIGN_MODELS")?;
    Some(Path::new(&dir).join(name))
}

#[test]
fn full_predictors_match_dlib_when_available() {
    let Some(path68) = model("shape_predictor_68_face_landmarks.dat") else {
        eprintln!("HYPERSTYLE_ALIGN_MODELS not set: full-model parity not checked");
        return;
    };
    check_predictor(&ShapePredictor::load(path68).unwrap(), "landmarks68");
    let path5 = model("shape_predictor_5_face_landmarks.dat").unwrap();
    check_predictor(&ShapePredictor::load(path5).unwrap(), "landmarks5");
}

fn max_abs_diff(a: &RgbImage, b: &RgbImage) -> (u8, usize) {
    assert_eq!(a.dimensions(), b.dimensions());
    let mut max = 0;
    let mut count = 0;
    for (x, y) in a.as_raw().iter().zip(b.as_raw()) {
        let d = x.abs_diff(*y);
        max = max.max(d);
        count += usize::from(d > 0);
    }
    (max, count)
}

#[test]
fn alignment_matches_upstream() {
    let golden = golden();
    let mut compared = 0;
    for (name, entry) in golden.as_object().unwrap() {
        let expected_path = fixtures().join(format!("aligned_{name}"));
        if !expected_path.exists() {
            continue;
        }
        let photo = load_rgb(fixtures().join(name)).unwrap();
        let n = entry["rects"].as_array().unwrap().len();
        // Upstream keeps the landmarks of the last detection.
        let lm: Vec<[f64; 2]> = points(&entry["landmarks68"][n - 1])
            .iter()
            .map(|p| [p.x as f64, p.y as f64])
            .collect();
        let got = align_face(&photo, &lm, &AlignOptions::default()).unwrap();
        let expected = load_rgb(&expected_path).unwrap();
        let (max, count) = max_abs_diff(&got, &expected);
        eprintln!(
            "{name}: max-abs {max}/255, {count} of {} values differ",
            got.as_raw().len()
        );
        assert!(max <= 2, "{name}: max-abs {max}/255 ({count} values differ)");
        compared += 1;
    }
    assert!(compared >= 2, "only {compared} aligned goldens");
}

#[test]
fn lanczos_matches_pillow() {
    let photo = load_rgb(fixtures().join("astronaut_face.png")).unwrap();
    let down = pil::resize_lanczos(&photo, 67, 53);
    assert_eq!(down, load_rgb(fixtures().join("lanczos_down.png")).unwrap());
    let corner = image::imageops::crop_imm(&photo, 0, 0, 40, 30).to_image();
    let up = pil::resize_lanczos(&corner, 101, 77);
    assert_eq!(up, load_rgb(fixtures().join("lanczos_up.png")).unwrap());
}

#[test]
fn alignment_with_the_shrink_step_matches_upstream() {
    // astronaut_face.png with each pixel repeated 24 × 24 times (4320 × 4320): the face quad is
    // over 4096 pixels, so upstream first shrinks the photo by 2 with Lanczos.
    let small = load_rgb(fixtures().join("astronaut_face.png")).unwrap();
    let k = 24;
    let big = RgbImage::from_fn(small.width() * k, small.height() * k, |x, y| {
        *small.get_pixel(x / k, y / k)
    });
    let entry = &golden()["astronaut_face.png"];
    let lm: Vec<[f64; 2]> = points(&entry["landmarks68"][0])
        .iter()
        .map(|p| [(p.x * i64::from(k)) as f64, (p.y * i64::from(k)) as f64])
        .collect();
    let quad = hyperstyle_align::face_quad(&lm).unwrap();
    assert!(
        quad.size >= 4096.0,
        "the shrink step needs a quad of at least 4096 pixels"
    );
    let got = align_face(&big, &lm, &AlignOptions::default()).unwrap();
    let expected = load_rgb(fixtures().join("aligned_astronaut_face_x24.png")).unwrap();
    let (max, count) = max_abs_diff(&got, &expected);
    eprintln!("shrunk photo: max-abs {max}/255, {count} values differ");
    assert!(max <= 2, "max-abs {max}/255 ({count} values differ)");
}
