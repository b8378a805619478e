//! The piano roll: the one musical representation every other module speaks.
//!
//! A [`Roll`] is two binary planes over 128 MIDI pitches × `steps` sixteenth-note steps: *onset*
//! (a note starts here) and *sustain* (a note sounds here, onset step included), plus metadata
//! (tempo, style, program). It converts to and from a list of [`Note`]s, checks itself for
//! orphan sustain (sound with no onset that started it) and repairs it, and knows its key and
//! register. It knows nothing of files, tensors or devices.

mod compare;
mod key;
mod score;
mod style;

pub use compare::Counts;
pub use key::{KEY_NAMES, KeyProfile, MAJOR_SCALE, SHIFTS, parse_key, shift_to};
pub use score::{Score, window_around};
pub use style::{Style, UnknownStyle};

/// Number of MIDI pitches, and rows of a roll.
pub const PITCHES: usize = 128;
/// Sixteenth-note steps in one 4/4 bar.
pub const STEPS_PER_BAR: usize = 16;
/// Sixteenth-note steps in one quarter note.
pub const STEPS_PER_BEAT: usize = 4;
/// Bars in one model window.
pub const WINDOW_BARS: usize = 8;
/// Steps in one model window (8 bars of 4/4).
pub const WINDOW_STEPS: usize = WINDOW_BARS * STEPS_PER_BAR;
/// Tempo used when a file states none (the MIDI default).
pub const DEFAULT_TEMPO_BPM: f32 = 120.0;
/// Velocity given to notes that come from a roll, which has no velocity plane.
pub const DEFAULT_VELOCITY: u8 = 80;

/// One note on the sixteenth-note grid. `end` is exclusive, so a note lasts `end - start` steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Note {
    // Field order gives the derived ordering: by start, then pitch.
    pub start: u32,
    pub pitch: u8,
    pub end: u32,
    pub velocity: u8,
}

impl Note {
    pub fn new(pitch: u8, start: u32, end: u32, velocity: u8) -> Self {
        Note {
            start,
            pitch,
            end,
            velocity,
        }
    }

    /// Steps the note lasts.
    pub fn len(&self) -> u32 {
        self.end.saturating_sub(self.start)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The note's grid position without velocity: what quantization and round trips preserve.
    pub fn key(&self) -> (u8, u32, u32) {
        (self.pitch, self.start, self.end)
    }
}

/// What [`Roll::validity`] finds wrong with a roll. Rolls made from notes have none of it;
/// rolls thresholded from a model's output may.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Validity {
    /// Sustain cells in a run whose first cell has no onset: sound nobody started.
    pub orphan_sustain: usize,
    /// Sustain runs that begin without an onset: the notes [`Roll::repair`] has to invent an
    /// onset for. Per note, this is the rate evaluation reports (one missed onset among
    /// hundreds of notes is a different failure from a roll of unstarted sound).
    pub orphan_notes: usize,
    /// Onset cells with no sustain: a note of zero length.
    pub bare_onsets: usize,
    /// Of the orphan runs, those short enough and without any onset that decoding cleared them
    /// as noise instead of repairing them into notes ([`Mending::drop_blips`]).
    pub dropped_blips: usize,
    /// Of the orphan runs, those with an onset further in: the sound began early.
    pub late_onsets: usize,
    /// Of the orphan runs, those with no onset that begin at most [`BROKEN_NOTE_GAP`] silent
    /// steps after a run of the same pitch: one note broken in two.
    pub after_gap: usize,
    /// Onset-less runs [`Mending::join_gap`] joined to the note before them.
    pub joined: usize,
    /// Runs [`Mending::trim_early`] started at their onset.
    pub trimmed: usize,
    /// Notes [`Mending::legato_gap`] held to the next onset.
    pub held: usize,
    /// One-step notes [`Mending::merge_doubled_onsets`] made the start of the same pitch's
    /// next note.
    pub merged: usize,
}

