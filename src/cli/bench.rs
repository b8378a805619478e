use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use burn::module::Module;
use burn::tensor::{Device, Int, Tensor, TensorData};
use clap::Args;
use serde::Serialize;

use super::DeviceArgs;
use crate::kernels;
use crate::model::layers::ConvApply;
use crate::model::{
    AutoencoderConfig, GenerateRequest, ModelCard, Pipeline, UNetConfig, init_seeded,
};
use crate::roll::{PITCHES, WINDOW_STEPS};

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Model folder to time; without one (or if it has no UNet yet) the default architecture
    /// is timed with random weights, which cost the same.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Timed repetitions per measurement (after one warm-up).
    #[arg(long, default_value_t = 20, value_parser = super::at_least_one)]
    pub reps: usize,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub device: DeviceArgs,
}

#[derive(Debug, Serialize)]
struct Report {
    device: String,
    model: String,
    threads: usize,
    autoencoder_params: usize,
    unet_params: usize,
    latent_shape: [usize; 3],
    unet_gflops_per_step: f64,
    decode_gflops: f64,
    unet_step_ms: f64,
    unet_step_guided_ms: f64,
    unet_gflops_per_s: f64,
    decode_ms: f64,
    /// The model's validity refinement after sampling; `None`: it has none.
    refine_passes: Option<usize>,
    refine_ms: Option<f64>,
    end_to_end_ms: f64,
    end_to_end_steps: usize,
    /// UNet training (forward, backward, AdamW step) at batch [`TRAIN_BATCH`], with our CPU
    /// kernels and with burn's own ops, measured in this run.
    train_samples_per_s: f64,
    train_samples_per_s_stock: f64,
    train_speedup: f64,
    /// The 8 × conv3×3 64→64 + ReLU stack at 32×32 that `ort_conv_bench.py` runs.
    conv_stack_gflops_b1: f64,
    conv_stack_gflops_b8: f64,
    conv_stack_gflops_b1_stock: f64,
    conv_stack_gflops_b8_stock: f64,
}

const TRAIN_BATCH: usize = 16;

/// Median samples per second of a UNet training step at batch [`TRAIN_BATCH`] on random
/// latents: the noising, the v-loss, its backward pass and an AdamW update, as training runs.
fn train_samples_per_s(
    config: &UNetConfig,
    latent: [usize; 3],
    device: &Device,
    reps: usize,
) -> f64 {
    use burn::optim::AdamWConfig;
    use rand::SeedableRng;

    let ad = device.clone().autodiff();
    let mut unet = Some(init_seeded(&ad, 0, |d| config.init(d)));
    let mut optim = AdamWConfig::new().with_weight_decay(0.0).init();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let schedule = crate::model::Schedule::default();
    let z0 = crate::model::normal(
        &mut rng,
        [TRAIN_BATCH, latent[0], latent[1], latent[2]],
        device,
    );
    let labels: Vec<i64> = (0..TRAIN_BATCH as i64).map(|i| i % 5).collect();
    let ms = median_ms(reps, device, || {
        let noised = crate::train::diffusion::noise_batch(z0.clone(), &schedule, &mut rng);
        let Some(model) = unet.take() else { return };
        unet = Some(noised.step(model, &mut optim, labels.clone(), 1e-4, &ad).0);
    });
    TRAIN_BATCH as f64 / (ms / 1000.0)
}

/// GFLOP/s of the conv stack `ort_conv_bench.py` runs, at batch `batch`.
fn conv_stack_gflops(batch: usize, device: &Device, reps: usize) -> f64 {
    let (c, hw) = (64, 32);
    let convs: Vec<_> = (0..8)
        .map(|i| init_seeded(device, i, |d| crate::model::layers::conv3(c, c, d)))
        .collect();
    let x = Tensor::<4>::zeros([batch, c, hw, hw], device);
    let ms = median_ms(reps, device, || {
        let mut h = x.clone();
        for conv in &convs {
            h = burn::tensor::activation::relu(conv.apply(h));
        }
        let _ = h.into_data();
    });
    8.0 * crate::model::layers::conv_flops(3, c, c, hw, hw) as f64 * batch as f64
        / 1e9
        / (ms / 1000.0)
}

