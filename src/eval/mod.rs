//! Music quality metrics (../shared/design/EVALUATION.md): per-sample features compared set
//! to set with the overlapping area of kernel density estimates (as in Yang & Lerch's
//! MGEval), per-sample musical statistics (muspy's definitions), and validity rates. Pure
//! functions of rolls; the CLI's `eval` command gathers the sets.

pub mod c2st;
pub mod feature_c2st;
mod framewise;
mod memorization;

pub use framewise::self_similarity;
pub use memorization::OnsetIndex;

use crate::roll::{MAJOR_SCALE, Roll, STEPS_PER_BAR, STEPS_PER_BEAT};

/// Bins of note lengths and inter-onset intervals, in sixteenth steps (upper bounds).
const LENGTH_BINS: [u32; 9] = [1, 2, 3, 4, 6, 8, 12, 16, u32::MAX];

/// The set-level features compared with overlapping area.
pub const FEATURES: [&str; 6] = [
    "pitch",
    "pitch_class_histogram",
    "note_duration",
    "inter_onset_interval",
    "polyphony",
    "notes_per_bar",
];

/// Per-sample statistics averaged over a set.
pub const STATISTICS: [&str; 5] = [
    "pitch_class_entropy",
    "scale_consistency",
    "polyphony",
    "empty_beat_rate",
    "groove_consistency",
];

fn length_histogram(values: impl Iterator<Item = u32>) -> Vec<f64> {
    let mut h = vec![0.0; LENGTH_BINS.len()];
    let mut n = 0.0;
    for v in values {
        let bin = LENGTH_BINS
            .iter()
            .position(|&b| v <= b)
            .unwrap_or(LENGTH_BINS.len() - 1);
        h[bin] += 1.0;
        n += 1.0;
    }
    if n > 0.0 {
        h.iter_mut().for_each(|x| *x /= n);
    }
    h
}

/// The feature vectors of one sample, in [`FEATURES`] order.
pub fn features(roll: &Roll) -> Vec<Vec<f64>> {
    let notes = roll.notes();
    let n = notes.len().max(1) as f64;
    let mean_pitch = notes.iter().map(|x| f64::from(x.pitch)).sum::<f64>() / n;
    let mut pch = vec![0.0; 12];
    for note in &notes {
        pch[note.pitch as usize % 12] += 1.0 / n;
    }
    let durations = length_histogram(notes.iter().map(|x| x.len()));
    let mut onsets: Vec<u32> = notes.iter().map(|x| x.start).collect();
    onsets.dedup();
    let iois = length_histogram(onsets.windows(2).map(|w| w[1] - w[0]));
    let polyphony = roll.polyphony();
    let bars = roll.steps().div_ceil(STEPS_PER_BAR).max(1) as f64;
    vec![
        vec![mean_pitch],
        pch,
        durations,
        iois,
        vec![polyphony],
        vec![notes.len() as f64 / bars],
    ]
}

/// The statistics of one sample, in [`STATISTICS`] order.
pub fn statistics(roll: &Roll) -> Vec<f64> {
    let notes = roll.notes();
    let mut counts = [0.0f64; 12];
    for note in &notes {
        counts[note.pitch as usize % 12] += 1.0;
    }
    let total: f64 = counts.iter().sum();
    let entropy = if total > 0.0 {
        -counts
            .iter()
            .filter(|&&c| c > 0.0)
            .map(|&c| (c / total) * (c / total).log2())
            .sum::<f64>()
    } else {
        0.0
    };
    // Major scales; natural minors share their pitch sets.
    let scale = (0..12)
        .map(|root| {
            MAJOR_SCALE
                .iter()
                .map(|&d| counts[(root + d) % 12])
                .sum::<f64>()
        })
        .fold(0.0, f64::max)
        / total.max(1.0);
    let per_step = roll.sounding_per_step();
    let polyphony = crate::roll::polyphony(&per_step);
    let beats = roll.steps().div_ceil(STEPS_PER_BEAT).max(1);
    let empty_beats = (0..beats)
        .filter(|b| {
            per_step[b * STEPS_PER_BEAT..((b + 1) * STEPS_PER_BEAT).min(per_step.len())]
                .iter()
                .all(|&c| c == 0)
        })
        .count();
    let bars = roll.steps() / STEPS_PER_BAR;
    let pattern = |bar: usize| -> Vec<bool> {
        (0..STEPS_PER_BAR)
            .map(|s| (0..128).any(|p| roll.onset(p, bar * STEPS_PER_BAR + s)))
            .collect()
    };
    let groove = if bars >= 2 {
        let mut distance = 0usize;
        let mut previous = pattern(0);
        for bar in 1..bars {
            let current = pattern(bar);
            distance += previous
                .iter()
                .zip(&current)
                .filter(|(a, b)| a != b)
                .count();
            previous = current;
        }
        1.0 - distance as f64 / (STEPS_PER_BAR * (bars - 1)) as f64
    } else {
        1.0
    };
    vec![
        entropy,
        scale,
        polyphony,
        empty_beats as f64 / beats as f64,
        groove,
    ]
}

