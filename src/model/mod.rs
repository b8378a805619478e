//! Latent diffusion over piano rolls: the [`Autoencoder`] (roll ⇄ latent), the denoising
//! [`UNet`], the noise [`Schedule`], the samplers, and the [`Pipeline`] that CLI and GUI call to
//! generate. Models live in folders with a `model.json` card ([`ModelCard`]) beside their
//! weights. This module touches neither UI nor audio.

mod autoencoder;
pub mod catalog;
mod guidance;
mod latent;
pub(crate) mod layers;
mod pipeline;
pub mod sampler;
pub mod schedule;
mod seeded;
mod store;
mod unet;
pub mod validity;

pub use autoencoder::{Autoencoder, AutoencoderConfig, PitchCrop};
pub use guidance::{BadGuidance, Guidance};
pub use latent::LatentNorm;
pub use pipeline::{
    EditStep, Fog, GenerateRequest, Generated, KeyChoice, MAX_BARS, MAX_SCORE_STEPS, OnEditStep,
    Pipeline, StepEvent, extension_windows, normal,
};
pub use sampler::{Cancelled, Restart, SamplerKind};
pub use schedule::Schedule;
pub use seeded::init_seeded;
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
/// `decoding` holds each sample's [`Decoding`], or one for all.
pub fn logits_to_rolls(
    logits: Tensor<4>,
    decoding: &[Decoding],
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
            let Decoding {
                thresholds,
                texture,
                fuller_above,
            } = one_of(decoding, b, i);
            // Shift the sustain plane so one threshold of 0 applies to both.
            let mut shifted: Vec<f32> = planes
                .iter()
                .enumerate()
                .map(|(j, &v)| v - thresholds[usize::from(j >= p * t)])
                .collect();
            let decode = |planes: &[f32], one_line: bool| {
                let mut roll = Roll::from_planes(planes, t, 0.0);
                let fixed = roll.mend(mending);
                if one_line {
                    roll.end_notes_at_onsets();
                }
                (roll, fixed)
            };
            let mut texture = texture;
            if let Some(limit) = fuller_above
                && texture != Texture::Free
            {
                let free = decode(&shifted, false);
                if free.0.polyphony() > f64::from(limit) {
                    texture = texture.fuller();
                    if texture == Texture::Free {
                        return free;
                    }
                }
            }
            match texture {
                Texture::Free => {}
                Texture::OneLine => keep_single_line(&mut shifted, p, t),
                Texture::Voices(voices) => keep_voices(&mut shifted, p, t, voices),
            }
            decode(&shifted, texture == Texture::OneLine)
        })
        .collect()
}

/// How one piece's decoder logits become notes.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Decoding {
    /// Logit thresholds (onset, sustain) over which a cell is set (0 = probability ½).
    pub thresholds: [f32; 2],
    /// How its notes are laid out between voices.
    pub texture: Texture,
    /// Notes sounding at once on average ([`Roll::polyphony`]), as the thresholds alone draw
    /// the piece, above which it is laid out in the [`Texture::fuller`] texture: its style's
    /// music is mostly in `texture`, not all of it.
    pub fuller_above: Option<f32>,
}

/// How the notes of a decoded piece are laid out between voices: the texture of its style's
/// music, which an undertrained UNet blurs (it hedges between candidate notes, and a voice
/// fades out where the music would move it on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Texture {
    /// As the decoder's thresholds draw it.
    #[default]
    Free,
    /// One melodic line ([`keep_single_line`]).
    OneLine,
    /// This many voices sounding throughout ([`keep_voices`]).
    Voices(usize),
}

impl Texture {
    /// The texture of a piece that sounds more notes at once than its style mostly does: a
    /// tune with an accompaniment keeps its notes as drawn, a piece in N voices gets one more
    /// (a chorale with a fifth part).
    pub fn fuller(self) -> Texture {
        match self {
            Texture::Free | Texture::OneLine => Texture::Free,
            Texture::Voices(n) => Texture::Voices(n + 1),
        }
    }
}

/// Sample `i`'s setting in a batch of `b` (how it is decoded, or its thresholds), from one
/// value for all or one each.
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
/// the corpus's folk training windows never sound two notes at once). An undertrained UNet
/// hedges on pitch in such a tune, so the decoder draws two neighbouring candidates at once,
/// or a note and its octave, each weaker than a real note: thresholds alone keep both or lose
/// both.
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
    write_notes(
        onset,
        sustain,
        steps,
        line.into_iter().map(|slot| slot.into_iter().collect()),
    );
}

