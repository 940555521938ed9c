//! The HOG face detector and the whole aligner against dlib's goldens (`tests/fixtures`).

use std::path::Path;

use hyperstyle_align::{
    load_rgb, AlignOptions, CascadeLevel, Error, FaceAligner, FaceDetector, FaceSelection, Rect, ShapePredictor,
};

mod common;
use common::{fixtures, golden, rects};

#[test]
fn bundled_detector_round_trips() {
    let d = FaceDetector::dlib_frontal();
    assert_eq!(d.num_filters(), 5);
    let bytes = d.to_dlib_bytes();
    let again = FaceDetector::from_dlib_bytes(&bytes).unwrap();
    assert_eq!(again.to_dlib_bytes(), bytes);
    for cut in [0, 3, bytes.len() / 3, bytes.len() - 1] {
        assert!(matches!(
            FaceDetector::from_dlib_bytes(&bytes[..cut]),
            Err(Error::InvalidModel { .. })
        ));
    }
}

#[test]
fn detections_match_dlib() {
    let detector = FaceDetector::dlib_frontal();
    let golden = golden();
    for (name, entry) in golden.as_object().unwrap() {
        let photo = load_rgb(fixtures().join(name)).unwrap();
        let dets = detector.detect(&photo, 1);
        let got: Vec<Rect> = dets.iter().map(|d| d.rect).collect();
        let expected = rects(&entry["rects"]);
        let scores: Vec<f64> = entry["scores"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_f64().unwrap())
            .collect();
        eprintln!(
            "{name}: got {:?}, dlib {:?} with scores {scores:?}",
            dets.iter()
                .map(|d| (d.rect, d.confidence, d.filter))
                .collect::<Vec<_>>(),
            expected
        );
        assert_eq!(got, expected, "{name}");
        let filters: Vec<usize> = entry["filters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(dets.iter().map(|d| d.filter).collect::<Vec<_>>(), filters, "{name}");
        // Equal in practice (the same float32 arithmetic); only the SVD splitting the filters
        // could make the last bits differ.
        for (d, s) in dets.iter().zip(&scores) {
            assert!(
                (d.confidence - s).abs() < 1e-4,
                "{name}: confidence {} vs dlib {s}",
                d.confidence
            );
        }
    }
}

/// A 68-landmark predictor without trees (its landmarks are the mean shape): enough to run the
/// aligner's detection paths without dlib's 68-point model.
fn mean_shape_predictor() -> ShapePredictor {
    let mut shape = Vec::new();
    for i in 0..68 {
        let t = i as f32 / 68.0;
        shape.extend([0.2 + 0.6 * t, 0.3 + 0.4 * (t * 6.0).sin().abs()]);
    }
    ShapePredictor::new(shape, Vec::<CascadeLevel>::new()).unwrap()
}

#[test]
fn a_photo_without_a_face_is_a_typed_error() {
    let aligner = FaceAligner::new(FaceDetector::dlib_frontal(), mean_shape_predictor()).unwrap();
    let path = fixtures().join("no_face.png");
    match aligner.align_file(&path) {
        Err(Error::NoFace { path: p }) => assert_eq!(p, path),
        other => panic!("expected NoFace, got {other:?}"),
    }
}

#[test]
fn face_selection_modes() {
    let mut aligner = FaceAligner::new(FaceDetector::dlib_frontal(), mean_shape_predictor()).unwrap();
    aligner.options = AlignOptions {
        output_size: 64,
        transform_size: 64,
        enable_padding: false,
    };
    let photo = load_rgb(fixtures().join("two_faces.png")).unwrap();
    let all = aligner.detector().detect(&photo, 1);
    assert!(all.len() >= 2, "two faces expected, got {all:?}");
    aligner.selection = FaceSelection::All;
    assert_eq!(aligner.align(&photo).unwrap().len(), all.len());
    aligner.selection = FaceSelection::Last;
    let last = aligner.align(&photo).unwrap();
    assert_eq!(last.len(), 1);
    assert_eq!(last[0].rect, all.last().unwrap().rect);
    aligner.selection = FaceSelection::Largest;
    let largest = aligner.align(&photo).unwrap();
    let max_area = all.iter().map(|d| d.rect.area()).max().unwrap();
    assert_eq!(largest[0].rect.area(), max_area);
    assert_eq!("largest".parse::<FaceSelection>().unwrap(), FaceSelection::Largest);
    assert!("biggest".parse::<FaceSelection>().is_err());
}

#[test]
fn whole_pipeline_matches_upstream_when_models_are_available() {
    let Some(dir) = std::env::var_os("HYPERSTYLE_ALIGN_MODELS") else {
        eprintln!("HYPERSTYLE_ALIGN_MODELS not set: the end-to-end check with the 68-point model is skipped");
        return;
    };
    let predictor = ShapePredictor::load(Path::new(&dir).join("shape_predictor_68_face_landmarks.dat")).unwrap();
    let aligner = FaceAligner::new(FaceDetector::dlib_frontal(), predictor).unwrap();
    for name in [
        "astronaut_face.png",
        "astronaut_tilted.png",
        "astronaut_rotated_left.png",
    ] {
        let expected = fixtures().join(format!("aligned_{name}"));
        if !expected.exists() {
            continue;
        }
        let got = aligner.align_file(fixtures().join(name)).unwrap();
        assert_eq!(got.len(), 1);
        let expected = load_rgb(expected).unwrap();
        let max = got[0]
            .image
            .as_raw()
            .iter()
            .zip(expected.as_raw())
            .map(|(a, b)| a.abs_diff(*b))
            .max()
            .unwrap();
        assert!(max <= 2, "{name}: max-abs {max}/255");
    }
}

#[test]
fn degenerate_photos_give_no_faces_and_no_panic() {
    let detector = FaceDetector::dlib_frontal();
    for (w, h) in [(1, 1), (7, 5), (70, 3), (3, 90), (64, 64)] {
        let photo = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 7) as u8, (y * 5) as u8, 90]));
        for upsample in 0..3 {
            assert!(detector.detect(&photo, upsample).is_empty(), "{w}×{h}");
        }
    }
    // Landmarks of a box far outside the photo are still computed (from black pixels).
    let predictor = ShapePredictor::load(fixtures().join("5pt_truncated.dat")).unwrap();
    let gray = hyperstyle_align::GrayImage::new(10, 10);
    let pts = predictor.predict(&gray, Rect::new(-5000, -5000, -4000, -4000));
    assert_eq!(pts.len(), 5);
}
