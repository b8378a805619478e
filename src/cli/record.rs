//! `diffroll record --port NAME -o FILE.mid`: what a keyboard plays, placed on the sixteenth-note
//! grid at a tempo and written as a MIDI file; Enter, Ctrl-C or `--seconds` ends the take.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;

use super::{OutputKind, output_kind, shown};
use crate::audio::{self, MidiRecorder};
use crate::fsutil::atomic_write;
use crate::midi::{self, ExportOptions};
use crate::roll::STEPS_PER_BAR;

#[derive(Debug, Args)]
pub struct RecordArgs {
    /// MIDI input to record from: its number or (part of) its name, as --list shows them.
    #[arg(
        long,
        value_name = "PORT",
        required_unless_present_any = ["list", "virtual_port"],
        conflicts_with = "virtual_port"
    )]
    pub port: Option<String>,
    /// Open a new MIDI input called "diffroll input" and record what you connect to it (Linux,
    /// macOS).
    #[arg(long = "virtual")]
    pub virtual_port: bool,
    /// Stop after this many seconds. Without it, press Enter or Ctrl-C to stop.
    #[arg(long, value_name = "S")]
    pub seconds: Option<f64>,
    /// The tempo you play at, in quarter notes per minute: notes snap to its sixteenths, and the
    /// file keeps it.
    #[arg(long, value_name = "BPM", default_value_t = crate::roll::DEFAULT_TEMPO_BPM)]
    pub tempo: f32,
    /// MIDI file to write (.mid).
    #[arg(short, long, value_name = "FILE", required_unless_present = "list")]
    pub output: Option<PathBuf>,
    /// List the MIDI input ports and exit.
    #[arg(long)]
    pub list: bool,
}

/// Set by Ctrl-C (SIGINT), SIGTERM or Enter; the wait below checks it every few milliseconds.
static STOP: AtomicBool = AtomicBool::new(false);

pub fn run(args: RecordArgs) -> anyhow::Result<()> {
    if args.list {
        return list_ports();
    }
    let Some(output) = args.output.as_ref() else {
        bail!("name the MIDI file to write with -o FILE.mid");
    };
    if output_kind(output)? != OutputKind::Midi {
        bail!(
            "{}: recordings are written as MIDI; use a .mid file name",
            shown(output)
        );
    }
    if !(args.tempo.is_finite() && (1.0..=1000.0).contains(&args.tempo)) {
        bail!("--tempo {}: give a tempo from 1 to 1000 BPM", args.tempo);
    }
    let limit = match args.seconds {
        Some(s) if s.is_finite() && s > 0.0 && s <= 24.0 * 3600.0 => {
            Some(Duration::from_secs_f64(s))
        }
        Some(s) => bail!("--seconds {s}: give a length of more than 0 seconds (up to a day)"),
        None => None,
    };
    install_stop_handler();
    let interactive = std::io::stdin().is_terminal();
    if interactive {
        watch_for_enter();
    }

    let recorder = match &args.port {
        Some(port) => MidiRecorder::connect(port)?,
        None => MidiRecorder::open_virtual(audio::VIRTUAL_INPUT_PORT_NAME)?,
    };
    let how_long = match limit {
        Some(d) => format!("for {:.1} s", d.as_secs_f64()),
        None => "until you stop".to_string(),
    };
    let stops = if interactive {
        "Enter or Ctrl-C stops"
    } else {
        "Ctrl-C stops"
    };
    let connect_hint = if args.port.is_none() {
        ": connect your keyboard or DAW to it"
    } else {
        ""
    };
    // Tests and scripts wait for this line: the port is open and the clock runs from here.
    eprintln!(
        "recording from '{}'{connect_hint} at {} BPM {how_long} ({stops})",
        recorder.name(),
        args.tempo
    );
    let started = Instant::now();
    while !STOP.load(Ordering::Acquire) && limit.is_none_or(|l| started.elapsed() < l) {
        let left = limit.map_or(Duration::from_millis(10), |l| {
            l.saturating_sub(started.elapsed())
        });
        std::thread::sleep(left.min(Duration::from_millis(10)));
    }
    let name = recorder.name().to_string();
    let take = recorder.stop(args.tempo);

    if take.drum_notes > 0 {
        eprintln!(
            "drum notes left out (channel 10): {}; a piano roll holds pitched notes only",
            take.drum_notes
        );
    }
    if take.lost_events > 0 {
        eprintln!(
            "the take was too long: the last {} MIDI messages were not kept",
            take.lost_events
        );
    }
    if take.notes.is_empty() {
        bail!(
            "no notes arrived from '{name}' in {:.1} s; nothing written. Is the keyboard sending \
             to that port? `diffroll record --list` shows the inputs",
            take.duration.as_secs_f64()
        );
    }
    let options = ExportOptions {
        tempo_bpm: args.tempo,
        ..ExportOptions::default()
    };
    atomic_write(output, &midi::write(&take.notes, &options)).with_context(|| shown(output))?;
    eprintln!(
        "{}: {} notes, {} bars at {} BPM",
        shown(output),
        take.notes.len(),
        take.steps / STEPS_PER_BAR as u32,
        args.tempo
    );
    Ok(())
}

fn list_ports() -> anyhow::Result<()> {
    let ports = audio::list_input_ports()?;
    if ports.is_empty() {
        eprintln!(
            "no MIDI input ports; plug in a keyboard, or `diffroll record --virtual -o FILE.mid` opens one to connect to"
        );
    }
    for (i, name) in ports.iter().enumerate() {
        println!("{i}: {name}");
    }
    Ok(())
}

/// Routes Ctrl-C and SIGTERM to [`STOP`], so the take is written instead of lost.
fn install_stop_handler() {
    if let Err(e) = ctrlc::set_handler(|| STOP.store(true, Ordering::Release)) {
        tracing::warn!("Ctrl-C will end diffroll without writing the take: {e}");
    }
}

/// A line typed on the terminal ends the take. The reading thread is left blocked on stdin
/// when the take ends some other way; the process exits right after.
fn watch_for_enter() {
    let spawned = std::thread::Builder::new()
        .name("diffroll-enter".into())
        .spawn(|| {
            let mut line = String::new();
            if std::io::stdin().read_line(&mut line).is_ok_and(|n| n > 0) {
                STOP.store(true, Ordering::Release);
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("Enter will not stop the recording (use Ctrl-C): {e}");
    }
}
