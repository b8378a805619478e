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
                h = conv.forward(h);
            }
            let _ = h.into_data();
        };
        run();
        let t = Instant::now();
        let n = 20;
        for _ in 0..n {
            run();
        }
        let s = t.elapsed().as_secs_f64() / n as f64;
        let flops = 8.0 * 2.0 * 9.0 * (c * c * hw * hw * b) as f64;
        println!(
            "c={c} hw={hw} b={b}: {:.2} ms, {:.0} GFLOP/s",
            s * 1e3,
            flops / s / 1e9
        );
    }
}
