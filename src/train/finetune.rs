//! Fine-tuning a trained model on a musician's own MIDI files, fast enough for a laptop CPU.
//!
//! Method: a short full fine-tune of the UNet (the autoencoder stays as it is), with the
//! user's windows taught under one style label: the one under which the base model already
//! finds them most likely (lowest denoising loss), so training starts close. The result is a
//! new model folder whose card generates with that label by default. The base model is only
//! read. Why not low-rank adapters: the UNet has 4.5 M parameters, so a full step costs about
//! what an adapter step would (the backward pass through the frozen layers dominates), and the
//! result needs no adapter code at load time.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::config::Config;
use burn::module::Module;
use burn::optim::AdamWConfig;
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::corpus::{self, Piece, Rejection};
use super::dataset::{KEY_PROFILE_WINDOWS, evenly_spread, window_roll};
use super::diffusion::noise_batch;
use super::run::{Control, Progress, Throughput, TrainError, learning_rate};
use crate::model::{
    AUTOENCODER_FILE, Autoencoder, ModelCard, ModelError, Schedule, UNET_FILE, UNet, catalog,
    load_weights, rolls_to_tensor, save_weights,
};
use crate::roll::{STEPS_PER_BAR, Style};

#[derive(Config, Debug)]
pub struct FinetuneConfig {
    #[config(default = 300)]
    pub steps: usize,
    #[config(default = 8)]
    pub batch: usize,
    #[config(default = 1e-4)]
    pub lr: f64,
    #[config(default = 20)]
    pub warmup: usize,
    /// Share of samples trained without a label, so guidance keeps working.
    #[config(default = 0.1)]
    pub label_dropout: f64,
    #[config(default = 0)]
    pub seed: u64,
}

/// Training windows per second on the 2-core reference machine (measured with
/// `diffroll finetune`), for the time estimate shown before a run starts.
pub const WINDOWS_PER_SEC_ESTIMATE: f64 = 14.0;

impl FinetuneConfig {
    /// Expected wall time of a run, from [`WINDOWS_PER_SEC_ESTIMATE`].
    pub fn estimated_secs(&self) -> f64 {
        (self.steps * self.batch) as f64 / WINDOWS_PER_SEC_ESTIMATE
    }
}

/// Transpositions drawn for each training window: a few semitones, so the user's keys stay
/// the most common ones.
const TRANSPOSE: std::ops::RangeInclusive<i32> = -3..=3;

/// What a drop of files (or folders) yielded.
#[derive(Debug, Default)]
pub struct Intake {
    pub pieces: Vec<Piece>,
    pub rejected: Vec<Rejection>,
}

impl Intake {
    /// 8-bar windows (1-bar hop) across the accepted files.
    pub fn windows(&self) -> usize {
        self.pieces.iter().map(|p| p.windows.len()).sum()
    }
}

/// Reads `paths` (MIDI files, or folders searched for them) and sorts each file into usable
/// or rejected with the reason. A file given by name is always tried, whatever its extension,
/// so a dropped PDF is reported rather than ignored.
pub fn intake(paths: &[PathBuf]) -> Intake {
    let mut intake = Intake::default();
    for path in paths {
        if path.is_dir() {
            match corpus::scan(path, STEPS_PER_BAR) {
                Ok(found) => {
                    intake.pieces.extend(found.pieces);
                    intake.rejected.extend(found.rejected);
                }
                Err(e) => intake.rejected.push(Rejection {
                    path: path.clone(),
                    reason: e.to_string(),
                }),
            }
        } else {
            match corpus::read_piece(path, None, STEPS_PER_BAR) {
                Ok(piece) => intake.pieces.push(piece),
                Err(rejection) => intake.rejected.push(rejection),
            }
        }
    }
    intake
}

