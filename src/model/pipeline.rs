//! Generation from a model folder: noise → sampler over the UNet (with classifier-free
//! guidance on the style) → latent → decoder → rolls. The CLI and the app both call this.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

mod edit;

pub use edit::{EditStep, MAX_BARS, MAX_SCORE_STEPS, OnEditStep, extension_windows};

use super::sampler::{self, Restart, SampleOptions, SamplerKind};
use super::store::{AUTOENCODER_FILE, ModelCard, ModelError, UNET_FILE, load_weights};
use super::validity::{self, Refine};
use super::{Autoencoder, Guidance, Schedule, UNet, logits_to_rolls};
use crate::roll::{
    KEY_NAMES, PITCHES, Roll, SHIFTS, Style, Validity, WINDOW_STEPS, parse_key, splice,
};

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenerateRequest {
    pub count: usize,
    pub seed: u64,
    pub steps: usize,
    pub sampler: SamplerKind,
    /// `None`: each sample's style is drawn in proportion to the training data.
    pub style: Option<Style>,
    /// Classifier-free guidance, per style; 1 uses the conditional model alone (half the cost).
    pub guidance: Guidance,
    pub tempo_bpm: f32,
    /// Restart rounds after the main pass (see [`Restart`]); `None`: the main pass alone.
    pub restart: Option<Restart>,
    /// Validity refinement of the sampled latent (see [`Refine`]); `None`: the sampler's
    /// latent as it is.
    pub refine: Option<Refine>,
    /// The key new pieces end in (inpainting keeps the key of the bars it keeps).
    pub key: KeyChoice,
}

impl GenerateRequest {
    /// `count` pieces from `seed` with the card's default settings (sampler, steps, style,
    /// guidance, restart, refinement), at 120 BPM in a key typical of the style.
    pub fn card_defaults(card: &ModelCard, count: usize, seed: u64) -> GenerateRequest {
        let d = &card.defaults;
        GenerateRequest {
            count,
            seed,
            steps: d.steps,
            sampler: d.sampler,
            style: d.style,
            guidance: d.guidance.clone(),
            tempo_bpm: 120.0,
            restart: d.restart,
            refine: d.refine,
            key: KeyChoice::Typical,
        }
    }
}

/// Which key a generated piece ends in. The model learned every key alike (its training windows
/// were transposed at random), so it draws any key as often as any other, and a register to
/// match; a style's own music does not: Renaissance polyphony sits in C and F, Irish tunes in
/// D and G.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyChoice {
    /// Moved by at most a tritone to a key and register drawn from the style's own music (the
    /// card's key profiles); as drawn where the card has none.
    #[default]
    Typical,
    /// As the model drew it.
    AsDrawn,
    /// Moved by at most a tritone into the diatonic scale of this major root (0 = C major or
    /// A minor, 2 = D major or B minor, ...).
    Root(u8),
}

impl std::fmt::Display for KeyChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyChoice::Typical => f.write_str("typical"),
            KeyChoice::AsDrawn => f.write_str("drawn"),
            KeyChoice::Root(r) => f.write_str(KEY_NAMES[usize::from(*r) % 12]),
        }
    }
}

impl std::str::FromStr for KeyChoice {
    type Err = String;

    /// `typical`, `drawn`, or a key: `D`, `Bb`, `F#m`...
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "typical" => Ok(KeyChoice::Typical),
            "drawn" | "none" => Ok(KeyChoice::AsDrawn),
            _ => parse_key(s).map(KeyChoice::Root).ok_or_else(|| {
                format!("key '{s}' must be 'typical', 'drawn' or a key such as C, Bb, F#, Am, C#m")
            }),
        }
    }
}

/// One step of a generation in progress.
pub struct StepEvent<'a> {
    pub step: usize,
    pub total: usize,
    /// The rolls the model predicts at this step, one per sample.
    pub preview: &'a [Roll],
    /// What the decoder makes of this step's prediction before any threshold, one per sample
    /// and moved to the same key as `preview`: the image the model is denoising.
    pub fog: &'a [Fog],
}

/// The decoder's onset and sustain probabilities over one window: what a prediction looks
/// like before thresholds turn it into notes.
#[derive(Debug, Clone, PartialEq)]
pub struct Fog {
    steps: usize,
    /// `[pitch, step]`, row-major, in 0..=1.
    onset: Vec<f32>,
    sustain: Vec<f32>,
}

