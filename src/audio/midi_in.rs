//! MIDI input through midir: recording what a keyboard (or a DAW) plays onto the sixteenth-note
//! grid. A [`MidiRecorder`] listens to an existing port, chosen by index or name as outputs are
//! ([`select_port`]), or to a virtual port others connect to; [`quantize`] turns the timed
//! messages into [`Note`]s, and is pure so it can be tested without a MIDI system.
//!
//! What is kept: note-on and note-off (a note-on of velocity 0 is a note-off), and all-notes-off
//! or all-sound-off (controllers 123 and 120), which end every note held on their channel so a
//! keyboard's panic button does not leave a note running to the end of the take. Everything else
//! (pedals, pitch bend, clock, program changes, SysEx) is left out: a roll has no place for it.
//! Drums (channel 10) are left out and counted, as [`crate::midi::read`] does with files: on a
//! pitched roll a drum pad's key numbers would read as melody.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use midir::{Ignore, MidiInput, MidiInputConnection};

use super::AudioError;
use super::event::Event;
use super::midi_out::{VIRTUAL_PORT_NAME, select_port};
use crate::roll::{DEFAULT_TEMPO_BPM, Note, STEPS_PER_BAR, STEPS_PER_BEAT};

/// The name of the virtual input port [`MidiRecorder::open_virtual`] opens by default.
pub const VIRTUAL_INPUT_PORT_NAME: &str = "diffroll input";

/// The channel (0-based) General MIDI gives to drums.
const DRUM_CHANNEL: u8 = 9;

/// Messages kept per take. A fast player sends a few dozen a second, so this is hours of music;
/// past it the callback stops growing the list (and counts what it lost) rather than let a
/// stuck controller eat memory.
pub const MAX_RECORDED_EVENTS: usize = 1 << 20;

/// Room reserved up front, so the first minutes of playing never reallocate in the callback.
const RESERVED_EVENTS: usize = 8192;

/// Why MIDI input could not be opened. Each message is one line a user can act on.
#[derive(Debug, thiserror::Error)]
pub enum MidiInError {
    #[error(
        "no MIDI system available (on Linux the ALSA sequencer, /dev/snd/seq, is missing; a JACK build needs a running JACK server); record in another program and open its MIDI file instead"
    )]
    NoMidiSystem,
    #[error(
        "no MIDI input ports found; plug in a keyboard (or start the program that sends MIDI) and try again, or open a virtual input and connect to it"
    )]
    NoPorts,
    #[error("no MIDI input port matches '{spec}'; ports: {available}")]
    NoSuchPort { spec: String, available: String },
    #[error("cannot open MIDI input '{port}': {reason}; is another program holding it?")]
    Connect { port: String, reason: String },
    #[error("virtual MIDI ports are not supported on this system; name an existing input port")]
    NoVirtualPorts,
}

fn midi_input() -> Result<MidiInput, MidiInError> {
    let mut input = MidiInput::new(VIRTUAL_PORT_NAME).map_err(|_| MidiInError::NoMidiSystem)?;
    // Clock ticks and active sensing arrive many times a second and mean nothing to a roll.
    input.ignore(Ignore::All);
    Ok(input)
}

fn port_names(input: &MidiInput) -> Vec<String> {
    input
        .ports()
        .iter()
        .map(|p| {
            input
                .port_name(p)
                .unwrap_or_else(|_| "(port without a name)".to_string())
        })
        .collect()
}

/// Names of the MIDI input ports (what can be recorded from), in the order
/// [`MidiRecorder::connect`] indexes them.
pub fn list_input_ports() -> Result<Vec<String>, MidiInError> {
    Ok(port_names(&midi_input()?))
}

/// Which input port `spec` means: an index, the exact name, or the only name containing it
/// (ignoring case), as for outputs.
pub fn select_input_port(spec: &str, names: &[String]) -> Result<usize, MidiInError> {
    select_port(spec, names).map_err(|e| match e {
        AudioError::NoSuchPort { spec, available } => MidiInError::NoSuchPort { spec, available },
        _ => MidiInError::NoPorts,
    })
}