/// Why a fine-tune could not run.
#[derive(Debug, thiserror::Error)]
pub enum FinetuneError {
    #[error("none of the files has an 8-bar stretch of notes to learn from")]
    NoWindows,
    #[error(transparent)]
    Name(#[from] catalog::CatalogError),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Train(#[from] TrainError),
    #[error("fine-tuning cancelled; nothing was saved")]
    Cancelled,
}

/// A fine-tune to run.
pub struct FinetuneRun<'a> {
    /// The model to start from (only read).
    pub base: &'a Path,
    pub intake: &'a Intake,
    /// Name of the new model; it is saved as `<saved models>/<name>`.
    pub name: &'a str,
    pub config: FinetuneConfig,
    pub device: Device,
    pub hardware: String,
}

/// What a finished fine-tune made.
#[derive(Debug, Clone)]
pub struct Finetuned {
    pub dir: PathBuf,
    pub style: Style,
    pub steps: usize,
    pub seconds: f64,
    pub final_loss: f64,
}

/// Where a new model called `name` goes, refusing bad and taken names.
pub fn target_dir(name: &str) -> Result<PathBuf, FinetuneError> {
    Ok(catalog::new_model_dir(name)?)
}

/// Runs the fine-tune and saves the new model atomically (a folder written beside its final
/// place, then renamed). Stopping through `control` saves nothing.
pub fn finetune(run: FinetuneRun<'_>, control: Control<'_>) -> Result<Finetuned, FinetuneError> {
    let started = Instant::now();
    let target = target_dir(run.name)?;
    if run.intake.windows() == 0 {
        return Err(FinetuneError::NoWindows);
    }
    let card = ModelCard::load(run.base)?;
    let unet_config = card
        .unet
        .clone()
        .ok_or_else(|| ModelError::NoUnet(run.base.to_path_buf()))?;
    let ae = load_weights(
        card.autoencoder.init(&run.device),
        &run.base.join(AUTOENCODER_FILE),
        &run.device,
    )?;
    let base_unet = load_weights(
        unet_config.init(&run.device),
        &run.base.join(UNET_FILE),
        &run.device,
    )?;
    let t = &run.config;
    let mut rng = ChaCha8Rng::seed_from_u64(t.seed);
    let windows: Vec<(usize, usize)> = run
        .intake
        .pieces
        .iter()
        .enumerate()
        .flat_map(|(i, p)| p.windows.iter().map(move |&w| (i, w)))
        .collect();
    let draw = |rng: &mut ChaCha8Rng| {
        let (piece, start) = windows[rng.random_range(0..windows.len())];
        let transpose = rng.random_range(TRANSPOSE);
        window_roll(
            &run.intake.pieces[piece].song.notes,
            start as u32,
            transpose,
        )
    };
    let norm = card.latent_norm();
    let schedule = Schedule::default();
    let encode = |rolls: &[crate::roll::Roll]| {
        let refs: Vec<&crate::roll::Roll> = rolls.iter().collect();
        norm.normalize(ae.encode(rolls_to_tensor(&refs, &run.device)))
    };

    let probe: Vec<_> = (0..32).map(|_| draw(&mut rng)).collect();
    let style = nearest_style(&base_unet, encode(&probe), &schedule, t.seed);

    let ad = run.device.clone().autodiff();
    let mut unet = base_unet.fork(&ad).train();
    let mut optim = AdamWConfig::new().with_weight_decay(0.0).init();
    let null_label = card.styles.len() as i64;
    let mut throughput = Throughput::default();
    let mut loss_avg = 0.0;
    for step in 0..t.steps {
        if control.should_stop(started) {
            return Err(FinetuneError::Cancelled);
        }
        let rolls: Vec<_> = (0..t.batch).map(|_| draw(&mut rng)).collect();
        let labels: Vec<i64> = (0..t.batch)
            .map(|_| {
                if rng.random::<f64>() < t.label_dropout {
                    null_label
                } else {
                    style.index() as i64
                }
            })
            .collect();
        let noised = noise_batch(encode(&rolls), &schedule, &mut rng);
        let lr = learning_rate(t.lr, step, t.steps, t.warmup);
        let (stepped, loss) = noised.step(unet, &mut optim, labels, lr, &ad);
        unet = stepped;
        let value = f64::from(loss);
        loss_avg = if step == 0 {
            value
        } else {
            0.95 * loss_avg + 0.05 * value
        };
        (control.on_progress)(&Progress {
            step: step + 1,
            total: t.steps,
            loss: value,
            samples_per_sec: throughput.add(t.batch),
            message: None,
        });
    }

    let seconds = started.elapsed().as_secs_f64();
    let mut new_card = card.clone();
    new_card.name = run.name.to_string();
    new_card.defaults.style = Some(style);
    // The base model's style-specific guidance was tuned against the corpus's styles; the label
    // now stands for the user's music, measured (benches/finetune_quality.sh) at the common scale.
    new_card.defaults.guidance.per_style.clear();
    // Pieces in a typical key now go to the keys and register of the user's own files.
    // Evenly spread over the files, as the base model's profiles are over the corpus.
    let own: Vec<crate::roll::Roll> = evenly_spread(&windows, KEY_PROFILE_WINDOWS)
        .map(|&(piece, start)| window_roll(&run.intake.pieces[piece].song.notes, start as u32, 0))
        .collect();
    if let Some(profile) = crate::roll::KeyProfile::measure(&own) {
        new_card.key_profiles.resize(new_card.styles.len(), None);
        if let Some(slot) = new_card.key_profiles.get_mut(style.index()) {
            *slot = Some(profile);
        }
    }
    new_card.eval = serde_json::Value::Null;
    new_card.training["finetune"] = serde_json::json!({
        "base": run.base.display().to_string(),
        "base_name": card.name,
        "files": run.intake.pieces.iter().map(|p| p.path.display().to_string()).collect::<Vec<_>>(),
        "windows": run.intake.windows(),
        "style_label": style.name(),
        "steps": t.steps,
        "config": serde_json::to_value(t).expect("config serializes"),
        "wall_time_secs": seconds,
        "hardware": run.hardware,
        "final_loss": loss_avg,
    });
    save_model(&target, &new_card, &ae, &unet.valid())?;
    Ok(Finetuned {
        dir: target,
        style,
        steps: t.steps,
        seconds,
        final_loss: loss_avg,
    })
}

