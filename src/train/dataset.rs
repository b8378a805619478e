//! Training windows: every 8-bar window of a scanned corpus, drawn at random with its style
//! label and a random transposition, as roll tensors.

use std::path::Path;

use rand::{Rng, RngExt};

use super::corpus::{self, Corpus};
use super::run::TrainError;
use crate::roll::{KeyProfile, Note, Roll, STEPS_PER_BAR, Style, WINDOW_STEPS};

/// Semitones a window may be transposed by (−6…+5 covers every key once).
pub const TRANSPOSE: std::ops::RangeInclusive<i32> = crate::roll::SHIFTS;

/// Windows per style (evenly spread) that a key profile is measured on.
pub const KEY_PROFILE_WINDOWS: usize = 4000;

/// One window: which piece, where it starts.
#[derive(Debug, Clone, Copy)]
struct Window {
    piece: usize,
    start: u32,
}

/// The windows of a corpus, grouped by style for balanced drawing.
pub struct WindowSet {
    /// Notes of each piece, sorted by start.
    pieces: Vec<Vec<Note>>,
    /// Windows per style label (index = [`Style::index`]; unlabelled pieces are left out).
    by_style: Vec<Vec<Window>>,
    /// Probability of drawing each style.
    style_p: Vec<f64>,
}

impl WindowSet {
    /// Scans `dir` (`<dir>/<style>/*.mid`) with windows `hop_bars` apart.
    pub fn scan(dir: &Path, hop_bars: usize) -> std::io::Result<(WindowSet, Corpus)> {
        let corpus = corpus::scan(dir, hop_bars * STEPS_PER_BAR)?;
        Ok((WindowSet::from_corpus(&corpus), corpus))
    }