/// How decoding mends what a decoder drew wrong, beyond giving every onset-less run an onset
/// (the default, `Mending::default()`, does only that). A model card holds its own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Mending {
    /// Clear onset-less runs of at most this many steps: decoder flicker, not notes.
    pub drop_blips: usize,
    /// Join an onset-less run to the same pitch's previous run when at most this many silent
    /// steps part them: a note the decoder broke in two.
    pub join_gap: usize,
    /// Start a run that holds an onset further in at that onset, instead of adding a short note
    /// for the sound before it.
    pub trim_early: bool,
    /// Hold a note to the next onset of any pitch that comes at most this many steps after it
    /// ends: the decoder ends notes a step early where a voice moves on legato, whether or not
    /// other voices sound in the gap.
    pub legato_gap: usize,
    /// Merge a one-step note into the note of the same pitch that follows it at once (one note
    /// from the first onset): the decoder drew one onset over two steps. Real music re-strikes
    /// a pitch after a single sixteenth rarely (no chorale note in val, 1.5 % of folk notes).
    pub merge_doubled_onsets: bool,
}

/// A stretch of sustain cells of one pitch, `start..end`, with its first onset if any.
#[derive(Debug, Clone, Copy)]
struct Run {
    start: usize,
    end: usize,
    first_onset: Option<usize>,
}

/// The longest silence inside a note that [`Validity::after_gap`] calls a break.
pub const BROKEN_NOTE_GAP: usize = 2;

impl Validity {
    pub fn is_valid(&self) -> bool {
        self.orphan_sustain == 0 && self.bare_onsets == 0
    }
}

/// A piano roll: onset and sustain planes, pitch-major (`plane[pitch * steps + step]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Roll {
    steps: usize,
    onset: Vec<bool>,
    sustain: Vec<bool>,
    /// Tempo in quarter notes per minute.
    pub tempo_bpm: f32,
    /// The style the roll belongs to or was generated in, when known.
    pub style: Option<Style>,
    /// General MIDI program (0 = acoustic grand piano) used on export and playback.
    pub program: u8,
}

/// `kept` with the steps `span` replaced by what `new` plays there: a kept note that sounds
/// into the span ends where it starts, kept notes starting in it are gone, and a new note
/// still sounding at its end is cut there. Velocities stay as given. Sorted like
/// [`Roll::notes`].
pub fn splice(kept: &[Note], new: &[Note], span: std::ops::Range<u32>) -> Vec<Note> {
    let before = kept.iter().filter(|n| n.start < span.start).map(|n| Note {
        end: n.end.min(span.start),
        ..*n
    });
    let after = kept.iter().filter(|n| n.start >= span.end).copied();
    let inside = new
        .iter()
        .filter(|n| span.contains(&n.start))
        .map(|n| Note {
            end: n.end.min(span.end),
            ..*n
        });
    let mut notes: Vec<Note> = before.chain(inside).chain(after).collect();
    notes.sort_unstable();
    notes
}

/// `piece` with the steps `span` replaced by what `window` (a roll that starts at step
/// `offset` of the piece) plays there: [`splice`] in the piece's own steps.
pub fn splice_window(
    piece: &[Note],
    window: &Roll,
    offset: u32,
    span: std::ops::Range<u32>,
) -> Vec<Note> {
    let new: Vec<Note> = window
        .notes()
        .into_iter()
        .map(|n| Note {
            start: n.start + offset,
            end: n.end + offset,
            ..n
        })
        .collect();
    splice(piece, &new, span)
}

/// [`Roll::polyphony`] from the notes sounding at each step ([`Roll::sounding_per_step`]).
pub fn polyphony(per_step: &[usize]) -> f64 {
    let (sum, active) = per_step
        .iter()
        .filter(|&&c| c > 0)
        .fold((0, 0), |(sum, n), &c| (sum + c, n + 1));
    sum as f64 / active.max(1) as f64
}

impl Roll {
    /// An empty roll of `steps` sixteenth notes at the default tempo.
    pub fn new(steps: usize) -> Self {
        Roll {
            steps,
            onset: vec![false; PITCHES * steps],
            sustain: vec![false; PITCHES * steps],
            tempo_bpm: DEFAULT_TEMPO_BPM,
            style: None,
            program: 0,
        }
    }

    /// Draws `notes` into a roll of `steps` steps. Parts of notes outside `0..steps` are cut off;
    /// a note that starts while another of the same pitch sounds ends the earlier one, as it
    /// would on a keyboard.
    pub fn from_notes(notes: &[Note], steps: usize) -> Self {
        let mut roll = Roll::new(steps);
        for note in notes {
            roll.add_note(*note);
        }
        roll
    }

    /// Draws one note (clipped to the roll; empty or out-of-range notes are ignored).
    pub fn add_note(&mut self, note: Note) {
        let start = note.start as usize;
        let end = (note.end as usize).min(self.steps);
        if start >= end || note.pitch as usize >= PITCHES {
            return;
        }
        let row = note.pitch as usize * self.steps;
        self.onset[row + start] = true;
        self.sustain[row + start..row + end].fill(true);
    }