fn distance(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).powi(2))
        .sum::<f64>()
        .sqrt()
}

/// Scott's rule bandwidth of `values`.
fn scott_bandwidth(values: &[f64]) -> f64 {
    let n = values.len().max(1) as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    var.sqrt() * n.powf(-0.2)
}

/// Gaussian kernel density of `values` on `grid` with bandwidth `h`.
fn kde(values: &[f64], grid: &[f64], h: f64) -> Vec<f64> {
    let n = values.len().max(1) as f64;
    let norm = 1.0 / (n * h * (2.0 * std::f64::consts::PI).sqrt());
    grid.iter()
        .map(|&g| {
            values
                .iter()
                .map(|&v| (-0.5 * ((g - v) / h).powi(2)).exp())
                .sum::<f64>()
                * norm
        })
        .collect()
}

/// Overlapping area of two densities estimated from samples: 1 for identical
/// distributions, 0 for disjoint ones.
pub fn overlapping_area(a: &[f64], b: &[f64]) -> f64 {
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let lo = a.iter().chain(b).copied().fold(f64::INFINITY, f64::min);
    let hi = a.iter().chain(b).copied().fold(f64::NEG_INFINITY, f64::max);
    if hi - lo < 1e-12 {
        return 1.0;
    }
    // Wide enough that the kernels' tails stay on the grid.
    let pad = 0.5 * (hi - lo);
    let points = 512;
    let step = (hi - lo + 2.0 * pad) / (points - 1) as f64;
    let grid: Vec<f64> = (0..points).map(|i| lo - pad + i as f64 * step).collect();
    // A set of identical values (monophonic folk: every polyphony distance is 0) has no
    // spread, so Scott's rule gives it no width: it would fall between grid points and
    // overlap nothing, even a set that is mostly the same value. Such a set borrows the
    // other set's bandwidth (and no kernel is narrower than the grid resolves).
    let min_h = 2.0 * step;
    let (ha, hb) = (scott_bandwidth(a), scott_bandwidth(b));
    let ha = if ha < min_h { hb.max(min_h) } else { ha };
    let hb = if hb < min_h { ha.max(min_h) } else { hb };
    let (pa, pb) = (kde(a, &grid, ha), kde(b, &grid, hb));
    pa.iter().zip(&pb).map(|(x, y)| x.min(*y)).sum::<f64>() * step
}

/// MGEval's comparison of a generated set with a real one for one feature: the overlap of the
/// real set's intra-set distances with the real-to-generated distances.
pub fn feature_oa(real: &[Vec<f64>], generated: &[Vec<f64>]) -> f64 {
    let mut intra = Vec::new();
    for i in 0..real.len() {
        for j in i + 1..real.len() {
            intra.push(distance(&real[i], &real[j]));
        }
    }
    let mut inter = Vec::with_capacity(real.len() * generated.len());
    for r in real {
        for g in generated {
            inter.push(distance(r, g));
        }
    }
    overlapping_area(&intra, &inter)
}

/// Every figure for one set of samples scored against real data.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub samples: usize,
    /// Overlapping area per feature, in [`FEATURES`] order, and their mean.
    pub oa: Vec<f64>,
    pub mean_oa: f64,
    /// Means of [`STATISTICS`] over the set.
    pub statistics: Vec<f64>,
    /// Share of samples that were empty.
    pub empty_rate: f64,
    /// Framewise self-similarity against the real set: (consistency, variance) for pitch,
    /// then for duration; 1 is the real set's own.
    pub self_similarity: [(f64, f64); 2],
}