fn median_ms(reps: usize, device: &Device, mut f: impl FnMut()) -> f64 {
    f();
    let _ = device.sync();
    let mut times: Vec<Duration> = (0..reps.max(1))
        .map(|_| {
            let start = Instant::now();
            f();
            let _ = device.sync();
            start.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2].as_secs_f64() * 1000.0
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let chosen = args.device.choose()?;
    let device = chosen.device.clone();
    let (pipeline, model_name) = match &args.model {
        Some(dir) => match Pipeline::load(dir, &device) {
            Ok(p) if p.card.unet.is_some() => (p, dir.display().to_string()),
            Ok(_) | Err(_) => anyhow::bail!(
                "{}: not a complete model (card, autoencoder and UNet weights needed)",
                dir.display()
            ),
        },
        None => {
            let ae_config = AutoencoderConfig::new();
            let unet_config = UNetConfig::new().with_latent_channels(ae_config.latent_channels);
            let mut card = ModelCard::new("untrained", ae_config.clone());
            card.unet = Some(unet_config.clone());
            let ae = init_seeded(&device, 0, |d| ae_config.init(d));
            let unet = init_seeded(&device, 0, |d| unet_config.init(d));
            (
                Pipeline::from_parts(card, PathBuf::new(), ae, Some(unet), device.clone()),
                "default architecture, random weights".to_string(),
            )
        }
    };
    let card = pipeline.card.clone();
    let unet_config = card.unet.clone().context("model has a UNet")?;
    let latent = card.autoencoder.latent_shape(PITCHES, WINDOW_STEPS);
    let unet = init_seeded(&device, 0, |d| unet_config.init(d));

    let x1 = Tensor::<4>::zeros([1, latent[0], latent[1], latent[2]], &device);
    let x2 = Tensor::<4>::zeros([2, latent[0], latent[1], latent[2]], &device);
    let l1 = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64], [1]), &device);
    let l2 = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 4], [2]), &device);
    let step_ms = median_ms(args.reps, &device, || {
        let _ = unet.forward(x1.clone(), &[500.0], l1.clone());
    });
    let guided_ms = median_ms(args.reps, &device, || {
        let _ = unet.forward(x2.clone(), &[500.0, 500.0], l2.clone());
    });
    let decode_ms = median_ms(args.reps, &device, || {
        let _ = pipeline.decode(x1.clone());
    });
    let refine = card.defaults.refine;
    let refine_ms = refine.map(|r| {
        let norm = card.latent_norm();
        median_ms(args.reps.div_ceil(4), &device, || {
            let _ = crate::model::validity::refine(
                pipeline.autoencoder(),
                &norm,
                x1.clone(),
                card.thresholds,
                r,
                None,
                None,
            );
        })
    });
    let steps = card.defaults.steps;
    let request = GenerateRequest::card_defaults(&card, 1, 1);
    // The drawn style (the same every run: one seed) decides whether sampling is guided, so
    // how many UNet passes each step takes.
    let mut drawn = None;
    let e2e_ms = median_ms(args.reps.div_ceil(4), &device, || {
        if let Ok(g) = pipeline.generate(&request, None, None) {
            drawn = g.rolls[0].style;
        }
    });
    let guided = drawn.is_some_and(|s| card.defaults.guidance.guides(&[s]));
    let train_reps = args.reps.div_ceil(4).max(3);
    let train = train_samples_per_s(&unet_config, latent, &device, train_reps);
    let train_stock =
        kernels::with_stock_ops(|| train_samples_per_s(&unet_config, latent, &device, train_reps));
    let stack = |batch| conv_stack_gflops(batch, &device, args.reps);
    let [stack_b1, stack_b8] = [stack(1), stack(8)];
    let [stack_b1_stock, stack_b8_stock] = kernels::with_stock_ops(|| [stack(1), stack(8)]);
    let unet_flops = unet_config.flops(latent[1], latent[2]);
    let report = Report {
        device: chosen.description.clone(),
        model: model_name,
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        autoencoder_params: pipeline.autoencoder().num_params(),
        unet_params: unet.num_params(),
        latent_shape: latent,
        unet_gflops_per_step: unet_flops as f64 / 1e9,
        decode_gflops: card.autoencoder.decode_flops(PITCHES, WINDOW_STEPS) as f64 / 1e9,
        unet_step_ms: step_ms,
        unet_step_guided_ms: guided_ms,
        unet_gflops_per_s: unet_flops as f64 / 1e9 / (step_ms / 1000.0),
        decode_ms,
        refine_passes: refine.map(|r| r.steps),
        refine_ms,
        end_to_end_ms: e2e_ms,
        end_to_end_steps: steps,
        train_samples_per_s: train,
        train_samples_per_s_stock: train_stock,
        train_speedup: train / train_stock,
        conv_stack_gflops_b1: stack_b1,
        conv_stack_gflops_b8: stack_b8,
        conv_stack_gflops_b1_stock: stack_b1_stock,
        conv_stack_gflops_b8_stock: stack_b8_stock,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    let sampling = steps as f64 * if guided { guided_ms } else { step_ms };
    println!("device            {}", report.device);
    println!("model             {}", report.model);
    println!(
        "parameters        autoencoder {:.2} M, UNet {:.2} M",
        report.autoencoder_params as f64 / 1e6,
        report.unet_params as f64 / 1e6
    );
    println!("latent            {:?}", report.latent_shape);
    println!(
        "UNet step         {:.1} ms at batch 1 ({:.2} GFLOP, {:.0} GFLOP/s); {:.1} ms with guidance (batch 2)",
        step_ms, report.unet_gflops_per_step, report.unet_gflops_per_s, guided_ms
    );
    println!(
        "decode            {:.1} ms ({:.2} GFLOP)",
        decode_ms, report.decode_gflops
    );
    let refining = refine_ms.unwrap_or(0.0);
    if let (Some(passes), Some(ms)) = (report.refine_passes, refine_ms) {
        println!("refine notes      {ms:.1} ms ({passes} decoder passes with gradients)");
    }
    println!(
        "8 bars, {} steps  {:.0} ms end to end: sampling ≈ {:.0} ms, decode ≈ {:.0} ms, refining ≈ {:.0} ms, rest ≈ {:.0} ms (guidance {})",
        steps,
        e2e_ms,
        sampling,
        decode_ms,
        refining,
        (e2e_ms - sampling - decode_ms - refining).max(0.0),
        card.defaults.guidance
    );
    println!(
        "training          {:.1} samples/s at batch {TRAIN_BATCH} ({:.1} with burn's own convolutions: {:.2}x)",
        report.train_samples_per_s, report.train_samples_per_s_stock, report.train_speedup
    );
    println!(
        "conv stack        {:.0} GFLOP/s at batch 1, {:.0} at batch 8 (burn's own: {:.0}, {:.0})",
        stack_b1, stack_b8, stack_b1_stock, stack_b8_stock
    );
    Ok(())
}
