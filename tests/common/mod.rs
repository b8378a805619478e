//! Hand-assembled Standard MIDI Files, byte by byte, so tests can build exactly the quirks
//! (running status, SMPTE, broken lengths) that a friendly writer would never produce.
#![allow(dead_code)]

use std::path::PathBuf;

/// A MIDI variable-length quantity.
pub fn vlq(mut n: u32) -> Vec<u8> {
    let mut out = vec![(n & 0x7f) as u8];
    n >>= 7;
    while n > 0 {
        out.insert(0, (n & 0x7f) as u8 | 0x80);
        n >>= 7;
    }
    out
}

pub fn chunk(id: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut out = id.to_vec();
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// A header chunk; `division` is the raw 16-bit field (ticks per quarter, or SMPTE).
pub fn header(format: u16, tracks: u16, division: u16) -> Vec<u8> {
    let mut body = format.to_be_bytes().to_vec();
    body.extend_from_slice(&tracks.to_be_bytes());
    body.extend_from_slice(&division.to_be_bytes());
    chunk(b"MThd", &body)
}

/// A whole file from track bodies (each body's bytes without the MTrk header).
pub fn smf(format: u16, division: u16, tracks: &[Vec<u8>]) -> Vec<u8> {
    let mut out = header(format, tracks.len() as u16, division);
    for t in tracks {
        out.extend(chunk(b"MTrk", t));
    }
    out
}

/// Builds one track body: events with delta times, End of Track appended by `end`.
#[derive(Default, Clone)]
pub struct Track(pub Vec<u8>);

impl Track {
    pub fn new() -> Self {
        Track(Vec::new())
    }
    /// Raw event bytes after a delta (status byte included or not, for running status).
    pub fn raw(mut self, delta: u32, bytes: &[u8]) -> Self {
        self.0.extend(vlq(delta));
        self.0.extend_from_slice(bytes);
        self
    }
    pub fn on(self, delta: u32, channel: u8, key: u8, vel: u8) -> Self {
        self.raw(delta, &[0x90 | channel, key, vel])
    }
    pub fn off(self, delta: u32, channel: u8, key: u8) -> Self {
        self.raw(delta, &[0x80 | channel, key, 64])
    }
    pub fn program(self, delta: u32, channel: u8, program: u8) -> Self {
        self.raw(delta, &[0xC0 | channel, program])
    }
    pub fn tempo(self, delta: u32, bpm: u32) -> Self {
        let us = 60_000_000 / bpm;
        self.raw(
            delta,
            &[
                0xFF,
                0x51,
                0x03,
                (us >> 16) as u8,
                (us >> 8) as u8,
                us as u8,
            ],
        )
    }
    pub fn time_sig(self, delta: u32, num: u8, den_pow2: u8) -> Self {
        self.raw(delta, &[0xFF, 0x58, 0x04, num, den_pow2, 24, 8])
    }
    pub fn end(self, delta: u32) -> Vec<u8> {
        self.raw(delta, &[0xFF, 0x2F, 0x00]).0
    }
}

/// Corpus files the tests read: the committed fixtures always, plus `../shared/corpus/val`
/// (or `$DIFFROLL_CORPUS/val`) when that folder exists on this machine.
pub fn corpus_files() -> Vec<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut dirs = vec![root.join("tests/data/midi")];
    let shared = std::env::var_os("DIFFROLL_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("../shared/corpus"));
    if shared.join("val").is_dir() {
        dirs.push(shared.join("val"));
    } else {
        eprintln!(
            "note: {} not found; round trips run on the committed fixtures only",
            shared.join("val").display()
        );
    }
    let mut files = Vec::new();
    for dir in dirs {
        for entry in walkdir::WalkDir::new(dir).sort_by_file_name() {
            let entry = entry.expect("readable test corpus");
            if entry.path().extension().is_some_and(|e| e == "mid") {
                files.push(entry.into_path());
            }
        }
    }
    files
}

/// Fundamental by autocorrelation (50..2000 Hz), refined by parabolic interpolation: works
/// for timbres whose overtones add extra zero crossings.
pub fn autocorrelation_hz(x: &[f32], sample_rate: u32) -> f64 {
    let x: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
    let n = x.len() / 2;
    // Normalized, so a level that grows or beats across the window does not favour long lags.
    let corr = |lag: usize| -> f64 {
        let (mut xy, mut xx, mut yy) = (0.0, 0.0, 0.0);
        for i in 0..n {
            xy += x[i] * x[i + lag];
            xx += x[i] * x[i];
            yy += x[i + lag] * x[i + lag];
        }
        xy / (xx * yy).sqrt().max(1e-30)
    };
    let (min_lag, max_lag) = ((sample_rate / 2000) as usize, (sample_rate / 50) as usize);
    let values: Vec<f64> = (min_lag..=max_lag).map(corr).collect();
    // The first peak that comes close to the best one is the period, not a multiple of it.
    let best = values.iter().cloned().fold(f64::MIN, f64::max);
    let i = (1..values.len() - 1)
        .find(|&i| {
            values[i] >= 0.9 * best && values[i] >= values[i - 1] && values[i] >= values[i + 1]
        })
        .expect("a periodic signal");
    let (y0, y1, y2) = (values[i - 1], values[i], values[i + 1]);
    let shift = 0.5 * (y0 - y2) / (y0 - 2.0 * y1 + y2);
    f64::from(sample_rate) / ((min_lag + i) as f64 + shift)
}

/// A note as a file holds it: (pitch, start step, end step, velocity).
pub type FileNote = (u8, u32, u32, u8);

/// The notes of a MIDI file as midi-msg (a parser that shares no code with midly, which
/// diffroll reads and writes with) sees them, in sixteenth-note steps, sorted; and the file.
pub fn independent_notes(bytes: &[u8]) -> (Vec<FileNote>, midi_msg::MidiFile) {
    use midi_msg::{ChannelVoiceMsg, Division, MidiFile, MidiMsg};
    let file = MidiFile::from_midi(bytes).expect("midi-msg parses our output");
    let Division::TicksPerQuarterNote(tpq) = file.header.division else {
        panic!("we write metrical timing")
    };
    let ticks_per_step = u32::from(tpq) / 4;
    let mut notes = Vec::new();
    for track in &file.tracks {
        let mut tick = 0u32;
        let mut on: std::collections::HashMap<u8, (u32, u8)> = Default::default();
        for ev in track.events() {
            tick += ev.delta_time;
            if let MidiMsg::ChannelVoice { msg, .. } = &ev.event {
                match *msg {
                    ChannelVoiceMsg::NoteOn { note, velocity } if velocity > 0 => {
                        let struck = on.insert(note, (tick, velocity));
                        assert!(struck.is_none(), "note {note} struck twice");
                    }
                    ChannelVoiceMsg::NoteOn { note, .. }
                    | ChannelVoiceMsg::NoteOff { note, .. } => {
                        let (start, velocity) = on.remove(&note).expect("note-off after note-on");
                        assert_eq!(start % ticks_per_step, 0);
                        assert_eq!(tick % ticks_per_step, 0);
                        notes.push((
                            note,
                            start / ticks_per_step,
                            tick / ticks_per_step,
                            velocity,
                        ));
                    }
                    _ => {}
                }
            }
        }
        assert!(on.is_empty(), "notes left hanging");
    }
    notes.sort_unstable();
    (notes, file)
}
