//! Copy detection: for a generated roll, the best onset F1 against every 8-bar window of the
//! training corpus (a sample "copies" when it exceeds 0.8).

use crate::roll::{Note, Roll, WINDOW_STEPS};

/// Onsets of one training piece as one bitset per pitch over its steps.
struct PieceOnsets {
    rows: Vec<(u8, Vec<u64>)>,
    /// Onsets per step (all pitches), for each window's onset count.
    per_step: Vec<u32>,
    starts: Vec<usize>,
}

/// Every training window's onsets, for nearest-neighbour queries.
pub struct OnsetIndex {
    pieces: Vec<PieceOnsets>,
}

fn bits(row: &[u64], start: usize) -> u128 {
    // 128 bits of `row` from bit `start` on.
    let word = start / 64;
    let shift = start % 64;
    let get = |i: usize| u128::from(row.get(i).copied().unwrap_or(0));
    let lo = get(word) | (get(word + 1) << 64);
    let hi = get(word + 2);
    if shift == 0 {
        lo
    } else {
        (lo >> shift) | (hi << (128 - shift))
    }
}

impl OnsetIndex {
    /// `pieces`: each piece's notes and the start steps of its windows.
    pub fn new<'a>(pieces: impl IntoIterator<Item = (&'a [Note], &'a [usize])>) -> OnsetIndex {
        let pieces = pieces
            .into_iter()
            .map(|(notes, starts)| {
                let steps = notes.iter().map(|n| n.end as usize).max().unwrap_or(0);
                let words = steps.div_ceil(64) + 3;
                let mut rows: Vec<(u8, Vec<u64>)> = Vec::new();
                let mut per_step = vec![0u32; steps + 1];
                for n in notes {
                    let row = match rows.iter_mut().find(|(p, _)| *p == n.pitch) {
                        Some((_, r)) => r,
                        None => {
                            rows.push((n.pitch, vec![0; words]));
                            &mut rows.last_mut().expect("just pushed").1
                        }
                    };
                    let t = n.start as usize;
                    if row[t / 64] & (1 << (t % 64)) == 0 {
                        row[t / 64] |= 1 << (t % 64);
                        per_step[t] += 1;
                    }
                }
                PieceOnsets {
                    rows,
                    per_step,
                    starts: starts.to_vec(),
                }
            })
            .collect();
        OnsetIndex { pieces }
    }

    /// The highest onset F1 between `roll` (one window) and any indexed window.
    pub fn nearest_f1(&self, roll: &Roll) -> f64 {
        let sample: Vec<(u8, u128)> = (0..128u8)
            .filter_map(|p| {
                let mut row = 0u128;
                for t in 0..roll.steps().min(WINDOW_STEPS) {
                    if roll.onset(p as usize, t) {
                        row |= 1 << t;
                    }
                }
                (row != 0).then_some((p, row))
            })
            .collect();
        let total: u32 = sample.iter().map(|(_, r)| r.count_ones()).sum();
        if total == 0 {
            return 0.0;
        }
        let mut best = 0.0f64;
        for piece in &self.pieces {
            let rows: Vec<(&[u64], u128)> = sample
                .iter()
                .filter_map(|(p, r)| {
                    piece
                        .rows
                        .iter()
                        .find(|(q, _)| q == p)
                        .map(|(_, bits)| (bits.as_slice(), *r))
                })
                .collect();
            for &start in &piece.starts {
                let common: u32 = rows
                    .iter()
                    .map(|(row, r)| (bits(row, start) & r).count_ones())
                    .sum();
                if common == 0 {
                    continue;
                }
                let end = (start + WINDOW_STEPS).min(piece.per_step.len());
                let window: u32 = piece.per_step[start.min(end)..end].iter().sum();
                best = best.max(2.0 * f64::from(common) / f64::from(total + window));
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_copied_window_and_not_a_shifted_one() {
        let notes: Vec<Note> = (0..64)
            .map(|i| Note::new(60 + (i % 7) as u8, i * 3, i * 3 + 2, 80))
            .collect();
        let starts: Vec<usize> = (0..=64).step_by(16).collect();
        let index = OnsetIndex::new([(notes.as_slice(), starts.as_slice())]);
        let copy = crate::train::dataset::window_roll(&notes, 32, 0);
        assert!((index.nearest_f1(&copy) - 1.0).abs() < 1e-12);
        let up = crate::train::dataset::window_roll(&notes, 32, 1);
        assert!(index.nearest_f1(&up) < 0.3);
        assert_eq!(index.nearest_f1(&Roll::new(128)), 0.0);
    }
}
