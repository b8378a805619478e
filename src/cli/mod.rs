//! The command line: clap definitions and one function per command. Commands only parse
//! arguments, call the library and report; the work lives in the library modules.

mod app;
/// `diffroll bench`: times the model on the chosen device (parameters, FLOPs per UNet step,
/// UNet step, decode and refinement latency at batch 1, eight bars end to end).
mod bench;
mod data;
mod eval;
mod finetune;
pub mod generate;
mod play;
mod record;
mod render;
mod train;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "diffroll",
    version,
    about = "Compose music with latent diffusion over piano rolls",
    after_help = "Without a command, diffroll opens the app."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Open the app (what `diffroll` alone does).
    App(app::AppArgs),
    /// Draw a MIDI file's piano roll as a PNG, re-export its notes quantized to 16ths as MIDI,
    /// or render it to a WAV file (built-in synth or --soundfont).
    Render(render::RenderArgs),
    /// Play a MIDI file: built-in synth, --soundfont, --midi-out PORT or a --virtual port.
    Play(play::PlayArgs),
    /// Record what you play on a MIDI keyboard (or send from a DAW) into a MIDI file, with the
    /// notes on the sixteenth-note grid at your tempo.
    Record(record::RecordArgs),
    /// Scan a corpus folder (`<root>/<style>/*.mid`): files read, files rejected and why,
    /// 8-bar windows per style.
    Data(data::DataArgs),
    /// Score a model's samples, or a folder of MIDI files, against real music: overlapping
    /// areas of musical features, per-sample statistics, validity; with the real-vs-real
    /// ceiling and a random-notes baseline.
    Eval(Box<eval::EvalArgs>),
    /// Generate eight-bar pieces as MIDI (and PNG) files.
    Generate(Box<generate::GenerateArgs>),
    /// Fine-tune a model on your own MIDI files; the result is saved under a name.
    Finetune(finetune::FinetuneArgs),
    /// Train a model: `train autoencoder`, then `train diffusion`.
    Train(train::TrainArgs),
    /// Time the model on this machine: parameters, FLOPs, UNet step, decode, 8 bars end to end.
    Bench(bench::BenchArgs),
}

/// Runs one command. Errors carry the file they concern and read as one line with `{:#}`.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        None => app::run(app::AppArgs::default()),
        Some(command) => run_command(command),
    }
}

fn run_command(command: Command) -> anyhow::Result<()> {
    match command {
        Command::App(args) => app::run(args),
        Command::Render(args) => render::run(args),
        Command::Data(args) => data::run(args),
        Command::Play(args) => play::run(args),
        Command::Record(args) => record::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Generate(args) => generate::run(*args),
        Command::Eval(args) => eval::run(*args),
        Command::Train(args) => train::run(args),
        Command::Finetune(args) => finetune::run(args),
    }
}

/// Help heading of the options that exist to tune a model (in `eval` and `train`): they
/// override what a model card or a training stage would choose, for measuring.
const TUNING: &str = "Research / tuning";
/// Help heading of `eval`'s probes: modes that look inside a model instead of scoring it.
const PROBES: &str = "Research / probes";

/// Output formats chosen by file extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OutputKind {
    Png,
    Midi,
    Wav,
}

fn output_kind(path: &std::path::Path) -> anyhow::Result<OutputKind> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("png") => Ok(OutputKind::Png),
        Some("mid" | "midi") => Ok(OutputKind::Midi),
        Some("wav") => Ok(OutputKind::Wav),
        _ => anyhow::bail!(
            "{}: cannot tell the output format from the file name; use .png, .mid or .wav",
            path.display()
        ),
    }
}

/// Counts that mean nothing at 0 (steps, samples, batch sizes): clap refuses 0 with a message
/// that names the flag, where the command would otherwise run and do nothing useful.
fn at_least_one(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err("give a whole number of 1 or more".to_string()),
    }
}

/// Shown in messages: the path as the user typed it.
fn shown(path: &std::path::Path) -> String {
    path.display().to_string()
}

/// `--device`, shared by every command that runs the model.
#[derive(Debug, Clone, clap::Args)]
pub struct DeviceArgs {
    /// Compute device: auto (a real GPU through wgpu if present, else the CPU), cpu or gpu.
    #[arg(long, default_value = "auto")]
    pub device: crate::device::DeviceRequest,
}

impl DeviceArgs {
    /// Resolves the device and says which one is used, on stderr so stdout stays clean.
    pub fn choose(&self) -> anyhow::Result<crate::device::Chosen> {
        let chosen = crate::device::choose(self.device)?;
        eprintln!("device: {}", chosen.description);
        Ok(chosen)
    }
}

/// A setting a model may recommend, given on the command line as its value or as "none" (or
/// 0) to turn the recommendation off: `--restart none`, `--refine none`.
#[derive(Debug, Clone, Copy)]
pub struct OrNone<T>(pub Option<T>);

impl<T: std::str::FromStr<Err = String>> std::str::FromStr for OrNone<T> {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("none") || s == "0" {
            Ok(OrNone(None))
        } else {
            s.parse().map(|r| OrNone(Some(r)))
        }
    }
}