/// The channel message `bytes` carries, if it is one a recording keeps: note-on, note-off
/// (including note-on with velocity 0) and all-notes-off / all-sound-off. Incomplete messages
/// give `None`.
pub fn parse_message(bytes: &[u8]) -> Option<Event> {
    let (&status, data) = bytes.split_first()?;
    let channel = status & 0x0F;
    let (a, b) = match data {
        [a, b, ..] => (*a & 0x7F, *b & 0x7F),
        _ => return None,
    };
    match status & 0xF0 {
        0x90 if b > 0 => Some(Event::NoteOn {
            channel,
            key: a,
            velocity: b,
        }),
        0x80 | 0x90 => Some(Event::NoteOff { channel, key: a }),
        0xB0 if a == 123 || a == 120 => Some(Event::AllNotesOff { channel }),
        _ => None,
    }
}

/// Sixteenth-note steps since the start, rounded to the nearest (halves round up).
fn to_step(t: Duration, step_secs: f64) -> u32 {
    let steps = (t.as_secs_f64() / step_secs).round();
    steps.clamp(0.0, crate::midi::MAX_STEPS as f64) as u32
}

/// Seconds one sixteenth lasts at `bpm`; a tempo outside 1..=1000 (or not a number) is taken
/// as [`DEFAULT_TEMPO_BPM`], so a bad setting cannot stack every note on one step.
pub fn step_seconds(bpm: f32) -> f64 {
    let bpm = if bpm.is_finite() && (1.0..=1000.0).contains(&bpm) {
        bpm
    } else {
        DEFAULT_TEMPO_BPM
    };
    60.0 / f64::from(bpm) / STEPS_PER_BEAT as f64
}

/// Timed messages as notes on the sixteenth-note grid at `bpm`, sorted by start then pitch.
///
/// `events` are in the order they arrived, timed from the start of the recording; `stop` is when
/// it ended. Note-ons and note-offs of one key on one channel pair first in, first out (what a
/// synth does with a re-struck key); a note still held at `stop` ends there. Starts and ends
/// round to the nearest step, and every note lasts at least one step however short it was
/// played. Two strikes of one pitch that land on the same step become one note (the longer, the
/// louder velocity), as in [`crate::midi::read`]. Drums (channel 10) are left out; so is
/// anything past [`crate::midi::MAX_STEPS`].
pub fn quantize(events: &[(Duration, Event)], bpm: f32, stop: Duration) -> Vec<Note> {
    let step_secs = step_seconds(bpm);
    let mut held: HashMap<(u8, u8), VecDeque<(Duration, u8)>> = HashMap::new();
    // (pitch, on, off, velocity)
    let mut played: Vec<(u8, Duration, Duration, u8)> = Vec::new();
    for &(t, event) in events {
        match event {
            Event::NoteOn {
                channel,
                key,
                velocity,
            } if channel & 0x0F != DRUM_CHANNEL && velocity > 0 => {
                held.entry((channel & 0x0F, key & 0x7F))
                    .or_default()
                    .push_back((t, velocity.min(127)));
            }
            Event::NoteOn { channel, key, .. } | Event::NoteOff { channel, key } => {
                let key = key & 0x7F;
                if let Some((on, velocity)) = held
                    .get_mut(&(channel & 0x0F, key))
                    .and_then(VecDeque::pop_front)
                {
                    played.push((key, on, t.max(on), velocity));
                }
            }
            Event::AllNotesOff { channel } => {
                let channel = channel & 0x0F;
                for (&(_, key), queue) in held.iter_mut().filter(|((c, _), _)| *c == channel) {
                    played.extend(queue.drain(..).map(|(on, v)| (key, on, t.max(on), v)));
                }
            }
            Event::ProgramChange { .. } => {}
        }
    }
    for (&(_, key), queue) in &held {
        played.extend(queue.iter().map(|&(on, v)| (key, on, stop.max(on), v)));
    }

    let max = crate::midi::MAX_STEPS as u32;
    let mut notes: Vec<Note> = played
        .into_iter()
        .filter_map(|(pitch, on, off, velocity)| {
            let start = to_step(on, step_secs);
            let end = to_step(off, step_secs).max(start + 1);
            (end <= max).then(|| Note::new(pitch, start, end, velocity))
        })
        .collect();
    notes.sort_unstable_by_key(|n| (n.start, n.pitch, n.end));
    notes.dedup_by(|later, kept| {
        let same = later.pitch == kept.pitch && later.start == kept.start;
        if same {
            kept.end = kept.end.max(later.end);
            kept.velocity = kept.velocity.max(later.velocity);
        }
        same
    });
    notes
}

