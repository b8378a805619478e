//! Training checkpoints: one folder holding the model's weights, the optimizer's state and a
//! `state.json` (step, random generator position, configs, elapsed time), replaced as a whole
//! so a crash mid-write leaves the previous checkpoint intact. Resuming from it continues the
//! run exactly.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::fsutil::atomic_write;
use crate::model::LatentNorm;

pub const STATE_FILE: &str = "state.json";
pub const WEIGHTS_FILE: &str = "model.bpk";
pub const OPTIMIZER_FILE: &str = "optimizer.bpk";

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not a diffroll checkpoint ({reason}); delete it or start without --resume", path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error("{}: this checkpoint is from a {found} run, not {expected}", path.display())]
    WrongKind {
        path: PathBuf,
        found: String,
        expected: String,
    },
    #[error("{}: the checkpoint's model configuration differs from this run's ({what}); resume with the same settings or start afresh", path.display())]
    Mismatch { path: PathBuf, what: String },
}

/// Everything besides tensors that a resumed run needs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TrainState {
    /// "autoencoder" or "diffusion".
    pub kind: String,
    /// Steps completed.
    pub step: usize,
    /// Seed and word position of the run's ChaCha8 generator.
    pub rng_seed: [u8; 32],
    pub rng_word_pos: String,
    /// Model architecture, as JSON, checked on resume.
    pub model_config: serde_json::Value,
    /// Training settings, as JSON.
    pub training_config: serde_json::Value,
    /// Wall-clock seconds of training so far, over every run and resume.
    pub elapsed_secs: f64,
    /// Global latent scale of diffusion runs started before per-channel statistics.
    #[serde(default)]
    pub latent_scale: Option<f32>,
    /// Per-channel latent statistics of a diffusion run (fixed at its start).
    #[serde(default)]
    pub latent_norm: Option<LatentNorm>,
    /// (step, loss) every few hundred steps, and evaluation figures.
    #[serde(default)]
    pub history: Vec<serde_json::Value>,
}

impl TrainState {
    /// The state of a run about to take its first step.
    pub fn new(
        kind: &str,
        model_config: serde_json::Value,
        training_config: serde_json::Value,
    ) -> TrainState {
        TrainState {
            kind: kind.to_string(),
            step: 0,
            rng_seed: [0; 32],
            rng_word_pos: "0".into(),
            model_config,
            training_config,
            elapsed_secs: 0.0,
            latent_scale: None,
            latent_norm: None,
            history: vec![],
        }
    }

    /// Records that the run goes on on `hardware` from this step (once each time it changes),
    /// so a model trained partly on one machine and partly on another says which did what.
    pub fn running_on(&mut self, hardware: &str) {
        let last = self
            .history
            .iter()
            .rev()
            .find_map(|h| h.get("hardware").and_then(|v| v.as_str()));
        if last != Some(hardware) {
            self.history.push(serde_json::json!({
                "step": self.step,
                "hardware": hardware,
            }));
        }
    }

    /// The hardware each stretch of the run trained on, as [`TrainState::running_on`] recorded
    /// it: `{"step", "hardware"}` from that step on. Runs checkpointed before this was kept
    /// start their list where they were first resumed.
    pub fn hardware_log(&self) -> Vec<serde_json::Value> {
        self.history
            .iter()
            .filter(|h| h.get("hardware").is_some())
            .cloned()
            .collect()
    }

    /// Records a resume under different training settings (a shorter `--steps`, another
    /// batch): the history keeps the step and the settings from then on, so a model card can
    /// tell the whole schedule.
    pub fn resumed_with(&mut self, training_config: serde_json::Value) {
        if self.training_config != training_config {
            self.history.push(serde_json::json!({
                "step": self.step,
                "training_config_from_here": training_config,
            }));
            self.training_config = training_config;
        }
    }
}

/// The checkpoint folder of a training output folder.
pub fn dir_of(out: &Path) -> PathBuf {
    out.join("checkpoint")
}

/// Replaces the checkpoint in `dir` with `state`, `weights` and `optimizer` bytes, and any
/// `extra` named files (such as averaged weights).
pub fn save(
    dir: &Path,
    state: &TrainState,
    weights: &[u8],
    optimizer: &[u8],
    extra: &[(&str, Vec<u8>)],
) -> Result<(), CheckpointError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CheckpointError::Io { path, source }
    };
    let parent = dir.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io(parent))?;
    let tmp = dir.with_extension("tmp");
    let old = dir.with_extension("old");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
    }
    std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    let json = serde_json::to_vec_pretty(state).expect("state serializes");
    let files = [
        (WEIGHTS_FILE, weights),
        (OPTIMIZER_FILE, optimizer),
        (STATE_FILE, json.as_slice()),
    ];
    let extra = extra.iter().map(|(name, bytes)| (*name, bytes.as_slice()));
    for (name, bytes) in files.into_iter().chain(extra) {
        let path = tmp.join(name);
        atomic_write(&path, bytes).map_err(io(&path))?;
    }
    // Swap folders: the old checkpoint stays until the new one is in place.
    if dir.exists() {
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(io(&old))?;
        }
        std::fs::rename(dir, &old).map_err(io(dir))?;
    }
    std::fs::rename(&tmp, dir).map_err(io(dir))?;
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(io(&old))?;
    }
    Ok(())
}

