//! Model folders: `model.json` (the card: configs, latent scale, style weights, defaults,
//! training record, evaluation) beside `autoencoder.bpk` and `unet.bpk` (burnpack weights).

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::store::{BurnpackStore, ModuleSnapshot};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::{AutoencoderConfig, Guidance, LatentNorm, SamplerKind, UNetConfig};
use crate::fsutil::atomic_write;
use crate::roll::{KeyProfile, Mending, PITCHES, Style, WINDOW_STEPS};

/// Card format written by this version.
pub const CARD_VERSION: u32 = 1;
pub const CARD_FILE: &str = "model.json";
pub const AUTOENCODER_FILE: &str = "autoencoder.bpk";
pub const UNET_FILE: &str = "unet.bpk";

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{}: no model here (missing {CARD_FILE}); pass a model folder such as models/base", .0.display())]
    NotAModel(PathBuf),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not a valid model card: {source}", path.display())]
    BadCard {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{}: card version {found} is newer than this diffroll understands ({CARD_VERSION})", path.display())]
    CardVersion { path: PathBuf, found: u32 },
    #[error("{}: the model's configuration cannot work: {reason}", path.display())]
    BadConfig { path: PathBuf, reason: String },
    #[error("{}: weights do not fit the model: {reason}", path.display())]
    BadWeights { path: PathBuf, reason: String },
    #[error(
        "{0}: the model has no diffusion UNet yet (only an autoencoder); train one with `diffroll train diffusion`"
    )]
    NoUnet(PathBuf),
    #[error(
        "no base model found (models/base); run from the diffroll folder, or train one with `diffroll train autoencoder` and `diffroll train diffusion`"
    )]
    NoBaseModel,
    #[error("{}: no such model folder or saved model name (saved models: `diffroll finetune` makes them)", .0.display())]
    NotFound(PathBuf),
    #[error("generation cancelled")]
    Cancelled,
    #[error("{bars} bars asked for; the model writes 1 to {max} bars at a time")]
    BarsOutOfRange { bars: usize, max: usize },
    #[error(
        "the piece would be {bars} bars long; pieces stop at {max} bars, so continue a shorter part of it"
    )]
    TooLong { bars: usize, max: usize },
    #[error("{0} has no notes to build on")]
    NothingToBuildOn(&'static str),
    #[error("strength {0} must be between 0 (the clip itself) and 1 (from pure noise)")]
    BadStrength(f32),
    #[error("a blend needs at least 2 pieces (the two ends); {0} asked for")]
    BlendTooShort(usize),
}

/// Sampler settings a model recommends; the CLI and app start from these.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Defaults {
    pub sampler: SamplerKind,
    pub steps: usize,
    /// Written as `guidance` (every style) and `style_guidance` (a style's own, if any).
    #[serde(flatten)]
    pub guidance: Guidance,
    /// The style label to generate with when none is asked for: a fine-tuned model's is the
    /// one its owner's music was learned under. `None` draws styles as in the training data.
    #[serde(default)]
    pub style: Option<Style>,
    /// Restart rounds the model's quality figures were measured with (older cards: none).
    #[serde(default)]
    pub restart: Option<crate::model::Restart>,
    /// Validity refinement the quality figures were measured with (older cards: none).
    #[serde(default)]
    pub refine: Option<crate::model::Refine>,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            sampler: SamplerKind::DpmSolverPP,
            steps: 25,
            guidance: Guidance::default(),
            style: None,
            restart: None,
            refine: None,
        }
    }
}

/// Everything about a model that is not weights. Unknown fields are read and dropped, so a
/// card saved by an earlier diffroll still loads: those saved before 2026-12-06 carry per-style
/// decoding rules (`style_thresholds`, `single_line`, `voices`, `fuller_above`,
/// `rare_degrees_below`, `fill_silent_beats`) that measurements showed to move the music
/// further from real music, and every style now decodes at `thresholds`. Free-form training
/// and evaluation records are JSON values so they can grow without a format change.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelCard {
    pub version: u32,
    pub name: String,
    pub autoencoder: AutoencoderConfig,
    /// Absent while only the autoencoder is trained.
    #[serde(default)]
    pub unet: Option<UNetConfig>,
    /// Latents are multiplied by this before diffusion (1 / their standard deviation), unless
    /// `latent_norm` gives per-channel figures.
    pub latent_scale: f32,
    /// Per-channel latent statistics (models trained since they were introduced).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latent_norm: Option<LatentNorm>,
    /// Decoder logit thresholds for the onset and sustain planes, tuned on held-out windows
    /// for the best F1 (0 is probability ½).
    #[serde(default)]
    pub thresholds: [f32; 2],
    /// How decoded rolls are mended (`drop_blips`, `join_gap`, `trim_early`, `legato_gap`,
    /// `merge_doubled_onsets`, stored beside the other fields; older cards lack some and get
    /// none of that mending).
    #[serde(flatten)]
    pub mending: Mending,
    /// Style names in label order.
    pub styles: Vec<String>,
    /// Share of training windows per style: how styles are drawn when none is asked for.
    pub style_weights: Vec<f32>,
    /// Key and register of each style's training music, in label order (`null` where a style
    /// had none): where [`crate::model::KeyChoice::Typical`] moves generated pieces. Older
    /// cards lack them and leave pieces in the key the model drew.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key_profiles: Vec<Option<KeyProfile>>,
    #[serde(default)]
    pub defaults: Defaults,
    /// Data, steps, wall time, hardware, per training stage.
    #[serde(default)]
    pub training: serde_json::Value,
    /// Evaluation figures (`diffroll eval`).
    #[serde(default)]
    pub eval: serde_json::Value,
}