/// Lays thresholded decoder planes ([2, `pitches`, `steps`], above 0 = set) out in `voices`
/// voices that sound throughout, the texture of a style written in a fixed number of parts
/// (four-part chorales: 81 % of the sounding steps of the corpus's chorale windows sound
/// exactly four notes). An undertrained UNet drifts from it both ways: a voice's sustain
/// fades below the threshold before the voice moves on, and extra candidates are struck
/// beside the real ones.
/// At each step the strongest onsets (at most `voices`) start notes; the notes already
/// sounding fill the other voices, strongest sustain first and held on even where their
/// sustain fell below its threshold, until a new onset takes their voice. Sound without an
/// onset is cleared, as are rests once the voices have entered.
pub fn keep_voices(planes: &mut [f32], pitches: usize, steps: usize, voices: usize) {
    let n = pitches * steps;
    assert_eq!(planes.len(), 2 * n, "planes must be [2, pitches, steps]");
    let (onset, sustain) = planes.split_at_mut(n);
    let strongest_first = |a: &(usize, f32), b: &(usize, f32)| b.1.total_cmp(&a.1);
    let mut sounding: Vec<usize> = Vec::new();
    let mut layout = Vec::with_capacity(steps);
    for t in 0..steps {
        let mut struck: Vec<(usize, f32)> = (0..pitches)
            .map(|p| (p, onset[p * steps + t]))
            .filter(|&(_, v)| v > 0.0)
            .collect();
        struck.sort_by(strongest_first);
        struck.truncate(voices);
        let mut held: Vec<(usize, f32)> = sounding
            .iter()
            .filter(|&&p| struck.iter().all(|&(q, _)| q != p))
            .map(|&p| (p, sustain[p * steps + t]))
            .collect();
        held.sort_by(strongest_first);
        held.truncate(voices - struck.len());
        let now: Vec<(usize, bool)> = struck
            .iter()
            .map(|&(p, _)| (p, true))
            .chain(held.iter().map(|&(p, _)| (p, false)))
            .collect();
        sounding = now.iter().map(|&(p, _)| p).collect();
        layout.push(now);
    }
    write_notes(onset, sustain, steps, layout.into_iter());
}

/// Clears both planes and sets, at each step, the sound (and, where struck, the onset) of
/// the pitches `layout` lists for it as (pitch, struck).
fn write_notes(
    onset: &mut [f32],
    sustain: &mut [f32],
    steps: usize,
    layout: impl Iterator<Item = Vec<(usize, bool)>>,
) {
    onset.fill(-1.0);
    sustain.fill(-1.0);
    for (t, notes) in layout.enumerate() {
        for (p, struck) in notes {
            sustain[p * steps + t] = 1.0;
            if struck {
                onset[p * steps + t] = 1.0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{keep_single_line, keep_voices};

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

    #[test]
    fn voices_hold_until_an_onset_takes_their_place() {
        let (pitches, steps) = (5, 5);
        let mut v = planes(
            pitches,
            steps,
            &[
                // Four struck for three voices: the weakest, pitch 3, is dropped.
                (0, 0, 0, 2.0),
                (0, 1, 0, 1.5),
                (0, 2, 0, 1.0),
                (0, 3, 0, 0.5),
                (1, 0, 0, 1.0),
                (1, 1, 0, 1.0),
                (1, 2, 0, 1.0),
                (1, 3, 0, 1.0),
                // Pitch 1's sound fades below its threshold: it is held all the same.
                (1, 0, 1, 1.0),
                (1, 1, 1, -0.5),
                (1, 2, 1, 0.5),
                // A new onset takes the voice whose sustain is weakest (pitch 1).
                (0, 4, 2, 1.0),
                (1, 0, 2, 1.0),
                (1, 1, 2, 0.2),
                (1, 2, 2, 0.5),
                // Sound with no onset of its own: not a note.
                (1, 3, 3, 1.0),
            ],
        );
        keep_voices(&mut v, pitches, steps, 3);
        assert_eq!(
            set(&v, 0, pitches, steps),
            vec![(0, 0), (1, 0), (2, 0), (4, 2)]
        );
        let mut sounding = vec![(1, 0), (1, 1), (4, 2), (4, 3), (4, 4)];
        sounding.extend((0..steps).flat_map(|t| [(0, t), (2, t)]));
        sounding.sort();
        assert_eq!(set(&v, 1, pitches, steps), sounding);
    }
}
