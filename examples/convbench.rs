//! The conv3x3 stack of `diffroll bench` at several sizes, with our kernels and burn's own:
//! `cargo run --example convbench`.

use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2dConfig;
use burn::tensor::{Device, Tensor};
use std::time::Instant;

fn main() {
    let device = Device::flex();
    for (c, hw, b) in [
        (64usize, 32usize, 1usize),
        (64, 32, 8),
        (96, 16, 1),
        (192, 8, 1),
    ] {
        let convs: Vec<_> = (0..8)
            .map(|_| {
                Conv2dConfig::new([c, c], [3, 3])
                    .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                    .init(&device)
            })
            .collect();
        let x = Tensor::<4>::zeros([b, c, hw, hw], &device);
        let run = || {
            let mut h = x.clone();
            for conv in &convs {
                h = diffroll::kernels::conv2d_layer(conv, h);
            }
            let _ = h.into_data();
        };
        let time = || {
            run();
            let t = Instant::now();
            let n = 20;
            for _ in 0..n {
                run();
            }
            t.elapsed().as_secs_f64() / n as f64
        };
        let flops = 8.0 * 2.0 * 9.0 * (c * c * hw * hw * b) as f64;
        let ours = time();
        // `convbench ours` skips burn's, for a profile of ours alone.
        let stock = if std::env::args().any(|a| a == "ours") {
            f64::NAN
        } else {
            diffroll::kernels::with_stock_ops(time)
        };
        println!(
            "c={c} hw={hw} b={b}: {:.2} ms, {:.0} GFLOP/s (burn's own: {:.0} GFLOP/s)",
            ours * 1e3,
            flops / ours / 1e9,
            flops / stock / 1e9
        );
    }
}