/// The style label under which `unet` denoises the latents `z0` best: the same noise and
/// timesteps for every label, the lowest mean v-prediction error wins.
pub fn nearest_style(unet: &UNet, z0: Tensor<4>, schedule: &Schedule, seed: u64) -> Style {
    let b = z0.dims()[0];
    let device = z0.device();
    let mut best = (Style::ALL[0], f64::INFINITY);
    for style in Style::ALL {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5717e);
        let noised = noise_batch(z0.clone(), schedule, &mut rng);
        let labels = Tensor::<1, Int>::from_data(
            TensorData::new(vec![style.index() as i64; b], [b]),
            &device,
        );
        let err = (unet.forward(noised.x_t, &noised.t, labels) - noised.v)
            .powf_scalar(2.0)
            .mean()
            .into_scalar::<f32>();
        if f64::from(err) < best.1 {
            best = (style, f64::from(err));
        }
    }
    best.0
}

/// Writes the model into a hidden folder beside `target`, then renames it into place, so a
/// crash leaves either no model or a whole one.
fn save_model(
    target: &Path,
    card: &ModelCard,
    ae: &Autoencoder,
    unet: &UNet,
) -> Result<(), FinetuneError> {
    let root = target.parent().unwrap_or(Path::new("."));
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| FinetuneError::Io { path, source }
    };
    std::fs::create_dir_all(root).map_err(io(root))?;
    let partial = tempfile::Builder::new()
        .prefix(".partial-")
        .tempdir_in(root)
        .map_err(io(root))?;
    save_weights(ae, &partial.path().join(AUTOENCODER_FILE))?;
    save_weights(unet, &partial.path().join(UNET_FILE))?;
    card.save(partial.path())?;
    let kept = partial.keep();
    std::fs::rename(&kept, target).map_err(|e| {
        let _ = std::fs::remove_dir_all(&kept);
        io(target)(e)
    })?;
    Ok(())
}
