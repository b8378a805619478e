use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use burn::module::Module;
use burn::tensor::{Device, Int, Tensor, TensorData};
use clap::Args;
use serde::Serialize;

use super::DeviceArgs;
use crate::model::{
    AutoencoderConfig, GenerateRequest, KeyChoice, ModelCard, Pipeline, SamplerKind, UNetConfig,
    init_seeded,
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
        let _ = pipeline.decode(x1.clone(), &[None]);
    });
    let refine = card.defaults.refine;
    let refine_ms = refine.map(|r| {
        let norm = card.latent_norm();
        median_ms(args.reps.div_ceil(4), &device, || {
            let _ = crate::model::validity::refine(
                pipeline.autoencoder(),
                &norm,
                x1.clone(),
                crate::model::validity::Targets {
                    thresholds: &[card.thresholds],
                    fill_silent_beats: &[0.0],
                },
                r,
                None,
                None,
            );
        })
    });
    let steps = card.defaults.steps;
    let request = GenerateRequest {
        count: 1,
        seed: 1,
        steps,
        sampler: SamplerKind::DpmSolverPP,
        style: None,
        guidance: card.defaults.guidance.clone(),
        tempo_bpm: 120.0,
        restart: card.defaults.restart,
        refine: card.defaults.refine,
        key: KeyChoice::Typical,
    };
    // The drawn style (the same every run: one seed) decides whether sampling is guided, so
    // how many UNet passes each step takes.
    let mut drawn = None;
    let e2e_ms = median_ms(args.reps.div_ceil(4), &device, || {
        if let Ok(g) = pipeline.generate(&request, None, None) {
            drawn = g.rolls[0].style;
        }
    });
    let guided = drawn.is_some_and(|s| card.defaults.guidance.guides(&[s]));
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
    Ok(())
}
