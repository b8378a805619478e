//! Standard MIDI Files in and out, through midly.
//!
//! [`read`] turns any type-0 or type-1 file (running status, note-on velocity 0 as note-off,
//! overlapping notes of one pitch, tempo and time-signature maps, SMPTE timing) into a [`Song`]:
//! its pitched notes quantized to the sixteenth-note grid, drums (channel 10) left out.
//! [`write()`] produces type-1 files at 480 ticks per quarter that DAWs open. Bad bytes give a
//! [`MidiError`] that says what is wrong, never a panic, and reading is bounded in time and
//! memory whatever the file claims.

mod read;
mod write;

pub use read::{read, read_file};
pub use write::{ExportOptions, TICKS_PER_QUARTER, write, write_roll};

use crate::roll::{Note, Roll, STEPS_PER_BAR, Score};

/// Files larger than this are refused before they are read: no musical MIDI file comes close,
/// and the limit keeps a hostile file from costing more than a fraction of a second.
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;
/// Longest piece accepted, in sixteenth-note steps (4096 bars of 4/4).
pub const MAX_STEPS: u64 = 1 << 16;

/// A tempo change: from `step` on, `bpm` quarter notes per minute.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TempoChange {
    pub step: u32,
    pub bpm: f32,
}

/// A time-signature change at `step`, e.g. 3/4 as `numerator: 3, denominator: 4`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeSignature {
    pub step: u32,
    pub numerator: u8,
    pub denominator: u8,
}

impl TimeSignature {
    /// Sixteenth-note steps in one bar of this signature (at least one).
    pub fn steps_per_bar(&self) -> u32 {
        let den = u32::from(self.denominator.max(1));
        (u32::from(self.numerator) * 16 / den).max(1)
    }
}

/// What a MIDI file holds once its pitched notes are on the sixteenth-note grid.
#[derive(Debug, Clone, PartialEq)]
pub struct Song {
    /// Pitched notes (drums removed), quantized, sorted by start then pitch. Notes of one
    /// pitch may overlap when they came from different tracks or channels.
    pub notes: Vec<Note>,
    /// The track (0-based, in file order) each of `notes` came from.
    pub note_tracks: Vec<usize>,
    /// Length in steps: the last note's end rounded up to a whole 4/4 bar.
    pub steps: u32,
    /// Tempo at the start of the piece.
    pub tempo_bpm: f32,
    pub tempo_changes: Vec<TempoChange>,
    /// Time-signature changes; empty means 4/4 throughout.
    pub time_signatures: Vec<TimeSignature>,
    /// The General MIDI program most of the notes were played with.
    pub program: u8,
    /// 0 or 1: the file's format.
    pub format: u8,
    pub tracks: usize,
    /// Notes on channel 10 that were left out.
    pub dropped_drum_notes: usize,
    /// True when the file counted time in SMPTE frames; its notes were placed on the grid at
    /// [`crate::roll::DEFAULT_TEMPO_BPM`], so they play back at their original times.
    pub smpte: bool,
}

impl Song {
    /// The whole piece as a piano roll (overlapping notes of one pitch merge as on a keyboard).
    pub fn to_roll(&self) -> Roll {
        let mut roll = Roll::from_notes(&self.notes, self.steps as usize);
        roll.tempo_bpm = self.tempo_bpm;
        roll.program = self.program;
        roll
    }

    /// The whole piece as a score: its notes with their velocities, in no style.
    pub fn to_score(&self) -> Score {
        Score {
            notes: self.notes.clone(),
            steps: self.steps,
            style: None,
            tempo_bpm: self.tempo_bpm,
            program: self.program,
        }
    }

    /// The notes of track `track` (0-based, in file order).
    pub fn track_notes(&self, track: usize) -> Vec<Note> {
        self.notes
            .iter()
            .zip(&self.note_tracks)
            .filter(|(_, t)| **t == track)
            .map(|(n, _)| *n)
            .collect()
    }

    /// The tracks that hold notes, with how many each holds, in file order.
    pub fn tracks_with_notes(&self) -> Vec<(usize, usize)> {
        let mut counts: std::collections::BTreeMap<usize, usize> = Default::default();
        for &t in &self.note_tracks {
            *counts.entry(t).or_default() += 1;
        }
        counts.into_iter().collect()
    }

    /// Steps at which bars start, following the time-signature map (4/4 where none is given).
    pub fn bar_starts(&self) -> Vec<u32> {
        bar_starts(&self.time_signatures, self.steps)
    }
}

/// Steps at which bars start in `0..steps` under a time-signature map sorted by step (4/4
/// until the first change). Each change starts a new bar where it happens.
pub fn bar_starts(signatures: &[TimeSignature], steps: u32) -> Vec<u32> {
    let mut anchors = vec![(0u32, STEPS_PER_BAR as u32)];
    for sig in signatures {
        match anchors.last_mut() {
            Some(last) if last.0 == sig.step => last.1 = sig.steps_per_bar(),
            _ => anchors.push((sig.step, sig.steps_per_bar())),
        }
    }
    let mut bars = Vec::new();
    for (i, &(start, per_bar)) in anchors.iter().enumerate() {
        let end = anchors.get(i + 1).map_or(steps, |a| a.0).min(steps);
        bars.extend((start..end).step_by(per_bar as usize));
    }
    bars
}

/// Why a MIDI file could not be read. Each message is one line a user can act on.
#[derive(Debug, thiserror::Error)]
pub enum MidiError {
    #[error("cannot read the file: {0}")]
    Io(#[from] std::io::Error),
    #[error("the file is empty")]
    Empty,
    #[error("the file is {bytes} bytes; MIDI files over {} MiB are refused", MAX_FILE_BYTES >> 20)]
    TooLarge { bytes: u64 },
    #[error("not a Standard MIDI File (it does not start with an 'MThd' header)")]
    NotMidi,
    #[error(
        "truncated: {what} at byte {offset} declares {declared} bytes but only {available} remain"
    )]
    Truncated {
        what: &'static str,
        offset: usize,
        declared: u64,
        available: usize,
    },
    #[error("malformed MIDI: {0}")]
    Malformed(String),
    #[error(
        "track {track} is truncated or malformed: its events stop before the end-of-track marker"
    )]
    BrokenTrack { track: usize },
    #[error("type-2 (multi-pattern) MIDI files are not supported; export the song as type 0 or 1")]
    Type2,
    #[error("the header gives 0 ticks per quarter note, so no event has a time")]
    ZeroDivision,
    #[error(
        "the piece is {steps} sixteenth notes long; more than {MAX_STEPS} (4096 bars) is refused"
    )]
    TooLong { steps: u64 },
}

impl From<midly::Error> for MidiError {
    fn from(e: midly::Error) -> Self {
        MidiError::Malformed(e.to_string())
    }
}
