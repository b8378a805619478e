//! Where a UNet step's time goes at batch 1 on this machine: `cargo run --example unetprof`.

use burn::tensor::{Device, Int, Tensor, TensorData};
use diffroll::model::UNetConfig;
use std::time::Instant;

fn time(label: &str, reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let t = Instant::now();
    for _ in 0..reps {
        f();
    }
    let ms = t.elapsed().as_secs_f64() * 1000.0 / reps as f64;
    println!("{label:<44} {ms:7.2} ms");
    ms
}

fn main() {
    let d = Device::flex();
    let label = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64], [1]), &d);
    let x = Tensor::<4>::ones([1, 8, 16, 16], &d);
    for (name, cfg) in [
        ("default (attention at 8x8, 4x4)", UNetConfig::new()),
        (
            "no attention outside the middle",
            UNetConfig::new().with_attention(vec![false, false, false]),
        ),
    ] {
        let unet = cfg.init(&d);
        let flops = cfg.flops(16, 16) as f64;
        let ms = time(name, 30, || {
            let _ = unet.forward(x.clone(), &[500.0], label.clone()).into_data();
        });
        println!("{:<44} {:7.1} GFLOP/s", "", flops / ms / 1e6);
    }
    let norm = burn::nn::GroupNormConfig::new(8, 64).init(&d);
    let h = Tensor::<4>::ones([1, 64, 16, 16], &d);
    time("GroupNorm 64ch 16x16", 200, || {
        let _ = norm.forward(h.clone()).into_data();
    });
    let conv = burn::nn::conv::Conv2dConfig::new([64, 64], [3, 3])
        .with_padding(burn::nn::PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init(&d);
    let ms = time("conv3x3 64->64 16x16 (37.7 MFLOP)", 200, || {
        let _ = conv.forward(h.clone()).into_data();
    });
    println!("{:<44} {:7.1} GFLOP/s", "", 37.7 / ms);
    time("silu 64ch 16x16", 200, || {
        let _ = burn::tensor::activation::silu(h.clone()).into_data();
    });
}