impl ModelCard {
    /// Takes `other`'s sampling and decoding settings (what `eval --save-to-card` chooses),
    /// leaving this card's weights' description, training record and figures as they are.
    pub fn take_settings(&mut self, other: ModelCard) {
        self.defaults = other.defaults;
        self.thresholds = other.thresholds;
        self.mending = other.mending;
    }

    /// The key profile of `style`, if the card has one.
    pub fn key_profile(&self, style: Style) -> Option<&KeyProfile> {
        self.key_profiles.get(style.index())?.as_ref()
    }

    /// Why the card describes no model diffroll can build and run, if it does not.
    pub fn check(&self) -> Result<(), String> {
        self.autoencoder.check()?;
        if let Some(unet) = &self.unet {
            let [channels, side, _] = self.autoencoder.latent_shape(PITCHES, WINDOW_STEPS);
            if unet.latent_channels != channels {
                return Err(format!(
                    "UNet latent channels {} but the autoencoder's latents have {channels}",
                    unet.latent_channels
                ));
            }
            unet.check(side)?;
        }
        if self.defaults.steps == 0 {
            return Err("default sampler steps 0: give at least 1".to_string());
        }
        self.defaults.guidance.check()?;
        Ok(())
    }

    pub fn new(name: &str, autoencoder: AutoencoderConfig) -> Self {
        ModelCard {
            version: CARD_VERSION,
            name: name.to_string(),
            autoencoder,
            unet: None,
            latent_scale: 1.0,
            latent_norm: None,
            thresholds: [0.0, 0.0],
            mending: Mending::default(),
            styles: Style::ALL.iter().map(|s| s.name().to_string()).collect(),
            style_weights: vec![1.0 / Style::ALL.len() as f32; Style::ALL.len()],
            key_profiles: Vec::new(),
            defaults: Defaults::default(),
            training: serde_json::json!({}),
            eval: serde_json::json!({}),
        }
    }

    /// How this model's latents are normalised for diffusion: per channel where the card has
    /// the figures, else its one global scale.
    pub fn latent_norm(&self) -> LatentNorm {
        self.latent_norm.clone().unwrap_or_else(|| {
            LatentNorm::global(self.autoencoder.latent_channels, self.latent_scale)
        })
    }

    pub fn load(dir: &Path) -> Result<ModelCard, ModelError> {
        let path = dir.join(CARD_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ModelError::NotAModel(dir.to_path_buf()));
            }
            Err(source) => return Err(ModelError::Io { path, source }),
        };
        let card: ModelCard =
            serde_json::from_str(&text).map_err(|source| ModelError::BadCard {
                path: path.clone(),
                source,
            })?;
        if card.version > CARD_VERSION {
            return Err(ModelError::CardVersion {
                path,
                found: card.version,
            });
        }
        card.check()
            .map_err(|reason| ModelError::BadConfig { path, reason })?;
        Ok(card)
    }

    pub fn save(&self, dir: &Path) -> Result<(), ModelError> {
        let path = dir.join(CARD_FILE);
        let text = serde_json::to_string_pretty(self).expect("cards serialize");
        atomic_write(&path, text.as_bytes()).map_err(|source| ModelError::Io { path, source })
    }
}

/// A module's weights as burnpack bytes (parameter ids included, so optimizer state can follow).
pub fn weights_to_bytes<M: Module>(module: &M) -> Vec<u8> {
    let mut store = BurnpackStore::from_bytes(None);
    module
        .save_into(&mut store)
        .expect("saving weights into memory cannot fail");
    store
        .get_bytes()
        .expect("a store just written has bytes")
        .to_vec()
}

/// Writes a module's weights atomically.
pub fn save_weights<M: Module>(module: &M, path: &Path) -> Result<(), ModelError> {
    atomic_write(path, &weights_to_bytes(module)).map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Loads weights into `module` (built from the card's config on `device`); every tensor must
/// be present with the right shape, or the file is refused with the reason.
pub fn load_weights<M: Module>(module: M, path: &Path, device: &Device) -> Result<M, ModelError> {
    let bytes = std::fs::read(path).map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    load_weights_bytes(module, bytes, path, device)
}

/// [`load_weights`] from bytes already in memory; `path` names them in errors.
pub fn load_weights_bytes<M: Module>(
    module: M,
    bytes: Vec<u8>,
    path: &Path,
    device: &Device,
) -> Result<M, ModelError> {
    let bad = |reason: String| ModelError::BadWeights {
        path: path.to_path_buf(),
        reason,
    };
    let mut module = module;
    let mut store = BurnpackStore::from_bytes(Some(burn::tensor::Bytes::from_bytes_vec(bytes)))
        .allow_partial(false);
    let applied = module
        .load_from(&mut store)
        .map_err(|e| bad(e.to_string()))?;
    if !applied.errors.is_empty() {
        return Err(bad(format!("{:?}", applied.errors)));
    }
    if !applied.missing.is_empty() {
        return Err(bad(format!("missing tensors: {:?}", applied.missing)));
    }
    // `fork`, not `to_device`: the result must be a leaf that training can optimize.
    Ok(module.fork(device))
}
