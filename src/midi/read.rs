//! Reading a Standard MIDI File into a [`Song`]: the size checked before a byte is read, each
//! track's note-ons paired with note-offs first in, first out per channel and pitch, tempo and
//! time-signature maps kept, SMPTE time placed on the grid at 120 BPM, drums left out, notes
//! quantized to sixteenths. Every malformed input is a [`MidiError`], never a panic.

use std::collections::{HashMap, VecDeque};
use std::fs;
use std::io::Read;
use std::path::Path;

use midly::{Format, MetaMessage, MidiMessage, Timing, TrackEventKind};

use super::{MAX_FILE_BYTES, MAX_STEPS, MidiError, Song, TempoChange, TimeSignature};
use crate::roll::{DEFAULT_TEMPO_BPM, Note, STEPS_PER_BAR, STEPS_PER_BEAT};

/// General MIDI's percussion channel (10, counted from 1).
const DRUM_CHANNEL: u8 = 9;

/// Reads and quantizes a MIDI file. The size is checked before a byte is read.
pub fn read_file(path: &Path) -> Result<Song, MidiError> {
    let file = fs::File::open(path)?;
    let len = file.metadata()?.len();
    if len > MAX_FILE_BYTES {
        return Err(MidiError::TooLarge { bytes: len });
    }
    let mut bytes = Vec::with_capacity(len as usize);
    // `take` guards against a file that grows while we read it.
    file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes)?;
    read(&bytes)
}

/// Parses a Standard MIDI File from memory and quantizes its pitched notes to sixteenths.
pub fn read(bytes: &[u8]) -> Result<Song, MidiError> {
    if bytes.is_empty() {
        return Err(MidiError::Empty);
    }
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(MidiError::TooLarge {
            bytes: bytes.len() as u64,
        });
    }
    check_chunks(bytes)?;
    let (header, tracks) = midly::parse(bytes)?;
    if header.format == Format::Sequential {
        return Err(MidiError::Type2);
    }
    let grid = Grid::new(header.timing)?;

    let mut collector = Collector::default();
    let mut track_count = 0;
    for (index, track) in tracks.enumerate() {
        track_count += 1;
        collector.track(index, track?, &grid)?;
    }
    collector.finish(&grid, header.format, track_count)
}

/// Walks the chunk structure before midly sees it: midly's lenient reader silently takes the
/// rest of the file for a chunk that claims more bytes than exist, and a user should hear that
/// their file is cut short instead of getting half a piece.
fn check_chunks(bytes: &[u8]) -> Result<(), MidiError> {
    if bytes.starts_with(b"RIFF") {
        // RIFF-wrapped (.rmi) files: midly unwraps them; the per-track checks still apply.
        return Ok(());
    }
    if !bytes.starts_with(b"MThd") {
        return Err(MidiError::NotMidi);
    }
    // midly negates the SMPTE frame-rate byte and overflows on -128; reject bad rates here.
    if bytes.len() >= 14 && bytes[12] & 0x80 != 0 {
        let fps = -i16::from(bytes[12] as i8);
        if ![24, 25, 29, 30].contains(&fps) {
            return Err(MidiError::Malformed(format!(
                "the header gives {fps} SMPTE frames per second (24, 25, 29.97 or 30 exist)"
            )));
        }
    }
    let mut pos = 0usize;
    // Fewer than 8 trailing bytes cannot hold a chunk: padding some writers leave, ignored.
    while bytes.len() - pos >= 8 {
        let id = &bytes[pos..pos + 4];
        let declared = u32::from_be_bytes([
            bytes[pos + 4],
            bytes[pos + 5],
            bytes[pos + 6],
            bytes[pos + 7],
        ]) as u64;
        let available = bytes.len() - pos - 8;
        if declared > available as u64 {
            let what = match id {
                b"MThd" => "the header chunk",
                b"MTrk" => "a track chunk",
                _ => "a chunk",
            };
            return Err(MidiError::Truncated {
                what,
                offset: pos,
                declared,
                available,
            });
        }
        pos += 8 + declared as usize;
    }
    Ok(())
}