    /// How many notes sound at each step.
    pub fn sounding_per_step(&self) -> Vec<usize> {
        (0..self.steps)
            .map(|t| (0..PITCHES).filter(|&p| self.sustain(p, t)).count())
            .collect()
    }

    /// How many notes sound at once on average over the steps where any sounds (muspy's
    /// polyphony; 0 for a silent roll).
    pub fn polyphony(&self) -> f64 {
        polyphony(&self.sounding_per_step())
    }

    /// Number of sixteenth-note steps.
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// Number of whole or partial 4/4 bars.
    pub fn bars(&self) -> usize {
        self.steps.div_ceil(STEPS_PER_BAR)
    }

    pub fn onset(&self, pitch: usize, step: usize) -> bool {
        self.onset[pitch * self.steps + step]
    }

    pub fn sustain(&self, pitch: usize, step: usize) -> bool {
        self.sustain[pitch * self.steps + step]
    }

    pub fn set(&mut self, pitch: usize, step: usize, onset: bool, sustain: bool) {
        let i = pitch * self.steps + step;
        self.onset[i] = onset;
        self.sustain[i] = sustain;
    }

    /// The onset plane, pitch-major.
    pub fn onset_plane(&self) -> &[bool] {
        &self.onset
    }

    /// The sustain plane, pitch-major.
    pub fn sustain_plane(&self) -> &[bool] {
        &self.sustain
    }

    /// True when no note sounds anywhere.
    pub fn is_empty(&self) -> bool {
        !self.sustain.iter().any(|&s| s) && !self.onset.iter().any(|&o| o)
    }

    /// Number of onsets, i.e. of notes a valid roll holds.
    pub fn note_count(&self) -> usize {
        self.onset.iter().filter(|&&o| o).count()
    }

    /// The notes the roll holds. Every onset starts a note that lasts while sustain continues
    /// and no new onset of the same pitch interrupts it; orphan sustain is skipped (call
    /// [`Roll::repair`] first to keep it). Sorted by start, then pitch.
    pub fn notes(&self) -> Vec<Note> {
        let mut notes = Vec::new();
        for pitch in 0..PITCHES {
            let row = pitch * self.steps;
            let onset = &self.onset[row..row + self.steps];
            let sustain = &self.sustain[row..row + self.steps];
            let mut t = 0;
            while t < self.steps {
                if !onset[t] {
                    t += 1;
                    continue;
                }
                let start = t;
                t += 1;
                while t < self.steps && sustain[t] && !onset[t] {
                    t += 1;
                }
                notes.push(Note::new(
                    pitch as u8,
                    start as u32,
                    t as u32,
                    DEFAULT_VELOCITY,
                ));
            }
        }
        notes.sort_unstable();
        notes
    }

    /// Counts what is musically impossible in the planes (see [`Validity`]).
    pub fn validity(&self) -> Validity {
        let mut v = Validity::default();
        for pitch in 0..PITCHES {
            let row = pitch * self.steps;
            v.bare_onsets += (row..row + self.steps)
                .filter(|&i| self.onset[i] && !self.sustain[i])
                .count();
            let mut prev_end = None;
            for run in self.runs(pitch) {
                if run.first_onset != Some(run.start) {
                    v.orphan_notes += 1;
                    v.orphan_sustain += run.first_onset.unwrap_or(run.end) - run.start;
                    if run.first_onset.is_some() {
                        v.late_onsets += 1;
                    } else if prev_end.is_some_and(|end| run.start - end <= BROKEN_NOTE_GAP) {
                        v.after_gap += 1;
                    }
                }
                prev_end = Some(run.end);
            }
        }
        v
    }

    /// Clears sustain runs of at most `max_len` steps that hold no onset at all, and says how
    /// many. A decoder's one-step flicker of sound with no onset anywhere is noise; repairing
    /// it would add a sixteenth note nobody wrote.
    fn drop_orphan_blips(&mut self, max_len: usize) -> usize {
        let mut dropped = 0;
        if max_len == 0 {
            return dropped;
        }
        for pitch in 0..PITCHES {
            let row = pitch * self.steps;
            for run in self.runs(pitch) {
                if run.first_onset.is_none() && run.end - run.start <= max_len {
                    self.sustain[row + run.start..row + run.end].fill(false);
                    dropped += 1;
                }
            }
        }
        dropped
    }

