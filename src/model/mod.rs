//! Latent diffusion over piano rolls: the [`Autoencoder`] (roll ⇄ latent), the denoising
//! [`UNet`], the noise [`Schedule`], the samplers, and the [`Pipeline`] that CLI and GUI call to
//! generate. Models live in folders with a `model.json` card ([`ModelCard`]) beside their
//! weights. This module touches neither UI nor audio.

mod autoencoder;
pub mod catalog;
mod guidance;
mod latent;
mod layers;
mod pipeline;
pub mod sampler;
pub mod schedule;
mod store;
mod unet;
pub mod validity;

pub use autoencoder::{Autoencoder, AutoencoderConfig};
pub use guidance::{BadGuidance, Guidance};
pub use latent::LatentNorm;
pub use pipeline::{GenerateRequest, Generated, KeyChoice, Pipeline, StepEvent, normal};
pub use sampler::{Cancelled, Restart, SamplerKind};
pub use schedule::Schedule;
pub use store::{
    AUTOENCODER_FILE, CARD_FILE, Defaults, ModelCard, ModelError, UNET_FILE, load_weights,
    load_weights_bytes, save_weights, weights_to_bytes,
};
pub use unet::{UNet, UNetConfig};
pub use validity::Refine;

use burn::tensor::{Device, Tensor, TensorData};

use crate::roll::{Mending, PITCHES, Roll, Validity, WINDOW_STEPS};

/// Rolls as a batch [B, 2, 128, 128] of 0/1 values (each roll must be one window long).
pub fn rolls_to_tensor(rolls: &[&Roll], device: &Device) -> Tensor<4> {
    let mut data = Vec::with_capacity(rolls.len() * 2 * PITCHES * WINDOW_STEPS);
    for roll in rolls {
        assert_eq!(roll.steps(), WINDOW_STEPS, "model windows are 8 bars");
        data.extend(roll.to_planes());
    }
    Tensor::from_data(
        TensorData::new(data, [rolls.len(), 2, PITCHES, WINDOW_STEPS]),
        device,
    )
}

/// Decoder logits [B, 2, 128, 128] to rolls: an onset or sustain cell is set where its logit
/// exceeds that plane's threshold (0 = probability ½), then the roll is mended as `mending`
/// says; each roll comes with what the decoder got wrong (counted before any of it was mended).
/// `thresholds` holds (onset, sustain) for each sample, or one pair for all; `single_line`
/// says, for each sample or for all, whether it is decoded as one melodic line
/// ([`keep_single_line`]).
pub fn logits_to_rolls(
    logits: Tensor<4>,
    thresholds: &[[f32; 2]],
    single_line: &[bool],
    mending: Mending,
) -> Vec<(Roll, Validity)> {
    let [b, _, p, t] = logits.dims();
    let values: Vec<f32> = logits
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .expect("converted to f32");
    let per = 2 * p * t;
    (0..b)
        .map(|i| {
            let planes = &values[i * per..(i + 1) * per];
            let thresholds = one_of(thresholds, b, i);
            // Shift the sustain plane so one threshold of 0 applies to both.
            let mut shifted: Vec<f32> = planes
                .iter()
                .enumerate()
                .map(|(j, &v)| v - thresholds[usize::from(j >= p * t)])
                .collect();
            let line = one_of(single_line, b, i);
            if line {
                keep_single_line(&mut shifted, p, t);
            }
            let mut roll = Roll::from_planes(&shifted, t, 0.0);
            let fixed = roll.mend(mending);
            if line {
                roll.end_notes_at_onsets();
            }
            (roll, fixed)
        })
        .collect()
}

/// Sample `i`'s setting in a batch of `b` (its decoding thresholds, or whether it is one
/// line), from one value for all or one each.
fn one_of<T: Copy>(values: &[T], b: usize, i: usize) -> T {
    match values {
        [one] => *one,
        each => {
            assert_eq!(each.len(), b, "one value for all {b} samples or one each");
            each[i]
        }
    }
}

/// Reduces thresholded decoder planes ([2, `pitches`, `steps`], above 0 = set) to one
/// melodic line, the texture of a style whose music is mostly one voice (folk tunes: 76 % of
/// the corpus's folk training windows never sound two notes at once). An undertrained UNet hedges on
/// pitch in such a tune, so the decoder draws two neighbouring candidates at once, or a note
/// and its octave, each weaker than a real note: thresholds alone keep both or lose both.
/// At each step the strongest onset starts the line's note, which then sounds while its
/// sustain is set; sound of any other pitch, and sound without an onset, is cleared.
pub fn keep_single_line(planes: &mut [f32], pitches: usize, steps: usize) {
    let n = pitches * steps;
    assert_eq!(planes.len(), 2 * n, "planes must be [2, pitches, steps]");
    let (onset, sustain) = planes.split_at_mut(n);
    let mut line = vec![None; steps];
    let mut current: Option<usize> = None;
    for (t, slot) in line.iter_mut().enumerate() {
        let struck = (0..pitches)
            .map(|p| (p, onset[p * steps + t]))
            .filter(|&(_, v)| v > 0.0)
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(p, _)| p);
        current = match struck {
            Some(p) => Some(p),
            None => current.filter(|&p| sustain[p * steps + t] > 0.0),
        };
        *slot = current.map(|p| (p, struck.is_some()));
    }
    onset.fill(-1.0);
    sustain.fill(-1.0);
    for (t, slot) in line.into_iter().enumerate() {
        if let Some((p, struck)) = slot {
            sustain[p * steps + t] = 1.0;
            if struck {
                onset[p * steps + t] = 1.0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::keep_single_line;

    /// Planes [2, pitches, steps] with the given (plane, pitch, step, logit) cells; the rest
    /// are off.
    fn planes(pitches: usize, steps: usize, cells: &[(usize, usize, usize, f32)]) -> Vec<f32> {
        let mut v = vec![-1.0; 2 * pitches * steps];
        for &(plane, p, t, logit) in cells {
            v[plane * pitches * steps + p * steps + t] = logit;
        }
        v
    }

    /// The set (pitch, step) cells of one plane.
    fn set(v: &[f32], plane: usize, pitches: usize, steps: usize) -> Vec<(usize, usize)> {
        let mut cells = Vec::new();
        for p in 0..pitches {
            for t in 0..steps {
                if v[plane * pitches * steps + p * steps + t] > 0.0 {
                    cells.push((p, t));
                }
            }
        }
        cells
    }

    #[test]
    fn one_line_keeps_the_strongest_onset_and_its_sound() {
        let (pitches, steps) = (4, 6);
        let mut v = planes(
            pitches,
            steps,
            &[
                // Two candidates struck at once: pitch 2 is the stronger.
                (0, 1, 0, 0.5),
                (0, 2, 0, 2.0),
                (1, 1, 0, 1.0),
                (1, 1, 1, 1.0),
                (1, 2, 0, 1.0),
                (1, 2, 1, 1.0),
                (1, 2, 2, 1.0),
                // Sound with no onset of its own while pitch 2 rests: not a note.
                (1, 3, 3, 1.0),
                (1, 3, 4, 1.0),
                // A new onset ends the line's note, even while it still sounds.
                (1, 2, 4, 1.0),
                (1, 2, 5, 1.0),
                (0, 0, 5, 0.3),
            ],
        );
        keep_single_line(&mut v, pitches, steps);
        assert_eq!(set(&v, 0, pitches, steps), vec![(0, 5), (2, 0)]);
        assert_eq!(
            set(&v, 1, pitches, steps),
            vec![(0, 5), (2, 0), (2, 1), (2, 2)]
        );
    }
}
