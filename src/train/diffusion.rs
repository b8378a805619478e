//! Training the denoising UNet on autoencoder latents: v-prediction with mean squared error,
//! uniform timesteps, the style label dropped 10 % of the time so classifier-free guidance has
//! an unconditional model to push against.

use std::path::Path;
use std::time::Instant;

use burn::config::Config;
use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::checkpoint::{self, TrainState};
use super::dataset::{KEY_PROFILE_WINDOWS, WindowSet};
use super::ema;
use super::run::{self, Control, Outcome, Progress, Throughput, TrainError, learning_rate};
use crate::model::{
    AUTOENCODER_FILE, Autoencoder, LatentNorm, ModelCard, PitchCrop, Schedule, UNET_FILE, UNet,
    UNetConfig, init_seeded, load_weights, load_weights_bytes, normal, rolls_to_tensor,
    save_weights, weights_to_bytes,
};
use crate::roll::{Roll, Style};

pub const KIND: &str = "diffusion";
/// The moving average of the weights, beside the checkpoint's raw weights.
const EMA_FILE: &str = "ema.bpk";

#[derive(Config, Debug)]
pub struct DiffusionTraining {
    #[config(default = 40000)]
    pub steps: usize,
    #[config(default = 32)]
    pub batch: usize,
    #[config(default = 5e-4)]
    pub lr: f64,
    #[config(default = 500)]
    pub warmup: usize,
    /// Share of samples trained without their style label.
    #[config(default = 0.1)]
    pub label_dropout: f64,
    #[config(default = 500)]
    pub checkpoint_every: usize,
    /// Decay of the weights' moving average, which is what the model ships.
    #[config(default = 0.999)]
    pub ema_decay: f64,
    #[config(default = 1)]
    pub hop_bars: usize,
    #[config(default = 0)]
    pub seed: u64,
    /// Normalise each latent channel on its own (mean and spread) instead of scaling all by
    /// one factor. Not the default: a 1860-step GPU run with it was no better than the
    /// shipped model at a similar point (see docs/experiments.md).
    #[config(default = false)]
    pub per_channel_latents: bool,
    /// Share of samples drawn from each style (chorale, polyphony, classical, folk); `None`
    /// draws styles by the square root of their window counts. A resumed run may change it:
    /// the weakest styles can get more of a continuation's steps.
    #[config(default = "None")]
    pub style_mix: Option<Vec<f64>>,
    /// Min-SNR-γ loss weighting (Hang et al. 2023, "Efficient Diffusion Training via Min-SNR
    /// Weighting Strategy"): each sample's v-loss weighted by min(SNR, γ) / (SNR + 1), so the
    /// nearly clean timesteps, which are easy and dominate the gradient, weigh less; about 3×
    /// faster convergence on images at γ = 5. `None`: every timestep alike.
    #[config(default = "None")]
    pub min_snr_gamma: Option<f64>,
}

pub struct DiffusionRun<'a> {
    pub unet: UNetConfig,
    pub training: DiffusionTraining,
    /// A model folder with a trained autoencoder.
    pub autoencoder: &'a Path,
    /// Train on this band of pitches instead of the autoencoder's own (its networks are
    /// convolutional, so the same weights encode and decode any band).
    pub crop: Option<PitchCrop>,
    pub data: &'a Path,
    pub out: &'a Path,
    pub resume: bool,
    pub device: Device,
    pub hardware: String,
}

/// 1 / standard deviation of the latents of `windows`: diffusion assumes unit variance.
pub fn latent_scale(ae: &Autoencoder, windows: &[Roll], device: &Device) -> f32 {
    let stats = LatentNorm::measure(ae, windows, device);
    // The spread of all values together: each channel's variance plus its mean's distance
    // from the overall mean (channels hold equally many values).
    let c = stats.mean.len().max(1) as f64;
    let overall = stats.mean.iter().map(|&m| f64::from(m)).sum::<f64>() / c;
    let var = stats
        .mean
        .iter()
        .zip(&stats.scale)
        .map(|(&m, &s)| (1.0 / f64::from(s)).powi(2) + (f64::from(m) - overall).powi(2))
        .sum::<f64>()
        / c;
    (1.0 / var.max(1e-8).sqrt()) as f32
}

