//! MP4 output through an external `ffmpeg`: a missing program is a typed error that leaves no
//! file behind; where an ffmpeg is installed, the frames become a playable MP4 container.

use hyperstyle::io::save_mp4;
use hyperstyle::Error;
use image::RgbImage;

fn frames() -> Vec<RgbImage> {
    (0..3u8)
        .map(|i| RgbImage::from_fn(17, 9, |x, y| image::Rgb([x as u8 * 15, y as u8 * 28, i * 80])))
        .collect()
}

#[test]
fn mp4_needs_ffmpeg_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clip.mp4");
    // One test changes the variable, so nothing else in this binary reads it concurrently.
    std::env::set_var("HYPERSTYLE_FFMPEG", dir.path().join("no-such-ffmpeg"));
    match save_mp4(&frames(), 12.0, &path) {
        Err(Error::External { program, reason }) => {
            assert!(program.ends_with("no-such-ffmpeg"));
            assert!(reason.contains("install ffmpeg"), "{reason}");
        }
        other => panic!("expected an external-program error, got {other:?}"),
    }
    assert!(!path.exists());
    assert!(matches!(save_mp4(&[], 12.0, &path), Err(e) if e.is_invalid_input()));
    std::env::remove_var("HYPERSTYLE_FFMPEG");

    let installed = std::process::Command::new("ffmpeg")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    if installed {
        save_mp4(&frames(), 12.0, &path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[4..8], b"ftyp", "not an MP4 container");
        assert!(!dir.path().join(".clip.mp4.partial.mp4").exists());
    }
}