/// A checkpoint read back: state, weights bytes, optimizer bytes.
pub struct Loaded {
    pub state: TrainState,
    pub weights: Vec<u8>,
    pub optimizer: Vec<u8>,
}

/// Reads the checkpoint in `dir`, checking it is of `kind` and has `model_config`.
pub fn load(
    dir: &Path,
    kind: &str,
    model_config: &serde_json::Value,
) -> Result<Loaded, CheckpointError> {
    // A crash between the two renames of `save` leaves only the `.old` folder.
    let dir = if !dir.exists() && dir.with_extension("old").exists() {
        dir.with_extension("old")
    } else {
        dir.to_path_buf()
    };
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read(&path).map_err(|source| CheckpointError::Io { path, source })
    };
    let state_bytes = read(STATE_FILE)?;
    let state: TrainState =
        serde_json::from_slice(&state_bytes).map_err(|e| CheckpointError::Corrupt {
            path: dir.join(STATE_FILE),
            reason: e.to_string(),
        })?;
    if state.kind != kind {
        return Err(CheckpointError::WrongKind {
            path: dir.clone(),
            found: state.kind,
            expected: kind.to_string(),
        });
    }
    if &state.model_config != model_config {
        return Err(CheckpointError::Mismatch {
            path: dir.clone(),
            what: format!("saved {} vs now {}", state.model_config, model_config),
        });
    }
    Ok(Loaded {
        state,
        weights: read(WEIGHTS_FILE)?,
        optimizer: read(OPTIMIZER_FILE)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> TrainState {
        TrainState {
            kind: "autoencoder".into(),
            step: 7,
            rng_seed: [3; 32],
            rng_word_pos: "12".into(),
            model_config: serde_json::json!({"a": 1}),
            training_config: serde_json::json!({}),
            elapsed_secs: 1.5,
            latent_scale: None,
            latent_norm: None,
            history: vec![],
        }
    }

    #[test]
    fn save_replaces_and_load_checks() {
        let out = tempfile::tempdir().unwrap();
        let dir = dir_of(out.path());
        save(&dir, &state(), b"w1", b"o1", &[]).unwrap();
        let mut s = state();
        s.step = 8;
        save(&dir, &s, b"w2", b"o2", &[("ema.bpk", b"e2".to_vec())]).unwrap();
        assert_eq!(std::fs::read(dir.join("ema.bpk")).unwrap(), b"e2");
        let loaded = load(&dir, "autoencoder", &serde_json::json!({"a": 1})).unwrap();
        assert_eq!(loaded.state, s);
        assert_eq!(loaded.weights, b"w2");
        assert_eq!(loaded.optimizer, b"o2");
        assert!(matches!(
            load(&dir, "diffusion", &serde_json::json!({"a": 1})),
            Err(CheckpointError::WrongKind { .. })
        ));
        assert!(matches!(
            load(&dir, "autoencoder", &serde_json::json!({"a": 2})),
            Err(CheckpointError::Mismatch { .. })
        ));
        std::fs::write(dir.join(STATE_FILE), b"{garbage").unwrap();
        let err = load(&dir, "autoencoder", &serde_json::json!({"a": 1}))
            .err()
            .unwrap();
        assert!(matches!(err, CheckpointError::Corrupt { .. }), "{err}");
        let names: Vec<_> = std::fs::read_dir(out.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "only the checkpoint folder remains");
    }

    #[test]
    fn the_hardware_log_notes_each_change_of_machine_with_its_step() {
        let mut s = state();
        s.running_on("CPU");
        s.running_on("CPU");
        s.step = 500;
        s.resumed_with(serde_json::json!({"lr": 1}));
        s.running_on("GPU");
        s.step = 900;
        s.running_on("GPU");
        assert_eq!(
            s.hardware_log(),
            vec![
                serde_json::json!({"step": 7, "hardware": "CPU"}),
                serde_json::json!({"step": 500, "hardware": "GPU"}),
            ]
        );
    }
}