/// Clean latents noised to random timesteps, with the v-prediction targets.
pub struct NoisedBatch {
    pub x_t: Tensor<4>,
    pub v: Tensor<4>,
    /// Timestep of each sample, as the UNet takes them.
    pub t: Vec<f32>,
    /// Each sample's signal-to-noise ratio ᾱ / (1 − ᾱ).
    pub snr: Vec<f64>,
    /// Each sample's loss weight; `None`: all 1.
    pub weights: Option<Vec<f32>>,
}

/// The min-SNR-γ weight of a v-prediction loss at signal-to-noise ratio `snr`.
pub fn min_snr_weight(snr: f64, gamma: f64) -> f64 {
    snr.min(gamma) / (snr + 1.0)
}

impl NoisedBatch {
    /// Weights each sample's loss by [`min_snr_weight`] at `gamma`.
    pub fn min_snr(mut self, gamma: f64) -> NoisedBatch {
        self.weights = Some(
            self.snr
                .iter()
                .map(|&snr| min_snr_weight(snr, gamma) as f32)
                .collect(),
        );
        self
    }

    /// The v-prediction loss of `unet` (on the autodiff device `ad`) on this batch, each
    /// sample conditioned on its label in `labels` (the number of styles: none), weighted
    /// per sample where the batch has weights.
    pub fn v_loss(self, unet: &UNet, labels: Vec<i64>, ad: &Device) -> Tensor<1> {
        let b = labels.len();
        let labels = Tensor::<1, Int>::from_data(TensorData::new(labels, [b]), ad);
        let pred = unet.forward(self.x_t.autodiff(), &self.t, labels);
        let squared = (pred - self.v.autodiff()).powf_scalar(2.0);
        match self.weights {
            None => squared.mean(),
            Some(w) => {
                let w = Tensor::<4>::from_data(TensorData::new(w, [b, 1, 1, 1]), ad);
                (squared * w).mean()
            }
        }
    }

    /// One optimiser step of `unet` on this batch: the v-loss, its gradients and the update at
    /// learning rate `lr`. Returns the updated UNet and the loss before the step.
    pub fn step(
        self,
        unet: UNet,
        optim: &mut burn::optim::ModuleOptimizer,
        labels: Vec<i64>,
        lr: f64,
        ad: &Device,
    ) -> (UNet, f32) {
        let loss = self.v_loss(&unet, labels, ad);
        let value = loss.clone().into_scalar::<f32>();
        let grads = GradientsParams::from_grads(loss.backward(), &unet);
        (optim.step(lr, unet, grads), value)
    }
}

/// Noises a batch of (scaled) clean latents `z0` at timesteps drawn uniformly from
/// `schedule`: x_t = a·z0 + s·ε and the target v = a·ε − s·z0.
pub fn noise_batch(z0: Tensor<4>, schedule: &Schedule, rng: &mut ChaCha8Rng) -> NoisedBatch {
    let device = z0.device();
    let [b, c, h, w] = z0.dims();
    let steps: Vec<usize> = (0..b)
        .map(|_| rng.random_range(0..schedule.len()))
        .collect();
    let (a, s): (Vec<f32>, Vec<f32>) = steps
        .iter()
        .map(|&ts| {
            let (a, s) = schedule.scales(Some(ts));
            (a as f32, s as f32)
        })
        .unzip();
    let a = Tensor::<4>::from_data(TensorData::new(a, [b, 1, 1, 1]), &device);
    let s = Tensor::<4>::from_data(TensorData::new(s, [b, 1, 1, 1]), &device);
    let eps = normal(rng, [b, c, h, w], &device);
    let x_t = z0.clone() * a.clone() + eps.clone() * s.clone();
    let v = eps * a - z0 * s;
    NoisedBatch {
        x_t,
        v,
        t: steps.iter().map(|&x| x as f32).collect(),
        snr: steps
            .iter()
            .map(|&ts| {
                let ab = schedule.alpha_bar(Some(ts));
                ab / (1.0 - ab).max(1e-12)
            })
            .collect(),
        weights: None,
    }
}

