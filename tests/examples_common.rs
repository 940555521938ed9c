//! What the example CLIs share (examples/common): outputs never collide and never overwrite an
//! input, folders are expanded to their images, and the exit status reports failures.

#[path = "../examples/common/mod.rs"]
mod common;

use common::{collect_image_files, Failures, Outputs};

fn scratch() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("hyperstyle-examples-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn outputs_never_collide_and_never_overwrite_inputs() {
    let dir = scratch().join("outputs");
    std::fs::create_dir_all(dir.join("a")).unwrap();
    std::fs::create_dir_all(dir.join("b")).unwrap();
    // A photo whose name is what an output of another photo would be called, in the output folder.
    let tricky = dir.join("face_grid.png");
    std::fs::write(&tricky, b"photo").unwrap();
    let inputs = vec![dir.join("a/face.png"), dir.join("b/face.jpg"), tricky.clone()];
    let mut outputs = Outputs::new(&dir, &inputs).unwrap();
    assert_eq!(outputs.name(&inputs[0]), "face");
    assert_eq!(outputs.name(&inputs[1]), "face_2");
    assert_eq!(outputs.name(&inputs[2]), "face_grid");
    let err = outputs.file("face_grid.png").unwrap_err();
    assert!(err.to_string().contains("refusing to overwrite the input"), "{err}");
    assert_eq!(outputs.file("face_step0.png").unwrap(), dir.join("face_step0.png"));
    assert_eq!(std::fs::read(&tricky).unwrap(), b"photo");
}

#[test]
fn folders_expand_to_their_images_in_order() {
    let dir = scratch().join("folder");
    std::fs::create_dir_all(&dir).unwrap();
    for name in ["b.PNG", "a.jpg", "notes.txt"] {
        std::fs::write(dir.join(name), b"x").unwrap();
    }
    let single = dir.join("a.jpg");
    let (files, skipped) = collect_image_files(&[dir.clone(), single.clone()]);
    assert_eq!(files, [dir.join("a.jpg"), dir.join("b.PNG"), single]);
    assert_eq!(skipped.len(), 1);
    assert!(skipped[0].contains("notes.txt"), "{skipped:?}");
}

#[test]
fn exit_status_counts_failures() {
    assert!(Failures::default().finish().is_err(), "nothing processed is a failure");
    let mut ok = Failures::default();
    ok.succeed();
    assert!(ok.finish().is_ok());
    let mut all = Failures::default();
    all.fail(None, "one");
    all.fail(None, "two");
    assert_eq!(all.finish().unwrap_err().to_string(), "all 2 input(s) failed");
    let mut some = Failures::default();
    some.fail(None, "one");
    some.succeed();
    assert_eq!(some.finish().unwrap_err().to_string(), "1 input(s) failed, 1 succeeded");
}

#[test]
fn grids_are_built_at_the_results_resolution() {
    use image::{Rgb, RgbImage};
    // A 256-px input next to two 512-px results: the input is enlarged, nothing is shrunk.
    let input = RgbImage::from_pixel(256, 256, Rgb([10, 20, 30]));
    let result = RgbImage::from_pixel(512, 512, Rgb([200, 100, 0]));
    let grid = common::side_by_side(&[input, result.clone(), result.clone()], 512);
    assert_eq!(grid.dimensions(), (1536, 512));
    assert_eq!(grid.get_pixel(100, 100), &Rgb([10, 20, 30]));
    assert_eq!(grid.get_pixel(600, 300), &Rgb([200, 100, 0]));
    // A larger photo is reduced by area averaging: a fine checkerboard becomes its mean, where
    // point sampling would keep one of the two colours.
    let checker = RgbImage::from_fn(
        1024,
        1024,
        |x, y| if (x + y) % 2 == 0 { Rgb([0; 3]) } else { Rgb([254; 3]) },
    );
    let grid = common::side_by_side(&[checker, result], 512);
    assert_eq!(grid.dimensions(), (1024, 512));
    let v = grid.get_pixel(200, 200).0[0];
    assert!((120..=134).contains(&v), "area mean of 0 and 254 expected, got {v}");
    assert_eq!(common::file_part("Pose I"), "Pose_I");
    assert_eq!(common::file_part("age +3"), "age_+3");
    assert_eq!(common::file_part("../x"), ".._x");
}
