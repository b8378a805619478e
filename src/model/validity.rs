//! Validity of what the decoder draws, as something gradients can follow: the soft count of
//! sustain runs that start without an onset (orphans), and the refinement that nudges a
//! sampled latent until its decoding has none, staying close to what the sampler chose.

use burn::optim::{AdamConfig, Optimizer};
use burn::tensor::Tensor;
use burn::tensor::activation::sigmoid;
use serde::{Deserialize, Serialize};

use std::sync::atomic::{AtomicBool, Ordering};

use super::Autoencoder;
use super::latent::LatentNorm;
use super::sampler::Cancelled;

/// Per cell [B, 1, P, T]: how much a sustain run starts there without an onset, from decoder
/// logits decoded at `thresholds` (onset, sustain), softened by `temperature` (1: the logits
/// as they are). A run starts where a step sounds and the one before it does not; silence
/// before the window.
pub fn soft_orphan_starts(
    logits: Tensor<4>,
    thresholds: [f32; 2],
    temperature: f32,
) -> (Tensor<4>, Tensor<4>) {
    let [b, _, p, t] = logits.dims();
    let device = logits.device();
    let onset = soft_plane(&logits, thresholds, 0, temperature);
    let sustain = soft_plane(&logits, thresholds, 1, temperature);
    let before = Tensor::cat(
        vec![
            Tensor::zeros([b, 1, p, 1], &device),
            sustain.clone().narrow(3, 0, t - 1),
        ],
        3,
    );
    let starts = sustain * before.neg().add_scalar(1.0);
    let orphans = starts.clone() * onset.neg().add_scalar(1.0);
    (orphans, starts)
}

/// Per cell [B, 1, P, T]: the probability that decoding at `thresholds` draws `plane` (0
/// onset, 1 sustain) there, logits softened by `temperature`.
fn soft_plane(
    logits: &Tensor<4>,
    thresholds: [f32; 2],
    plane: usize,
    temperature: f32,
) -> Tensor<4> {
    let shifted = logits
        .clone()
        .narrow(1, plane, 1)
        .sub_scalar(thresholds[plane]);
    sigmoid(shifted.div_scalar(temperature))
}

/// The soft share of sustain runs that begin without an onset: a differentiable stand-in for
/// the orphan rate decoding counts.
pub fn soft_orphan_rate(logits: Tensor<4>, thresholds: [f32; 2]) -> Tensor<1> {
    let (orphans, starts) = soft_orphan_starts(logits, thresholds, 1.0);
    orphans.sum() / starts.sum().add_scalar(1e-3)
}

/// Validity refinement after sampling: a few Adam steps on the sampled (scaled) latent that
/// lower the soft orphan count of its decoding, each followed by a proximal step of a quadratic
/// pull back to the sampler's latent. The decoder's weights stay as they are; only the latent moves.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Refine {
    pub steps: usize,
    /// Adam step size, in units of the scaled latent (unit variance).
    pub rate: f32,
    /// Weight of the pull back to the sampler's latent (per element, squared distance).
    pub keep: f32,
    /// Softening of the decoder's logits in the orphan count, so a confident orphan still has
    /// a gradient.
    pub temperature: f32,
}

impl Refine {
    /// Measured on the base model (docs/experiments.md, `eval --refine`): notes without an
    /// onset 22 % -> 0.1 % at 20 decoder passes (about 0.4 s for 8 bars on 2 CPU cores).
    pub const RECOMMENDED: Refine = Refine {
        steps: 20,
        rate: 0.1,
        keep: 0.3,
        temperature: 2.0,
    };
}

impl std::fmt::Display for Refine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{},{},{},{}",
            self.steps, self.rate, self.keep, self.temperature
        )
    }
}

impl std::str::FromStr for Refine {
    type Err = String;