pub fn train(run: DiffusionRun<'_>, control: Control<'_>) -> Result<Outcome, TrainError> {
    let started = Instant::now();
    let mut ae_card = ModelCard::load(run.autoencoder)?;
    if let Some(crop) = run.crop {
        ae_card.autoencoder.crop = Some(crop);
        ae_card.autoencoder.check().map_err(TrainError::BadConfig)?;
    }
    let ae = load_weights(
        ae_card.autoencoder.init(&run.device),
        &run.autoencoder.join(AUTOENCODER_FILE),
        &run.device,
    )?;
    let (mut data, corpus) = WindowSet::load(run.data, run.training.hop_bars)?;
    if let Some(mix) = &run.training.style_mix {
        data = data.with_style_mix(mix)?;
    }
    let unet_config = run
        .unet
        .clone()
        .with_latent_channels(ae_card.autoencoder.latent_channels)
        .with_styles(Style::ALL.len());
    let model_json = serde_json::json!({
        "unet": serde_json::to_value(&unet_config).expect("config serializes"),
        "autoencoder": serde_json::to_value(&ae_card.autoencoder).expect("config serializes"),
    });
    let ad = run.device.clone().autodiff();
    let ckpt_dir = checkpoint::dir_of(run.out);
    let mut unet = init_seeded(&ad, run.training.seed, |d| unet_config.init(d));
    let mut optim = AdamWConfig::new().with_weight_decay(0.0).init();
    let mut rng = ChaCha8Rng::seed_from_u64(run.training.seed);
    let mut ema: Option<UNet> = None;
    let mut state = if run.resume {
        let resumed = run::resume(
            &ckpt_dir,
            KIND,
            &model_json,
            unet_config.init(&run.device),
            &run.device,
            &ad,
            optim,
        )?;
        (unet, optim, rng) = (resumed.module, resumed.optim, resumed.rng);
        let ema_path = ckpt_dir.join(EMA_FILE);
        ema = match std::fs::read(&ema_path) {
            Ok(bytes) => Some(load_weights_bytes(
                unet_config.init(&run.device),
                bytes,
                &ema_path,
                &run.device,
            )?),
            // Checkpoints from before EMA: start the average from the current weights.
            Err(_) => None,
        };
        let mut state = resumed.state;
        state.resumed_with(serde_json::to_value(&run.training).expect("config serializes"));
        state
    } else {
        let sample: Vec<Roll> = (0..512).map(|_| data.draw(&mut rng).0).collect();
        let mut state = TrainState::new(
            KIND,
            model_json.clone(),
            serde_json::to_value(&run.training).expect("config serializes"),
        );
        if run.training.per_channel_latents {
            state.latent_norm = Some(LatentNorm::measure(&ae, &sample, &run.device));
        } else {
            state.latent_scale = Some(latent_scale(&ae, &sample, &run.device));
        }
        state
    };
    std::fs::create_dir_all(run.out).map_err(|source| TrainError::Io {
        path: run.out.to_path_buf(),
        source,
    })?;
    state.running_on(&run.hardware);
    let mut ema = ema.unwrap_or_else(|| unet.valid());
    let norm = state.latent_norm.clone().unwrap_or_else(|| {
        LatentNorm::global(
            ae_card.autoencoder.latent_channels,
            state.latent_scale.unwrap_or(1.0),
        )
    });
    let schedule = Schedule::default();
    let t = &run.training;
    let null_label = Style::ALL.len() as i64;
    let elapsed_before = state.elapsed_secs;
    let mut throughput = Throughput::default();
    let mut loss_avg = 0.0;
    let save = |state: &mut TrainState,
                unet: &UNet,
                ema: &UNet,
                optim: &burn::optim::ModuleOptimizer,
                rng: &ChaCha8Rng| {
        let elapsed = elapsed_before + started.elapsed().as_secs_f64();
        let extra = [(EMA_FILE, weights_to_bytes(ema))];
        run::save_checkpoint(&ckpt_dir, state, elapsed, unet, optim, rng, &extra)
    };
    let mut finished = true;
    while state.step < t.steps {
        if control.should_stop(started) {
            finished = false;
            break;
        }
        let b = t.batch;
        let mut rolls = Vec::with_capacity(b);
        let mut labels = Vec::with_capacity(b);
        for _ in 0..b {
            let (roll, style) = data.draw(&mut rng);
            rolls.push(roll);
            let dropped = rng.random::<f64>() < t.label_dropout;
            labels.push(if dropped {
                null_label
            } else {
                style.index() as i64
            });
        }
        let refs: Vec<&Roll> = rolls.iter().collect();
        let z0 = norm.normalize(ae.encode(rolls_to_tensor(&refs, &run.device)));
        let mut noised = noise_batch(z0, &schedule, &mut rng);
        if let Some(gamma) = t.min_snr_gamma {
            noised = noised.min_snr(gamma);
        }
        let lr = learning_rate(t.lr, state.step, t.steps, t.warmup);
        let (stepped, loss) = noised.step(unet, &mut optim, labels, lr, &ad);
        unet = stepped;
        let loss_value = f64::from(loss);
        loss_avg = if state.step == 0 {
            loss_value
        } else {
            0.99 * loss_avg + 0.01 * loss_value
        };
        ema = ema::update(ema, &unet.valid(), ema::decay_at(state.step, t.ema_decay));
        state.step += 1;
        let mut message = None;
        if state.step.is_multiple_of(250) {
            state
                .history
                .push(serde_json::json!({"step": state.step, "loss": loss_avg}));
        }
        if state.step.is_multiple_of(t.checkpoint_every) {
            save(&mut state, &unet, &ema, &optim, &rng)?;
            message = Some(format!(
                "step {}: checkpoint saved, loss {loss_avg:.4}",
                state.step
            ));
        }
        (control.on_progress)(&Progress {
            step: state.step,
            total: t.steps,
            loss: loss_value,
            samples_per_sec: throughput.add(b),
            message,
        });
    }
    save(&mut state, &unet, &ema, &optim, &rng)?;
    // The model folder is usable at every stop: `generate` can try a half-trained run.
    // The model ships the weights' moving average, not the last step's weights.
    write_model(
        &run,
        &ema,
        &ae,
        &ae_card,
        &unet_config,
        &state,
        &data,
        corpus.pieces.len(),
        finished,
    )?;
    Ok(Outcome {
        step: state.step,
        total: t.steps,
        finished,
        elapsed: std::time::Duration::from_secs_f64(state.elapsed_secs),
        metrics: vec![("loss".into(), loss_avg)],
    })
}