    /// Joins onset-less runs to the same pitch's run before them when at most `max_gap` silent
    /// steps part them, and says how many.
    fn join_broken_notes(&mut self, max_gap: usize) -> usize {
        let mut joined = 0;
        if max_gap == 0 {
            return joined;
        }
        for pitch in 0..PITCHES {
            let row = pitch * self.steps;
            let mut prev_end = None;
            for run in self.runs(pitch) {
                if let Some(end) = prev_end
                    && run.first_onset.is_none()
                    && run.start - end <= max_gap
                {
                    self.sustain[row + end..row + run.start].fill(true);
                    joined += 1;
                }
                prev_end = Some(run.end);
            }
        }
        joined
    }

    /// Clears the sound before the first onset of runs that begin without one but hold one
    /// further in, and says how many.
    fn trim_early_sound(&mut self) -> usize {
        let mut trimmed = 0;
        for pitch in 0..PITCHES {
            let row = pitch * self.steps;
            for run in self.runs(pitch) {
                if let Some(onset) = run.first_onset
                    && onset > run.start
                {
                    self.sustain[row + run.start..row + onset].fill(false);
                    trimmed += 1;
                }
            }
        }
        trimmed
    }

    /// Clears the onset right after a one-step note of the same pitch, and says how many. A run
    /// of re-struck sixteenths loses every other onset: each step is looked at once, in order.
    fn merge_doubled_onsets(&mut self) -> usize {
        let mut merged = 0;
        for pitch in 0..PITCHES {
            let row = pitch * self.steps;
            for t in 1..self.steps {
                let (prev, here) = (row + t - 1, row + t);
                if self.onset[prev] && self.onset[here] && self.sustain[prev] && self.sustain[here]
                {
                    self.onset[here] = false;
                    merged += 1;
                }
            }
        }
        merged
    }

    /// Holds each note to the first onset (of any pitch) that comes 1 to `max_gap` steps after
    /// it ends, and says how many. Its own pitch is silent until then: every run begins with an
    /// onset by now, so a later run of the same pitch cannot begin before the first onset.
    fn hold_to_next_onset(&mut self, max_gap: usize) -> usize {
        if max_gap == 0 {
            return 0;
        }
        let starting: Vec<bool> = (0..self.steps)
            .map(|t| (0..PITCHES).any(|p| self.onset[p * self.steps + t]))
            .collect();
        let mut held = 0;
        for pitch in 0..PITCHES {
            let row = pitch * self.steps;
            for run in self.runs(pitch) {
                let last = (run.end + max_gap).min(self.steps.saturating_sub(1));
                if let Some(next) = (run.end + 1..=last).find(|&t| starting[t]) {
                    self.sustain[row + run.end..row + next].fill(true);
                    held += 1;
                }
            }
        }
        held
    }

    /// The sustain runs of `pitch`, in order.
    fn runs(&self, pitch: usize) -> Vec<Run> {
        let row = pitch * self.steps;
        let mut runs = Vec::new();
        let mut t = 0;
        while t < self.steps {
            if !self.sustain[row + t] {
                t += 1;
                continue;
            }
            let start = t;
            let mut first_onset = None;
            while t < self.steps && self.sustain[row + t] {
                if self.onset[row + t] && first_onset.is_none() {
                    first_onset = Some(t);
                }
                t += 1;
            }
            runs.push(Run {
                start,
                end: t,
                first_onset,
            });
        }
        runs
    }

    /// Makes the roll valid and says what it fixed. A sustain run with no onset gets one at its
    /// first step (a decoder that misses an onset has usually still drawn the note), and a bare
    /// onset gets the one step of sustain it implies.
    pub fn repair(&mut self) -> Validity {
        self.mend(Mending::default())
    }

