//! `diffroll` / `diffroll app`: the window.

use std::path::PathBuf;

use clap::Args;

use crate::device::DeviceRequest;

#[derive(Debug, Args, Default)]
pub struct AppArgs {
    /// Model to start with: a folder, `base` or a saved model's name (default: the last used).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Compute device: auto, cpu or gpu (default: the last used, else auto).
    #[arg(long)]
    pub device: Option<DeviceRequest>,
    /// Generate once at start, print frame-time statistics (p50/p95/max) and quit.
    #[arg(long)]
    pub measure_frames: bool,
    /// Generate once at start, save the window as a PNG here, and quit.
    #[arg(long, value_name = "PNG")]
    pub screenshot: Option<PathBuf>,
}

pub fn run(args: AppArgs) -> anyhow::Result<()> {
    crate::app::run(crate::app::AppOptions {
        model: args.model,
        device: args.device,
        measure: args.measure_frames,
        screenshot: args.screenshot,
        ..Default::default()
    })
}