#[allow(clippy::too_many_arguments)]
fn write_model(
    run: &DiffusionRun<'_>,
    unet: &UNet,
    ae: &Autoencoder,
    ae_card: &ModelCard,
    unet_config: &UNetConfig,
    state: &TrainState,
    data: &WindowSet,
    files: usize,
    finished: bool,
) -> Result<(), TrainError> {
    let mut name = run
        .out
        .file_name()
        .map_or("model".into(), |n| n.to_string_lossy().into_owned());
    let mut card = ae_card.clone();
    // A resumed run keeps the model's name (a shipped model continued in a scratch folder
    // stays `base`) and the sampling and decoding settings an eval chose for it (`eval
    // --save-to-card`); its figures belong to the old weights and go.
    if let Some(previous) = run.resume.then(|| ModelCard::load(run.out).ok()).flatten() {
        name = previous.name.clone();
        card.take_settings(previous);
    }
    card.name = name;
    card.unet = Some(unet_config.clone());
    card.latent_scale = state.latent_scale.unwrap_or(1.0);
    card.latent_norm = state.latent_norm.clone();
    card.style_weights = data.style_shares();
    card.key_profiles = data.key_profiles(KEY_PROFILE_WINDOWS);
    card.training["diffusion"] = serde_json::json!({
        "data": run.data.display().to_string(),
        "files": files,
        "windows_per_style": data.windows_per_style(),
        "style_mix": data.style_mix(),
        "steps": state.step,
        "finished": finished,
        "batch": run.training.batch,
        "wall_time_hours": state.elapsed_secs / 3600.0,
        "hardware": run.hardware,
        "hardware_by_step": state.hardware_log(),
        "config": state.training_config,
        // The history also holds resumes and changes of machine: the last entry with a loss.
        "final_loss": state.history.iter().rev().find_map(|h| h.get("loss").cloned()),
    });
    save_weights(ae, &run.out.join(AUTOENCODER_FILE))?;
    save_weights(unet, &run.out.join(UNET_FILE))?;
    card.save(run.out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::init_seeded;
    use rand::SeedableRng;

    #[test]
    fn min_snr_weights_cap_the_clean_timesteps() {
        assert!((min_snr_weight(1.0, 5.0) - 0.5).abs() < 1e-12);
        assert!((min_snr_weight(100.0, 5.0) - 5.0 / 101.0).abs() < 1e-12);
        // Noisy timesteps keep nearly the v-loss's own weight, clean ones far less.
        let schedule = Schedule::default();
        let snr = |t: usize| {
            let ab = schedule.alpha_bar(Some(t));
            ab / (1.0 - ab)
        };
        assert!(min_snr_weight(snr(999), 5.0) < 0.01);
        assert!(min_snr_weight(snr(0), 5.0) < 0.01);
        // In between they rise to γ / (γ + 1) where the SNR is γ.
        let most = (0..1000)
            .map(|t| min_snr_weight(snr(t), 5.0))
            .fold(0.0, f64::max);
        assert!((most - 5.0 / 6.0).abs() < 0.01, "{most}");
    }

    #[test]
    fn a_weighted_loss_is_the_mean_of_weighted_samples() {
        let device = Device::flex();
        let ad = device.clone().autodiff();
        let config = crate::model::UNetConfig::new()
            .with_base_channels(8)
            .with_channel_mult(vec![1, 2])
            .with_attention(vec![false, false])
            .with_latent_channels(2);
        let unet = init_seeded(&ad, 0, |d| config.init(d));
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let z0 = normal(&mut rng, [2, 2, 8, 16], &device);
        let schedule = Schedule::default();
        let batch = || noise_batch(z0.clone(), &schedule, &mut ChaCha8Rng::seed_from_u64(2));
        let loss = |b: NoisedBatch| b.v_loss(&unet, vec![0, 1], &ad).into_scalar::<f32>();
        let plain = loss(batch());
        let mut ones = batch();
        ones.weights = Some(vec![1.0, 1.0]);
        assert!((loss(ones) - plain).abs() < 1e-6);
        // Weight 2 on one sample, 0 on the other: that sample's loss alone.
        let (mut first, mut second) = (batch(), batch());
        first.weights = Some(vec![2.0, 0.0]);
        second.weights = Some(vec![0.0, 2.0]);
        let (a, b) = (loss(first), loss(second));
        assert!(
            (a + b - 2.0 * plain).abs() < 1e-4,
            "{a} + {b} vs 2 × {plain}"
        );
        assert!(batch().min_snr(5.0).weights.is_some_and(|w| w.len() == 2));
    }
}