/// Length of a piece holding `notes`: the last note's end rounded up to a whole 4/4 bar (0 for
/// no notes). Silence after the last note is not part of the piece.
pub fn piece_steps(notes: &[Note]) -> u32 {
    let bar = STEPS_PER_BAR as u32;
    notes.iter().map(|n| n.end).max().unwrap_or(0).div_ceil(bar) * bar
}

/// What a recording holds, on the grid.
#[derive(Debug, Clone, PartialEq)]
pub struct Recording {
    /// The notes played, quantized ([`quantize`]), sorted by start then pitch.
    pub notes: Vec<Note>,
    /// The piece's length in steps: whole bars ([`piece_steps`]).
    pub steps: u32,
    /// The tempo the notes were placed on the grid at.
    pub tempo_bpm: f32,
    /// How long the recording ran.
    pub duration: Duration,
    /// Drum notes (channel 10) that were left out.
    pub drum_notes: usize,
    /// Messages lost because the take passed [`MAX_RECORDED_EVENTS`].
    pub lost_events: usize,
}

impl Recording {
    fn new(capture: &Capture, bpm: f32, now: Instant) -> Recording {
        let duration = now.saturating_duration_since(capture.start);
        let notes = quantize(&capture.events, bpm, duration);
        Recording {
            steps: piece_steps(&notes),
            notes,
            tempo_bpm: bpm,
            duration,
            drum_notes: capture.drum_notes,
            lost_events: capture.lost_events,
        }
    }
}

/// What the input callback fills: messages timed from `start`.
#[derive(Debug)]
struct Capture {
    start: Instant,
    events: Vec<(Duration, Event)>,
    drum_notes: usize,
    lost_events: usize,
}

impl Capture {
    fn new() -> Capture {
        Capture {
            start: Instant::now(),
            events: Vec::with_capacity(RESERVED_EVENTS),
            drum_notes: 0,
            lost_events: 0,
        }
    }

    fn receive(&mut self, now: Instant, event: Event) {
        if let Event::NoteOn { channel, .. } = event
            && channel == DRUM_CHANNEL
        {
            self.drum_notes += 1;
            return;
        }
        if self.events.len() >= MAX_RECORDED_EVENTS {
            self.lost_events += 1;
            return;
        }
        self.events
            .push((now.saturating_duration_since(self.start), event));
    }
}

type Shared = Arc<Mutex<Capture>>;

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, Capture> {
    // Nothing panics while holding the lock; if something did, the messages are still good.
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Records from a MIDI input from the moment it is opened (or [`MidiRecorder::restart`]ed)
/// until [`MidiRecorder::stop`]. The port's callback only times each message on arrival and
/// appends it under a short lock; quantizing happens when the notes are asked for.
pub struct MidiRecorder {
    connection: MidiInputConnection<()>,
    shared: Shared,
    name: String,
}

impl std::fmt::Debug for MidiRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MidiRecorder")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

fn callback(shared: Shared) -> impl FnMut(u64, &[u8], &mut ()) + Send + 'static {
    // midir's stamps count from a different zero on each backend (and JACK's is only the time
    // of its process cycle), so every message is timed on arrival against one clock instead.
    move |_stamp, bytes, _| {
        let now = Instant::now();
        if let Some(event) = parse_message(bytes) {
            lock(&shared).receive(now, event);
        }
    }
}