pub fn score(real: &[Roll], samples: &[Roll]) -> Report {
    let real_f: Vec<Vec<Vec<f64>>> = real.iter().map(features).collect();
    let gen_f: Vec<Vec<Vec<f64>>> = samples.iter().map(features).collect();
    let oa: Vec<f64> = (0..FEATURES.len())
        .map(|k| {
            let r: Vec<Vec<f64>> = real_f.iter().map(|f| f[k].clone()).collect();
            let g: Vec<Vec<f64>> = gen_f.iter().map(|f| f[k].clone()).collect();
            feature_oa(&r, &g)
        })
        .collect();
    let n = samples.len().max(1) as f64;
    let mut statistics = vec![0.0; STATISTICS.len()];
    for s in samples {
        for (acc, v) in statistics.iter_mut().zip(self::statistics(s)) {
            *acc += v / n;
        }
    }
    Report {
        samples: samples.len(),
        mean_oa: oa.iter().sum::<f64>() / oa.len() as f64,
        oa,
        statistics,
        empty_rate: samples.iter().filter(|r| r.is_empty()).count() as f64 / n,
        self_similarity: self_similarity(real, samples),
    }
}

/// What a listener hears first in a set of windows: how consonant its beats are, how busy and
/// how long its notes, how often a beat is silent.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Texture {
    /// Of the beats where two or more pitches sound, the share whose every interval is a
    /// unison, octave, third, fourth, fifth or sixth.
    pub consonant_beats: f64,
    pub notes_per_bar: f64,
    /// In sixteenths.
    pub mean_note_length: f64,
    /// Beats with nothing sounding (`empty_beat_rate` of [`statistics`]), averaged.
    pub empty_beats: f64,
}

/// Intervals (mod 12) counted consonant in [`Texture::consonant_beats`].
const CONSONANT: [u8; 7] = [0, 3, 4, 5, 7, 8, 9];

/// [`Texture`] of a set, pooled over its windows.
pub fn texture(rolls: &[Roll]) -> Texture {
    let (mut sonorities, mut consonant) = (0usize, 0usize);
    let (mut notes, mut length, mut bars, mut empty) = (0usize, 0u64, 0usize, 0.0f64);
    let empty_index = STATISTICS
        .iter()
        .position(|s| *s == "empty_beat_rate")
        .expect("empty_beat_rate is a statistic");
    for roll in rolls {
        let list = roll.notes();
        notes += list.len();
        length += list.iter().map(|n| u64::from(n.end - n.start)).sum::<u64>();
        bars += roll.steps() / STEPS_PER_BAR;
        empty += statistics(roll)[empty_index];
        for beat in (0..roll.steps() as u32).step_by(STEPS_PER_BEAT) {
            let mut pitches: Vec<u8> = list
                .iter()
                .filter(|n| n.start <= beat && beat < n.end)
                .map(|n| n.pitch)
                .collect();
            pitches.sort_unstable();
            pitches.dedup();
            if pitches.len() < 2 {
                continue;
            }
            sonorities += 1;
            let all_consonant = pitches.iter().enumerate().all(|(i, a)| {
                pitches[i + 1..]
                    .iter()
                    .all(|b| CONSONANT.contains(&((b - a) % 12)))
            });
            consonant += usize::from(all_consonant);
        }
    }
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    Texture {
        consonant_beats: ratio(consonant as f64, sonorities as f64),
        notes_per_bar: ratio(notes as f64, bars as f64),
        mean_note_length: ratio(length as f64, notes as f64),
        empty_beats: ratio(empty, rolls.len() as f64),
    }
}

