//! What the alignment tests share: the fixture folder, the recorded dlib outputs, rectangles.

// Each test binary uses a part of this module.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use hyperstyle_align::Rect;
use serde_json::Value;

/// `crates/align/tests/fixtures`.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// `golden.json`: what dlib and the original alignment code produced.
pub fn golden() -> Value {
    let text = std::fs::read_to_string(fixtures().join("golden.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Rectangles recorded as `[left, top, right, bottom]` arrays.
pub fn rects(v: &Value) -> Vec<Rect> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let r: Vec<i64> = r.as_array().unwrap().iter().map(|x| x.as_i64().unwrap()).collect();
            Rect::new(r[0], r[1], r[2], r[3])
        })
        .collect()
}