    /// [`WindowSet::scan`] for training: an unreadable folder or one without labelled
    /// windows is an error that says what a corpus folder must hold.
    pub fn load(dir: &Path, hop_bars: usize) -> Result<(WindowSet, Corpus), TrainError> {
        let (set, corpus) = WindowSet::scan(dir, hop_bars).map_err(|source| TrainError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        if set.is_empty() {
            return Err(TrainError::NoData(dir.to_path_buf()));
        }
        Ok((set, corpus))
    }

    pub fn from_corpus(corpus: &Corpus) -> WindowSet {
        let mut pieces = Vec::new();
        let mut by_style = vec![Vec::new(); Style::ALL.len()];
        for piece in &corpus.pieces {
            let Some(style) = piece.style else { continue };
            let index = pieces.len();
            pieces.push(piece.song.notes.clone());
            by_style[style.index()].extend(piece.windows.iter().map(|&s| Window {
                piece: index,
                start: s as u32,
            }));
        }
        // Styles are drawn in proportion to the square root of their window counts: the big
        // styles still dominate, but 3,000 chorale windows are not drowned by 100,000 of
        // polyphony.
        let weights: Vec<f64> = by_style.iter().map(|w| (w.len() as f64).sqrt()).collect();
        let total: f64 = weights.iter().sum();
        let style_p = weights
            .iter()
            .map(|w| if total > 0.0 { w / total } else { 0.0 })
            .collect();
        WindowSet {
            pieces,
            by_style,
            style_p,
        }
    }

    /// Draws the styles with these shares (one per style in [`Style::ALL`] order, normalised)
    /// instead of by the square root of their window counts. A style without windows is
    /// never drawn whatever its share.
    pub fn with_style_mix(mut self, mix: &[f64]) -> Result<WindowSet, TrainError> {
        let bad = || TrainError::BadStyleMix(mix.to_vec());
        if mix.len() != self.by_style.len() || !mix.iter().all(|w| w.is_finite() && *w >= 0.0) {
            return Err(bad());
        }
        let weights: Vec<f64> = mix
            .iter()
            .zip(&self.by_style)
            .map(|(&w, windows)| if windows.is_empty() { 0.0 } else { w })
            .collect();
        let total: f64 = weights.iter().sum();
        if total <= 0.0 {
            return Err(bad());
        }
        self.style_p = weights.iter().map(|w| w / total).collect();
        Ok(self)
    }

    /// Probability of drawing each style.
    pub fn style_mix(&self) -> &[f64] {
        &self.style_p
    }

    pub fn len(&self) -> usize {
        self.by_style.iter().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Share of windows per style: what the data holds, for drawing styles at generation.
    pub fn style_shares(&self) -> Vec<f32> {
        let total = self.len().max(1) as f32;
        self.by_style
            .iter()
            .map(|w| w.len() as f32 / total)
            .collect()
    }

    pub fn windows_per_style(&self) -> Vec<usize> {
        self.by_style.iter().map(Vec::len).collect()
    }

    fn roll(&self, w: Window, transpose: i32) -> Roll {
        window_roll(&self.pieces[w.piece], w.start, transpose)
    }

    /// A random window with its style, transposed by a random amount from [`TRANSPOSE`].
    pub fn draw(&self, rng: &mut impl Rng) -> (Roll, Style) {
        let mut r = rng.random::<f64>();
        let mut style = 0;
        for (i, p) in self.style_p.iter().enumerate() {
            if r < *p && !self.by_style[i].is_empty() {
                style = i;
                break;
            }
            r -= p;
            style = i;
        }
        while self.by_style[style].is_empty() {
            style = (style + 1) % self.by_style.len();
        }
        let windows = &self.by_style[style];
        let w = windows[rng.random_range(0..windows.len())];
        let transpose = rng.random_range(TRANSPOSE);
        let mut roll = self.roll(w, transpose);
        let style = Style::from_index(style).expect("style index in range");
        roll.style = Some(style);
        (roll, style)
    }

    /// Key and register of each style's windows (up to `per_style` of them, evenly spread,
    /// untransposed), in label order: where generation moves the pieces the model draws in
    /// every key alike.
    pub fn key_profiles(&self, per_style: usize) -> Vec<Option<KeyProfile>> {
        let windows = self.fixed(per_style);
        Style::ALL
            .iter()
            .map(|&style| {
                KeyProfile::measure(
                    windows
                        .iter()
                        .filter(|(_, s)| *s == style)
                        .map(|(roll, _)| roll),
                )
            })
            .collect()
    }

    /// Up to `per_style` windows per style, evenly spread and untransposed: a fixed
    /// validation set.
    pub fn fixed(&self, per_style: usize) -> Vec<(Roll, Style)> {
        self.fixed_with_pieces(per_style)
            .into_iter()
            .map(|(roll, style, _)| (roll, style))
            .collect()
    }

    /// [`WindowSet::fixed`], each window with the index of the piece it comes from (windows of
    /// one piece overlap, so tests that hold data out hold out whole pieces).
    pub fn fixed_with_pieces(&self, per_style: usize) -> Vec<(Roll, Style, usize)> {
        let mut out = Vec::new();
        for (i, windows) in self.by_style.iter().enumerate() {
            let style = Style::from_index(i).expect("style index in range");
            for w in evenly_spread(windows, per_style) {
                let mut roll = self.roll(*w, 0);
                roll.style = Some(style);
                out.push((roll, style, w.piece));
            }
        }
        out
    }
}

/// Up to `most` of `items`, evenly spread over them (all of them when there are no more).
pub fn evenly_spread<T>(items: &[T], most: usize) -> impl Iterator<Item = &T> {
    let n = items.len().min(most);
    (0..n).map(move |k| &items[k * items.len() / n])
}

/// The 8-bar window of `notes` starting at `start`, transposed; notes already sounding at the
/// window's start begin there, notes moved off the keyboard are dropped.
pub fn window_roll(notes: &[Note], start: u32, transpose: i32) -> Roll {
    let end = start + WINDOW_STEPS as u32;
    let mut roll = Roll::new(WINDOW_STEPS);
    for n in notes {
        if n.start >= end {
            break;
        }
        if n.end <= start {
            continue;
        }
        let pitch = i32::from(n.pitch) + transpose;
        if !(0..128).contains(&pitch) {
            continue;
        }
        roll.add_note(Note::new(
            pitch as u8,
            n.start.max(start) - start,
            n.end.min(end) - start,
            n.velocity,
        ));
    }
    roll
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::midi::Song;
    use crate::train::corpus::Piece;
    use rand::SeedableRng;

    fn piece(style: Style, notes: Vec<Note>) -> Piece {
        let steps = notes.iter().map(|n| n.end).max().unwrap_or(0).div_ceil(16) * 16;
        let song = Song {
            note_tracks: vec![0; notes.len()],
            notes,
            steps,
            tempo_bpm: 120.0,
            tempo_changes: vec![],
            time_signatures: vec![],
            program: 0,
            format: 1,
            tracks: 1,
            dropped_drum_notes: 0,
            smpte: false,
        };
        let windows = song.to_roll().window_starts(WINDOW_STEPS, 16);
        Piece {
            path: "x.mid".into(),
            style: Some(style),
            song,
            windows,
        }
    }

    #[test]
    fn windows_match_the_rolls_own_windows() {
        let notes: Vec<Note> = (0..40)
            .map(|i| Note::new(60 + (i % 5) as u8, i * 5, i * 5 + 7, 80))
            .collect();
        let p = piece(Style::Folk, notes.clone());
        let full = p.song.to_roll();
        for &s in &p.windows {
            let mut expected = full.window(s, WINDOW_STEPS);
            expected.tempo_bpm = crate::roll::DEFAULT_TEMPO_BPM;
            let got = window_roll(&notes, s as u32, 0);
            assert_eq!(got.notes(), expected.notes(), "window at {s}");
        }
        let up = window_roll(&notes, 0, 5);
        assert!(up.notes().iter().all(|n| n.pitch >= 65));
    }

    fn folk_and_chorale() -> Corpus {
        Corpus {
            pieces: vec![
                piece(
                    Style::Folk,
                    (0..64)
                        .map(|i| Note::new(70, i * 4, i * 4 + 2, 80))
                        .collect(),
                ),
                piece(
                    Style::Chorale,
                    (0..64)
                        .map(|i| Note::new(50, i * 4, i * 4 + 4, 80))
                        .collect(),
                ),
            ],
            rejected: vec![],
            skipped: 0,
        }
    }

    #[test]
    fn draws_cover_every_style_and_transpose_within_range() {
        let set = WindowSet::from_corpus(&folk_and_chorale());
        assert_eq!(set.windows_per_style()[Style::Folk.index()], 9);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let mut seen = [0; 4];
        for _ in 0..200 {
            let (roll, style) = set.draw(&mut rng);
            seen[style.index()] += 1;
            let (lo, hi) = roll.pitch_range().unwrap();
            let base = if style == Style::Folk { 70 } else { 50 };
            assert_eq!(lo, hi);
            assert!((base - 6..=base + 5).contains(&i32::from(lo)));
        }
        assert!(seen[Style::Folk.index()] > 50 && seen[Style::Chorale.index()] > 50);
        assert_eq!(seen[Style::Polyphony.index()], 0);
        assert_eq!(set.fixed(3).len(), 6);
    }

    #[test]
    fn a_style_mix_sets_the_draws_and_skips_styles_without_windows() {
        let set = WindowSet::from_corpus(&folk_and_chorale())
            .with_style_mix(&[3.0, 5.0, 0.0, 1.0])
            .unwrap();
        // Polyphony has no windows: its share goes to the others, 3 : 1.
        assert_eq!(set.style_mix(), &[0.75, 0.0, 0.0, 0.25]);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
        let mut seen = [0; 4];
        for _ in 0..400 {
            seen[set.draw(&mut rng).1.index()] += 1;
        }
        assert!(
            (260..=340).contains(&seen[Style::Chorale.index()]),
            "{seen:?}"
        );
        assert_eq!(
            seen[Style::Polyphony.index()] + seen[Style::Classical.index()],
            0
        );

        let corpus = folk_and_chorale();
        for bad in [
            &[1.0, 1.0][..],
            &[1.0, 0.0, 0.0, -1.0],
            &[0.0, 1.0, 1.0, 0.0],
        ] {
            assert!(matches!(
                WindowSet::from_corpus(&corpus).with_style_mix(bad),
                Err(TrainError::BadStyleMix(_))
            ));
        }
    }
}