impl MidiRecorder {
    /// Connects to an existing input port chosen by index or name ([`select_input_port`]) and
    /// starts recording.
    pub fn connect(spec: &str) -> Result<MidiRecorder, MidiInError> {
        let input = midi_input()?;
        let names = port_names(&input);
        let index = select_input_port(spec, &names)?;
        let ports = input.ports();
        let (Some(port), Some(name)) = (ports.get(index), names.get(index)) else {
            return Err(MidiInError::NoSuchPort {
                spec: spec.to_string(),
                available: names.join(", "),
            });
        };
        let shared: Shared = Arc::new(Mutex::new(Capture::new()));
        let connection = input
            .connect(port, "record", callback(Arc::clone(&shared)), ())
            .map_err(|e| MidiInError::Connect {
                port: name.clone(),
                reason: e.kind().to_string(),
            })?;
        lock(&shared).start = Instant::now();
        Ok(MidiRecorder {
            connection,
            shared,
            name: name.clone(),
        })
    }

    /// Opens a virtual input port called `name` that a keyboard or a DAW is connected to, and
    /// starts recording.
    #[cfg(unix)]
    pub fn open_virtual(name: &str) -> Result<MidiRecorder, MidiInError> {
        use midir::os::unix::VirtualInput;
        let shared: Shared = Arc::new(Mutex::new(Capture::new()));
        let connection = midi_input()?
            .create_virtual(name, callback(Arc::clone(&shared)), ())
            .map_err(|e| MidiInError::Connect {
                port: name.to_string(),
                reason: e.kind().to_string(),
            })?;
        lock(&shared).start = Instant::now();
        Ok(MidiRecorder {
            connection,
            shared,
            name: name.to_string(),
        })
    }

    /// Virtual ports need a MIDI system that has them; Windows' does not.
    #[cfg(not(unix))]
    pub fn open_virtual(_name: &str) -> Result<MidiRecorder, MidiInError> {
        Err(MidiInError::NoVirtualPorts)
    }

    /// The port's name as the system shows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Forgets what was recorded and starts the clock again: step 0 is now. For a take that
    /// begins with playback or after a count-in, while the port stays open.
    pub fn restart(&self) {
        let mut capture = lock(&self.shared);
        capture.events.clear();
        capture.drum_notes = 0;
        capture.lost_events = 0;
        capture.start = Instant::now();
    }

    /// Time since the recording started.
    pub fn elapsed(&self) -> Duration {
        lock(&self.shared).start.elapsed()
    }

    /// The take so far, for showing it while it is played: notes still held end now.
    pub fn snapshot(&self, bpm: f32) -> Recording {
        let capture = lock(&self.shared);
        Recording::new(&capture, bpm, Instant::now())
    }

