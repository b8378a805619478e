//! The classifier two-sample test on musical features rather than pixels: a logistic
//! regression on what a listener or a music-analysis toolkit measures in a window (which
//! intervals sound together on the beats, how the top and bottom lines move, how long and how
//! many the notes are, how many voices sound). The convolutional critic in [`super::c2st`]
//! learns from few windows slowly; these features make a dissonant or too-thin texture
//! plain from a few dozen windows, as the outside evaluators that judge the model do.

use super::c2st::{C2st, C2stConfig, Grouped, cross_validate};
use super::{features, statistics};
use crate::roll::{Roll, STEPS_PER_BEAT};

/// Steps between the sonorities whose intervals are counted: every eighth note.
const SONORITY_EVERY: usize = STEPS_PER_BEAT / 2;
/// Bins of a melodic line's steps in semitones: 0 to 7 apiece, 8-12, more.
const MOTION_BINS: usize = 10;

/// The feature vector of one window: [`features`] and [`statistics`], the interval classes
/// between the notes sounding together, how often 0 … 5+ notes sound, the top and bottom
/// lines' motion and the pitch range.
pub fn window_features(roll: &Roll) -> Vec<f64> {
    let mut out: Vec<f64> = features(roll).into_iter().flatten().collect();
    out.extend(statistics(roll));
    let steps = roll.steps();
    let sounding: Vec<Vec<u8>> = (0..steps)
        .map(|t| {
            (0..crate::roll::PITCHES)
                .filter(|&p| roll.sustain(p, t))
                .map(|p| p as u8)
                .collect()
        })
        .collect();
    let mut intervals = [0.0f64; 12];
    for chord in sounding.iter().step_by(SONORITY_EVERY) {
        for (i, a) in chord.iter().enumerate() {
            for b in &chord[i + 1..] {
                intervals[usize::from(b - a) % 12] += 1.0;
            }
        }
    }
    out.extend(shares(&intervals));
    let mut voices = [0.0f64; 6];
    for chord in &sounding {
        voices[chord.len().min(5)] += 1.0;
    }
    out.extend(shares(&voices));
    for line in [
        sounding
            .iter()
            .filter_map(|c| c.last().copied())
            .collect::<Vec<_>>(),
        sounding.iter().filter_map(|c| c.first().copied()).collect(),
    ] {
        let mut motion = [0.0f64; MOTION_BINS];
        let mut previous: Option<u8> = None;
        for &p in &line {
            if let Some(q) = previous
                && q != p
            {
                let step = usize::from(p.abs_diff(q));
                motion[match step {
                    0..=7 => step,
                    8..=12 => 8,
                    _ => 9,
                }] += 1.0;
            }
            previous = Some(p);
        }
        out.extend(shares(&motion));
    }
    let pitches: Vec<f64> = roll.notes().iter().map(|n| f64::from(n.pitch)).collect();
    let (low, high) = pitches
        .iter()
        .fold((f64::MAX, f64::MIN), |(l, h), &p| (l.min(p), h.max(p)));
    out.push(if pitches.is_empty() { 0.0 } else { high - low });
    out
}

fn shares(counts: &[f64]) -> Vec<f64> {
    let total: f64 = counts.iter().sum();
    counts
        .iter()
        .map(|c| if total > 0.0 { c / total } else { 0.0 })
        .collect()
}

/// Full-batch gradient steps of the logistic regression and its L2 weight: the features are
/// standardised, so one setting serves every pair of sets.
const STEPS: usize = 400;
const RATE: f64 = 0.5;
const L2: f64 = 1e-2;

/// How well a logistic regression on [`window_features`] tells `first` from `second` on
/// held-out groups (the same folds as [`super::c2st::c2st`]).
pub fn feature_c2st(first: &[Grouped], second: &[Grouped], config: &C2stConfig) -> C2st {
    // Every window's features once, not once per fold it is trained or tested in.
    let features = |set: &[Grouped]| -> Vec<(Vec<f64>, usize)> {
        set.iter().map(|(r, g)| (window_features(r), *g)).collect()
    };
    let (first, second) = (features(first), features(second));
    fn items(set: &[(Vec<f64>, usize)]) -> Vec<(&[f64], usize)> {
        set.iter().map(|(f, g)| (f.as_slice(), *g)).collect()
    }
    cross_validate(
        &items(&first),
        &items(&second),
        config,
        |train, test, _seed| {
            let x: Vec<&[f64]> = train.iter().map(|(f, _)| *f).collect();
            let y: Vec<f64> = train.iter().map(|(_, l)| f64::from(*l)).collect();
            let model = Logistic::fit(&x, &y);
            let correct = test
                .iter()
                .filter(|(f, l)| (model.logit(f) > 0.0) == (*l > 0.5))
                .count();
            correct as f64 / test.len().max(1) as f64
        },
    )
}

