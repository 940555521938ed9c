use std::time::Instant;
fn main() {
    for &(m, n, k) in &[
        (256usize, 1024usize, 2304usize),
        (512, 256, 4608),
        (64, 16384, 576),
        (128, 4096, 1152),
        (256, 256, 2304),
    ] {
        let a = vec![0.5f32; m * k];
        let b = vec![0.25f32; k * n];
        let mut c = vec![0f32; m * n];
        for par in [gemm::Parallelism::None, gemm::Parallelism::Rayon(2)] {
            let mut best = f64::MAX;
            for _ in 0..5 {
                let t = Instant::now();
                unsafe {
                    gemm::gemm(
                        m,
                        n,
                        k,
                        c.as_mut_ptr(),
                        1,
                        n as isize,
                        false,
                        a.as_ptr(),
                        1,
                        k as isize,
                        b.as_ptr(),
                        1,
                        n as isize,
                        0.0,
                        1.0,
                        false,
                        false,
                        false,
                        par,
                    );
                }
                best = best.min(t.elapsed().as_secs_f64());
            }
            println!(
                "m{m} n{n} k{k} {:?}: {:.1} ms {:.0} GFLOP/s",
                matches!(par, gemm::Parallelism::None),
                best * 1e3,
                2.0 * (m * n * k) as f64 / best / 1e9
            );
        }
    }
}
