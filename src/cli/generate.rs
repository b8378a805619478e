use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Args;

use super::DeviceArgs;
use crate::fsutil::atomic_write;
use crate::model::{GenerateRequest, Guidance, KeyChoice, Pipeline, SamplerKind};
use crate::roll::Style;
use crate::{midi, render};

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Model: a folder, `base` (the shipped model) or the name of a saved (fine-tuned) model.
    #[arg(long, default_value = "base")]
    pub model: PathBuf,
    /// Number of eight-bar pieces.
    #[arg(long, short = 'n', default_value_t = 1, value_parser = super::at_least_one)]
    pub count: usize,
    /// Random seed; the same seed and settings give byte-identical files. Random if omitted.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Sampler steps (default: the model's recommendation).
    #[arg(long, value_parser = super::at_least_one)]
    pub steps: Option<usize>,
    /// ddim, ddpm (ancestral) or dpm (default: the model's recommendation).
    #[arg(long)]
    pub sampler: Option<SamplerKind>,
    /// chorale, polyphony, classical or folk; without it each piece's style is drawn in
    /// proportion to the training data.
    #[arg(long)]
    pub style: Option<Style>,
    /// Classifier-free guidance: G for every style (1 = off), optionally followed by STYLE=G
    /// for a style of its own, e.g. 1,folk=1.5 (default: the model's recommendation).
    #[arg(long)]
    pub guidance: Option<Guidance>,
    /// Restart rounds after the main pass: T,STEPS,ROUNDS (e.g. 100,6,4), or "none" (default:
    /// the model's recommendation). Fewer notes without an onset, more time; fewer than 6 steps
    /// a round thin the music out.
    #[arg(long)]
    pub restart: Option<super::OrNone<crate::model::Restart>>,
    /// Validity refinement of each piece's latent: STEPS,RATE,KEEP,TEMPERATURE (e.g.
    /// 20,0.1,0.3,2), or "none" (default: the model's recommendation).
    #[arg(long)]
    pub refine: Option<super::OrNone<crate::model::Refine>>,
    /// Key of the pieces: "typical" (a key and register the style's own music uses, drawn per
    /// piece), "drawn" (as the model drew it: any key), or a key such as D, Bb, F#m
    #[arg(long, default_value_t = KeyChoice::Typical)]
    pub key: KeyChoice,
    /// Tempo in BPM written to the files (default: typical for the style).
    #[arg(long)]
    pub tempo: Option<f32>,
    /// Output folder.
    #[arg(long, short = 'o', default_value = "generated")]
    pub out: PathBuf,
    /// Also draw each piece as a PNG beside its MIDI file.
    #[arg(long)]
    pub png: bool,
    #[command(flatten)]
    pub device: DeviceArgs,
}

pub fn run(args: GenerateArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.count > 0, "--count must be at least 1");
    let chosen = args.device.choose()?;
    let model_dir = crate::model::catalog::resolve(&args.model)?;
    let pipeline = Pipeline::load(&model_dir, &chosen.device)?;
    let defaults = pipeline.card.defaults.clone();
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64 % 1_000_000)
    });
    let request = GenerateRequest {
        count: args.count,
        seed,
        steps: args.steps.unwrap_or(defaults.steps),
        sampler: args.sampler.unwrap_or(defaults.sampler),
        style: args.style.or(defaults.style),
        guidance: args.guidance.unwrap_or(defaults.guidance),
        tempo_bpm: args.tempo.unwrap_or(0.0),
        restart: args.restart.map_or(defaults.restart, |r| r.0),
        refine: args.refine.map_or(defaults.refine, |r| r.0),
        key: args.key,
    };
    let started = Instant::now();
    let generated = pipeline.generate(&request, None, None)?;
    let secs = started.elapsed().as_secs_f64();
    std::fs::create_dir_all(&args.out).with_context(|| args.out.display().to_string())?;
    for (i, (mut roll, fixed)) in generated
        .rolls
        .into_iter()
        .zip(generated.repaired)
        .enumerate()
    {
        let style = roll.style.unwrap_or(Style::Folk);
        if args.tempo.is_none() {
            roll.tempo_bpm = style.default_tempo();
        }
        let stem = format!("{}-{seed}-{:02}", style.name(), i + 1);
        let mid = args.out.join(format!("{stem}.mid"));
        atomic_write(&mid, &midi::write_roll(&roll, &stem))
            .with_context(|| mid.display().to_string())?;
        if args.png {
            let png = args.out.join(format!("{stem}.png"));
            let bars = midi::bar_starts(&[], roll.steps() as u32);
            atomic_write(&png, &render::draw(&roll, &bars).to_png())
                .with_context(|| png.display().to_string())?;
        }
        let given = fixed
            .orphan_notes
            .saturating_sub(fixed.dropped_blips + fixed.joined + fixed.trimmed);
        let parts: Vec<String> = [
            (fixed.dropped_blips, "blips dropped"),
            (fixed.joined, "joined to the note before"),
            (fixed.trimmed, "started at their onset"),
            (given, "given an onset"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
        let repaired = if parts.is_empty() {
            String::new()
        } else {
            format!(
                ", {} decoded without an onset: {}",
                fixed.orphan_notes,
                parts.join(", ")
            )
        };
        let key = roll.diatonic_root().map_or(String::new(), |r| {
            format!(", {}", crate::roll::KEY_NAMES[usize::from(r)])
        });
        println!(
            "{}: {} notes, {style}{key}{repaired}",
            mid.display(),
            roll.note_count()
        );
    }
    let restart = request
        .restart
        .map_or(String::new(), |r| format!(", restart {r}"));
    let refine = request
        .refine
        .map_or(String::new(), |r| format!(", refine {r}"));
    eprintln!(
        "{} piece(s), seed {seed}, {} {} steps{restart}{refine}, guidance {}, in {:.2} s",
        args.count, request.sampler, request.steps, request.guidance, secs
    );
    Ok(())
}
