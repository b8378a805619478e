//! What every training loop shares: progress reports, stopping (Ctrl-C, time limit), the
//! learning-rate schedule, the resumable random generator, and the error type.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::checkpoint::CheckpointError;
use crate::model::ModelError;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: no 8-bar windows with a style label found (expected <dir>/<style>/*.mid with styles chorale, polyphony, classical, folk)", .0.display())]
    NoData(PathBuf),
    #[error(
        "--style-mix {0:?}: give one share per style (chorale, polyphony, classical, folk), none negative, at least one above 0 for a style the corpus has"
    )]
    BadStyleMix(Vec<f64>),
    /// A model configuration that cannot be built, with what is wrong with it.
    #[error("{0}")]
    BadConfig(String),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("--resume: no checkpoint in {}; start without --resume", .0.display())]
    NothingToResume(PathBuf),
    #[error("{}: optimizer state is corrupt: {reason}", path.display())]
    Optimizer { path: PathBuf, reason: String },
}

/// One progress report.
#[derive(Debug, Clone)]
pub struct Progress {
    pub step: usize,
    pub total: usize,
    pub loss: f64,
    pub samples_per_sec: f64,
    /// A line to print above the bar (evaluation results, checkpoints).
    pub message: Option<String>,
}

/// How a caller watches and stops a run.
pub struct Control<'a> {
    /// Raised by Ctrl-C or the app's Cancel: the loop checkpoints and returns.
    pub stop: &'a AtomicBool,
    /// Stop (with a checkpoint) after this much wall time in this run.
    pub time_limit: Option<Duration>,
    pub on_progress: &'a mut dyn FnMut(&Progress),
}

impl Control<'_> {
    pub fn should_stop(&self, started: Instant) -> bool {
        self.stop.load(Ordering::Relaxed) || self.time_limit.is_some_and(|l| started.elapsed() >= l)
    }
}

/// Learning rate at `step`: linear warm-up, then cosine decay to a tenth.
pub fn learning_rate(base: f64, step: usize, total: usize, warmup: usize) -> f64 {
    let warm = if warmup == 0 {
        1.0
    } else {
        ((step + 1) as f64 / warmup as f64).min(1.0)
    };
    let progress = (step as f64 / total.max(1) as f64).min(1.0);
    let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
    base * warm * (0.1 + 0.9 * cosine)
}

/// The run's random generator, saved as seed and position so a resumed run draws exactly the
/// numbers the uninterrupted run would have.
pub fn rng_from(seed: [u8; 32], word_pos: &str) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::from_seed(seed);
    rng.set_word_pos(word_pos.parse().unwrap_or(0));
    rng
}

pub fn rng_state(rng: &ChaCha8Rng) -> ([u8; 32], String) {
    (rng.get_seed(), rng.get_word_pos().to_string())
}

/// What a run ended with.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub step: usize,
    pub total: usize,
    /// False when stopped early; the checkpoint allows `--resume`.
    pub finished: bool,
    pub elapsed: Duration,
    /// Last evaluation figures, by name.
    pub metrics: Vec<(String, f64)>,
}

/// Measures samples per second over the recent steps.
pub struct Throughput {
    window_start: Instant,
    samples: usize,
    rate: f64,
}

impl Default for Throughput {
    fn default() -> Self {
        Throughput {
            window_start: Instant::now(),
            samples: 0,
            rate: 0.0,
        }
    }
}

impl Throughput {
    pub fn add(&mut self, samples: usize) -> f64 {
        self.samples += samples;
        let secs = self.window_start.elapsed().as_secs_f64();
        if secs >= 2.0 || self.rate == 0.0 {
            self.rate = self.samples as f64 / secs.max(1e-9);
            if secs >= 2.0 {
                self.window_start = Instant::now();
                self.samples = 0;
            }
        }
        self.rate
    }
}

/// A module, its optimizer and the generator, as a `--resume` finds them in a checkpoint.
pub struct Resumed<M> {
    pub module: M,
    pub optim: burn::optim::ModuleOptimizer,
    pub rng: ChaCha8Rng,
    pub state: super::checkpoint::TrainState,
}

/// Reads the checkpoint in `dir` into `fresh` (built on the plain `device`); the weights come
/// back as trainable leaves on the autodiff device `ad`.
pub fn resume<M: burn::module::Module>(
    dir: &std::path::Path,
    kind: &str,
    model_config: &serde_json::Value,
    fresh: M,
    device: &burn::tensor::Device,
    ad: &burn::tensor::Device,
    optim: burn::optim::ModuleOptimizer,
) -> Result<Resumed<M>, TrainError> {
    if !dir.exists() && !dir.with_extension("old").exists() {
        return Err(TrainError::NothingToResume(dir.to_path_buf()));
    }
    let loaded = super::checkpoint::load(dir, kind, model_config)?;
    // Loaded on the plain device, then forked: parameters must be fresh autodiff leaves.
    let module = crate::model::load_weights_bytes(fresh, loaded.weights, dir, device)?
        .fork(ad)
        .train();
    let optim = optim
        .from_bytes(burn::tensor::Bytes::from_bytes_vec(loaded.optimizer))
        .map_err(|e| TrainError::Optimizer {
            path: dir.to_path_buf(),
            reason: format!("{e:?}"),
        })?;
    Ok(Resumed {
        module,
        optim,
        rng: rng_from(loaded.state.rng_seed, &loaded.state.rng_word_pos),
        state: loaded.state,
    })
}

/// Where a run that trains one module starts, with the output folder `out` made: `fresh` (on
/// the autodiff device `ad`), a new AdamW optimizer, a generator seeded with `seed` and a new
/// state; or, with `resume`, all of them as the checkpoint in `dir` left them (loaded into
/// `empty`, built on the plain `device`).
#[allow(clippy::too_many_arguments)]
pub fn start<M: burn::module::Module>(
    out: &std::path::Path,
    dir: &std::path::Path,
    kind: &str,
    model_config: &serde_json::Value,
    training_config: serde_json::Value,
    fresh: M,
    empty: M,
    device: &burn::tensor::Device,
    ad: &burn::tensor::Device,
    seed: u64,
    resume: bool,
) -> Result<Resumed<M>, TrainError> {
    let optim = burn::optim::AdamWConfig::new()
        .with_weight_decay(0.0)
        .init();
    let started = if resume {
        let mut resumed = self::resume(dir, kind, model_config, empty, device, ad, optim)?;
        resumed.state.resumed_with(training_config);
        resumed
    } else {
        Resumed {
            module: fresh,
            optim,
            rng: ChaCha8Rng::seed_from_u64(seed),
            state: super::checkpoint::TrainState::new(kind, model_config.clone(), training_config),
        }
    };
    std::fs::create_dir_all(out).map_err(|source| TrainError::Io {
        path: out.to_path_buf(),
        source,
    })?;
    Ok(started)
}

/// Writes a run's checkpoint: weights, optimizer state, the generator's position and the
/// wall time so far (`elapsed_secs`), plus `extra` files.
pub fn save_checkpoint<M: burn::module::Module>(
    dir: &std::path::Path,
    state: &mut super::checkpoint::TrainState,
    elapsed_secs: f64,
    module: &M,
    optim: &burn::optim::ModuleOptimizer,
    rng: &ChaCha8Rng,
    extra: &[(&str, Vec<u8>)],
) -> Result<(), TrainError> {
    let (seed, pos) = rng_state(rng);
    state.rng_seed = seed;
    state.rng_word_pos = pos;
    state.elapsed_secs = elapsed_secs;
    let optim_bytes = optim.into_bytes().map_err(|e| TrainError::Optimizer {
        path: dir.to_path_buf(),
        reason: format!("{e:?}"),
    })?;
    super::checkpoint::save(
        dir,
        state,
        &crate::model::weights_to_bytes(module),
        &optim_bytes,
        extra,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn learning_rate_warms_up_and_decays() {
        assert!((learning_rate(1.0, 0, 100, 10) - 0.1).abs() < 1e-9);
        // Warm-up done; the cosine has barely begun: 0.1 + 0.9 · ½(1 + cos 0.09π) ≈ 0.982.
        assert!((learning_rate(1.0, 9, 100, 10) - 0.982).abs() < 0.001);
        assert!((learning_rate(1.0, 100, 100, 10) - 0.1).abs() < 1e-9);
    }

    #[test]
    fn rng_resumes_where_it_stopped() {
        let mut a = ChaCha8Rng::seed_from_u64(5);
        let _: u64 = a.next_u64();
        let (seed, pos) = rng_state(&a);
        let mut b = rng_from(seed, &pos);
        assert_eq!(a.next_u64(), b.next_u64());
    }
}