    /// [`Roll::repair`] after the extra mending `m` asks for (blips cleared, broken notes
    /// joined, early sound trimmed, in that order; then, once every run is a note, doubled
    /// onsets merged and notes held to an onset a step or two later); what was wrong is counted
    /// before any of it is mended.
    pub fn mend(&mut self, m: Mending) -> Validity {
        let found = self.validity();
        let dropped_blips = self.drop_orphan_blips(m.drop_blips);
        let joined = self.join_broken_notes(m.join_gap);
        let trimmed = if m.trim_early {
            self.trim_early_sound()
        } else {
            0
        };
        for pitch in 0..PITCHES {
            let row = pitch * self.steps;
            let mut prev_sustain = false;
            for t in 0..self.steps {
                let i = row + t;
                if self.onset[i] {
                    self.sustain[i] = true;
                }
                if self.sustain[i] && !prev_sustain {
                    self.onset[i] = true;
                }
                prev_sustain = self.sustain[i];
            }
        }
        let merged = if m.merge_doubled_onsets {
            self.merge_doubled_onsets()
        } else {
            0
        };
        let held = self.hold_to_next_onset(m.legato_gap);
        Validity {
            dropped_blips,
            joined,
            trimmed,
            held,
            merged,
            ..found
        }
    }

    /// The steps `start..start + len` as a new roll (zero-padded past the end), same metadata.
    pub fn window(&self, start: usize, len: usize) -> Roll {
        let mut out = Roll {
            steps: len,
            onset: vec![false; PITCHES * len],
            sustain: vec![false; PITCHES * len],
            ..*self
        };
        let avail = self.steps.saturating_sub(start).min(len);
        for pitch in 0..PITCHES {
            let src = pitch * self.steps + start;
            let dst = pitch * len;
            out.onset[dst..dst + avail].copy_from_slice(&self.onset[src..src + avail]);
            out.sustain[dst..dst + avail].copy_from_slice(&self.sustain[src..src + avail]);
        }
        // A note cut at the window's left edge keeps sounding: give it an onset so the window
        // stands on its own.
        out.repair();
        out
    }

    /// Start steps of every whole `len`-step window, `hop` steps apart, that contains at least
    /// one onset. A roll shorter than `len` has none.
    pub fn window_starts(&self, len: usize, hop: usize) -> Vec<usize> {
        assert!(hop > 0, "window hop must be positive");
        if self.steps < len {
            return Vec::new();
        }
        // Onsets per step, summed over pitches, so each window is a range-sum lookup.
        let mut prefix = vec![0usize; self.steps + 1];
        for t in 0..self.steps {
            let count = (0..PITCHES)
                .filter(|&p| self.onset[p * self.steps + t])
                .count();
            prefix[t + 1] = prefix[t] + count;
        }
        (0..=self.steps - len)
            .step_by(hop)
            .filter(|&s| prefix[s + len] > prefix[s])
            .collect()
    }

    /// Both planes as `f32` in `[plane, pitch, step]` order (plane 0 onset, 1 sustain), the
    /// layout the model's tensors use.
    pub fn to_planes(&self) -> Vec<f32> {
        self.onset
            .iter()
            .chain(self.sustain.iter())
            .map(|&b| if b { 1.0 } else { 0.0 })
            .collect()
    }

    /// Reads planes laid out as [`Roll::to_planes`] writes them, a cell set where its value
    /// exceeds `threshold`. The result may be invalid; see [`Roll::repair`].
    pub fn from_planes(planes: &[f32], steps: usize, threshold: f32) -> Roll {
        assert_eq!(
            planes.len(),
            2 * PITCHES * steps,
            "planes must be [2, 128, steps]"
        );
        let mut roll = Roll::new(steps);
        let n = PITCHES * steps;
        for i in 0..n {
            roll.onset[i] = planes[i] > threshold;
            roll.sustain[i] = planes[n + i] > threshold;
        }
        roll
    }

    /// Lowest and highest sounding pitch, if any note sounds.
    pub fn pitch_range(&self) -> Option<(u8, u8)> {
        let sounding = |p: &usize| {
            let row = p * self.steps;
            self.sustain[row..row + self.steps].iter().any(|&s| s)
                || self.onset[row..row + self.steps].iter().any(|&o| o)
        };
        let lo = (0..PITCHES).find(sounding)?;
        let hi = (0..PITCHES).rev().find(sounding)?;
        Some((lo as u8, hi as u8))
    }

