//! `--align` of the examples (examples/common): the aligner they build from `--landmarks`, the
//! faces they pass on and the per-photo errors, through the facade's error type.
//!
//! dlib's 68-point model is not in the repository, so the aligned-face checks use 68-point
//! predictors made here: without cascade levels a predictor places its initial shape in the
//! detection rectangle, and an initial shape made from dlib's landmarks for that rectangle (the
//! goldens of crates/align/tests/fixtures) reproduces them. The detector, the face selection, the
//! model file round trip and the FFHQ crop are the real ones, so the crops must equal upstream's.
//! With `HYPERSTYLE_ALIGN_MODELS` set to a folder holding `shape_predictor_68_face_landmarks.dat`,
//! the real model is checked too.

#[path = "../examples/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};

use common::{align_photo, face_aligner, load_photos, Failures};
use hyperstyle::align::{align_face, load_rgb, FaceSelection, ShapePredictor};
use image::RgbImage;
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/align/tests/fixtures")
}

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hyperstyle-alignment-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn golden() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join("golden.json")).unwrap()).unwrap()
}

/// dlib's detections `[l, t, r, b]` and 68 landmarks per detection of fixture `photo`.
fn golden_faces(photo: &str) -> Vec<([i64; 4], Vec<[f64; 2]>)> {
    let golden = golden();
    let entry = &golden[photo];
    let rects = entry["rects"].as_array().unwrap();
    rects
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let r: Vec<i64> = r.as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
            let lm = entry["landmarks68"][i]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| [p[0].as_f64().unwrap(), p[1].as_f64().unwrap()])
                .collect();
            ([r[0], r[1], r[2], r[3]], lm)
        })
        .collect()
}

/// A 68-point dlib model file without cascade levels that places `landmarks` in `rect`: its
/// initial shape is `landmarks` in rectangle-normalised coordinates.
fn model_placing(name: &str, rect: [i64; 4], landmarks: &[[f64; 2]]) -> PathBuf {
    let (w, h) = ((rect[2] - rect[0]) as f64, (rect[3] - rect[1]) as f64);
    let shape: Vec<f32> = landmarks
        .iter()
        .flat_map(|p| {
            [
                ((p[0] - rect[0] as f64) / w) as f32,
                ((p[1] - rect[1] as f64) / h) as f32,
            ]
        })
        .collect();
    let predictor = ShapePredictor::new(shape, Vec::new()).unwrap();
    let path = scratch().join(name);
    std::fs::write(&path, predictor.to_dlib_bytes()).unwrap();
    path
}

fn photo(name: &str) -> RgbImage {
    load_rgb(fixtures().join(name)).unwrap()
}

#[test]
fn aligned_faces_equal_upstreams_crops() {
    for name in ["astronaut_face.png", "astronaut_tilted.png"] {
        let faces = golden_faces(name);
        // Upstream keeps the last detection.
        let (rect, landmarks) = faces.last().unwrap();
        let model = model_placing(&format!("placing_{name}.dat"), *rect, landmarks);
        let aligner = face_aligner(&model, FaceSelection::Last).unwrap();
        let path = fixtures().join(name);
        let aligned = align_photo(&aligner, &path, &photo(name)).unwrap();
        assert_eq!(aligned.len(), 1);
        assert_eq!(aligned[0].0, path, "one face keeps the photo's name");
        let expected = photo(&format!("aligned_{name}"));
        assert_eq!(aligned[0].1.dimensions(), (1024, 1024));
        assert!(aligned[0].1 == expected, "{name}: the crop differs from upstream's");
    }
}

#[test]
fn face_selection_picks_the_faces_upstream_or_the_user_wants() {
    let name = "two_faces.png";
    let faces = golden_faces(name);
    assert_eq!(faces.len(), 2);
    // dlib reports the larger face first, so `last` (upstream) and `largest` differ here.
    let (largest_rect, largest_lm) = &faces[0];
    let model = model_placing("placing_two_faces.dat", *largest_rect, largest_lm);
    let photo = photo(name);
    let path = fixtures().join(name);
    let expected = align_face(&photo, largest_lm, &Default::default()).unwrap();

    let largest = align_photo(&face_aligner(&model, FaceSelection::Largest).unwrap(), &path, &photo).unwrap();
    assert_eq!(largest.len(), 1);
    assert!(largest[0].1 == expected, "largest: not the larger face's crop");

    let last = align_photo(&face_aligner(&model, FaceSelection::Last).unwrap(), &path, &photo).unwrap();
    assert_eq!(last.len(), 1);
    assert!(last[0].1 != expected, "last: upstream keeps the smaller, later face");

    let all = align_photo(&face_aligner(&model, FaceSelection::All).unwrap(), &path, &photo).unwrap();
    let names: Vec<PathBuf> = all.iter().map(|(p, _)| p.clone()).collect();
    assert_eq!(
        names,
        [
            fixtures().join("two_faces_face0.png"),
            fixtures().join("two_faces_face1.png")
        ]
    );
    assert!(
        all[0].1 == expected && all[1].1 == last[0].1,
        "all: both faces in dlib's order"
    );
}

