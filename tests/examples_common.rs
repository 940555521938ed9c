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