/// Random notes with the note count of each real window: the baseline any metric worth
/// reporting must tell apart from music.
pub fn random_baseline(real: &[Roll], rng: &mut impl rand::Rng) -> Vec<Roll> {
    use rand::RngExt;
    real.iter()
        .map(|r| {
            let steps = r.steps() as u32;
            let notes: Vec<crate::roll::Note> = (0..r.note_count())
                .map(|_| {
                    let start = rng.random_range(0..steps);
                    let len = rng.random_range(1..=8u32);
                    crate::roll::Note::new(
                        rng.random_range(36..=96u8),
                        start,
                        (start + len).min(steps),
                        80,
                    )
                })
                .collect();
            Roll::from_notes(&notes, r.steps())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::roll::Note;

    #[test]
    fn overlapping_area_separates_distributions() {
        let a: Vec<f64> = (0..200).map(|i| (i as f64 * 0.37).sin()).collect();
        assert!(overlapping_area(&a, &a) > 0.999);
        let far: Vec<f64> = a.iter().map(|x| x + 10.0).collect();
        assert!(overlapping_area(&a, &far) < 0.01);
        let near: Vec<f64> = a.iter().map(|x| x + 0.3).collect();
        let oa = overlapping_area(&a, &near);
        assert!(oa > 0.5 && oa < 0.95, "{oa}");
    }

    #[test]
    fn overlapping_area_of_a_point_mass() {
        let zeros = vec![0.0; 50];
        let half: Vec<f64> = (0..50).map(|i| f64::from(i % 2)).collect();
        let oa = overlapping_area(&zeros, &half);
        assert!((oa - 0.5).abs() < 0.05, "{oa}");
        let nearly: Vec<f64> = (0..50).map(|i| if i == 0 { 1.0 } else { 0.0 }).collect();
        assert!(overlapping_area(&zeros, &nearly) > 0.95);
    }

    #[test]
    fn texture_of_triads_clusters_and_rests() {
        let steps = 2 * STEPS_PER_BAR as u32;
        // Bar 1: a C major triad in quarters; bar 2: silent but for one cluster on beat 1.
        let mut notes = Vec::new();
        for beat in 0..4u32 {
            for p in [60, 64, 67] {
                notes.push(Note::new(p, beat * 4, beat * 4 + 4, 80));
            }
        }
        for p in [60, 61, 62] {
            notes.push(Note::new(p, 16, 18, 80));
        }
        let t = texture(&[Roll::from_notes(&notes, steps as usize)]);
        assert_eq!(t.consonant_beats, 4.0 / 5.0);
        assert_eq!(t.notes_per_bar, 15.0 / 2.0);
        assert_eq!(t.mean_note_length, (12.0 * 4.0 + 3.0 * 2.0) / 15.0);
        assert_eq!(t.empty_beats, 3.0 / 8.0);
    }

    #[test]
    fn statistics_of_a_c_major_scale() {
        // Eight quarter notes up the C major scale, two bars, one voice.
        let notes: Vec<Note> = [60, 62, 64, 65, 67, 69, 71, 72]
            .iter()
            .enumerate()
            .map(|(i, &p)| Note::new(p, i as u32 * 4, i as u32 * 4 + 4, 80))
            .collect();
        let roll = Roll::from_notes(&notes, 32);
        let s = statistics(&roll);
        assert!(
            (s[0] - (-(6.0 * (1.0 / 8.0) * (1.0f64 / 8.0).log2() + 0.25 * 0.25f64.log2()))).abs()
                < 1e-9
        );
        assert_eq!(s[1], 1.0, "all in C major");
        assert_eq!(s[2], 1.0, "one voice");
        assert_eq!(s[3], 0.0, "no empty beat");
        assert_eq!(s[4], 1.0, "same onset pattern in both bars");
        let f = features(&roll);
        assert_eq!(f[5], vec![4.0]);
        assert_eq!(f[2][3], 1.0, "every note four steps long");
    }

    #[test]
    fn real_music_beats_random_notes() {
        let (set, _) = crate::train::dataset::WindowSet::scan(
            std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/midi")),
            1,
        )
        .unwrap();
        let windows: Vec<Roll> = set.fixed(20).into_iter().map(|(r, _)| r).collect();
        // Two halves of real music, compared with each other and with random notes.
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for (i, w) in windows.into_iter().enumerate() {
            if i % 2 == 0 { a.push(w) } else { b.push(w) }
        }
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(1);
        let real = score(&a, &b);
        let random = score(&a, &random_baseline(&b, &mut rng));
        assert!(
            real.mean_oa > random.mean_oa + 0.1,
            "{real:?} vs {random:?}"
        );
        assert!(real.statistics[1] > random.statistics[1]);
    }
}