/// Maps a file's ticks onto sixteenth-note steps.
struct Grid {
    /// Ticks per sixteenth note, scaled by 4 to stay in integers for metrical timing.
    ticks_per_step_x4: Option<u64>,
    /// Steps per tick for SMPTE timing, placed at the default tempo.
    steps_per_tick: f64,
}

impl Grid {
    fn new(timing: Timing) -> Result<Grid, MidiError> {
        match timing {
            Timing::Metrical(tpq) => {
                let tpq = u64::from(tpq.as_int());
                if tpq == 0 {
                    return Err(MidiError::ZeroDivision);
                }
                Ok(Grid {
                    ticks_per_step_x4: Some(tpq),
                    steps_per_tick: 0.0,
                })
            }
            Timing::Timecode(fps, subframes) => {
                let ticks_per_second = f64::from(fps.as_f32()) * f64::from(subframes.max(1));
                let steps_per_second = f64::from(DEFAULT_TEMPO_BPM) / 60.0 * STEPS_PER_BEAT as f64;
                Ok(Grid {
                    ticks_per_step_x4: None,
                    steps_per_tick: steps_per_second / ticks_per_second,
                })
            }
        }
    }

    /// The nearest step to `tick` (halves round up).
    fn step(&self, tick: u64) -> u64 {
        match self.ticks_per_step_x4 {
            // step = tick / (tpq / 4), rounded: (4 * tick + tpq / 2) / tpq.
            Some(tpq) => (tick.saturating_mul(4).saturating_add(tpq / 2)) / tpq,
            None => (tick as f64 * self.steps_per_tick).round() as u64,
        }
    }
}

/// A sounding note waiting for its note-off.
#[derive(Clone, Copy)]
struct Pending {
    tick: u64,
    velocity: u8,
    program: u8,
}

#[derive(Default)]
struct Collector {
    /// (pitch, start tick, end tick, velocity, program, track)
    notes: Vec<(u8, u64, u64, u8, u8, usize)>,
    tempos: Vec<(u64, f32)>,
    signatures: Vec<(u64, u8, u8)>,
    dropped_drum_notes: usize,
}

impl Collector {
    fn track(
        &mut self,
        index: usize,
        events: midly::EventIter<'_>,
        grid: &Grid,
    ) -> Result<(), MidiError> {
        // Note-ons of one key on one channel pair with note-offs first in, first out: that is
        // what a synthesizer does with overlapping notes of one pitch.
        let mut pending: HashMap<(u8, u8), VecDeque<Pending>> = HashMap::new();
        let mut programs = [0u8; 16];
        let mut tick = 0u64;
        let mut ended = false;
        for event in events {
            let event = event?;
            tick += u64::from(event.delta.as_int());
            if grid.step(tick) > MAX_STEPS {
                // Something is at an absurd time: no need to read further to refuse the file.
                return Err(MidiError::TooLong {
                    steps: grid.step(tick),
                });
            }
            match event.kind {
                TrackEventKind::Midi { channel, message } => {
                    let channel = channel.as_int();
                    match message {
                        MidiMessage::ProgramChange { program } => {
                            programs[channel as usize] = program.as_int();
                        }
                        MidiMessage::NoteOn { key, vel } if vel.as_int() > 0 => {
                            if channel == DRUM_CHANNEL {
                                self.dropped_drum_notes += 1;
                                continue;
                            }
                            pending
                                .entry((channel, key.as_int()))
                                .or_default()
                                .push_back(Pending {
                                    tick,
                                    velocity: vel.as_int(),
                                    program: programs[channel as usize],
                                });
                        }
                        MidiMessage::NoteOn { key, .. } | MidiMessage::NoteOff { key, .. } => {
                            if let Some(on) = pending
                                .get_mut(&(channel, key.as_int()))
                                .and_then(VecDeque::pop_front)
                            {
                                self.notes.push((
                                    key.as_int(),
                                    on.tick,
                                    tick,
                                    on.velocity,
                                    on.program,
                                    index,
                                ));
                            }
                        }
                        _ => {}
                    }
                }
                TrackEventKind::Meta(MetaMessage::Tempo(us_per_quarter)) => {
                    let us = us_per_quarter.as_int().max(1);
                    // Microseconds per quarter rarely divide evenly: 90 BPM is stored as
                    // 666,666 µs. Rounding to 1/1000 BPM gives back the tempo that was meant.
                    let bpm = (60_000_000_000.0 / f64::from(us)).round() / 1000.0;
                    self.tempos.push((tick, bpm as f32));
                }
                TrackEventKind::Meta(MetaMessage::TimeSignature(num, den_pow2, _, _))
                    if num > 0 && den_pow2 <= 6 =>
                {
                    self.signatures.push((tick, num, 1 << den_pow2));
                }
                TrackEventKind::Meta(MetaMessage::EndOfTrack) => {
                    ended = true;
                    break;
                }
                _ => {}
            }
        }
        if !ended {
            return Err(MidiError::BrokenTrack { track: index });
        }
        // Notes never released end with their track.
        for (&(_, key), queue) in &pending {
            for on in queue {
                self.notes
                    .push((key, on.tick, tick, on.velocity, on.program, index));
            }
        }
        Ok(())
    }