    /// Ends the recording and closes the port: the notes played, on the grid at `bpm`; notes
    /// still held end now.
    pub fn stop(self, bpm: f32) -> Recording {
        let now = Instant::now();
        let MidiRecorder {
            connection, shared, ..
        } = self;
        // Closed first, so nothing arrives while the take is read.
        drop(connection.close());
        let capture = lock(&shared);
        Recording::new(&capture, bpm, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(t: u64) -> Duration {
        Duration::from_millis(t)
    }

    fn on(key: u8, velocity: u8) -> Event {
        Event::NoteOn {
            channel: 0,
            key,
            velocity,
        }
    }

    fn off(key: u8) -> Event {
        Event::NoteOff { channel: 0, key }
    }

    #[test]
    fn timing_becomes_steps_at_120_bpm() {
        // A sixteenth is 125 ms: a quarter, an eighth, and a note a little late and early.
        let events = [
            (ms(0), on(60, 90)),
            (ms(500), off(60)),
            (ms(510), on(62, 90)),
            (ms(740), off(62)),
            (ms(1060), on(64, 90)),
            (ms(1240), off(64)),
        ];
        let notes = quantize(&events, 120.0, ms(2000));
        assert_eq!(
            notes,
            vec![
                Note::new(60, 0, 4, 90),
                Note::new(62, 4, 6, 90),
                // 1060 ms is step 8.48 -> 8; 1240 ms is 9.92 -> 10.
                Note::new(64, 8, 10, 90),
            ]
        );
        assert_eq!(piece_steps(&notes), 16);
    }

    #[test]
    fn timing_becomes_steps_at_90_bpm() {
        // A sixteenth is 1/6 s at 90 BPM: a dotted quarter from step 2, then a whole bar.
        let step = 1000.0 / 6.0;
        let at = |steps: f64| Duration::from_secs_f64(steps * step / 1000.0);
        let events = [
            (at(2.1), on(67, 64)),
            (at(7.9), off(67)),
            (at(16.4), on(55, 100)),
            (at(32.45), off(55)),
        ];
        let notes = quantize(&events, 90.0, at(40.0));
        assert_eq!(
            notes,
            vec![Note::new(67, 2, 8, 64), Note::new(55, 16, 32, 100)]
        );
        assert_eq!(piece_steps(&notes), 32);
        assert!((step_seconds(90.0) - 1.0 / 6.0).abs() < 1e-12);
    }

    #[test]
    fn velocity_is_kept_per_note() {
        let events = [
            (ms(0), on(60, 1)),
            (ms(0), on(64, 64)),
            (ms(0), on(67, 127)),
            (ms(250), off(60)),
            (ms(250), off(64)),
            (ms(250), off(67)),
        ];
        let velocities: Vec<u8> = quantize(&events, 120.0, ms(300))
            .iter()
            .map(|n| n.velocity)
            .collect();
        assert_eq!(velocities, [1, 64, 127]);
    }

    #[test]
    fn note_on_with_velocity_zero_ends_the_note() {
        assert_eq!(
            parse_message(&[0x93, 60, 0]),
            Some(Event::NoteOff {
                channel: 3,
                key: 60
            })
        );
        assert_eq!(
            parse_message(&[0x83, 60, 40]),
            Some(Event::NoteOff {
                channel: 3,
                key: 60
            })
        );
        let events = [
            (ms(0), parse_message(&[0x90, 60, 100]).unwrap()),
            (ms(375), parse_message(&[0x90, 60, 0]).unwrap()),
        ];
        assert_eq!(
            quantize(&events, 120.0, ms(4000)),
            vec![Note::new(60, 0, 3, 100)]
        );
    }

    #[test]
    fn other_messages_are_ignored() {
        for bytes in [
            &[0xB0, 64, 127][..], // sustain pedal
            &[0xE0, 0, 64],       // pitch bend
            &[0xC0, 5],           // program change
            &[0xF8],              // clock
            &[0xF0, 0x7E, 0xF7],  // SysEx
            &[0x90, 60],          // cut short
            &[],
        ] {
            assert_eq!(parse_message(bytes), None, "{bytes:?}");
        }
        assert_eq!(
            parse_message(&[0xB2, 123, 0]),
            Some(Event::AllNotesOff { channel: 2 })
        );
    }

    #[test]
    fn held_notes_end_at_stop() {
        let events = [(ms(0), on(48, 70)), (ms(600), on(52, 80))];
        let notes = quantize(&events, 120.0, ms(1990));
        assert_eq!(
            notes,
            vec![Note::new(48, 0, 16, 70), Note::new(52, 5, 16, 80)]
        );
        // Struck at the very moment of stop: still one step.
        let notes = quantize(&[(ms(1000), on(60, 90))], 120.0, ms(1000));
        assert_eq!(notes, vec![Note::new(60, 8, 9, 90)]);
    }

    #[test]
    fn all_notes_off_ends_the_channel_only() {
        let events = [
            (ms(0), on(60, 90)),
            (
                ms(0),
                Event::NoteOn {
                    channel: 1,
                    key: 64,
                    velocity: 90,
                },
            ),
            (ms(500), Event::AllNotesOff { channel: 0 }),
        ];
        let notes = quantize(&events, 120.0, ms(1000));
        assert_eq!(
            notes,
            vec![Note::new(60, 0, 4, 90), Note::new(64, 0, 8, 90)]
        );
    }

    #[test]
    fn re_struck_pitch_gives_separate_notes() {
        // Repeated eighths of one key, then a key struck twice without a release in between
        // (first in, first out), then two strikes inside one step.
        let events = [
            (ms(0), on(60, 80)),
            (ms(230), off(60)),
            (ms(250), on(60, 90)),
            (ms(480), off(60)),
            (ms(500), on(62, 70)),
            (ms(750), on(62, 75)),
            (ms(1000), off(62)),
            (ms(1250), off(62)),
            (ms(1500), on(64, 60)),
            (ms(1510), off(64)),
            (ms(1530), on(64, 100)),
            (ms(1700), off(64)),
        ];
        let notes = quantize(&events, 120.0, ms(2000));
        assert_eq!(
            notes,
            vec![
                Note::new(60, 0, 2, 80),
                Note::new(60, 2, 4, 90),
                Note::new(62, 4, 8, 70),
                Note::new(62, 6, 10, 75),
                Note::new(64, 12, 14, 100),
            ]
        );
    }

    #[test]
    fn very_short_notes_last_one_step() {
        let events = [
            (ms(0), on(72, 90)),
            (ms(5), off(72)),
            (ms(120), on(74, 90)),
            (ms(130), off(74)),
            (ms(300), on(76, 90)),
            (ms(300), off(76)),
        ];
        let notes = quantize(&events, 120.0, ms(500));
        assert_eq!(
            notes,
            vec![
                Note::new(72, 0, 1, 90),
                Note::new(74, 1, 2, 90),
                // 300 ms is 2.4 steps.
                Note::new(76, 2, 3, 90),
            ]
        );
    }

    #[test]
    fn drums_unmatched_offs_and_bad_tempos() {
        let drum = Event::NoteOn {
            channel: DRUM_CHANNEL,
            key: 36,
            velocity: 120,
        };
        let events = [
            (ms(0), off(61)),
            (ms(0), drum),
            (ms(10), on(60, 90)),
            (ms(250), off(60)),
        ];
        let notes = quantize(&events, 120.0, ms(500));
        assert_eq!(notes, vec![Note::new(60, 0, 2, 90)]);
        for bpm in [0.0, -5.0, f32::NAN, f32::INFINITY, 5000.0] {
            assert_eq!(quantize(&events, bpm, ms(500)), notes, "{bpm}");
        }
        assert_eq!(quantize(&[], 120.0, ms(500)), vec![]);
        assert_eq!(piece_steps(&[]), 0);
        assert_eq!(piece_steps(&[Note::new(60, 15, 17, 90)]), 32);
    }

    #[test]
    fn capture_counts_drums_and_stops_growing() {
        let mut capture = Capture::new();
        let now = capture.start + ms(100);
        capture.receive(
            now,
            Event::NoteOn {
                channel: DRUM_CHANNEL,
                key: 38,
                velocity: 100,
            },
        );
        capture.receive(now, on(60, 90));
        assert_eq!(capture.drum_notes, 1);
        assert_eq!(capture.events, vec![(ms(100), on(60, 90))]);
        capture.events.resize(MAX_RECORDED_EVENTS, (ms(0), off(0)));
        capture.receive(now, off(60));
        assert_eq!(capture.lost_events, 1);
        assert_eq!(capture.events.len(), MAX_RECORDED_EVENTS);
        let recording = Recording::new(&capture, 120.0, capture.start + ms(1000));
        assert_eq!(recording.duration, ms(1000));
        assert_eq!(recording.drum_notes, 1);
    }

    #[test]
    fn missing_ports_name_the_ones_there_are() {
        let names = vec![
            "Midi Through:Port-0 14:0".to_string(),
            "KeyStep 20:0".into(),
        ];
        assert_eq!(select_input_port("keystep", &names).unwrap(), 1);
        let err = select_input_port("launchkey", &names)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("launchkey") && err.contains("1: KeyStep"),
            "{err}"
        );
        assert!(matches!(
            select_input_port("x", &[]),
            Err(MidiInError::NoPorts)
        ));
    }

    #[test]
    fn a_recorder_can_move_to_another_thread() {
        fn send<T: Send>() {}
        send::<MidiRecorder>();
        send::<Recording>();
    }
}
