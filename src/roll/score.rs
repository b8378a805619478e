//! A piece of any length as notes with their velocities: what a musician brings (a file, a
//! melody, what they played) and what the long and editing generations return. A [`Roll`] is
//! the model's view of a window of it; a score keeps what the roll cannot (velocity, length).

use std::ops::Range;

use super::{DEFAULT_TEMPO_BPM, Note, Roll, STEPS_PER_BAR, Style};

/// Notes on the sixteenth-note grid, sorted by start then pitch, over `steps` steps (a whole
/// number of 4/4 bars where it came from a file or the model).
#[derive(Debug, Clone, PartialEq)]
pub struct Score {
    pub notes: Vec<Note>,
    pub steps: u32,
    pub style: Option<Style>,
    pub tempo_bpm: f32,
    /// General MIDI program, as [`Roll::program`].
    pub program: u8,
}

impl Score {
    /// `notes` (sorted here) over `steps`, in no style, at the default tempo.
    pub fn new(mut notes: Vec<Note>, steps: u32) -> Score {
        notes.sort_unstable();
        Score {
            notes,
            steps,
            style: None,
            tempo_bpm: DEFAULT_TEMPO_BPM,
            program: 0,
        }
    }

    /// The roll's notes at its velocity, over its length, with its metadata.
    pub fn from_roll(roll: &Roll) -> Score {
        Score {
            notes: roll.notes(),
            steps: roll.steps() as u32,
            style: roll.style,
            tempo_bpm: roll.tempo_bpm,
            program: roll.program,
        }
    }

    /// The whole score as a roll (velocities are lost; overlapping notes of one pitch merge).
    pub fn to_roll(&self) -> Roll {
        let mut roll = Roll::from_notes(&self.notes, self.steps as usize);
        roll.style = self.style;
        roll.tempo_bpm = self.tempo_bpm;
        roll.program = self.program;
        roll
    }

    /// Bars of 4/4, the last one perhaps partial.
    pub fn bars(&self) -> usize {
        self.steps.div_ceil(STEPS_PER_BAR as u32) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.notes.is_empty()
    }

    /// The steps `start..start + len` as a roll: notes moved to the window's start, cut at its
    /// end; a note sounding into the window from before starts at its first step.
    pub fn window(&self, start: u32, len: u32) -> Roll {
        let end = start + len;
        let inside: Vec<Note> = self
            .notes
            .iter()
            .filter(|n| n.start < end && n.end > start)
            .map(|n| Note {
                start: n.start.max(start) - start,
                end: n.end.min(end) - start,
                ..*n
            })
            .collect();
        let mut roll = Roll::from_notes(&inside, len as usize);
        roll.style = self.style;
        roll.tempo_bpm = self.tempo_bpm;
        roll.program = self.program;
        roll
    }

    /// Cuts the score to `steps`: later notes go, notes sounding past it end there.
    pub fn truncate(&mut self, steps: u32) {
        self.notes.retain(|n| n.start < steps);
        for n in &mut self.notes {
            n.end = n.end.min(steps);
        }
        self.steps = steps;
    }

    /// The top line: every note with no higher note sounding when it starts (ties at one step
    /// go to the highest), cut where a higher note enters. The melody of most music that has
    /// one voice above the others.
    pub fn top_line(&self) -> Vec<Note> {
        let mut line: Vec<Note> = Vec::new();
        for n in &self.notes {
            let covered = self
                .notes
                .iter()
                .any(|o| o.pitch > n.pitch && o.start <= n.start && o.end > n.start);
            if !covered {
                line.push(*n);
            }
        }
        // A higher note entering while a line note sounds takes the line over.
        for n in &mut line {
            if let Some(cut) = self
                .notes
                .iter()
                .filter(|o| o.pitch > n.pitch && o.start > n.start && o.start < n.end)
                .map(|o| o.start)
                .min()
            {
                n.end = cut;
            }
        }
        line
    }

    /// F1 of this score's onsets (pitch and step) against `other`'s, over the longer of the
    /// two: 1 for the same notes, 0 for none in common.
    pub fn onset_f1(&self, other: &Score) -> f64 {
        let steps = self.steps.max(other.steps) as usize;
        let (a, b) = (
            Roll::from_notes(&self.notes, steps),
            Roll::from_notes(&other.notes, steps),
        );
        let mut counts = super::Counts::default();
        counts.add(a.onset_plane(), b.onset_plane());
        counts.f1()
    }

    /// Bars (0-based) in which no note sounds.
    pub fn silent_bars(&self) -> Vec<usize> {
        let bar = STEPS_PER_BAR as u32;
        (0..self.bars())
            .filter(|&b| {
                let (s, e) = (b as u32 * bar, (b as u32 + 1) * bar);
                !self.notes.iter().any(|n| n.start < e && n.end > s)
            })
            .collect()
    }
}