impl Fog {
    /// Probabilities from logits laid out as [`Roll::to_planes`] lays out planes
    /// (`[plane, pitch, step]`).
    pub fn from_logits(logits: &[f32], steps: usize) -> Fog {
        assert_eq!(
            logits.len(),
            2 * PITCHES * steps,
            "logits must be [2, 128, steps]"
        );
        let sigmoid = |v: &f32| 1.0 / (1.0 + (-v).exp());
        let (onset, sustain) = logits.split_at(PITCHES * steps);
        Fog {
            steps,
            onset: onset.iter().map(sigmoid).collect(),
            sustain: sustain.iter().map(sigmoid).collect(),
        }
    }

    pub fn steps(&self) -> usize {
        self.steps
    }

    /// Probability that a note starts at (`pitch`, `step`).
    pub fn onset(&self, pitch: usize, step: usize) -> f32 {
        self.onset[pitch * self.steps + step]
    }

    /// Probability that a note sounds at (`pitch`, `step`).
    pub fn sustain(&self, pitch: usize, step: usize) -> f32 {
        self.sustain[pitch * self.steps + step]
    }

    /// Every pitch moved by `semitones` (as [`Roll::transposed`]); rows moved off the
    /// keyboard are dropped, rows moved in are silent.
    pub fn transposed(&self, semitones: i32) -> Fog {
        let shift = |plane: &[f32]| {
            let mut out = vec![0.0; plane.len()];
            for pitch in 0..PITCHES {
                let target = pitch as i32 + semitones;
                if (0..PITCHES as i32).contains(&target) {
                    let (src, dst) = (pitch * self.steps, target as usize * self.steps);
                    out[dst..dst + self.steps].copy_from_slice(&plane[src..src + self.steps]);
                }
            }
            out
        };
        Fog {
            steps: self.steps,
            onset: shift(&self.onset),
            sustain: shift(&self.sustain),
        }
    }
}

/// A finished generation.
#[derive(Debug, Clone)]
pub struct Generated {
    pub rolls: Vec<Roll>,
    /// The final (scaled) latents [count, C, H, W], for variations and inpainting later;
    /// those of the rolls before any change of key.
    pub latents: Tensor<4>,
    /// What the decoder produced that repair had to fix (orphan sustain...), per roll.
    pub repaired: Vec<Validity>,
}

/// A loaded model on a device.
pub struct Pipeline {
    pub card: ModelCard,
    pub dir: PathBuf,
    autoencoder: Autoencoder,
    unet: Option<UNet>,
    schedule: Schedule,
    device: Device,
}

impl Pipeline {
    /// Loads a model folder (card and weights) onto `device`.
    pub fn load(dir: &Path, device: &Device) -> Result<Pipeline, ModelError> {
        let card = ModelCard::load(dir)?;
        let autoencoder = load_weights(
            card.autoencoder.init(device),
            &dir.join(AUTOENCODER_FILE),
            device,
        )?;
        let unet = match &card.unet {
            Some(config) => Some(load_weights(
                config.init(device),
                &dir.join(UNET_FILE),
                device,
            )?),
            None => None,
        };
        Ok(Pipeline::from_parts(
            card,
            dir.to_path_buf(),
            autoencoder,
            unet,
            device.clone(),
        ))
    }

