//! Fitting a finished model's decoder to its own denoiser. The UNet's estimates of clean
//! latents never land exactly on the encoder's latents, and a decoder that has only seen exact
//! latents draws their small errors as sound without an onset. Here the encoder (and so the
//! latent space the UNet learned) stays fixed; the decoder learns to turn the UNet's one-step
//! estimates of noised real windows back into those windows, as well as exact latents.

use std::path::Path;
use std::time::Instant;

use burn::config::Config;
use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::autoencoder::{best_thresholds, decode_all, held_out, rolls_f1, weighted_bce};
use super::checkpoint::TrainState;
use super::dataset::WindowSet;
use super::run::{self, Control, Outcome, Progress, Throughput, TrainError, learning_rate};
use crate::model::validity::soft_orphan_rate;
use crate::model::{
    AUTOENCODER_FILE, Autoencoder, GenerateRequest, KeyChoice, ModelCard, Pipeline, UNET_FILE,
    rolls_to_tensor, save_weights,
};
use crate::roll::{Roll, Style, Validity};

pub const KIND: &str = "decoder";
/// Beside the diffusion run's `checkpoint/` in the same model folder.
const CHECKPOINT_DIR: &str = "checkpoint-decoder";

#[derive(Config, Debug)]
pub struct DecoderTraining {
    #[config(default = 2000)]
    pub steps: usize,
    #[config(default = 16)]
    pub batch: usize,
    #[config(default = 3e-4)]
    pub lr: f64,
    #[config(default = 100)]
    pub warmup: usize,
    /// Windows are noised to a diffusion step drawn uniformly from 0 to this before the UNet
    /// estimates them clean; past a few hundred steps the estimate no longer says which
    /// notes the window held.
    #[config(default = 300)]
    pub max_t: usize,
    /// Share of each batch decoded from exact latents, so reconstruction stays sharp.
    #[config(default = 0.25)]
    pub clean_share: f64,
    /// Weight of the validity term: the soft share of sustain runs the decoder starts without
    /// an onset when it decodes latents the model generated itself (0: no such term).
    #[config(default = 0.0)]
    pub validity_weight: f64,
    /// Latents generated (default sampler settings, styles in turn) for the validity term.
    #[config(default = 512)]
    pub generated: usize,
    #[config(default = 8.0)]
    pub onset_weight: f32,
    #[config(default = 4.0)]
    pub sustain_weight: f32,
    #[config(default = 250)]
    pub checkpoint_every: usize,
    #[config(default = 500)]
    pub eval_every: usize,
    #[config(default = 32)]
    pub val_per_style: usize,
    #[config(default = 1)]
    pub hop_bars: usize,
    #[config(default = 0)]
    pub seed: u64,
}

/// Where a decoder fit into `out` keeps its checkpoint.
pub fn checkpoint_dir(out: &Path) -> std::path::PathBuf {
    out.join(CHECKPOINT_DIR)
}

pub struct DecoderRun<'a> {
    pub training: DecoderTraining,
    /// A finished model folder (autoencoder and UNet).
    pub model: &'a Path,
    pub data: &'a Path,
    pub val: Option<&'a Path>,
    /// Where the model with the fitted decoder goes (may be `model` itself).
    pub out: &'a Path,
    pub resume: bool,
    pub device: Device,
    pub hardware: String,
}

/// Latents for one batch: the first `clean` windows exact, the rest the UNet's estimates
/// from diffusion steps drawn up to `max_t` (all unnormalised, as the decoder takes them).
fn decoder_inputs(
    pipeline: &Pipeline,
    rolls: &[Roll],
    styles: &[Style],
    clean: usize,
    max_t: usize,
    rng: &mut ChaCha8Rng,
) -> Result<Tensor<4>, TrainError> {
    let refs: Vec<&Roll> = rolls.iter().collect();
    let norm = pipeline.card.latent_norm();
    let z = pipeline
        .autoencoder()
        .encode(rolls_to_tensor(&refs, pipeline.device()));
    let b = rolls.len();
    if clean >= b {
        return Ok(z);
    }
    let noised = b - clean;
    let steps: Vec<usize> = (0..noised).map(|_| rng.random_range(0..=max_t)).collect();
    let labels: Vec<i64> = styles[clean..].iter().map(|s| s.index() as i64).collect();
    let estimate = pipeline.clean_estimate(
        norm.normalize(z.clone().narrow(0, clean, noised)),
        &steps,
        &labels,
        rng,
    )?;
    let estimate = norm.denormalize(estimate);
    Ok(if clean == 0 {
        estimate
    } else {
        Tensor::cat(vec![z.narrow(0, 0, clean), estimate], 0)
    })
}

