//! Latent diffusion over piano rolls: the [`Autoencoder`] (roll ⇄ latent), the denoising
//! [`UNet`], the noise [`Schedule`], the samplers, and the [`Pipeline`] that CLI and GUI call to
//! generate. Models live in folders with a `model.json` card ([`ModelCard`]) beside their
//! weights. This module touches neither UI nor audio.

mod autoencoder;
pub mod catalog;
mod guidance;
mod latent;
pub(crate) mod layers;
mod pipeline;
pub mod sampler;
pub mod schedule;
mod seeded;
mod store;
mod unet;
pub mod validity;

pub use autoencoder::{Autoencoder, AutoencoderConfig, PitchCrop};
pub use guidance::{BadGuidance, Guidance};
pub use latent::LatentNorm;
pub use pipeline::{
    EditStep, Fog, GenerateRequest, Generated, KeyChoice, MAX_BARS, MAX_SCORE_STEPS, OnEditStep,
    Pipeline, StepEvent, extension_windows, normal,
};
pub use sampler::{Cancelled, Restart, SamplerKind};
pub use schedule::Schedule;
pub use seeded::init_seeded;
pub use store::{
    AUTOENCODER_FILE, CARD_FILE, Defaults, ModelCard, ModelError, UNET_FILE, load_weights,
    load_weights_bytes, save_weights, weights_to_bytes,
};
pub use unet::{UNet, UNetConfig};
pub use validity::Refine;

use burn::tensor::{Device, Tensor, TensorData};

use crate::roll::{Mending, PITCHES, Roll, Validity, WINDOW_STEPS};

/// Rolls as a batch [B, 2, 128, 128] of 0/1 values (each roll must be one window long).
pub fn rolls_to_tensor(rolls: &[&Roll], device: &Device) -> Tensor<4> {
    let mut data = Vec::with_capacity(rolls.len() * 2 * PITCHES * WINDOW_STEPS);
    for roll in rolls {
        assert_eq!(roll.steps(), WINDOW_STEPS, "model windows are 8 bars");
        data.extend(roll.to_planes());
    }
    Tensor::from_data(
        TensorData::new(data, [rolls.len(), 2, PITCHES, WINDOW_STEPS]),
        device,
    )
}

/// Decoder logits [B, 2, 128, 128] to rolls: an onset or sustain cell is set where its logit
/// exceeds that plane's threshold in `thresholds` (onset, sustain; 0 = probability ½), then
/// the roll is mended as `mending` says; each roll comes with what the decoder got wrong
/// (counted before any of it was mended).
pub fn logits_to_rolls(
    logits: Tensor<4>,
    thresholds: [f32; 2],
    mending: Mending,
) -> Vec<(Roll, Validity)> {
    let [b, _, p, t] = logits.dims();
    let values: Vec<f32> = logits
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .expect("converted to f32");
    let per = 2 * p * t;
    (0..b)
        .map(|i| {
            // Shift the sustain plane so one threshold of 0 applies to both.
            let shifted: Vec<f32> = values[i * per..(i + 1) * per]
                .iter()
                .enumerate()
                .map(|(j, &v)| v - thresholds[usize::from(j >= p * t)])
                .collect();
            let mut roll = Roll::from_planes(&shifted, t, 0.0);
            let fixed = roll.mend(mending);
            (roll, fixed)
        })
        .collect()
}
