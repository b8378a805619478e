//! `diffroll play`: a MIDI file live through the built-in synth, a SoundFont, a MIDI port or a
//! virtual port; Ctrl-C stops with every note released.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, bail};
use clap::Args;

use super::shown;
use crate::audio::{
    self, AudioOutput, Finish, InstrumentSpec, MidiOut, Sequence, Sequencer, SystemClock,
    run_sequencer,
};
use crate::midi;

#[derive(Debug, Args)]
pub struct PlayArgs {
    /// MIDI file to play.
    #[arg(required_unless_present_any = ["list_ports", "list_soundfonts"])]
    pub input: Option<PathBuf>,
    /// Send to this MIDI output (index or name from --list-ports) instead of the built-in synth.
    #[arg(long, value_name = "PORT", conflicts_with_all = ["soundfont", "virtual_port"])]
    pub midi_out: Option<String>,
    /// Send to a new virtual MIDI output named "diffroll" that a DAW can record from (Linux,
    /// macOS).
    #[arg(long = "virtual", conflicts_with = "soundfont")]
    pub virtual_port: bool,
    /// Play through this SoundFont: an .sf2 file, or the name of an installed one
    /// (see --list-soundfonts).
    #[arg(long, value_name = "F")]
    pub soundfont: Option<PathBuf>,
    /// Start again at the end, until Ctrl-C.
    #[arg(long = "loop")]
    pub looping: bool,
    /// Play at this tempo (quarter notes per minute) instead of the file's.
    #[arg(long, value_name = "BPM")]
    pub tempo: Option<f32>,
    /// List the MIDI output ports and exit.
    #[arg(long)]
    pub list_ports: bool,
    /// List the SoundFonts installed in the usual folders and exit.
    #[arg(long)]
    pub list_soundfonts: bool,
}

/// Set by Ctrl-C (SIGINT) or SIGTERM; the sequencer loop checks it every few milliseconds.
static STOP: AtomicBool = AtomicBool::new(false);

/// Seconds to keep the stream open after the last note-off, so releases ring out.
const RELEASE_TAIL_SECS: f64 = 0.6;

pub fn run(args: PlayArgs) -> anyhow::Result<()> {
    if args.list_ports {
        return list_ports();
    }
    if args.list_soundfonts {
        list_soundfonts();
        return Ok(());
    }
    let Some(input) = args.input.as_ref() else {
        bail!("name a MIDI file to play");
    };
    if let Some(bpm) = args.tempo
        && !(1.0..=1000.0).contains(&bpm)
    {
        bail!("--tempo {bpm}: give a tempo from 1 to 1000 BPM");
    }
    let song = midi::read_file(input).with_context(|| shown(input))?;
    let sequence = Sequence::from_song(&song, args.tempo);
    let mut sequencer = Sequencer::new(sequence, args.looping);
    let what = format!(
        "{}: {} notes, {:.1} s{}",
        shown(input),
        song.notes.len(),
        sequencer.sequence().duration(),
        if args.looping { ", looping" } else { "" }
    );
    install_stop_handler();

    if let Some(port) = &args.midi_out {
        let mut out = MidiOut::connect(port)?;
        eprintln!("{what} -> MIDI port '{}' (Ctrl-C stops)", out.name());
        let finish = run_sequencer(&mut sequencer, &mut SystemClock::new(), &mut out, &STOP);
        return report_midi(finish, &out);
    }
    if args.virtual_port {
        let mut out = MidiOut::open_virtual(audio::VIRTUAL_PORT_NAME)?;
        eprintln!(
            "{what} -> virtual MIDI port '{}': connect your DAW to it (Ctrl-C stops)",
            out.name()
        );
        let finish = run_sequencer(&mut sequencer, &mut SystemClock::new(), &mut out, &STOP);
        return report_midi(finish, &out);
    }

    let instrument = instrument(args.soundfont.as_deref())?;
    let mut out = AudioOutput::open(&instrument)?;
    eprintln!(
        "{what} -> {} ({} Hz, {} channels) (Ctrl-C stops)",
        out.device_name(),
        out.sample_rate(),
        out.channels()
    );
    let finish = run_sequencer(&mut sequencer, &mut SystemClock::new(), &mut out, &STOP);
    std::thread::sleep(std::time::Duration::from_secs_f64(RELEASE_TAIL_SECS));
    if out.failed() {
        bail!(
            "the audio device stopped during playback; use `diffroll render IN.mid -o OUT.wav` to listen offline"
        );
    }
    if finish == Finish::Stopped {
        eprintln!("stopped");
    }
    Ok(())
}

/// `render IN.mid -o OUT.wav`: the song through the same sequencer and instrument as `play`.
pub(super) fn render_wav(
    song: &midi::Song,
    soundfont: Option<&std::path::Path>,
) -> anyhow::Result<Vec<u8>> {
    let instrument = instrument(soundfont)?;
    Ok(audio::render_wav(
        &Sequence::from_song(song, None),
        &instrument,
    )?)
}

/// The built-in synth, or the SoundFont the user named (a path or an installed one's name).
fn instrument(soundfont: Option<&std::path::Path>) -> anyhow::Result<InstrumentSpec> {
    Ok(match soundfont {
        Some(arg) => {
            let path = audio::resolve_soundfont(arg)?;
            InstrumentSpec::SoundFont(audio::load_soundfont(&path)?)
        }
        None => InstrumentSpec::Builtin,
    })
}

fn report_midi(finish: Finish, out: &MidiOut) -> anyhow::Result<()> {
    if out.send_errors() > 0 {
        bail!(
            "MIDI port '{}' refused {} messages (disconnected?)",
            out.name(),
            out.send_errors()
        );
    }
    if finish == Finish::Stopped {
        eprintln!("stopped; all notes off sent");
    }
    Ok(())
}

fn list_ports() -> anyhow::Result<()> {
    let ports = audio::list_output_ports()?;
    if ports.is_empty() {
        eprintln!("no MIDI output ports; `diffroll play IN.mid --virtual` opens one a DAW can use");
    }
    for (i, name) in ports.iter().enumerate() {
        println!("{i}: {name}");
    }
    Ok(())
}

fn list_soundfonts() {
    let found = audio::find_soundfonts();
    if found.is_empty() {
        eprintln!("no SoundFonts (.sf2) found in:");
        for dir in audio::soundfont_dirs() {
            eprintln!("  {}", dir.display());
        }
    }
    for path in found {
        println!("{}", path.display());
    }
}

/// Routes Ctrl-C and SIGTERM to [`STOP`] so playback ends through the sequencer's stop (all
/// notes off) instead of killing the process with notes hanging on a synth or DAW.
fn install_stop_handler() {
    if let Err(e) = ctrlc::set_handler(|| STOP.store(true, Ordering::Release)) {
        tracing::warn!("Ctrl-C will not stop playback cleanly: {e}");
    }
}