/// `count` latents the model generates with its card's sampler settings, styles in turn,
/// unnormalised (as the decoder takes them). Seeds start at `seed`.
fn generated_latents(
    pipeline: &Pipeline,
    count: usize,
    seed: u64,
) -> Result<Tensor<4>, TrainError> {
    let d = &pipeline.card.defaults;
    let mut parts = Vec::new();
    for (i, start) in (0..count).step_by(16).enumerate() {
        let request = GenerateRequest {
            count: 16.min(count - start),
            seed: seed + i as u64,
            steps: d.steps,
            sampler: d.sampler,
            style: Style::from_index(i % Style::ALL.len()),
            guidance: d.guidance.clone(),
            tempo_bpm: 100.0,
            restart: d.restart,
            // The decoder is fitted to what the sampler itself hands it.
            refine: None,
            key: KeyChoice::AsDrawn,
        };
        parts.push(pipeline.generate(&request, None, None)?.latents);
    }
    Ok(pipeline
        .card
        .latent_norm()
        .denormalize(Tensor::cat(parts, 0)))
}

/// Share of notes without an onset in `decoded` rolls (counted before mending).
fn orphan_ratio(decoded: &[(Roll, Validity)]) -> f64 {
    let (orphans, notes) = decoded.iter().fold((0, 0), |(o, n), (roll, v)| {
        (o + v.orphan_notes, n + roll.note_count())
    });
    orphans as f64 / notes.max(1) as f64
}

/// Share of notes without an onset when `decoder` decodes `latents` at `thresholds`.
fn orphan_share(decoder: &Autoencoder, latents: &Tensor<4>, thresholds: [f32; 2]) -> f64 {
    let n = latents.dims()[0];
    let logits: Vec<Tensor<4>> = (0..n)
        .step_by(32)
        .map(|start| decoder.decode_logits(latents.clone().narrow(0, start, 32.min(n - start))))
        .collect();
    orphan_ratio(&decode_all(&logits, thresholds))
}

/// A decoder's logits for the held-out windows, in chunks: from their exact latents, and from
/// the UNet's estimates after noising them to step `max_t / 2`.
struct HeldOutLogits {
    exact: Vec<Tensor<4>>,
    estimated: Vec<Tensor<4>>,
}

fn held_out_logits(
    pipeline: &Pipeline,
    decoder: &Autoencoder,
    val: &[(Roll, Style)],
    max_t: usize,
    seed: u64,
) -> Result<HeldOutLogits, TrainError> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let norm = pipeline.card.latent_norm();
    let mut logits = HeldOutLogits {
        exact: Vec::new(),
        estimated: Vec::new(),
    };
    for chunk in val.chunks(32) {
        let refs: Vec<&Roll> = chunk.iter().map(|(r, _)| r).collect();
        let z = pipeline
            .autoencoder()
            .encode(rolls_to_tensor(&refs, pipeline.device()));
        logits.exact.push(decoder.decode_logits(z.clone()));
        let steps = vec![max_t / 2; chunk.len()];
        let labels: Vec<i64> = chunk.iter().map(|(_, s)| s.index() as i64).collect();
        let estimate = pipeline.clean_estimate(norm.normalize(z), &steps, &labels, &mut rng)?;
        logits
            .estimated
            .push(decoder.decode_logits(norm.denormalize(estimate)));
    }
    Ok(logits)
}

/// Held-out figures of a decoder's logits decoded at `thresholds`: onset and frame F1 of the
/// exact round trip and of the estimates against `windows`, and the estimates' share of notes
/// without an onset.
struct HeldOut {
    exact: (f64, f64),
    estimated: (f64, f64),
    estimated_orphans: f64,
}

fn score(logits: &HeldOutLogits, windows: &[Roll], thresholds: [f32; 2]) -> HeldOut {
    let estimated = decode_all(&logits.estimated, thresholds);
    HeldOut {
        exact: rolls_f1(&decode_all(&logits.exact, thresholds), windows),
        estimated: rolls_f1(&estimated, windows),
        estimated_orphans: orphan_ratio(&estimated),
    }
}