struct Logistic {
    mean: Vec<f64>,
    scale: Vec<f64>,
    weights: Vec<f64>,
    bias: f64,
}

impl Logistic {
    fn fit(x: &[&[f64]], y: &[f64]) -> Logistic {
        let d = x.first().map_or(0, |row| row.len());
        let n = x.len().max(1) as f64;
        let mean: Vec<f64> = (0..d)
            .map(|j| x.iter().map(|row| row[j]).sum::<f64>() / n)
            .collect();
        let scale: Vec<f64> = (0..d)
            .map(|j| {
                let var = x.iter().map(|row| (row[j] - mean[j]).powi(2)).sum::<f64>() / n;
                // A feature constant in the training set carries nothing: weight it 0.
                if var > 1e-12 { 1.0 / var.sqrt() } else { 0.0 }
            })
            .collect();
        let z: Vec<Vec<f64>> = x
            .iter()
            .map(|row| (0..d).map(|j| (row[j] - mean[j]) * scale[j]).collect())
            .collect();
        let (mut weights, mut bias) = (vec![0.0; d], 0.0);
        for _ in 0..STEPS {
            let mut grad = vec![0.0; d];
            let mut grad_bias = 0.0;
            for (row, &label) in z.iter().zip(y) {
                let p = sigmoid(dot(&weights, row) + bias);
                let e = p - label;
                grad.iter_mut().zip(row).for_each(|(g, v)| *g += e * v);
                grad_bias += e;
            }
            for (w, g) in weights.iter_mut().zip(&grad) {
                *w -= RATE * (g / n + L2 * *w);
            }
            bias -= RATE * grad_bias / n;
        }
        Logistic {
            mean,
            scale,
            weights,
            bias,
        }
    }

    fn logit(&self, features: &[f64]) -> f64 {
        let z: Vec<f64> = features
            .iter()
            .zip(&self.mean)
            .zip(&self.scale)
            .map(|((v, m), s)| (v - m) * s)
            .collect();
        dot(&self.weights, &z) + self.bias
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::roll::{Note, WINDOW_STEPS};
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Four-voice block chords on every beat: triads (with the root doubled) or, with
    /// `clashing`, the same voicing with the third and fifth a semitone off.
    fn chorales(clashing: bool, count: usize, seed: u64) -> Vec<Roll> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..count)
            .map(|_| {
                let mut notes = Vec::new();
                for beat in 0..(WINDOW_STEPS / STEPS_PER_BEAT) as u32 {
                    let root = rng.random_range(48..60u8);
                    let voicing: [u8; 4] = if clashing {
                        [0, 12, 15, 20]
                    } else {
                        [0, 12, 16, 19]
                    };
                    let t = beat * STEPS_PER_BEAT as u32;
                    for d in voicing {
                        notes.push(Note::new(root + d, t, t + STEPS_PER_BEAT as u32, 80));
                    }
                }
                Roll::from_notes(&notes, WINDOW_STEPS)
            })
            .collect()
    }

    fn grouped(rolls: &[Roll]) -> Vec<Grouped<'_>> {
        rolls.iter().enumerate().map(|(i, r)| (r, i)).collect()
    }

    #[test]
    fn dissonant_voicings_are_told_from_consonant_ones_but_alike_sets_are_not() {
        let config = C2stConfig::new();
        let triads = chorales(false, 40, 1);
        let more = chorales(false, 40, 2);
        let clashes = chorales(true, 40, 3);
        let apart = feature_c2st(&grouped(&triads), &grouped(&clashes), &config);
        assert!(apart.accuracy > 0.95, "{apart:?}");
        let alike = feature_c2st(&grouped(&triads), &grouped(&more), &config);
        assert!(alike.accuracy < 0.7, "{alike:?}");
    }

    #[test]
    fn features_count_the_intervals_voices_and_lines() {
        let roll = &chorales(false, 1, 4)[0];
        let f = window_features(roll);
        assert_eq!(f.len(), window_features(&Roll::new(WINDOW_STEPS)).len());
        assert!(f.iter().all(|v| v.is_finite()));
        // The last feature is the range: root to fifth an octave up, roots moving within 11.
        let range = *f.last().unwrap();
        assert!((19.0..=30.0).contains(&range), "{range}");
        // Four voices sound at every step: the share of steps with 4 notes is 1.
        let voices_at = f.len() - 1 - 2 * MOTION_BINS - 6;
        assert_eq!(
            &f[voices_at..voices_at + 6],
            &[0.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        );
    }
}
