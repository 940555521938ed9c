//! Prints, for each photo, dlib-compatible face detections and landmarks as one JSON line:
//! `{"path": ..., "faces": [{"rect": [l, t, r, b], "confidence": c, "filter": i, "landmarks": [[x, y], ...]}]}`.
//!
//! `cargo run --release -p hyperstyle-align --example landmarks -- PREDICTOR.dat PHOTO...`
//!
//! Detection upsamples once, as upstream; `PREDICTOR.dat` is any dlib shape predictor.

use std::process::ExitCode;
use std::time::Instant;

use hyperstyle_align::{load_rgb, FaceDetector, GrayImage, ShapePredictor};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!("usage: landmarks PREDICTOR.dat PHOTO...");
        return ExitCode::from(2);
    }
    let predictor = match ShapePredictor::load(&args[0]) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let detector = FaceDetector::dlib_frontal();
    let mut status = ExitCode::SUCCESS;
    for path in &args[1..] {
        let photo = match load_rgb(path) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("error: {e}");
                status = ExitCode::FAILURE;
                continue;
            }
        };
        let start = Instant::now();
        let dets = detector.detect(&photo, 1);
        let detect_s = start.elapsed().as_secs_f64();
        let gray = GrayImage::from_rgb(&photo);
        let faces: Vec<String> = dets
            .iter()
            .map(|d| {
                let pts: Vec<String> = predictor
                    .predict(&gray, d.rect)
                    .iter()
                    .map(|p| format!("[{}, {}]", p.x, p.y))
                    .collect();
                format!(
                    "{{\"rect\": [{}, {}, {}, {}], \"confidence\": {:?}, \"filter\": {}, \"landmarks\": [{}]}}",
                    d.rect.left,
                    d.rect.top,
                    d.rect.right,
                    d.rect.bottom,
                    d.confidence,
                    d.filter,
                    pts.join(", ")
                )
            })
            .collect();
        let path_json = format!("{path:?}");
        println!(
            "{{\"path\": {path_json}, \"detect_seconds\": {detect_s:.3}, \"faces\": [{}]}}",
            faces.join(", ")
        );
    }
    status
}
