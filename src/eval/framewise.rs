//! Framewise self-similarity (Mittal et al. 2021, "Symbolic music generation with diffusion
//! models"): a Gaussian fitted to the pitches, and one to the durations, of the notes in each
//! 2-bar frame (1-bar hop); consecutive frames compared by the overlapping area of their
//! Gaussians. A set is summarised by the mean and variance of those areas, and a generated set
//! by how close both come to the real set's ("consistency" and "variance", 1 = identical).

use crate::roll::{Roll, STEPS_PER_BAR};

const FRAME: usize = 2 * STEPS_PER_BAR;
const HOP: usize = STEPS_PER_BAR;

/// A normal distribution as (mean, standard deviation).
type Gaussian = (f64, f64);

/// Overlapping area of two normal densities, integrated numerically.
fn gaussian_oa((m1, s1): (f64, f64), (m2, s2): (f64, f64)) -> f64 {
    let lo = (m1 - 5.0 * s1).min(m2 - 5.0 * s2);
    let hi = (m1 + 5.0 * s1).max(m2 + 5.0 * s2);
    let n = 1000;
    let dx = (hi - lo) / n as f64;
    let pdf = |x: f64, m: f64, s: f64| {
        (-0.5 * ((x - m) / s).powi(2)).exp() / (s * (2.0 * std::f64::consts::PI).sqrt())
    };
    (0..n)
        .map(|i| {
            let x = lo + (i as f64 + 0.5) * dx;
            pdf(x, m1, s1).min(pdf(x, m2, s2))
        })
        .sum::<f64>()
        * dx
}

/// Mean and standard deviation (at least `floor`) of `values`.
fn fit(values: &[f64], floor: f64) -> Option<(f64, f64)> {
    if values.is_empty() {
        return None;
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    Some((mean, var.sqrt().max(floor)))
}

/// Overlapping areas of consecutive frames of one roll: (pitch, duration) lists.
pub fn frame_overlaps(roll: &Roll) -> (Vec<f64>, Vec<f64>) {
    let notes = roll.notes();
    let frames: Vec<(Option<Gaussian>, Option<Gaussian>)> = (0..)
        .map(|k| k * HOP)
        .take_while(|&start| start + FRAME <= roll.steps())
        .map(|start| {
            let inside: Vec<_> = notes
                .iter()
                .filter(|n| (n.start as usize) >= start && (n.start as usize) < start + FRAME)
                .collect();
            let pitches: Vec<f64> = inside.iter().map(|n| f64::from(n.pitch)).collect();
            let lengths: Vec<f64> = inside.iter().map(|n| f64::from(n.len())).collect();
            // Floors keep one repeated pitch or length from becoming a spike.
            (fit(&pitches, 0.5), fit(&lengths, 0.25))
        })
        .collect();
    let mut pitch = Vec::new();
    let mut duration = Vec::new();
    for w in frames.windows(2) {
        if let (Some(a), Some(b)) = (w[0].0, w[1].0) {
            pitch.push(gaussian_oa(a, b));
        }
        if let (Some(a), Some(b)) = (w[0].1, w[1].1) {
            duration.push(gaussian_oa(a, b));
        }
    }
    (pitch, duration)
}

fn mean_var(values: &[f64]) -> (f64, f64) {
    let n = values.len().max(1) as f64;
    let mean = values.iter().sum::<f64>() / n;
    (
        mean,
        values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n,
    )
}

/// Consistency and variance of `generated` against `real`, for pitch then duration.
pub fn self_similarity(real: &[Roll], generated: &[Roll]) -> [(f64, f64); 2] {
    let collect = |rolls: &[Roll]| {
        let (mut p, mut d) = (Vec::new(), Vec::new());
        for r in rolls {
            let (a, b) = frame_overlaps(r);
            p.extend(a);
            d.extend(b);
        }
        [p, d]
    };
    let (r, g) = (collect(real), collect(generated));
    let score = |real: &[f64], generated: &[f64]| {
        let ((rm, rv), (gm, gv)) = (mean_var(real), mean_var(generated));
        (
            1.0 - (gm - rm).abs() / rm.max(1e-9),
            1.0 - (gv - rv).abs() / rv.max(1e-9),
        )
    };
    [score(&r[0], &g[0]), score(&r[1], &g[1])]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::roll::Note;

    #[test]
    fn gaussian_overlap_closed_cases() {
        assert!((gaussian_oa((0.0, 1.0), (0.0, 1.0)) - 1.0).abs() < 1e-3);
        // Two unit normals one standard deviation apart overlap by 2Φ(−½) ≈ 0.617.
        assert!((gaussian_oa((0.0, 1.0), (1.0, 1.0)) - 0.617).abs() < 1e-3);
        assert!(gaussian_oa((0.0, 1.0), (20.0, 1.0)) < 1e-6);
    }

    #[test]
    fn a_repeating_roll_is_self_similar() {
        let notes: Vec<Note> = (0..32)
            .map(|i| Note::new(60 + (i % 4) as u8 * 2, i * 4, i * 4 + 4, 80))
            .collect();
        let roll = Roll::from_notes(&notes, 128);
        let (pitch, duration) = frame_overlaps(&roll);
        assert_eq!(pitch.len(), 6);
        assert!(pitch.iter().chain(&duration).all(|&oa| oa > 0.99));
        let one = std::slice::from_ref(&roll);
        let same = self_similarity(one, one);
        assert!(
            same.iter()
                .all(|&(c, v)| (c - 1.0).abs() < 1e-9 && (v - 1.0).abs() < 1e-9)
        );
    }
}