    /// `STEPS,RATE,KEEP,TEMPERATURE`, e.g. `20,0.1,0.3,2`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split(',').map(str::trim).collect();
        let numbers: Option<Vec<f32>> = parts.iter().map(|p| p.parse().ok()).collect();
        match numbers.as_deref() {
            Some(&[steps, rate, keep, temperature])
                if steps >= 1.0
                    && steps.fract() == 0.0
                    && rate > 0.0
                    && keep >= 0.0
                    && temperature > 0.0 =>
            {
                Ok(Refine {
                    steps: steps as usize,
                    rate,
                    keep,
                    temperature,
                })
            }
            _ => Err(format!(
                "refine '{s}' must be STEPS,RATE,KEEP,TEMPERATURE: a whole number of steps, a \
                 positive rate and temperature, a pull of 0 or more (e.g. 20,0.1,0.3,2)"
            )),
        }
    }
}

/// `z` (scaled latents [B, C, H, W]) refined as `refine` says (see [`Refine`]), its orphans
/// counted at decoding `thresholds` (onset, sustain); where `kept` (same shape) is 1 the
/// latent stays exactly as it is: the bars an inpainting keeps. A sample whose decoding still
/// has a note without an onset after the planned passes gets up to as many again, alone: the
/// others stay as the planned passes left them. `cancel` is checked before every pass.
pub fn refine(
    decoder: &Autoencoder,
    norm: &LatentNorm,
    z: Tensor<4>,
    thresholds: [f32; 2],
    refine: Refine,
    kept: Option<&Tensor<4>>,
    cancel: Option<&AtomicBool>,
) -> Result<Tensor<4>, Cancelled> {
    refine_passes(
        decoder,
        norm,
        z,
        thresholds,
        refine,
        refine.steps,
        kept,
        cancel,
    )
}

/// [`refine`] with at most `extra` passes after the planned ones.
#[allow(clippy::too_many_arguments)]
fn refine_passes(
    decoder: &Autoencoder,
    norm: &LatentNorm,
    z: Tensor<4>,
    thresholds: [f32; 2],
    refine: Refine,
    extra: usize,
    kept: Option<&Tensor<4>>,
    cancel: Option<&AtomicBool>,
) -> Result<Tensor<4>, Cancelled> {
    let adam = AdamConfig::new().with_epsilon(1e-8).build();
    let mut moments = None;
    // Where the latent may move: everywhere but the kept columns.
    let free = kept.map(|k| k.clone().neg().add_scalar(1.0));
    let anchor = z.clone();
    let mut x = z;
    for pass in 0..refine.steps + extra {
        if cancel.is_some_and(|c| c.load(Ordering::Acquire)) {
            return Err(Cancelled);
        }
        let leaf = x.clone().autodiff().require_grad();
        let logits = decoder.decode_logits(norm.denormalize(leaf.clone()));
        // Past the planned passes, only samples whose decoding still has an orphan move.
        let unfinished = if pass < refine.steps {
            None
        } else {
            let left = has_orphans(logits.clone().inner(), thresholds);
            if !left.clone().any().into_scalar::<bool>() {
                break;
            }
            Some(left)
        };
        let (orphans, _) = soft_orphan_starts(logits, thresholds, refine.temperature);
        let grads = orphans.sum().backward();
        let Some(mut g) = leaf.grad(&grads) else {
            // Nothing depends on the latent (a decoder without weights?): leave it.
            break;
        };
        if let Some(free) = &free {
            g = g * free.clone();
        }
        let before = x.clone();
        (x, moments) = adam.step(f64::from(refine.rate), x, g, moments);
        // The pull as a proximal step: exact for any weight, where a gradient step on a
        // strong pull would overshoot.
        x = anchor.clone() + (x - anchor.clone()).div_scalar(1.0 + refine.rate * refine.keep);
        if let Some(moving) = unfinished {
            let [b, c, h, w] = x.dims();
            x = before.mask_where(moving.expand([b, c, h, w]), x);
        }
    }
    Ok(x)
}

