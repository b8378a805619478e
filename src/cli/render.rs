//! `diffroll render IN.mid -o OUT`: a MIDI file as a piano-roll picture (.png), its notes
//! quantized to sixteenths (.mid) or audio (.wav, built-in synth or a SoundFont), the format
//! chosen by the output's extension and written atomically.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::{OutputKind, output_kind, shown};
use crate::fsutil::atomic_write;
use crate::{midi, render};

#[derive(Debug, Args)]
pub struct RenderArgs {
    /// MIDI file to read.
    pub input: PathBuf,
    /// Output file: .png for a picture of the piano roll, .mid for the quantized notes, .wav
    /// for audio (44.1 kHz stereo 16-bit).
    #[arg(short, long)]
    pub output: PathBuf,
    /// For .wav: play through this SoundFont (an .sf2 file, or the name of an installed one)
    /// instead of the built-in synth.
    #[arg(long, value_name = "F")]
    pub soundfont: Option<PathBuf>,
}

pub fn run(args: RenderArgs) -> anyhow::Result<()> {
    // Decide the format first so a typo in the name costs nothing.
    let kind = output_kind(&args.output)?;
    if args.soundfont.is_some() && kind != OutputKind::Wav {
        anyhow::bail!("--soundfont applies to .wav output only");
    }
    let song = midi::read_file(&args.input).with_context(|| shown(&args.input))?;
    let roll = song.to_roll();
    let bytes = match kind {
        OutputKind::Png => render::draw(&roll, &song.bar_starts()).to_png(),
        OutputKind::Midi => {
            let name = args
                .input
                .file_stem()
                .map_or_else(|| "diffroll".into(), |s| s.to_string_lossy().into_owned());
            midi::write_roll(&roll, &name)
        }
        OutputKind::Wav => super::play::render_wav(&song, args.soundfont.as_deref())?,
    };
    atomic_write(&args.output, &bytes).with_context(|| shown(&args.output))?;
    eprintln!(
        "{}: {} notes, {} bars at {:.0} BPM -> {}",
        shown(&args.input),
        roll.note_count(),
        roll.bars(),
        roll.tempo_bpm,
        shown(&args.output)
    );
    Ok(())
}
