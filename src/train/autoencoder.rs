//! Training the autoencoder: rolls in, the same rolls out, weighted binary cross-entropy
//! (positives are rare in a piano roll), evaluated by held-out onset and frame F1.

use std::path::Path;
use std::time::Instant;

use burn::config::Config;
use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::checkpoint::{self, TrainState};
use super::dataset::WindowSet;
use super::run::{self, Control, Outcome, Progress, Throughput, TrainError, learning_rate};
use crate::model::{
    AUTOENCODER_FILE, Autoencoder, AutoencoderConfig, ModelCard, init_seeded, logits_to_rolls,
    normal, rolls_to_tensor, save_weights,
};
use crate::roll::Mending;
use crate::roll::{Counts, Roll, Style, Validity};

pub const KIND: &str = "autoencoder";

#[derive(Config, Debug)]
pub struct AutoencoderTraining {
    #[config(default = 6000)]
    pub steps: usize,
    #[config(default = 16)]
    pub batch: usize,
    #[config(default = 2e-3)]
    pub lr: f64,
    #[config(default = 200)]
    pub warmup: usize,
    /// Loss weight of a missed onset relative to a false one.
    #[config(default = 8.0)]
    pub onset_weight: f32,
    #[config(default = 4.0)]
    pub sustain_weight: f32,
    #[config(default = 500)]
    pub checkpoint_every: usize,
    #[config(default = 1000)]
    pub eval_every: usize,
    /// Validation windows per style.
    #[config(default = 32)]
    pub val_per_style: usize,
    #[config(default = 1)]
    pub hop_bars: usize,
    #[config(default = 0)]
    pub seed: u64,
}

/// Where an autoencoder run reads and writes.
pub struct AutoencoderRun<'a> {
    pub model: AutoencoderConfig,
    pub training: AutoencoderTraining,
    pub data: &'a Path,
    /// Held-out folder for evaluation; without one, training windows are used.
    pub val: Option<&'a Path>,
    pub out: &'a Path,
    pub resume: bool,
    /// Plain (non-autodiff) device; training wraps it.
    pub device: Device,
    /// Shown in the model card.
    pub hardware: String,
}

/// Binary cross-entropy on logits with a weight on positives per plane, averaged.
pub fn weighted_bce(logits: Tensor<4>, target: Tensor<4>, pos_weight: [f32; 2]) -> Tensor<1> {
    let device = logits.device();
    let w = Tensor::<4>::from_data(TensorData::new(pos_weight.to_vec(), [1, 2, 1, 1]), &device);
    let softplus = |x: Tensor<4>| x.clone().clamp_min(0.0) + x.abs().neg().exp().log1p();
    let pos = target.clone() * softplus(logits.clone().neg()) * w;
    let neg = target.neg().add_scalar(1.0) * softplus(logits);
    (pos + neg).mean()
}

/// Decoder logits of the reconstructions of `windows`, 32 at a time.
pub fn reconstruction_logits(
    model: &Autoencoder,
    windows: &[Roll],
    device: &Device,
) -> Vec<Tensor<4>> {
    windows
        .chunks(32)
        .map(|chunk| {
            let refs: Vec<&Roll> = chunk.iter().collect();
            model.decode_logits(model.encode(rolls_to_tensor(&refs, device)))
        })
        .collect()
}

/// Onset and frame F1 of logits (as [`reconstruction_logits`] gives them) decoded with
/// `thresholds`, against `windows`.
fn f1_of(logits: &[Tensor<4>], windows: &[Roll], thresholds: [f32; 2]) -> (f64, f64) {
    rolls_f1(&decode_all(logits, thresholds), windows)
}

/// Each logits chunk decoded and repaired, in order.
pub fn decode_all(logits: &[Tensor<4>], thresholds: [f32; 2]) -> Vec<(Roll, Validity)> {
    logits
        .iter()
        .flat_map(|l| logits_to_rolls(l.clone(), thresholds, Mending::default()))
        .collect()
}

/// Onset and frame F1 of decoded rolls against the `windows` they should be.
pub fn rolls_f1(decoded: &[(Roll, Validity)], windows: &[Roll]) -> (f64, f64) {
    let mut onset = Counts::default();
    let mut frame = Counts::default();
    for ((got, _), want) in decoded.iter().zip(windows) {
        onset.add(got.onset_plane(), want.onset_plane());
        frame.add(got.sustain_plane(), want.sustain_plane());
    }
    (onset.f1(), frame.f1())
}

