//! Writing type-1 MIDI files a DAW opens: 480 ticks per quarter, a tempo and 4/4 on a
//! conductor track, the notes on one named instrument track with its program.

use midly::num::{u4, u7, u15, u24, u28};
use midly::{Format, Header, MetaMessage, MidiMessage, Smf, Timing, TrackEvent, TrackEventKind};

use crate::roll::{Note, Roll, STEPS_PER_BEAT};

/// Resolution of exported files: the most common DAW default.
pub const TICKS_PER_QUARTER: u16 = 480;
const TICKS_PER_STEP: u64 = TICKS_PER_QUARTER as u64 / STEPS_PER_BEAT as u64;

/// How notes become a file.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    pub tempo_bpm: f32,
    /// General MIDI program for the one instrument track.
    pub program: u8,
    /// Name of the instrument track, shown by DAWs.
    pub track_name: String,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            tempo_bpm: crate::roll::DEFAULT_TEMPO_BPM,
            program: 0,
            track_name: "diffroll".to_string(),
        }
    }
}

/// A roll as a type-1 MIDI file (its own tempo and program, track named `track_name`).
pub fn write_roll(roll: &Roll, track_name: &str) -> Vec<u8> {
    let options = ExportOptions {
        tempo_bpm: roll.tempo_bpm,
        program: roll.program,
        track_name: track_name.to_string(),
    };
    write(&roll.notes(), &options)
}

/// Notes on the sixteenth grid as a type-1 file: a conductor track (name, tempo, 4/4) and one
/// instrument track on channel 1 (name, program, notes), 480 ticks per quarter.
pub fn write(notes: &[Note], options: &ExportOptions) -> Vec<u8> {
    let tempo_us = (60_000_000.0 / options.tempo_bpm.clamp(1.0, 1000.0)).round() as u32;
    let name = options.track_name.as_bytes();
    let conductor = vec![
        meta(0, MetaMessage::TrackName(name)),
        meta(0, MetaMessage::Tempo(u24::new(tempo_us))),
        // 4/4, 24 MIDI clocks per click, 8 32nds per quarter.
        meta(0, MetaMessage::TimeSignature(4, 2, 24, 8)),
        meta(0, MetaMessage::EndOfTrack),
    ];

    // (tick, is_on, pitch, velocity); note-offs sort before note-ons on the same tick so a
    // repeated pitch is released before it is struck again.
    let mut events: Vec<(u64, bool, u8, u8)> = Vec::with_capacity(notes.len() * 2);
    for note in notes.iter().filter(|n| n.end > n.start && n.pitch < 128) {
        let velocity = note.velocity.clamp(1, 127);
        events.push((
            u64::from(note.start) * TICKS_PER_STEP,
            true,
            note.pitch,
            velocity,
        ));
        events.push((u64::from(note.end) * TICKS_PER_STEP, false, note.pitch, 0));
    }
    events.sort_unstable_by_key(|&(tick, on, pitch, _)| (tick, on, pitch));

    let channel = u4::new(0);
    let mut instrument = Vec::with_capacity(events.len() + 3);
    instrument.push(meta(0, MetaMessage::TrackName(name)));
    instrument.push(TrackEvent {
        delta: u28::new(0),
        kind: TrackEventKind::Midi {
            channel,
            message: MidiMessage::ProgramChange {
                program: u7::new(options.program.min(127)),
            },
        },
    });
    let mut last = 0u64;
    for (tick, on, pitch, velocity) in events {
        let message = if on {
            MidiMessage::NoteOn {
                key: u7::new(pitch),
                vel: u7::new(velocity),
            }
        } else {
            MidiMessage::NoteOff {
                key: u7::new(pitch),
                vel: u7::new(64),
            }
        };
        instrument.push(TrackEvent {
            delta: delta(tick - last),
            kind: TrackEventKind::Midi { channel, message },
        });
        last = tick;
    }
    instrument.push(meta(0, MetaMessage::EndOfTrack));

    let smf = Smf {
        header: Header::new(
            Format::Parallel,
            Timing::Metrical(u15::new(TICKS_PER_QUARTER)),
        ),
        tracks: vec![conductor, instrument],
    };
    let mut out = Vec::new();
    smf.write_std(&mut out)
        .expect("writing MIDI to memory cannot fail");
    out
}

fn meta(delta_ticks: u32, message: MetaMessage<'_>) -> TrackEvent<'_> {
    TrackEvent {
        delta: u28::new(delta_ticks),
        kind: TrackEventKind::Meta(message),
    }
}

/// Deltas fit MIDI's 28 bits for any roll shorter than ~4.6 million bars, far beyond
/// [`super::MAX_STEPS`]; the saturating cast keeps a larger value from wrapping silently.
fn delta(ticks: u64) -> u28 {
    u28::new(ticks.min(u64::from(u28::max_value().as_int())) as u32)
}
