//! Writes a smaller copy of a dlib shape predictor: the first trees of each cascade level.
//!
//! `cargo run --release -p hyperstyle-align --example truncate_predictor -- IN.dat OUT.dat [LEVELS] [TREES]`
//!
//! The test fixture `tests/fixtures/5pt_truncated.dat` was made this way from dlib's public-domain
//! `shape_predictor_5_face_landmarks.dat` with 15 levels of 6 trees.

use std::process::ExitCode;

use hyperstyle_align::ShapePredictor;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!("usage: truncate_predictor IN.dat OUT.dat [LEVELS] [TREES]");
        return ExitCode::from(2);
    }
    let number = |i: usize, default: usize| args.get(i).map_or(Ok(default), |s| s.parse::<usize>());
    let (Ok(levels), Ok(trees)) = (number(2, usize::MAX), number(3, 6)) else {
        eprintln!("LEVELS and TREES must be numbers");
        return ExitCode::from(2);
    };
    let run = || -> hyperstyle_align::Result<()> {
        let predictor = ShapePredictor::load(&args[0])?;
        let small = predictor.truncated(levels, trees);
        std::fs::write(&args[1], small.to_dlib_bytes()).map_err(|e| hyperstyle_align::Error::io(&args[1], e))?;
        // The copy must read back to the same model.
        let back = ShapePredictor::load(&args[1])?;
        assert_eq!(back, small);
        println!(
            "{}: {} landmarks, {} levels of at most {} trees",
            args[1],
            small.num_parts(),
            small.levels().len(),
            trees
        );
        Ok(())
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