/// Per sample [B, 1, 1, 1]: whether decoding `logits` at `thresholds` draws a sound run that
/// starts without an onset (what the orphan rate counts).
fn has_orphans(logits: Tensor<4>, thresholds: [f32; 2]) -> Tensor<4, burn::tensor::Bool> {
    // A vanishing temperature turns the soft count into the hard one.
    let (orphans, _) = soft_orphan_starts(logits, thresholds, 1e-6);
    orphans.sum_dim(3).sum_dim(2).sum_dim(1).greater_elem(0.5)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    /// Logits for one pitch row of `sustain`/`onset` flags: ±20 (certain) around thresholds 0.
    fn logits(onset: &[bool], sustain: &[bool]) -> Tensor<4> {
        let t = onset.len();
        let data: Vec<f32> = onset
            .iter()
            .chain(sustain)
            .map(|&f| if f { 20.0 } else { -20.0 })
            .collect();
        Tensor::from_data(TensorData::new(data, [1, 2, 1, t]), &Device::flex())
    }

    fn rate(onset: &[bool], sustain: &[bool]) -> f32 {
        soft_orphan_rate(logits(onset, sustain), [0.0, 0.0]).into_scalar::<f32>()
    }

    #[test]
    fn soft_orphan_rate_counts_runs_that_start_without_an_onset() {
        let (x, o) = (true, false);
        // Two notes, each starting at its onset: no orphans, even one at the window's start.
        assert!(rate(&[x, o, o, x, o, o], &[x, x, o, x, x, x]) < 1e-3);
        // The second run has no onset: one of two runs.
        let r = rate(&[x, o, o, o, o, o], &[x, x, o, x, x, x]);
        assert!((r - 0.5).abs() < 1e-3, "{r}");
        // Sound that starts before its onset is an orphan run too.
        let r = rate(&[o, x, o, o], &[x, x, x, o]);
        assert!((r - 1.0).abs() < 2e-3, "{r}");
    }

    #[test]
    fn the_sustain_threshold_decides_which_runs_are_heard() {
        let (x, o) = (true, false);
        // Onset logits +20/-20, sustain logits 1 where flagged: a sustain threshold of 0
        // hears the second run (an orphan), one of 2 does not.
        let data: Vec<f32> = [x, o, o, o, o]
            .iter()
            .map(|&f| if f { 20.0 } else { -20.0 })
            .chain([x, x, o, x, x].iter().map(|&f| if f { 1.0 } else { -20.0 }))
            .collect();
        let logits = Tensor::<4>::from_data(TensorData::new(data, [1, 2, 1, 5]), &Device::flex());
        let count = |thresholds| {
            soft_orphan_starts(logits.clone(), thresholds, 1e-3)
                .0
                .sum()
                .into_scalar::<f32>()
        };
        assert!((count([0.0, 0.0]) - 1.0).abs() < 1e-3);
        assert!(count([0.0, 2.0]) < 1e-3);
    }

    fn soft_count(decoder: &Autoencoder, norm: &LatentNorm, z: Tensor<4>) -> f32 {
        let logits = decoder.decode_logits(norm.denormalize(z));
        soft_orphan_starts(logits, [0.0, 0.0], 1.0)
            .0
            .sum()
            .into_scalar::<f32>()
    }

    /// An untrained decoder (random weights drawn from `seed`), its latent normalisation and
    /// `batch` latents drawn from `seed`.
    fn untrained(batch: usize, seed: u64) -> (Autoencoder, LatentNorm, Tensor<4>) {
        let device = Device::flex();
        let config = super::super::AutoencoderConfig::new();
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(seed);
        let z = super::super::normal(&mut rng, [batch, config.latent_channels, 32, 32], &device);
        let norm = LatentNorm::global(config.latent_channels, 1.0);
        let decoder = super::super::init_seeded(&device, seed, |d| config.init(d));
        (decoder, norm, z)
    }

    #[test]
    fn refinement_lowers_the_orphan_count_and_the_pull_holds_the_latent() {
        let (decoder, norm, z) = untrained(2, 3);
        let before = soft_count(&decoder, &norm, z.clone());
        assert!(before > 1.0, "an untrained decoder draws orphans: {before}");
        let free = Refine {
            steps: 20,
            rate: 0.2,
            keep: 0.0,
            temperature: 1.0,
        };
        let refined = refine(&decoder, &norm, z.clone(), [0.0, 0.0], free, None, None).unwrap();
        assert!(!refined.is_autodiff(), "the result leaves no graph behind");
        let after = soft_count(&decoder, &norm, refined.clone());
        assert!(after < 0.95 * before, "{before} -> {after}");
        let moved = (refined - z.clone()).abs().max().into_scalar::<f32>();
        assert!(moved > 0.05, "{moved}");
        // A strong pull keeps the latent where the sampler left it.
        let held = refine(
            &decoder,
            &norm,
            z.clone(),
            [0.0, 0.0],
            Refine { keep: 1e6, ..free },
            None,
            None,
        )
        .unwrap();
        let moved = (held - z).abs().max().into_scalar::<f32>();
        assert!(moved < 1e-3, "{moved}");
    }

    #[test]
    fn extra_passes_move_only_the_samples_that_still_have_orphans() {
        let (decoder, norm, z) = untrained(4, 5);
        let device = z.device();
        // Two quiet samples (zero latents) and two loud ones (large latents); a sustain
        // threshold halfway between the quiet ones' loudest logit and the loud ones' leaves
        // the quiet ones silent (no orphans), and an onset threshold no logit reaches makes all
        // the loud ones' sound orphans. A firm pull keeps each pass's move small, so the
        // planned pass leaves both kinds as they were.
        let scale =
            Tensor::<1>::from_data(TensorData::new(vec![0.0f32, 0.0, 30.0, 30.0], [4]), &device)
                .reshape([4, 1, 1, 1]);
        let z = z * scale;
        let loudest = decoder
            .decode_logits(norm.denormalize(z.clone()))
            .narrow(1, 1, 1)
            .max_dim(3)
            .max_dim(2)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let (quiet, loud) = (loudest[0].max(loudest[1]), loudest[2].min(loudest[3]));
        let thresholds = [100.0, (quiet + loud) / 2.0];
        let r = Refine {
            steps: 1,
            rate: 0.2,
            keep: 200.0,
            temperature: 1.0,
        };
        let run = |extra| {
            refine_passes(&decoder, &norm, z.clone(), thresholds, r, extra, None, None).unwrap()
        };
        let (planned, more) = (run(0), run(10));
        let left = |x: Tensor<4>| {
            has_orphans(decoder.decode_logits(norm.denormalize(x)), thresholds)
                .into_data()
                .try_to_vec::<bool>()
                .unwrap()
        };
        let unfinished = left(planned.clone());
        assert!(
            unfinished.contains(&true) && unfinished.contains(&false),
            "the test needs both kinds: {unfinished:?} (loudest sustain {loudest:?})"
        );
        let sample = |x: &Tensor<4>, i: usize| {
            x.clone()
                .narrow(0, i, 1)
                .into_data()
                .try_to_vec::<f32>()
                .unwrap()
        };
        for (i, &orphans) in unfinished.iter().enumerate() {
            let (p, m) = (sample(&planned, i), sample(&more, i));
            if orphans {
                assert!(p != m, "sample {i} still had orphans: it gets more passes");
            } else {
                assert!(
                    p == m,
                    "sample {i} was done: it stays as the planned passes left it"
                );
            }
        }
        let count = |x: Tensor<4>| {
            let logits = decoder.decode_logits(norm.denormalize(x));
            soft_orphan_starts(logits, thresholds, 1.0)
                .0
                .sum()
                .into_scalar::<f32>()
        };
        assert!(count(more) < count(planned));
    }

    #[test]
    fn refine_settings_parse_print_and_refuse_nonsense() {
        let r: Refine = "20,0.1,0.3,2".parse().unwrap();
        assert_eq!(r, Refine::RECOMMENDED);
        assert_eq!(r.to_string().parse::<Refine>().unwrap(), r);
        for bad in [
            "",
            "20,0.1,0.3",
            "2.5,0.1,0.3,2",
            "0,0.1,0.3,2",
            "20,-1,0.3,2",
            "20,0.1,0.3,0",
        ] {
            let err = bad.parse::<Refine>().unwrap_err();
            assert!(err.contains("STEPS,RATE,KEEP,TEMPERATURE"), "{bad}: {err}");
        }
    }
}