#[test]
fn a_photo_without_a_face_is_a_typed_per_file_error() {
    let (rect, landmarks) = golden_faces("astronaut_face.png").remove(0);
    let model = model_placing("placing_for_no_face.dat", rect, &landmarks);
    let aligner = face_aligner(&model, FaceSelection::Last).unwrap();
    let path = fixtures().join("no_face.png");
    let err = align_photo(&aligner, &path, &photo("no_face.png")).unwrap_err();
    assert!(err.is_no_face(), "{err:?}");
    assert!(
        matches!(&err, hyperstyle::Error::Align(hyperstyle::align::Error::NoFace { path: p }) if *p == path),
        "{err:?}"
    );
    assert!(err.to_string().contains("no_face.png: no face found"), "{err}");

    // In a run, the photo is skipped and counted; the others go on.
    let mut failures = Failures::default();
    let inputs = [fixtures().join("no_face.png"), fixtures().join("astronaut_face.png")];
    let images = load_photos(&inputs, Some(&aligner), None, &mut failures).unwrap();
    assert_eq!(images.len(), 1);
    assert_eq!(images[0].0, inputs[1]);
    for _ in &images {
        failures.succeed();
    }
    let status = failures.finish().unwrap_err().to_string();
    assert_eq!(status, "1 input(s) failed, 1 succeeded");
}

#[test]
fn landmarks_models_other_than_68_points_are_typed_errors() {
    // dlib's 5-point model (cut down): it cannot place the FFHQ crop.
    let five = fixtures().join("5pt_truncated.dat");
    let err = face_aligner(&five, FaceSelection::Last).unwrap_err();
    match &err {
        hyperstyle::Error::Align(hyperstyle::align::Error::InvalidModel { path, reason, .. }) => {
            assert_eq!(path, &five);
            assert!(reason.contains("5 landmarks"), "{reason}");
        }
        other => panic!("expected InvalidModel, got {other:?}"),
    }
    assert!(!err.is_no_face());

    let missing = scratch().join("missing.dat");
    let err = face_aligner(&missing, FaceSelection::Last).unwrap_err();
    assert!(
        matches!(&err, hyperstyle::Error::Align(hyperstyle::align::Error::Io { path, .. }) if *path == missing),
        "{err:?}"
    );

    let not_a_model = scratch().join("not_a_model.dat");
    std::fs::write(&not_a_model, b"not a dlib file").unwrap();
    let err = face_aligner(&not_a_model, FaceSelection::Last).unwrap_err();
    assert!(
        matches!(
            &err,
            hyperstyle::Error::Align(hyperstyle::align::Error::InvalidModel { .. })
        ),
        "{err:?}"
    );
}

#[test]
fn align_without_landmarks_is_a_clear_error() {
    let args = common::AlignArgs {
        align: true,
        ..Default::default()
    };
    let err = args.aligner().unwrap_err().to_string();
    assert!(err.contains("--align needs --landmarks"), "{err}");
    assert!(common::AlignArgs::default().aligner().unwrap().is_none());
}

#[test]
fn the_68_point_model_gives_upstreams_crop_when_available() {
    let Some(dir) = std::env::var_os("HYPERSTYLE_ALIGN_MODELS") else {
        eprintln!("HYPERSTYLE_ALIGN_MODELS not set: the check with dlib's 68-point model is skipped");
        return;
    };
    let model = Path::new(&dir).join("shape_predictor_68_face_landmarks.dat");
    let aligner = face_aligner(&model, FaceSelection::Last).unwrap();
    for name in [
        "astronaut_face.png",
        "astronaut_tilted.png",
        "astronaut_rotated_left.png",
    ] {
        let aligned = align_photo(&aligner, &fixtures().join(name), &photo(name)).unwrap();
        assert!(aligned[0].1 == photo(&format!("aligned_{name}")), "{name}");
    }
}