pub fn train(run: DecoderRun<'_>, control: Control<'_>) -> Result<Outcome, TrainError> {
    let started = Instant::now();
    let pipeline = Pipeline::load(run.model, &run.device)?;
    if pipeline.card.unet.is_none() {
        return Err(TrainError::Model(crate::model::ModelError::NoUnet(
            run.model.to_path_buf(),
        )));
    }
    let (data, _) = WindowSet::load(run.data, run.training.hop_bars)?;
    let val = held_out(run.val, &data, run.training.val_per_style)?;
    let config = pipeline.card.autoencoder.clone();
    let model_json = serde_json::to_value(&config).expect("config serializes");
    let ad = run.device.clone().autodiff();
    let ckpt_dir = checkpoint_dir(run.out);
    let run::Resumed {
        module: mut decoder,
        mut optim,
        mut rng,
        mut state,
    } = run::start(
        run.out,
        &ckpt_dir,
        KIND,
        &model_json,
        serde_json::to_value(&run.training).expect("config serializes"),
        pipeline.autoencoder().clone().fork(&ad).train(),
        config.init(&run.device),
        &run.device,
        &ad,
        run.training.seed,
        run.resume,
    )?;
    state.running_on(&run.hardware);
    let t = &run.training;
    // Seeds far from the small ones `eval` and `generate` use, so no scored sample is trained on.
    let held_out_generated = generated_latents(&pipeline, 64, 2_000_000)?;
    let pool = if t.validity_weight > 0.0 {
        Some(generated_latents(&pipeline, t.generated.max(1), 1_000_000)?)
    } else {
        None
    };
    let weights = [t.onset_weight, t.sustain_weight];
    let clean = ((t.batch as f64) * t.clean_share).round() as usize;
    let mut throughput = Throughput::default();
    let elapsed_before = state.elapsed_secs;
    let save = |state: &mut TrainState,
                decoder: &Autoencoder,
                optim: &burn::optim::ModuleOptimizer,
                rng: &ChaCha8Rng| {
        let elapsed = elapsed_before + started.elapsed().as_secs_f64();
        run::save_checkpoint(&ckpt_dir, state, elapsed, decoder, optim, rng, &[])
    };
    let windows: Vec<Roll> = val.iter().map(|(r, _)| r.clone()).collect();
    let logits_of =
        |decoder: &Autoencoder| held_out_logits(&pipeline, decoder, &val, t.max_t, t.seed);
    let figures = |decoder: &Autoencoder| -> Result<HeldOut, TrainError> {
        Ok(score(
            &logits_of(decoder)?,
            &windows,
            pipeline.card.thresholds,
        ))
    };
    let mut finished = true;
    while state.step < t.steps {
        if control.should_stop(started) {
            finished = false;
            break;
        }
        let (rolls, styles): (Vec<Roll>, Vec<Style>) =
            (0..t.batch).map(|_| data.draw(&mut rng)).unzip();
        let z = decoder_inputs(&pipeline, &rolls, &styles, clean, t.max_t, &mut rng)?;
        let refs: Vec<&Roll> = rolls.iter().collect();
        let target = rolls_to_tensor(&refs, &ad);
        // The latents come from the frozen encoder and UNet: only the decoder gets gradients.
        let logits = decoder.decode_logits(z.autodiff());
        let mut loss = weighted_bce(logits, target, weights);
        if let Some(pool) = &pool {
            let n = pool.dims()[0];
            let picks: Vec<i64> = (0..t.batch.div_ceil(2))
                .map(|_| rng.random_range(0..n) as i64)
                .collect();
            let count = picks.len();
            let picks = Tensor::<1, Int>::from_data(TensorData::new(picks, [count]), &run.device);
            let generated = pool.clone().select(0, picks).autodiff();
            let orphans =
                soft_orphan_rate(decoder.decode_logits(generated), pipeline.card.thresholds);
            loss = loss + orphans.mul_scalar(t.validity_weight);
        }
        let loss_value = f64::from(loss.clone().into_scalar::<f32>());
        let grads = GradientsParams::from_grads(loss.backward(), &decoder);
        let lr = learning_rate(t.lr, state.step, t.steps, t.warmup);
        decoder = optim.step(lr, decoder, grads);
        state.step += 1;
        let mut message = None;
        if state.step.is_multiple_of(t.eval_every) || state.step == t.steps {
            let valid = decoder.valid();
            let h = figures(&valid)?;
            let generated = orphan_share(&valid, &held_out_generated, pipeline.card.thresholds);
            state.history.push(serde_json::json!({
                "generated_orphans": generated,
                "step": state.step, "loss": loss_value,
                "onset_f1": h.exact.0, "frame_f1": h.exact.1,
                "estimate_onset_f1": h.estimated.0, "estimate_orphans": h.estimated_orphans,
            }));
            message = Some(format!(
                "step {}: held-out onset F1 {:.4} (exact latents), {:.4} (UNet estimates from step {}, {:.1} % of notes without an onset); generated rolls: {:.1} % of notes without an onset",
                state.step,
                h.exact.0,
                h.estimated.0,
                t.max_t / 2,
                100.0 * h.estimated_orphans,
                100.0 * generated
            ));
        }
        if state.step.is_multiple_of(t.checkpoint_every) {
            save(&mut state, &decoder, &optim, &rng)?;
        }
        (control.on_progress)(&Progress {
            step: state.step,
            total: t.steps,
            loss: loss_value,
            samples_per_sec: throughput.add(t.batch),
            message,
        });
    }
    save(&mut state, &decoder, &optim, &rng)?;
    // Like a diffusion run, a decoder fit leaves a usable model at every stop.
    let metrics = {
        let decoder = decoder.valid();
        let before = figures(pipeline.autoencoder())?;
        let logits = logits_of(&decoder)?;
        // Tuned on exact and estimated latents alike: generated latents are neither. With the
        // validity term the decoder learned its onsets at the card's thresholds: keep them.
        let thresholds = if t.validity_weight > 0.0 {
            pipeline.card.thresholds
        } else {
            let both: Vec<Tensor<4>> = logits
                .exact
                .iter()
                .chain(&logits.estimated)
                .cloned()
                .collect();
            best_thresholds(&both, &[windows.clone(), windows.clone()].concat()).0
        };
        let tuned = score(&logits, &windows, thresholds);
        let generated_before = orphan_share(
            pipeline.autoencoder(),
            &held_out_generated,
            pipeline.card.thresholds,
        );
        let generated_after = orphan_share(&decoder, &held_out_generated, thresholds);
        let metrics = vec![
            ("onset_f1".into(), tuned.exact.0),
            ("frame_f1".into(), tuned.exact.1),
            ("estimate_onset_f1".into(), tuned.estimated.0),
            ("estimate_orphans".into(), tuned.estimated_orphans),
            ("generated_orphans".into(), generated_after),
        ];
        let record = serde_json::json!({
            "from": run.model.display().to_string(),
            "data": run.data.display().to_string(),
            "held_out_data": run.val.map(|p| p.display().to_string()),
            "steps": state.step,
            "finished": finished,
            "batch": t.batch,
            "wall_time_hours": state.elapsed_secs / 3600.0,
            "hardware": run.hardware,
            "hardware_by_step": state.hardware_log(),
            "config": state.training_config,
            "thresholds": thresholds,
            "held_out": {
                "estimates_from_step": t.max_t / 2,
                "generated_samples": 64,
                "before": {"onset_f1": before.exact.0, "frame_f1": before.exact.1,
                    "generated_orphans": generated_before,
                    "estimate_onset_f1": before.estimated.0, "estimate_orphans": before.estimated_orphans},
                "after": {"onset_f1": tuned.exact.0, "frame_f1": tuned.exact.1,
                    "generated_orphans": generated_after,
                    "estimate_onset_f1": tuned.estimated.0, "estimate_orphans": tuned.estimated_orphans},
            },
        });
        write_model(&run, &pipeline.card, &decoder, thresholds, record)?;
        metrics
    };
    Ok(Outcome {
        step: state.step,
        total: run.training.steps,
        finished,
        elapsed: std::time::Duration::from_secs_f64(state.elapsed_secs),
        metrics,
    })
}

/// The source model with the fitted decoder: same card (its eval figures dropped, they
/// belong to the old decoder), new thresholds, a `training.decoder` record.
fn write_model(
    run: &DecoderRun<'_>,
    source: &ModelCard,
    decoder: &Autoencoder,
    thresholds: [f32; 2],
    record: serde_json::Value,
) -> Result<(), TrainError> {
    let mut card = source.clone();
    card.thresholds = thresholds;
    card.training["decoder"] = record;
    card.eval = serde_json::json!({});
    if run.out != run.model {
        card.name = run
            .out
            .file_name()
            .map_or("model".into(), |n| n.to_string_lossy().into_owned());
        let (from, to) = (run.model.join(UNET_FILE), run.out.join(UNET_FILE));
        std::fs::copy(&from, &to).map_err(|source| TrainError::Io { path: to, source })?;
    }
    save_weights(decoder, &run.out.join(AUTOENCODER_FILE))?;
    card.save(run.out)?;
    Ok(())
}
