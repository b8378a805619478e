//! A loop to profile (`perf record target/debug/examples/stepprof train|sample|refine`): UNet
//! training steps at batch 16, UNet sampling steps at batch 1, or whole `generate` calls of the
//! shipped model, with our kernels (add `stock` for burn's own ops).

use burn::optim::AdamWConfig;
use burn::tensor::{Device, Int, Tensor, TensorData};
use diffroll::model::{GenerateRequest, ModelCard, Pipeline, Schedule, init_seeded, normal};
use rand::SeedableRng;
use std::path::Path;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let what = args.get(1).map(String::as_str).unwrap_or("train");
    let body = || run(what);
    if args.iter().any(|a| a == "stock") {
        diffroll::kernels::with_stock_ops(body)
    } else {
        body()
    }
}

fn run(what: &str) {
    let dir = Path::new("models/base");
    let card = ModelCard::load(dir).unwrap();
    let config = card.unet.clone().unwrap();
    let latent = card
        .autoencoder
        .latent_shape(diffroll::roll::PITCHES, diffroll::roll::WINDOW_STEPS);
    let device = Device::flex();
    let t = Instant::now();
    match what {
        "train" => {
            let ad = device.clone().autodiff();
            let mut unet = init_seeded(&ad, 0, |d| config.init(d));
            let mut optim = AdamWConfig::new().with_weight_decay(0.0).init();
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
            let z0 = normal(&mut rng, [16, latent[0], latent[1], latent[2]], &device);
            for _ in 0..8 {
                let noised = diffroll::train::diffusion::noise_batch(
                    z0.clone(),
                    &Schedule::default(),
                    &mut rng,
                );
                unet = noised.step(unet, &mut optim, vec![0; 16], 1e-4, &ad).0;
            }
            println!(
                "8 training steps: {:.0} ms each",
                t.elapsed().as_secs_f64() * 125.0
            );
        }
        "sample" => {
            let unet = init_seeded(&device, 0, |d| config.init(d));
            let x = Tensor::<4>::zeros([1, latent[0], latent[1], latent[2]], &device);
            let l = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64], [1]), &device);
            for _ in 0..100 {
                let _ = unet.forward(x.clone(), &[500.0], l.clone()).into_data();
            }
            println!(
                "100 UNet steps: {:.1} ms each",
                t.elapsed().as_secs_f64() * 10.0
            );
        }
        _ => {
            let pipeline = Pipeline::load(dir, &device).unwrap();
            let request = GenerateRequest::card_defaults(&pipeline.card, 1, 1);
            for _ in 0..5 {
                pipeline.generate(&request, None, None).unwrap();
            }
            println!("5 pieces: {:.0} ms each", t.elapsed().as_secs_f64() * 200.0);
        }
    }
}