    /// Moves every note by `semitones`; notes pushed outside 0..=127 are dropped.
    pub fn transposed(&self, semitones: i32) -> Roll {
        let mut out = Roll {
            onset: vec![false; PITCHES * self.steps],
            sustain: vec![false; PITCHES * self.steps],
            ..*self
        };
        for pitch in 0..PITCHES {
            let target = pitch as i32 + semitones;
            if !(0..PITCHES as i32).contains(&target) {
                continue;
            }
            let (src, dst) = (pitch * self.steps, target as usize * self.steps);
            out.onset[dst..dst + self.steps].copy_from_slice(&self.onset[src..src + self.steps]);
            out.sustain[dst..dst + self.steps]
                .copy_from_slice(&self.sustain[src..src + self.steps]);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(pitch: u8, start: u32, end: u32) -> Note {
        Note::new(pitch, start, end, DEFAULT_VELOCITY)
    }

    #[test]
    fn splice_replaces_only_the_span() {
        let kept = [
            Note::new(60, 0, 20, 100), // sounds into the span: ends at its start
            Note::new(62, 4, 8, 90),   // before: kept as it is
            Note::new(64, 16, 24, 70), // starts inside: gone
            Note::new(65, 32, 40, 60), // starts at the span's end: kept
        ];
        let new = [
            Note::new(67, 0, 8, 80),   // before the span: not taken
            Note::new(69, 16, 40, 80), // inside, sounds past the end: cut there
            Note::new(71, 20, 24, 80),
        ];
        assert_eq!(
            splice(&kept, &new, 16..32),
            [
                Note::new(60, 0, 16, 100),
                Note::new(62, 4, 8, 90),
                Note::new(69, 16, 32, 80),
                Note::new(71, 20, 24, 80),
                Note::new(65, 32, 40, 60),
            ]
        );
    }

    #[test]
    fn notes_round_trip() {
        let notes = vec![n(60, 0, 4), n(64, 0, 4), n(67, 4, 5), n(60, 4, 16)];
        let roll = Roll::from_notes(&notes, 16);
        let mut expected = notes.clone();
        expected.sort_unstable();
        assert_eq!(roll.notes(), expected);
        assert!(roll.validity().is_valid());
    }

    #[test]
    fn only_short_runs_without_any_onset_are_dropped_as_blips() {
        // Pitch 60: a one-step blip (t 1), a two-step orphan run (t 4-5), a note (t 8-10) and
        // an orphan run with an onset inside it (t 12-13). Pitch 62: a blip at the last step.
        let planes = || {
            let mut roll = Roll::new(16);
            for t in [1, 4, 5, 8, 9, 10, 12, 13] {
                roll.set(60, t, t == 8 || t == 13, true);
            }
            roll.set(62, 15, false, true);
            roll
        };
        let mut roll = planes();
        let fixed = roll.mend(Mending {
            drop_blips: 1,
            ..Mending::default()
        });
        assert_eq!((fixed.orphan_notes, fixed.dropped_blips), (4, 2));
        assert_eq!(
            roll.notes(),
            vec![n(60, 4, 6), n(60, 8, 11), n(60, 12, 13), n(60, 13, 14)]
        );
        assert_eq!(planes().drop_orphan_blips(2), 3);
        assert_eq!(planes().drop_orphan_blips(0), 0);
    }

    #[test]
    fn broken_notes_join_and_early_sound_is_trimmed() {
        // Pitch 60: a note (t 0-3), two silent steps, more sound without an onset (t 6-9).
        // Pitch 62: sound from t 2 whose onset comes at t 4. Pitch 64: a note, three silent
        // steps, onset-less sound (t 7-8): too far apart to be one note.
        let planes = || {
            let mut roll = Roll::new(16);
            for t in [0, 1, 2, 3, 6, 7, 8, 9] {
                roll.set(60, t, t == 0, true);
            }
            for t in 2..8 {
                roll.set(62, t, t == 4, true);
            }
            for t in [0, 1, 2, 3, 7, 8] {
                roll.set(64, t, t == 0, true);
            }
            roll
        };
        let mut plain = planes();
        let fixed = plain.repair();
        assert_eq!((fixed.orphan_notes, fixed.joined, fixed.trimmed), (3, 0, 0));
        assert_eq!(
            plain.notes(),
            vec![
                n(60, 0, 4),
                n(64, 0, 4),
                n(62, 2, 4),
                n(62, 4, 8),
                n(60, 6, 10),
                n(64, 7, 9)
            ]
        );
        let mut mended = planes();
        let fixed = mended.mend(Mending {
            drop_blips: 0,
            join_gap: 2,
            trim_early: true,
            ..Mending::default()
        });
        // Counted before mending, as always.
        assert_eq!((fixed.orphan_notes, fixed.joined, fixed.trimmed), (3, 1, 1));
        assert_eq!(
            mended.notes(),
            vec![n(60, 0, 10), n(64, 0, 4), n(62, 4, 8), n(64, 7, 9)]
        );
        assert!(mended.validity().is_valid());
    }

    /// `notes` in a roll of `steps`, mended as `m` says: what mending reported and the notes
    /// after it (the mended roll checked valid).
    fn mended(notes: &[Note], steps: usize, m: Mending) -> (Validity, Vec<Note>) {
        let mut roll = Roll::from_notes(notes, steps);
        let v = roll.mend(m);
        assert!(roll.validity().is_valid());
        (v, roll.notes())
    }

    #[test]
    fn legato_holds_notes_to_an_onset_a_step_or_two_later() {
        // 60 ends a step before 62 begins, 62 two before 64; 64 ends as 40 begins and a step
        // before 65 (an onset right at a note's end does not count); 65 ends a step before 67
        // while 40 still sounds; nothing begins after 40 or 67.
        let notes = vec![
            n(60, 0, 3),
            n(62, 4, 7),
            n(64, 9, 12),
            n(65, 13, 15),
            n(40, 12, 16),
            n(67, 16, 18),
        ];
        let held = |gap: usize| {
            let m = Mending {
                legato_gap: gap,
                ..Mending::default()
            };
            let (v, notes) = mended(&notes, 24, m);
            (v.held, notes)
        };
        let (count, one) = held(1);
        assert_eq!(count, 3);
        assert_eq!(
            one,
            vec![
                n(60, 0, 4),
                n(62, 4, 7),
                n(64, 9, 13),
                n(40, 12, 16),
                n(65, 13, 16),
                n(67, 16, 18),
            ]
        );
        let (count, two) = held(2);
        assert_eq!(count, 4);
        assert_eq!(two[1], n(62, 4, 9));
        assert_eq!(held(0), (0, Roll::from_notes(&notes, 24).notes()));
        let (_, eight) = held(8);
        assert_eq!(eight[3], n(40, 12, 16));
        assert_eq!(eight.last(), Some(&n(67, 16, 18)));
    }

    #[test]
    fn doubled_onsets_start_the_next_note() {
        // 60: a sixteenth re-struck as a quarter; 62: four re-struck sixteenths; 64: a
        // sixteenth, a rest, the same pitch again; 65 and 67: sixteenths a step apart.
        let notes = vec![
            n(60, 0, 1),
            n(60, 1, 5),
            n(62, 0, 1),
            n(62, 1, 2),
            n(62, 2, 3),
            n(62, 3, 4),
            n(64, 0, 1),
            n(64, 2, 3),
            n(65, 0, 1),
            n(67, 1, 2),
        ];
        let mend = |on: bool| {
            let m = Mending {
                merge_doubled_onsets: on,
                ..Mending::default()
            };
            let (v, notes) = mended(&notes, 8, m);
            (v.merged, notes)
        };
        assert_eq!(mend(false), (0, Roll::from_notes(&notes, 8).notes()));
        let (merged, notes) = mend(true);
        assert_eq!(merged, 3);
        assert_eq!(
            notes,
            vec![
                n(60, 0, 5),
                n(62, 0, 2),
                n(64, 0, 1),
                n(65, 0, 1),
                n(67, 1, 2),
                n(62, 2, 4),
                n(64, 2, 3),
            ]
        );
    }

    #[test]
    fn legato_never_runs_into_the_same_pitch() {
        // 60 comes back a step after it ends: held up to its own next onset, still two notes.
        let notes = vec![n(60, 0, 2), n(60, 3, 5), n(72, 4, 6)];
        let m = Mending {
            legato_gap: 2,
            ..Mending::default()
        };
        let (v, notes) = mended(&notes, 8, m);
        assert_eq!(v.held, 1);
        assert_eq!(notes, vec![n(60, 0, 3), n(60, 3, 5), n(72, 4, 6)]);
    }

    #[test]
    fn repeated_pitch_is_two_notes() {
        let roll = Roll::from_notes(&[n(60, 0, 2), n(60, 2, 4)], 8);
        assert_eq!(roll.notes(), vec![n(60, 0, 2), n(60, 2, 4)]);
    }

    #[test]
    fn overlapping_same_pitch_truncates_the_earlier() {
        let roll = Roll::from_notes(&[n(60, 0, 8), n(60, 4, 6)], 8);
        assert_eq!(roll.notes(), vec![n(60, 0, 4), n(60, 4, 8)]);
    }

    #[test]
    fn notes_are_clipped_to_the_roll() {
        let roll = Roll::from_notes(&[n(60, 14, 40), n(61, 20, 30), n(62, 3, 3)], 16);
        assert_eq!(roll.notes(), vec![n(60, 14, 16)]);
    }

    #[test]
    fn orphan_sustain_is_counted_and_repaired() {
        let mut roll = Roll::new(8);
        for t in 2..5 {
            roll.set(40, t, false, true);
        }
        roll.set(41, 6, true, false);
        let v = roll.validity();
        assert_eq!(
            v,
            Validity {
                orphan_sustain: 3,
                orphan_notes: 1,
                bare_onsets: 1,
                ..Validity::default()
            }
        );
        assert_eq!(roll.repair(), v);
        assert!(roll.validity().is_valid());
        assert_eq!(roll.notes(), vec![n(40, 2, 5), n(41, 6, 7)]);
    }

    #[test]
    fn orphan_runs_are_told_apart() {
        let mut roll = Roll::new(32);
        let sustain = |roll: &mut Roll, pitch: usize, steps: std::ops::Range<usize>| {
            for t in steps {
                roll.set(pitch, t, false, true);
            }
        };
        // Pitch 60: sound one step before its onset (late onset).
        sustain(&mut roll, 60, 3..8);
        roll.set(60, 4, true, true);
        // Pitch 62: a note, a two-step silence, then more of it without an onset (broken).
        sustain(&mut roll, 62, 0..10);
        roll.set(62, 0, true, true);
        sustain(&mut roll, 62, 12..16);
        // ... and after a three-step silence, neither.
        sustain(&mut roll, 62, 19..22);
        // Pitch 64: an onset-less run with nothing before it.
        sustain(&mut roll, 64, 5..9);
        let v = roll.validity();
        assert_eq!(
            (v.orphan_notes, v.late_onsets, v.after_gap),
            (4, 1, 1),
            "{v:?}"
        );
    }

    #[test]
    fn each_unstarted_run_is_one_orphan_note() {
        let mut roll = Roll::new(8);
        for t in [0, 1, 2, 4, 5, 6] {
            roll.set(40, t, t == 5, true);
        }
        let v = roll.validity();
        assert_eq!((v.orphan_notes, v.orphan_sustain), (2, 4));
        roll.repair();
        assert_eq!(roll.notes(), vec![n(40, 0, 3), n(40, 4, 5), n(40, 5, 7)]);
    }

    #[test]
    fn sustain_continuing_after_an_onset_is_not_orphan() {
        let mut roll = Roll::new(8);
        roll.set(50, 1, true, true);
        roll.set(50, 2, false, true);
        roll.set(50, 3, true, true);
        roll.set(50, 4, false, true);
        assert!(roll.validity().is_valid());
        assert_eq!(roll.notes(), vec![n(50, 1, 3), n(50, 3, 5)]);
    }

    #[test]
    fn windows_cut_notes_and_stay_valid() {
        let roll = Roll::from_notes(&[n(60, 0, 20), n(62, 40, 41)], 48);
        let w = roll.window(16, 32);
        assert!(w.validity().is_valid());
        assert_eq!(w.notes(), vec![n(60, 0, 4), n(62, 24, 25)]);
        assert_eq!(roll.window_starts(16, 16), vec![0, 32]);
        assert!(roll.window_starts(64, 16).is_empty());
        assert!(Roll::new(64).window_starts(16, 16).is_empty());
    }

    #[test]
    fn planes_round_trip() {
        let roll = Roll::from_notes(&[n(0, 0, 3), n(127, 5, 8)], 8);
        let planes = roll.to_planes();
        assert_eq!(planes.len(), 2 * PITCHES * 8);
        assert_eq!(planes[0], 1.0);
        assert_eq!(planes[PITCHES * 8 + 2], 1.0);
        assert_eq!(Roll::from_planes(&planes, 8, 0.5), roll);
    }

    #[test]
    fn transposition_drops_notes_off_the_keyboard() {
        let roll = Roll::from_notes(&[n(126, 0, 2), n(60, 0, 2)], 4);
        let up = roll.transposed(3);
        assert_eq!(up.notes(), vec![n(63, 0, 2)]);
        assert_eq!(roll.transposed(-60).notes(), vec![n(0, 0, 2), n(66, 0, 2)]);
        assert_eq!(roll.pitch_range(), Some((60, 126)));
    }
}
