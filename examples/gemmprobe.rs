//! gemm alone on the shapes of a 64-channel 3×3 convolution, row- and column-major, with and
//! without its own threads: `cargo run --example gemmprobe`. The reason src/kernels splits a
//! row-major gemm over threads itself.

use std::time::Instant;
fn main() {
    for (m, n, k, par) in [
        (64usize, 1024usize, 576usize, false),
        (64, 1024, 576, true),
        (1024, 64, 576, false),
        (256, 1024, 576, false),
        (64, 8192, 576, false),
        (64, 8192, 576, true),
    ] {
        let a = vec![0.5f32; m * k];
        let b = vec![0.25f32; k * n];
        let mut c = vec![0.0f32; m * n];
        let p = if par {
            gemm::Parallelism::Rayon(0)
        } else {
            gemm::Parallelism::None
        };
        let go = |c: &mut [f32], rowmajor: bool| unsafe {
            if rowmajor {
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
                    p,
                );
            } else {
                gemm::gemm(
                    m,
                    n,
                    k,
                    c.as_mut_ptr(),
                    m as isize,
                    1,
                    false,
                    a.as_ptr(),
                    m as isize,
                    1,
                    b.as_ptr(),
                    k as isize,
                    1,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    p,
                );
            }
        };
        for rowmajor in [true, false] {
            go(&mut c, rowmajor);
            let t = Instant::now();
            let reps = 50;
            for _ in 0..reps {
                go(&mut c, rowmajor);
            }
            let s = t.elapsed().as_secs_f64() / reps as f64;
            println!(
                "m={m} n={n} k={k} par={par} rowmajor={rowmajor}: {:.0} GFLOP/s",
                2.0 * (m * n * k) as f64 / s / 1e9
            );
        }
    }
}
