//! diffroll: compose music with latent diffusion over piano rolls.
//!
//! Data flows one way: MIDI ([`midi`]) → [`roll::Roll`] → tensors → model → tensors → `Roll`
//! → MIDI, audio, pictures ([`render`]) and the app. The CLI ([`cli`]) and the GUI are thin
//! front ends over this library.

pub mod app;
pub mod audio;
pub mod cli;
pub mod device;
pub mod eval;
pub mod fsutil;
pub mod kernels;
pub mod midi;
pub mod model;
pub mod render;
pub mod roll;
pub mod train;