    fn finish(mut self, grid: &Grid, format: Format, tracks: usize) -> Result<Song, MidiError> {
        let mut program_counts = [0usize; 128];
        let mut notes = Vec::with_capacity(self.notes.len());
        for &(pitch, on, off, velocity, program, track) in &self.notes {
            let start = grid.step(on);
            // Every note keeps at least one step, however short it was played.
            let end = grid.step(off).max(start + 1);
            if end > MAX_STEPS {
                return Err(MidiError::TooLong { steps: end });
            }
            program_counts[program as usize] += 1;
            notes.push((Note::new(pitch, start as u32, end as u32, velocity), track));
        }
        notes.sort_unstable_by_key(|(n, track)| (n.start, n.pitch, n.end, *track));
        // Unisons from two tracks or channels on the same step: one key, one note (the longer),
        // in the first track that plays it.
        notes.dedup_by(|(later, _), (kept, _)| {
            let same = later.pitch == kept.pitch && later.start == kept.start;
            if same {
                kept.end = kept.end.max(later.end);
                kept.velocity = kept.velocity.max(later.velocity);
            }
            same
        });
        let (notes, note_tracks): (Vec<Note>, Vec<usize>) = notes.into_iter().unzip();

        let last = notes.iter().map(|n| n.end).max().unwrap_or(0);
        let steps = last.div_ceil(STEPS_PER_BAR as u32) * STEPS_PER_BAR as u32;
        let program = (0..128)
            .max_by_key(|&p| (program_counts[p], std::cmp::Reverse(p)))
            .unwrap_or(0) as u8;

        // Stable sorts keep file order among events on one tick: the last one wins.
        self.tempos.sort_by_key(|&(tick, _)| tick);
        let mut tempo_changes: Vec<TempoChange> = Vec::new();
        for &(tick, bpm) in &self.tempos {
            let step = grid.step(tick) as u32;
            match tempo_changes.last_mut() {
                Some(last) if last.step == step => last.bpm = bpm,
                _ => tempo_changes.push(TempoChange { step, bpm }),
            }
        }
        self.signatures.sort_by_key(|&(tick, _, _)| tick);
        let mut time_signatures: Vec<TimeSignature> = Vec::new();
        for &(tick, numerator, denominator) in &self.signatures {
            let sig = TimeSignature {
                step: grid.step(tick) as u32,
                numerator,
                denominator,
            };
            match time_signatures.last_mut() {
                Some(last) if last.step == sig.step => *last = sig,
                _ => time_signatures.push(sig),
            }
        }
        let tempo_bpm = match (grid.ticks_per_step_x4, tempo_changes.first()) {
            (Some(_), Some(first)) if first.step == 0 => first.bpm,
            _ => DEFAULT_TEMPO_BPM,
        };

        Ok(Song {
            notes,
            note_tracks,
            steps,
            tempo_bpm,
            tempo_changes,
            time_signatures,
            program,
            format: match format {
                Format::SingleTrack => 0,
                _ => 1,
            },
            tracks,
            dropped_drum_notes: self.dropped_drum_notes,
            smpte: grid.ticks_per_step_x4.is_none(),
        })
    }
}
