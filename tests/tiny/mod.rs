//! The tiny model the model and app tests share: a few thousand parameters, so training a step
//! or generating a piece takes milliseconds.
#![allow(dead_code)]

use std::path::Path;

use burn::tensor::Device;
use diffroll::model::{AutoencoderConfig, ModelCard, UNetConfig, init_seeded, save_weights};

pub fn ae() -> AutoencoderConfig {
    AutoencoderConfig::new()
        .with_channels(vec![8, 8])
        .with_latent_channels(2)
}

/// Its latent channels match [`ae`]'s (training sets them itself; a model folder needs them).
pub fn unet() -> UNetConfig {
    UNetConfig::new()
        .with_base_channels(8)
        .with_channel_mult(vec![1, 2])
        .with_attention(vec![false, true])
        .with_heads(2)
        .with_latent_channels(2)
}

/// A model folder with random weights.
pub fn model_folder(dir: &Path) {
    let device = Device::flex();
    let mut card = ModelCard::new("tiny", ae());
    card.unet = Some(unet());
    std::fs::create_dir_all(dir).unwrap();
    card.save(dir).unwrap();
    save_weights(
        &init_seeded(&device, 0, |d| ae().init(d)),
        &dir.join(diffroll::model::AUTOENCODER_FILE),
    )
    .unwrap();
    save_weights(
        &init_seeded(&device, 0, |d| unet().init(d)),
        &dir.join(diffroll::model::UNET_FILE),
    )
    .unwrap();
}
