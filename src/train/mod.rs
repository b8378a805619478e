//! From a folder of MIDI files to trained models: corpus scanning, training windows with
//! transposition, the autoencoder and diffusion training loops, fitting a finished model's
//! decoder to its UNet, fine-tuning on a user's own files, checkpoints that resume exactly, and
//! progress reporting. Nothing here blocks a GUI thread: callers run it on a worker and watch it
//! through [`run::Control`].

pub mod autoencoder;
pub mod checkpoint;
pub mod corpus;
pub mod dataset;
pub mod decoder;
pub mod diffusion;
pub mod ema;
pub mod finetune;
pub mod run;
