//! The Pillow-compatible resize against the fixtures: the public-domain source photos resized
//! here must equal, byte for byte, the network inputs upstream produced with Pillow.

use hyperstyle::resize::resize_bilinear;
use hyperstyle_testing::fixtures_dir;

fn rgb(name: &str) -> image::RgbImage {
    image::open(fixtures_dir().join("images").join(name)).unwrap().to_rgb8()
}

fn check(source: &str, resized: &str) {
    let expected = rgb(resized);
    let actual = resize_bilinear(&rgb(source), expected.width(), expected.height());
    let differing = actual
        .as_raw()
        .iter()
        .zip(expected.as_raw())
        .filter(|(a, b)| a != b)
        .count();
    assert_eq!(differing, 0, "{source} → {resized}: {differing} bytes differ");
}

#[test]
fn astronaut_512_to_256() {
    check("astronaut.png", "ffhq256_input0.png");
}

#[test]
fn chelsea_451x300_to_256() {
    check("chelsea.png", "ffhq256_input1.png");
}

#[test]
fn coffee_600x400_to_cars_256x192() {
    check("coffee.png", "cars512_input0.png");
}