/// The first step of the model window for `span` in a piece of `steps` steps: a bar start
/// from which the window holds the whole span, keeping the window inside the piece where the
/// piece is long enough, and the span as near the window's middle as those allow (the more
/// music on both sides, the better the new bars fit it). The span's own start when no bar
/// start will do.
pub fn window_around(bar_starts: &[u32], span: &Range<u32>, steps: u32) -> u32 {
    let window = super::WINDOW_STEPS as u32;
    let holds = |b: u32| b <= span.start && b + window >= span.end;
    let inside = |b: u32| b + window <= steps.max(window);
    // Twice the distance between the window's middle and the span's, in steps.
    let off_centre = |b: u32| (i64::from(2 * b + window) - i64::from(span.start + span.end)).abs();
    let best = |candidates: &mut dyn Iterator<Item = u32>| {
        candidates.min_by_key(|&b| (off_centre(b), std::cmp::Reverse(b)))
    };
    best(
        &mut bar_starts
            .iter()
            .copied()
            .filter(|&b| holds(b) && inside(b)),
    )
    .or_else(|| best(&mut bar_starts.iter().copied().filter(|&b| holds(b))))
    .unwrap_or(span.start)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(pitch: u8, start: u32, end: u32) -> Note {
        Note::new(pitch, start, end, 90)
    }

    fn bars(n: u32, per: u32) -> Vec<u32> {
        (0..n).map(|b| b * per).collect()
    }

    #[test]
    fn the_window_holds_the_span_near_its_middle_inside_the_piece() {
        // 32 bars of 4/4: bars 15-16 sit in the middle of bars 12-19.
        assert_eq!(window_around(&bars(32, 16), &(224..256), 512), 176);
        // Near the start and the end the window stays inside the piece.
        assert_eq!(window_around(&bars(32, 16), &(16..32), 512), 0);
        assert_eq!(window_around(&bars(32, 16), &(480..512), 512), 384);
        // A piece shorter than the window starts it at its first bar.
        assert_eq!(window_around(&bars(4, 16), &(16..48), 64), 0);
        // Eight whole bars: the window is exactly them.
        assert_eq!(window_around(&bars(32, 16), &(64..192), 512), 64);
        // 3/4: a bar start, and the whole span inside.
        let w = window_around(&bars(40, 12), &(240..288), 480);
        assert!(w.is_multiple_of(12) && w <= 240 && w + 128 >= 288, "{w}");
        // Bars 10-11 of 16: the window is bars 7-14.
        assert_eq!(window_around(&bars(16, 16), &(144..176), 256), 96);
    }

    #[test]
    fn windows_cut_and_move_notes() {
        let score = Score::new(vec![n(60, 0, 20), n(64, 10, 40), n(67, 40, 48)], 48);
        let w = score.window(16, 16);
        assert_eq!(w.steps(), 16);
        let keys: Vec<_> = w.notes().iter().map(Note::key).collect();
        assert_eq!(keys, vec![(60, 0, 4), (64, 0, 16)]);
    }

    #[test]
    fn the_top_line_is_the_highest_sounding_voice() {
        // A chord under a melody, and a high note entering over a held one.
        let score = Score::new(
            vec![
                n(48, 0, 8),
                n(55, 0, 8),
                n(72, 0, 4),
                n(71, 4, 8),
                n(60, 8, 16),
                n(67, 12, 16),
            ],
            16,
        );
        let keys: Vec<_> = score.top_line().iter().map(Note::key).collect();
        assert_eq!(
            keys,
            vec![(72, 0, 4), (71, 4, 8), (60, 8, 12), (67, 12, 16)]
        );
    }

    #[test]
    fn silent_bars_and_truncation() {
        let mut score = Score::new(vec![n(60, 0, 20), n(62, 40, 60)], 80);
        assert_eq!(score.silent_bars(), vec![4]);
        score.truncate(48);
        assert_eq!(score.steps, 48);
        assert_eq!(score.notes.last().map(Note::key), Some((62, 40, 48)));
        assert_eq!(score.bars(), 3);
    }

    #[test]
    fn onset_f1_counts_shared_onsets() {
        let a = Score::new(vec![n(60, 0, 4), n(62, 4, 8)], 16);
        let b = Score::new(vec![n(60, 0, 2), n(64, 4, 8)], 16);
        assert_eq!(a.onset_f1(&a), 1.0);
        assert_eq!(a.onset_f1(&b), 0.5);
    }
}
