//! `diffroll finetune FILES... --name NAME`: the app's fine-tune, from the command line.

use std::path::PathBuf;

use clap::Args;

use super::DeviceArgs;
use super::train::{progress_printer, stop_flag};
use crate::model::catalog;
use crate::train::finetune::{self, FinetuneConfig, FinetuneRun};
use crate::train::run::Control;

#[derive(Debug, Args)]
pub struct FinetuneArgs {
    /// MIDI files, or folders of them, in the style to learn.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Model to start from: a folder, `base` or a saved model's name. It is not modified.
    #[arg(long, default_value = "base")]
    pub base: PathBuf,
    /// Name of the new model (then `diffroll generate --model NAME`).
    #[arg(long)]
    pub name: String,
    /// Optimizer steps (8 windows each).
    #[arg(long, value_parser = super::at_least_one)]
    pub steps: Option<usize>,
    /// Seed of the fine-tune's random generator (windows drawn, noise).
    #[arg(long)]
    pub seed: Option<u64>,
    #[command(flatten)]
    pub device: DeviceArgs,
}

pub fn run(args: FinetuneArgs) -> anyhow::Result<()> {
    // Refuse a bad or taken name before reading anything.
    finetune::target_dir(&args.name)?;
    let base = catalog::resolve(&args.base)?;
    let intake = finetune::intake(&args.files);
    for r in &intake.rejected {
        eprintln!("skipped {}: {}", r.path.display(), r.reason);
    }
    for p in &intake.pieces {
        eprintln!("{}: {} windows", p.path.display(), p.windows.len());
    }
    let mut config = FinetuneConfig::new();
    if let Some(steps) = args.steps {
        anyhow::ensure!(steps > 0, "--steps must be at least 1");
        config = config.with_steps(steps);
    }
    if let Some(seed) = args.seed {
        config = config.with_seed(seed);
    }
    anyhow::ensure!(
        intake.windows() > 0,
        "none of the {} file(s) has 8 bars of notes to learn from",
        intake.pieces.len() + intake.rejected.len()
    );
    eprintln!(
        "{} file(s), {} windows; about {:.0} s for {} steps",
        intake.pieces.len(),
        intake.windows(),
        config.estimated_secs(),
        config.steps
    );
    let chosen = args.device.choose()?;
    let stop = stop_flag();
    let mut on_progress = progress_printer();
    let done = finetune::finetune(
        FinetuneRun {
            base: &base,
            intake: &intake,
            name: &args.name,
            config,
            device: chosen.device.clone(),
            hardware: chosen.description.clone(),
        },
        Control {
            stop: &stop,
            time_limit: None,
            on_progress: &mut on_progress,
        },
    )?;
    println!(
        "saved '{}' in {} ({} steps, {:.0} s, learned as style '{}', loss {:.4}); generate with `diffroll generate --model \"{}\"`",
        args.name,
        done.dir.display(),
        done.steps,
        done.seconds,
        done.style,
        done.final_loss,
        args.name
    );
    Ok(())
}