    pub fn from_parts(
        card: ModelCard,
        dir: PathBuf,
        autoencoder: Autoencoder,
        unet: Option<UNet>,
        device: Device,
    ) -> Pipeline {
        Pipeline {
            card,
            dir,
            autoencoder,
            unet,
            schedule: Schedule::default(),
            device,
        }
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    pub fn autoencoder(&self) -> &Autoencoder {
        &self.autoencoder
    }

    fn latent_shape(&self) -> [usize; 3] {
        self.card.autoencoder.latent_shape(PITCHES, WINDOW_STEPS)
    }

    /// Decodes scaled latents into repaired rolls at the card's thresholds and mending.
    pub fn decode(&self, z: Tensor<4>) -> Vec<(Roll, Validity)> {
        let z = self.card.latent_norm().denormalize(z);
        logits_to_rolls(
            self.autoencoder.decode_logits(z),
            self.card.thresholds,
            self.card.mending,
        )
    }

    /// [`Pipeline::decode`], with the decoder's probabilities before any threshold.
    pub fn decode_with_fog(&self, z: Tensor<4>) -> (Vec<(Roll, Validity)>, Vec<Fog>) {
        let z = self.card.latent_norm().denormalize(z);
        let logits = self.autoencoder.decode_logits(z);
        let [b, _, p, t] = logits.dims();
        let values: Vec<f32> = logits
            .clone()
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .unwrap_or_default();
        let per = 2 * p * t;
        let fog = (0..b)
            .filter_map(|i| values.get(i * per..(i + 1) * per))
            .map(|planes| Fog::from_logits(planes, t))
            .collect();
        (
            logits_to_rolls(logits, self.card.thresholds, self.card.mending),
            fog,
        )
    }

    /// Picks each sample's style: the requested one, or drawn by the training proportions.
    fn styles(&self, request: &GenerateRequest, rng: &mut ChaCha8Rng) -> Vec<Style> {
        (0..request.count)
            .map(|_| match request.style {
                Some(s) => s,
                None => {
                    let total: f32 = self.card.style_weights.iter().sum();
                    let r = rng.random::<f32>() * total;
                    let chosen =
                        weighted_pick(&self.card.style_weights, r).unwrap_or(Style::ALL.len() - 1);
                    Style::from_index(chosen).unwrap_or(Style::Folk)
                }
            })
            .collect()
    }

    /// Generates `request.count` eight-bar rolls. `on_step`, when given, receives the decoded
    /// prediction after every step (decoding costs one decoder pass per step); `cancel` is
    /// checked before every step. The same request on the same model gives the same rolls on
    /// any device: all randomness comes from a generator seeded by `request.seed`.
    pub fn generate(
        &self,
        request: &GenerateRequest,
        cancel: Option<&AtomicBool>,
        on_step: Option<&mut dyn FnMut(StepEvent<'_>)>,
    ) -> Result<Generated, ModelError> {
        self.run(request, None, cancel, on_step)
    }

    /// Regenerates the steps of `roll` (one 8-bar window) where `keep` is false and keeps the
    /// rest: every sample is a new take on the masked bars that fits around the kept ones.
    /// The mask is applied per latent column (8 steps): a column is kept when all its steps
    /// are.
    pub fn inpaint(
        &self,
        request: &GenerateRequest,
        roll: &Roll,
        keep: &[bool],
        cancel: Option<&AtomicBool>,
        on_step: Option<&mut dyn FnMut(StepEvent<'_>)>,
    ) -> Result<Generated, ModelError> {
        assert_eq!(keep.len(), WINDOW_STEPS, "one keep flag per step");
        let [c, h, w] = self.latent_shape();
        let f = WINDOW_STEPS / w;
        let clean = self
            .card
            .latent_norm()
            .normalize(self.autoencoder.encode(super::rolls_to_tensor(
                &[&roll.window(0, WINDOW_STEPS)],
                &self.device,
            )))
            .repeat_dim(0, request.count);
        let mut mask = Vec::with_capacity(request.count * c * h * w);
        for _ in 0..request.count * c * h {
            mask.extend((0..w).map(|col| {
                if keep[col * f..(col + 1) * f].iter().all(|&k| k) {
                    1.0f32
                } else {
                    0.0
                }
            }));
        }
        let mask = Tensor::from_data(
            TensorData::new(mask, [request.count, c, h, w]),
            &self.device,
        );
        self.run(request, Some((clean, mask)), cancel, on_step)
    }

    /// New takes on the steps `span` of `roll` (one 8-bar window) that fit the music around
    /// them, which every take keeps note for note: [`Pipeline::inpaint`] with `span` masked,
    /// then each take's notes in `span` put into the roll's own ([`splice`]). The takes keep
    /// the roll's key; their style is the request's.
    pub fn rework(
        &self,
        request: &GenerateRequest,
        roll: &Roll,
        span: Range<usize>,
        cancel: Option<&AtomicBool>,
        on_step: Option<&mut dyn FnMut(StepEvent<'_>)>,
    ) -> Result<Generated, ModelError> {
        let keep: Vec<bool> = (0..WINDOW_STEPS).map(|t| !span.contains(&t)).collect();
        let mut generated = self.inpaint(request, roll, &keep, cancel, on_step)?;
        let own = roll.notes();
        let span = span.start as u32..span.end as u32;
        for take in &mut generated.rolls {
            let notes = splice(&own, &take.notes(), span.clone());
            let mut spliced = Roll::from_notes(&notes, WINDOW_STEPS);
            (spliced.style, spliced.tempo_bpm, spliced.program) =
                (take.style, take.tempo_bpm, take.program);
            *take = spliced;
        }
        Ok(generated)
    }

    /// The model's one-step estimate of `rolls` after noising their latents to training step
    /// `t`, decoded: how much of the music it recovers at that noise level. A sampler ends
    /// with such estimates at small `t`, so detail lost here (onsets, say) is lost in every
    /// generated roll. Each roll is conditioned on its own style (none: unconditional).
    pub fn denoise_once(
        &self,
        rolls: &[Roll],
        t: usize,
        seed: u64,
    ) -> Result<Vec<(Roll, Validity)>, ModelError> {
        let refs: Vec<&Roll> = rolls.iter().collect();
        let z0 = self.card.latent_norm().normalize(
            self.autoencoder
                .encode(super::rolls_to_tensor(&refs, &self.device)),
        );
        let null = self.card.styles.len() as i64;
        let labels: Vec<i64> = rolls
            .iter()
            .map(|r| r.style.map_or(null, |st| st.index() as i64))
            .collect();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let estimate = self.clean_estimate(z0, &vec![t; rolls.len()], &labels, &mut rng)?;
        Ok(self.decode(estimate))
    }

    /// The UNet's one-step estimate of clean (normalised) latents `z0`, each noised to its
    /// diffusion step in `steps` with noise from `rng`; `labels` are style indices (the
    /// number of styles for none). This is what the sampler's last steps hand the decoder.
    pub fn clean_estimate(
        &self,
        z0: Tensor<4>,
        steps: &[usize],
        labels: &[i64],
        rng: &mut ChaCha8Rng,
    ) -> Result<Tensor<4>, ModelError> {
        let unet = self
            .unet
            .as_ref()
            .ok_or_else(|| ModelError::NoUnet(self.dir.clone()))?;
        let b = steps.len();
        let (a, s): (Vec<f32>, Vec<f32>) = steps
            .iter()
            .map(|&t| {
                let (a, s) = self.schedule.scales(Some(t));
                (a as f32, s as f32)
            })
            .unzip();
        let a = Tensor::<4>::from_data(TensorData::new(a, [b, 1, 1, 1]), &self.device);
        let s = Tensor::<4>::from_data(TensorData::new(s, [b, 1, 1, 1]), &self.device);
        let eps = normal(rng, z0.dims(), &self.device);
        let x = z0 * a.clone() + eps * s.clone();
        let labels =
            Tensor::<1, Int>::from_data(TensorData::new(labels.to_vec(), [b]), &self.device);
        let t: Vec<f32> = steps.iter().map(|&t| t as f32).collect();
        let v = unet.forward(x.clone(), &t, labels);
        // v = a ε − s x0 and x_t = a x0 + s ε give x0 = a x_t − s v.
        Ok(x * a - v * s)
    }

    /// The transposition that moves `roll` (drawn under `style`) into the key `choice` asks
    /// for; for [`KeyChoice::Typical`] drawn by `draw` (uniform in [0, 1)). 0 for a silent
    /// roll.
    fn key_shift(&self, roll: &Roll, style: Style, choice: KeyChoice, draw: f64) -> i32 {
        match choice {
            KeyChoice::AsDrawn => 0,
            KeyChoice::Root(target) => roll.shift_into(target),
            KeyChoice::Typical => {
                let Some(profile) = self.card.key_profile(style) else {
                    return 0;
                };
                let weights = profile.shift_weights(roll);
                let total: f64 = weights.iter().sum();
                if total <= 0.0 {
                    return 0;
                }
                weighted_pick(&weights, draw * total)
                    .map_or(*SHIFTS.end(), |i| SHIFTS.start() + i as i32)
            }
        }
    }

    fn run(
        &self,
        request: &GenerateRequest,
        known: Option<(Tensor<4>, Tensor<4>)>,
        cancel: Option<&AtomicBool>,
        on_step: Option<&mut dyn FnMut(StepEvent<'_>)>,
    ) -> Result<Generated, ModelError> {
        let fresh = known.is_none();
        self.run_plan(
            request,
            Plan {
                known,
                move_to_key: fresh,
                ..Plan::default()
            },
            cancel,
            on_step,
        )
    }

    /// Samples as `plan` says; every other entry point is one plan.
    pub(crate) fn run_plan(
        &self,
        request: &GenerateRequest,
        plan: Plan<'_>,
        cancel: Option<&AtomicBool>,
        mut on_step: Option<&mut dyn FnMut(StepEvent<'_>)>,
    ) -> Result<Generated, ModelError> {
        let unet = self
            .unet
            .as_ref()
            .ok_or_else(|| ModelError::NoUnet(self.dir.clone()))?;
        let Plan {
            styles,
            known,
            start,
            project,
            move_to_key: fresh,
        } = plan;
        let mut rng = ChaCha8Rng::seed_from_u64(request.seed);
        let labelled: Vec<Option<Style>> = match styles {
            Some(styles) => {
                assert_eq!(styles.len(), request.count, "one style per sample");
                styles
            }
            None => self
                .styles(request, &mut rng)
                .into_iter()
                .map(Some)
                .collect(),
        };
        // Each sample's key draw comes from a stream of its own, so the music sampled for a
        // seed does not depend on the key asked for, and every step's preview is moved the way
        // the finished piece will be once the preview settles.
        let key_draws: Vec<f64> = {
            let mut keys = ChaCha8Rng::seed_from_u64(request.seed);
            keys.set_stream(1);
            (0..request.count).map(|_| keys.random()).collect()
        };
        // The semitones each roll was moved by (none where the plan keeps the key).
        let move_to_key = |rolls: &mut [Roll]| -> Vec<i32> {
            let mut shifts = vec![0; rolls.len()];
            if fresh {
                for (((roll, style), &draw), shift) in rolls
                    .iter_mut()
                    .zip(&labelled)
                    .zip(&key_draws)
                    .zip(shifts.iter_mut())
                {
                    let Some(style) = *style else { continue };
                    *shift = self.key_shift(roll, style, request.key, draw);
                    *roll = roll.transposed(*shift);
                }
            }
            shifts
        };
        let [c, h, w] = self.latent_shape();
        let shape = [request.count, c, h, w];
        let noise0 = normal(&mut rng, shape, &self.device);
        let (x, from) = match start {
            Some((clean, t)) => {
                let (a, s) = self.schedule.scales(Some(t));
                (clean.mul_scalar(a) + noise0.mul_scalar(s), Some(t))
            }
            None => (noise0, None),
        };

        let b = request.count;
        let styled: Vec<Style> = labelled.iter().flatten().copied().collect();
        let guided = request.guidance.guides(&styled);
        // Each sample follows its own style's scale, so a batch of mixed styles is guided as
        // each style would be alone; an unlabelled sample has nothing to be guided towards.
        let scales: Vec<f32> = labelled
            .iter()
            .map(|s| s.map_or(1.0, |s| request.guidance.for_style(s)))
            .collect();
        let scales = Tensor::<1>::from_data(TensorData::new(scales, [b]), &self.device)
            .reshape([b, 1, 1, 1]);
        let null = self.card.styles.len() as i64;
        let mut labels: Vec<i64> = labelled
            .iter()
            .map(|s| s.map_or(null, |s| s.index() as i64))
            .collect();
        if guided {
            labels.extend(std::iter::repeat_n(null, b));
        }
        let labels = Tensor::<1, Int>::from_data(
            TensorData::new(labels.clone(), [labels.len()]),
            &self.device,
        );
        let schedule = &self.schedule;
        let denoiser = |x: Tensor<4>, t: usize| -> Tensor<4> {
            let (a, s) = schedule.scales(Some(t));
            let input = if guided {
                Tensor::cat(vec![x.clone(), x.clone()], 0)
            } else {
                x.clone()
            };
            let ts = vec![t as f32; input.dims()[0]];
            let v_all = unet.forward(input, &ts, labels.clone());
            let v = if guided {
                let cond = v_all.clone().narrow(0, 0, b);
                let uncond = v_all.narrow(0, b, b);
                uncond.clone() + (cond - uncond) * scales.clone()
            } else {
                v_all
            };
            // v = a ε − s x0 and x_t = a x0 + s ε give ε = s x_t + a v.
            x.mul_scalar(s) + v.mul_scalar(a)
        };
        let kept = known.as_ref().map(|(_, mask)| mask.clone());
        let mut noise = |shape: [usize; 4]| normal(&mut rng, shape, &self.device);
        let mut report = |info: sampler::StepInfo<'_>| {
            if let Some(cb) = on_step.as_mut() {
                let (decoded, fog) = self.decode_with_fog(info.x0.clone());
                let mut preview: Vec<Roll> = decoded.into_iter().map(|(r, _)| r).collect();
                let shifts = move_to_key(&mut preview);
                let fog: Vec<Fog> = fog
                    .iter()
                    .zip(&shifts)
                    .map(|(f, &s)| if s == 0 { f.clone() } else { f.transposed(s) })
                    .collect();
                cb(StepEvent {
                    step: info.step,
                    total: info.total,
                    preview: &preview,
                    fog: &fog,
                });
            }
        };
        let z = sampler::sample(
            schedule,
            &denoiser,
            x,
            SampleOptions {
                kind: request.sampler,
                steps: request.steps,
                cancel,
                noise: &mut noise,
                known,
                restart: request.restart,
                from,
                project,
            },
            &mut report,
        )
        .map_err(|_| ModelError::Cancelled)?;
        let z = match request.refine {
            Some(r) => validity::refine(
                &self.autoencoder,
                &self.card.latent_norm(),
                z,
                self.card.thresholds,
                r,
                kept.as_ref(),
                cancel,
            )
            .map_err(|_| ModelError::Cancelled)?,
            None => z,
        };
        let (mut rolls, repaired): (Vec<Roll>, Vec<Validity>) =
            self.decode(z.clone()).into_iter().unzip();
        move_to_key(&mut rolls);
        for (roll, style) in rolls.iter_mut().zip(&labelled) {
            roll.style = *style;
            roll.tempo_bpm = request.tempo_bpm;
        }
        Ok(Generated {
            rolls,
            latents: z,
            repaired,
        })
    }
}

/// How one sampling run departs from a fresh generation.
#[derive(Default)]
pub(crate) struct Plan<'a> {
    /// One style per sample (`None`: the unlabelled model, which follows the music it is
    /// given); without it each sample's style is drawn as the request says.
    pub styles: Option<Vec<Option<Style>>>,
    /// Inpainting: a clean (normalised) latent and the mask of what it keeps (1 = keep).
    pub known: Option<(Tensor<4>, Tensor<4>)>,
    /// Begin from these clean (normalised) latents noised to this timestep.
    pub start: Option<(Tensor<4>, usize)>,
    /// See [`SampleOptions::project`].
    pub project: Option<&'a dyn Fn(Tensor<4>) -> Tensor<4>>,
    /// Move each finished roll into the key the request asks for (fresh pieces only).
    pub move_to_key: bool,
}

/// The index that `r` (a uniform draw times the weights' sum) falls in when the weights are
/// laid end to end; `None` where rounding leaves it past the last.
fn weighted_pick<T: Copy + PartialOrd + std::ops::SubAssign>(
    weights: &[T],
    mut r: T,
) -> Option<usize> {
    for (i, &w) in weights.iter().enumerate() {
        if r < w {
            return Some(i);
        }
        r -= w;
    }
    None
}

/// Standard normal values from `rng` as a tensor: generated on the CPU so every device starts
/// from the same numbers.
pub fn normal(rng: &mut ChaCha8Rng, shape: [usize; 4], device: &Device) -> Tensor<4> {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| StandardNormal.sample(rng)).collect();
    Tensor::from_data(TensorData::new(v, shape), device)
}

#[cfg(test)]
mod tests {
    use super::KeyChoice;

    #[test]
    fn key_choices_parse_as_the_command_line_writes_them() {
        let parse = |s: &str| s.parse::<KeyChoice>();
        assert_eq!(parse("typical"), Ok(KeyChoice::Typical));
        assert_eq!(parse("Drawn"), Ok(KeyChoice::AsDrawn));
        assert_eq!(parse("D"), Ok(KeyChoice::Root(2)));
        assert_eq!(parse("Bm"), Ok(KeyChoice::Root(2)));
        assert_eq!(parse("Eb"), Ok(KeyChoice::Root(3)));
        let err = parse("Q").unwrap_err();
        assert!(err.contains("'typical', 'drawn' or a key"), "{err}");
        assert_eq!(
            KeyChoice::Typical.to_string().parse(),
            Ok(KeyChoice::Typical)
        );
        assert_eq!(
            KeyChoice::AsDrawn.to_string().parse(),
            Ok(KeyChoice::AsDrawn)
        );
        assert_eq!(KeyChoice::Root(2).to_string(), "D / Bm");
    }
}