/// Onset and frame F1 of the autoencoder's reconstructions of `windows`, decoded with
/// `thresholds`.
pub fn reconstruction_f1(
    model: &Autoencoder,
    windows: &[Roll],
    device: &Device,
    thresholds: [f32; 2],
) -> (f64, f64) {
    f1_of(
        &reconstruction_logits(model, windows, device),
        windows,
        thresholds,
    )
}

/// Round trips of `windows` with Gaussian noise of `relative` times the latents' own standard
/// deviation added before decoding: onset F1, frame F1 and the decoded rolls. A denoiser never
/// lands exactly on an encoder's latent, so this says how much its small errors cost in the roll
/// (a latent space whose onsets break under slight noise makes every generated roll lose them).
pub fn noisy_reconstruction(
    model: &Autoencoder,
    windows: &[Roll],
    device: &Device,
    thresholds: [f32; 2],
    relative: f32,
    seed: u64,
) -> (f64, f64, Vec<(Roll, Validity)>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let logits: Vec<Tensor<4>> = windows
        .chunks(32)
        .map(|chunk| {
            let refs: Vec<&Roll> = chunk.iter().collect();
            let z = model.encode(rolls_to_tensor(&refs, device));
            let std = z.clone().var(0).mean().sqrt().into_scalar::<f32>();
            let noise = normal(&mut rng, z.dims(), device);
            model.decode_logits(z + noise.mul_scalar(relative * std))
        })
        .collect();
    let decoded = decode_all(&logits, thresholds);
    let (onset, frame) = rolls_f1(&decoded, windows);
    (onset, frame, decoded)
}

/// The decoding thresholds with the best held-out F1, and that F1 (onset, frame): the
/// positive weights of the loss make the decoder generous, so the best cut is rarely at
/// probability ½.
pub fn tune_thresholds(
    model: &Autoencoder,
    windows: &[Roll],
    device: &Device,
) -> ([f32; 2], (f64, f64)) {
    best_thresholds(&reconstruction_logits(model, windows, device), windows)
}

/// The thresholds that decode `logits` (chunks, in order) into rolls closest to `windows` by
/// F1, and those F1s (onset, frame). Each plane is tuned with the other at its best so far.
pub fn best_thresholds(logits: &[Tensor<4>], windows: &[Roll]) -> ([f32; 2], (f64, f64)) {
    let candidates: Vec<f32> = (-8..=16).map(|i| i as f32 * 0.25).collect();
    let mut best = [0.0f32, 0.0f32];
    for plane in [0, 1, 0] {
        let mut best_f1 = -1.0;
        for &c in &candidates {
            let mut t = best;
            t[plane] = c;
            let (onset, frame) = f1_of(logits, windows, t);
            let f1 = if plane == 0 { onset } else { frame };
            if f1 > best_f1 {
                best_f1 = f1;
                best[plane] = c;
            }
        }
    }
    (best, f1_of(logits, windows, best))
}

