//! Live playback for the app: one thread per Play that opens the chosen output (built-in synth,
//! SoundFont, MIDI port or virtual port), runs the sequencer on its own clock and publishes the
//! position for the playhead. Opening a device can take a while or fail; both happen on that
//! thread, never on the UI thread, and failures come back as messages.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, channel};
use std::thread::JoinHandle;

use serde::{Deserialize, Serialize};

use crate::audio::{
    self, AudioOutput, EventSink, Finish, InstrumentSpec, MidiOut, Sequence, Sequencer,
    SystemClock, run_sequencer_observed,
};

/// Where the sound goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Output {
    #[default]
    Builtin,
    SoundFont(PathBuf),
    MidiPort(String),
    /// A new virtual MIDI port named "diffroll" that a DAW records from.
    Virtual,
}

impl Output {
    pub fn label(&self) -> String {
        match self {
            Output::Builtin => "Built-in synth".to_string(),
            Output::SoundFont(path) => format!(
                "SoundFont: {}",
                path.file_stem().map_or_else(
                    || path.display().to_string(),
                    |s| s.to_string_lossy().into()
                )
            ),
            Output::MidiPort(name) => format!("MIDI: {name}"),
            Output::Virtual => format!("Virtual MIDI port \"{}\"", audio::VIRTUAL_PORT_NAME),
        }
    }
}

/// What the playback thread reports.
#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    /// Sound is going out through this device or port.
    Started(String),
    /// Played to the end (not looping).
    Ended,
    Failed(String),
}

/// A running playback. Dropping it stops the sound (all notes off) and waits for the thread.
pub struct Playback {
    stop: Arc<AtomicBool>,
    position: Arc<AtomicU64>,
    status: Receiver<Status>,
    thread: Option<JoinHandle<()>>,
}

/// Seconds the stream stays open after the last note-off, so releases ring out.
const RELEASE_TAIL_SECS: f64 = 0.4;

impl Playback {
    /// Starts playing `sequence` on a new thread; `repaint` is called on every status change.
    pub fn start(
        sequence: Sequence,
        output: Output,
        looping: bool,
        repaint: impl Fn() + Send + 'static,
    ) -> Playback {
        let stop = Arc::new(AtomicBool::new(false));
        let position = Arc::new(AtomicU64::new(0f64.to_bits()));
        let (tx, status) = channel();
        let thread = {
            let stop = stop.clone();
            let position = position.clone();
            std::thread::Builder::new()
                .name("diffroll-playback".into())
                .spawn(move || {
                    let report = |s: Status| {
                        // The app may be gone already; nothing to tell then.
                        let _ = tx.send(s);
                        repaint();
                    };
                    let mut sequencer = Sequencer::new(sequence, looping);
                    match play(&mut sequencer, &output, &stop, &position, &report) {
                        Ok(Finish::Ended) => report(Status::Ended),
                        Ok(Finish::Stopped) => {}
                        Err(message) => report(Status::Failed(message)),
                    }
                })
                .ok()
        };
        if thread.is_none() {
            let (tx, rx) = channel();
            let _ = tx.send(Status::Failed("could not start the playback thread".into()));
            return Playback {
                stop,
                position,
                status: rx,
                thread: None,
            };
        }
        Playback {
            stop,
            position,
            status,
            thread,
        }
    }

    /// Seconds into the sequence (within the current loop).
    pub fn position(&self) -> f64 {
        f64::from_bits(self.position.load(Ordering::Relaxed))
    }

    /// The next status message, if one arrived.
    pub fn poll(&self) -> Option<Status> {
        self.status.try_recv().ok()
    }

    /// True while the thread runs (it ends after the sequence, a stop or a failure).
    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }
}

impl Drop for Playback {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn play(
    sequencer: &mut Sequencer,
    output: &Output,
    stop: &AtomicBool,
    position: &AtomicU64,
    report: &dyn Fn(Status),
) -> Result<Finish, String> {
    let mut publish = |secs: f64| position.store(secs.to_bits(), Ordering::Relaxed);
    let mut run = |mut sink: &mut dyn EventSink| {
        run_sequencer_observed(
            sequencer,
            &mut SystemClock::new(),
            &mut sink,
            stop,
            &mut publish,
        )
    };
    match output {
        Output::MidiPort(name) => {
            let mut out = MidiOut::connect(name).map_err(|e| e.to_string())?;
            report(Status::Started(format!("MIDI port '{}'", out.name())));
            let finish = run(&mut out);
            midi_errors(&out)?;
            Ok(finish)
        }
        Output::Virtual => {
            let mut out =
                MidiOut::open_virtual(audio::VIRTUAL_PORT_NAME).map_err(|e| e.to_string())?;
            report(Status::Started(format!(
                "virtual MIDI port '{}'",
                out.name()
            )));
            let finish = run(&mut out);
            midi_errors(&out)?;
            Ok(finish)
        }
        Output::Builtin | Output::SoundFont(_) => {
            let instrument = match output {
                Output::SoundFont(path) => InstrumentSpec::SoundFont(
                    audio::load_soundfont(path).map_err(|e| e.to_string())?,
                ),
                _ => InstrumentSpec::Builtin,
            };
            let mut out = AudioOutput::open(&instrument).map_err(|e| e.to_string())?;
            report(Status::Started(out.device_name().to_string()));
            let finish = run(&mut out);
            std::thread::sleep(std::time::Duration::from_secs_f64(RELEASE_TAIL_SECS));
            if out.failed() {
                return Err("the audio device stopped during playback".into());
            }
            Ok(finish)
        }
    }
}

fn midi_errors(out: &MidiOut) -> Result<(), String> {
    if out.send_errors() > 0 {
        return Err(format!(
            "MIDI port '{}' refused {} messages (disconnected?)",
            out.name(),
            out.send_errors()
        ));
    }
    Ok(())
}
