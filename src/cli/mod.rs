//! The command line: clap definitions and one function per command. Commands only parse
//! arguments, call the library and report; the work lives in the library modules.

mod data;
mod render;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "diffroll",
    version,
    about = "Compose music with latent diffusion over piano rolls",
    arg_required_else_help = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Draw a MIDI file's piano roll as a PNG, or re-export its notes quantized to 16ths as MIDI.
    Render(render::RenderArgs),
    /// Scan a corpus folder (<root>/<style>/*.mid): files read, files rejected and why,
    /// 8-bar windows per style.
    Data(data::DataArgs),
}

/// Runs one command. Errors carry the file they concern and read as one line with `{:#}`.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Render(args) => render::run(args),
        Command::Data(args) => data::run(args),
    }
}

/// Output formats chosen by file extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OutputKind {
    Png,
    Midi,
}

fn output_kind(path: &std::path::Path) -> anyhow::Result<OutputKind> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("png") => Ok(OutputKind::Png),
        Some("mid" | "midi") => Ok(OutputKind::Midi),
        _ => anyhow::bail!(
            "{}: cannot tell the output format from the file name; use .png or .mid",
            path.display()
        ),
    }
}

/// Shown in messages: the path as the user typed it.
fn shown(path: &std::path::Path) -> String {
    path.display().to_string()
}