/// Held-out windows with their styles, `per_style` of each: from `val` when given, else
/// from the training windows.
pub fn held_out(
    val: Option<&Path>,
    train: &WindowSet,
    per_style: usize,
) -> Result<Vec<(Roll, Style)>, TrainError> {
    let set = match val {
        Some(dir) => {
            let (set, _) = WindowSet::scan(dir, 8).map_err(|source| TrainError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
            set
        }
        None => return Ok(train.fixed(per_style)),
    };
    Ok(set.fixed(per_style))
}

pub fn train(run: AutoencoderRun<'_>, control: Control<'_>) -> Result<Outcome, TrainError> {
    let started = Instant::now();
    let (data, corpus) = WindowSet::load(run.data, run.training.hop_bars)?;
    let val: Vec<Roll> = held_out(run.val, &data, run.training.val_per_style)?
        .into_iter()
        .map(|(r, _)| r)
        .collect();
    let ad = run.device.clone().autodiff();
    let model_json = serde_json::to_value(&run.model).expect("config serializes");
    let ckpt_dir = checkpoint::dir_of(run.out);
    let fresh = init_seeded(&ad, run.training.seed, |d| run.model.init(d));
    let run::Resumed {
        module: mut model,
        mut optim,
        mut rng,
        mut state,
    } = run::start(
        run.out,
        &ckpt_dir,
        KIND,
        &model_json,
        serde_json::to_value(&run.training).expect("config serializes"),
        fresh,
        run.model.init(&run.device),
        &run.device,
        &ad,
        run.training.seed,
        run.resume,
    )?;
    state.running_on(&run.hardware);
    let t = &run.training;
    let weights = [t.onset_weight, t.sustain_weight];
    let mut throughput = Throughput::default();
    let mut metrics = Vec::new();
    let elapsed_before = state.elapsed_secs;
    let save = |state: &mut TrainState,
                model: &Autoencoder,
                optim: &burn::optim::ModuleOptimizer,
                rng: &ChaCha8Rng| {
        let elapsed = elapsed_before + started.elapsed().as_secs_f64();
        run::save_checkpoint(&ckpt_dir, state, elapsed, model, optim, rng, &[])
    };
    let mut finished = true;
    while state.step < t.steps {
        if control.should_stop(started) {
            finished = false;
            break;
        }
        let batch: Vec<Roll> = (0..t.batch).map(|_| data.draw(&mut rng).0).collect();
        let refs: Vec<&Roll> = batch.iter().collect();
        let x = rolls_to_tensor(&refs, &ad);
        let logits = model.decode_logits(model.encode(x.clone()));
        let loss = weighted_bce(logits, x, weights);
        let loss_value = f64::from(loss.clone().into_scalar::<f32>());
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let lr = learning_rate(t.lr, state.step, t.steps, t.warmup);
        model = optim.step(lr, model, grads);
        state.step += 1;

        let mut message = None;
        if state.step.is_multiple_of(t.eval_every) || state.step == t.steps {
            let (onset, frame) = reconstruction_f1(&model.valid(), &val, &run.device, [0.0, 0.0]);
            metrics = vec![
                ("onset_f1".to_string(), onset),
                ("frame_f1".to_string(), frame),
            ];
            state.history.push(serde_json::json!({
                "step": state.step, "loss": loss_value, "onset_f1": onset, "frame_f1": frame
            }));
            message = Some(format!(
                "step {}: held-out onset F1 {onset:.4}, frame F1 {frame:.4}",
                state.step
            ));
        }
        if state.step.is_multiple_of(t.checkpoint_every) {
            save(&mut state, &model, &optim, &rng)?;
        }
        (control.on_progress)(&Progress {
            step: state.step,
            total: t.steps,
            loss: loss_value,
            samples_per_sec: throughput.add(t.batch),
            message,
        });
    }
    save(&mut state, &model, &optim, &rng)?;
    if finished {
        let model = model.valid();
        let (thresholds, (onset, frame)) = tune_thresholds(&model, &val, &run.device);
        metrics.push(("onset_f1_tuned".to_string(), onset));
        metrics.push(("frame_f1_tuned".to_string(), frame));
        write_model(
            &run,
            &model,
            &state,
            &data,
            corpus.pieces.len(),
            &metrics,
            thresholds,
        )?;
    }
    Ok(Outcome {
        step: state.step,
        total: t.steps,
        finished,
        elapsed: std::time::Duration::from_secs_f64(state.elapsed_secs),
        metrics,
    })
}

fn write_model(
    run: &AutoencoderRun<'_>,
    model: &Autoencoder,
    state: &TrainState,
    data: &WindowSet,
    files: usize,
    metrics: &[(String, f64)],
    thresholds: [f32; 2],
) -> Result<(), TrainError> {
    let name = run
        .out
        .file_name()
        .map_or("model".into(), |n| n.to_string_lossy().into_owned());
    let mut card = match ModelCard::load(run.out) {
        Ok(card) if card.autoencoder == run.model => card,
        _ => ModelCard::new(&name, run.model.clone()),
    };
    card.style_weights = data.style_shares();
    card.thresholds = thresholds;
    card.training["autoencoder"] = serde_json::json!({
        "data": run.data.display().to_string(),
        "files": files,
        "windows_per_style": data.windows_per_style(),
        "steps": state.step,
        "batch": run.training.batch,
        "wall_time_hours": state.elapsed_secs / 3600.0,
        "hardware": run.hardware,
        "hardware_by_step": state.hardware_log(),
        "config": state.training_config,
        "held_out": metrics.iter().map(|(k, v)| (k.clone(), serde_json::json!(v))).collect::<serde_json::Map<_, _>>(),
        "held_out_data": run.val.map(|p| p.display().to_string()),
    });
    save_weights(model, &run.out.join(AUTOENCODER_FILE))?;
    card.save(run.out)?;
    Ok(())
}
