//! Samplers: from noise to a clean latent in a few steps of a [`Denoiser`]. DDIM (with
//! configurable η) and DPM-Solver++(2M). Each step reports its predicted clean sample, which the
//! app decodes to show the roll sharpening, and checks a cancel flag.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};

use burn::tensor::{Distribution, Tensor};
use serde::{Deserialize, Serialize};

use super::schedule::Schedule;

/// Predicts the noise in `x` at training timestep `t`.
pub trait Denoiser {
    fn eps(&self, x: Tensor<4>, t: usize) -> Tensor<4>;
}

impl<F: Fn(Tensor<4>, usize) -> Tensor<4>> Denoiser for F {
    fn eps(&self, x: Tensor<4>, t: usize) -> Tensor<4> {
        self(x, t)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SamplerKind {
    /// DDIM; `eta` 0 is deterministic, 1 is DDPM-like ancestral sampling.
    Ddim { eta: f32 },
    /// DPM-Solver++(2M): second order, multistep, data prediction. Cards written before
    /// 2026-11-28 spelled it as serde's kebab case does.
    #[serde(rename = "dpm-solver++", alias = "dpm-solver-p-p")]
    DpmSolverPP,
}

impl fmt::Display for SamplerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SamplerKind::Ddim { eta } if *eta == 0.0 => f.write_str("ddim"),
            SamplerKind::Ddim { eta } if *eta == 1.0 => f.write_str("ddpm"),
            SamplerKind::Ddim { eta } => write!(f, "ddim (eta {eta})"),
            SamplerKind::DpmSolverPP => f.write_str("dpm"),
        }
    }
}

impl FromStr for SamplerKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "ddim" => Ok(SamplerKind::Ddim { eta: 0.0 }),
            // DDIM with η = 1 is ancestral sampling: fresh noise at every step, which corrects
            // a denoiser's errors instead of following them.
            "ddpm" | "ancestral" => Ok(SamplerKind::Ddim { eta: 1.0 }),
            "dpm" | "dpm++" | "dpmpp" | "dpm-solver++" => Ok(SamplerKind::DpmSolverPP),
            _ => Err(format!(
                "unknown sampler '{s}' (expected ddim, ddpm or dpm)"
            )),
        }
    }
}

/// What a sampler reports after each step.
pub struct StepInfo<'a> {
    /// 0-based index of the step just taken.
    pub step: usize,
    pub total: usize,
    /// The clean sample predicted at this step.
    pub x0: &'a Tensor<4>,
}

/// Sampling stopped because the cancel flag was raised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cancelled")]
pub struct Cancelled;

/// Everything a sampling run needs besides the model.
pub struct SampleOptions<'a> {
    pub kind: SamplerKind,
    pub steps: usize,
    /// Checked before every step.
    pub cancel: Option<&'a AtomicBool>,
    /// Source of noise for DDIM with η > 0 and for inpainting (already seeded by the caller).
    pub noise: &'a mut dyn FnMut([usize; 4]) -> Tensor<4>,
    /// Inpainting: a clean latent and a mask (1 = keep) of the same shape. After every step
    /// the kept region is replaced by the clean latent noised to that step's level (RePaint
    /// without resampling), so the model fills the rest in keeping with it.
    pub known: Option<(Tensor<4>, Tensor<4>)>,
    /// Restart rounds after the main pass (none: the main pass alone).
    pub restart: Option<Restart>,
    /// Start part-way: `x` is a clean sample noised to this timestep (a variation of it), not
    /// pure noise; `None` starts at the noisiest step.
    pub from: Option<usize>,
    /// Moves every step's clean prediction towards what must be true of the result (a melody
    /// it must hold, say) before the step is taken; the step's noise estimate follows it.
    pub project: Option<&'a dyn Fn(Tensor<4>) -> Tensor<4>>,
}

/// Restart sampling (Xu et al. 2023, "Restart Sampling for Improving Generative Processes"):
/// after the main pass, the clean sample is noised back to timestep `t` and denoised again in
/// `steps` steps, `rounds` times. Each round's fresh noise shrinks the errors the solver has
/// accumulated, which an undertrained denoiser leaves as detail off the data manifold (in
/// our rolls: sustain with no onset, one-step fragments); docs/experiments.md has the
/// measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Restart {
    pub t: usize,
    pub steps: usize,
    pub rounds: usize,
}

impl fmt::Display for Restart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{},{},{}", self.t, self.steps, self.rounds)
    }
}

impl FromStr for Restart {
    type Err = String;

    /// `T,STEPS,ROUNDS`, e.g. `100,6,4`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split(',').map(str::trim).collect();
        let numbers: Option<Vec<usize>> = parts.iter().map(|p| p.parse().ok()).collect();
        match numbers.as_deref() {
            Some(&[t, steps, rounds]) if (1..1000).contains(&t) && steps >= 1 => {
                Ok(Restart { t, steps, rounds })
            }
            _ => Err(format!(
                "restart '{s}' must be T,STEPS,ROUNDS: a timestep 1-999, at least one step, \
                 any number of rounds (e.g. 100,6,4)"
            )),
        }
    }
}

/// Denoises `x` (pure noise at the noisiest timestep) into a clean sample, then runs the
/// restart rounds, if any.
pub fn sample(
    schedule: &Schedule,
    model: &dyn Denoiser,
    x: Tensor<4>,
    options: SampleOptions<'_>,
    on_step: &mut dyn FnMut(StepInfo<'_>),
) -> Result<Tensor<4>, Cancelled> {
    let SampleOptions {
        kind,
        steps,
        cancel,
        noise,
        known,
        restart,
        from,
        project,
    } = options;
    let main = match from {
        Some(t) => schedule.sampling_steps_from(t, steps),
        None => schedule.sampling_steps(steps),
    };
    let again = restart.map_or(Vec::new(), |r| schedule.sampling_steps_from(r.t, r.steps));
    let rounds = restart.map_or(0, |r| r.rounds);
    let total = main.len() + rounds * again.len();
    let mut pass = Pass {
        schedule,
        model,
        kind,
        cancel,
        noise,
        known: known.as_ref(),
        project,
        on_step,
        done: 0,
        total,
    };
    let mut x = pass.run(&main, x)?;
    for _ in 0..rounds {
        let (a, s) = schedule.scales(Some(again[0]));
        let fresh = (pass.noise)(x.dims());
        x = pass.run(&again, x.mul_scalar(a) + fresh.mul_scalar(s))?;
    }
    Ok(x)
}

/// One denoising pass over a descending list of timesteps ending at 0, counting its steps into
/// a generation's total.
struct Pass<'a> {
    schedule: &'a Schedule,
    model: &'a dyn Denoiser,
    kind: SamplerKind,
    cancel: Option<&'a AtomicBool>,
    noise: &'a mut dyn FnMut([usize; 4]) -> Tensor<4>,
    known: Option<&'a (Tensor<4>, Tensor<4>)>,
    project: Option<&'a dyn Fn(Tensor<4>) -> Tensor<4>>,
    on_step: &'a mut dyn FnMut(StepInfo<'_>),
    done: usize,
    total: usize,
}

impl Pass<'_> {
    fn run(&mut self, timesteps: &[usize], mut x: Tensor<4>) -> Result<Tensor<4>, Cancelled> {
        let schedule = self.schedule;
        // DPM-Solver++ keeps the previous step's clean prediction and log-SNR.
        let mut previous: Option<(Tensor<4>, f64)> = None;
        for (i, &t) in timesteps.iter().enumerate() {
            if self.cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
                return Err(Cancelled);
            }
            let t_prev = timesteps.get(i + 1).copied();
            let (a_t, s_t) = schedule.scales(Some(t));
            let (a_p, s_p) = schedule.scales(t_prev);
            let mut eps = self.model.eps(x.clone(), t);
            let mut x0 = (x.clone() - eps.clone().mul_scalar(s_t)).div_scalar(a_t);
            if let Some(project) = self.project {
                x0 = project(x0);
                eps = (x.clone() - x0.clone().mul_scalar(a_t)).div_scalar(s_t);
            }
            (self.on_step)(StepInfo {
                step: self.done,
                total: self.total,
                x0: &x0,
            });
            self.done += 1;
            let next = match self.kind {
                SamplerKind::Ddim { eta } => {
                    let (ab_t, ab_p) = (a_t * a_t, a_p * a_p);
                    let sigma = f64::from(eta)
                        * ((1.0 - ab_p) / (1.0 - ab_t)).sqrt()
                        * (1.0 - ab_t / ab_p).max(0.0).sqrt();
                    let dir = (1.0 - ab_p - sigma * sigma).max(0.0).sqrt();
                    let mut next = x0.clone().mul_scalar(a_p) + eps.mul_scalar(dir);
                    if sigma > 0.0 {
                        next = next + (self.noise)(x.dims()).mul_scalar(sigma);
                    }
                    next
                }
                SamplerKind::DpmSolverPP => {
                    let lambda_t = (a_t / s_t).ln();
                    let next = match t_prev {
                        // The last step lands on clean data: σ = 0, so the update is x0 itself.
                        None => x0.clone(),
                        Some(_) => {
                            let lambda_p = (a_p / s_p).ln();
                            let h = lambda_p - lambda_t;
                            let phi = (-h).exp_m1(); // e^{-h} − 1
                            let d = match &previous {
                                // Second order: extrapolate the data prediction linearly in λ.
                                Some((x0_last, lambda_last)) => {
                                    let r = (lambda_t - lambda_last) / h;
                                    let d1 = (x0.clone() - x0_last.clone()).div_scalar(r);
                                    x0.clone() + d1.mul_scalar(0.5)
                                }
                                None => x0.clone(),
                            };
                            x.mul_scalar(s_p / s_t) - d.mul_scalar(a_p * phi)
                        }
                    };
                    previous = Some((x0, lambda_t));
                    next
                }
            };
            x = match self.known {
                Some((clean, keep)) => {
                    let known = match t_prev {
                        Some(_) => {
                            clean.clone().mul_scalar(a_p)
                                + (self.noise)(next.dims()).mul_scalar(s_p)
                        }
                        None => clean.clone(),
                    };
                    known * keep.clone() + next * keep.clone().neg().add_scalar(1.0)
                }
                None => next,
            };
        }
        Ok(x)
    }
}

/// Standard normal noise of `shape` from burn's generator; the pipeline uses its own seeded
/// generator instead so results match across devices.
pub fn device_noise(shape: [usize; 4], device: &burn::tensor::Device) -> Tensor<4> {
    let _held = super::seeded::hold();
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};
    use rand::SeedableRng;
    use rand_distr::{Distribution as _, StandardNormal};

    /// Data drawn from N(μ, s²) per element: the exact noise predictor is known in closed form,
    /// so a correct sampler must reproduce the data distribution.
    struct Gaussian {
        mean: f64,
        std: f64,
        schedule: Schedule,
    }

    impl Denoiser for Gaussian {
        fn eps(&self, x: Tensor<4>, t: usize) -> Tensor<4> {
            let (a, s) = self.schedule.scales(Some(t));
            // x_t ~ N(a μ, a² s_d² + s²); E[ε | x_t] = s (x_t − a μ) / (a² s_d² + s²).
            let var = a * a * self.std * self.std + s * s;
            (x - self.mean * a).mul_scalar(s / var)
        }
    }

    fn normal(n: usize, seed: u64, device: &Device) -> Tensor<4> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let v: Vec<f32> = (0..n).map(|_| StandardNormal.sample(&mut rng)).collect();
        Tensor::from_data(TensorData::new(v, [n, 1, 1, 1]), device)
    }

    fn moments(x: Tensor<4>) -> (f64, f64) {
        let v: Vec<f32> = x.into_data().try_to_vec::<f32>().unwrap();
        let n = v.len() as f64;
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
        let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
        (mean, var.sqrt())
    }

    fn check(kind: SamplerKind, steps: usize) -> (f64, f64) {
        check_with(kind, steps, None)
    }

    fn check_with(kind: SamplerKind, steps: usize, restart: Option<Restart>) -> (f64, f64) {
        let device = Device::flex();
        let model = Gaussian {
            mean: 1.5,
            std: 0.5,
            schedule: Schedule::default(),
        };
        let n = 20_000;
        let x = normal(n, 7, &device);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(8);
        let dev = device.clone();
        let mut noise = move |shape: [usize; 4]| {
            let count = shape.iter().product();
            let v: Vec<f32> = (0..count)
                .map(|_| StandardNormal.sample(&mut rng))
                .collect();
            Tensor::from_data(TensorData::new(v, shape), &dev)
        };
        let mut seen = 0;
        let expected_steps = model.schedule.sampling_steps(steps).len()
            + restart.map_or(0, |r| {
                r.rounds * model.schedule.sampling_steps_from(r.t, r.steps).len()
            });
        let out = sample(
            &model.schedule,
            &model,
            x,
            SampleOptions {
                kind,
                steps,
                cancel: None,
                noise: &mut noise,
                known: None,
                restart,
                from: None,
                project: None,
            },
            &mut |info| {
                assert_eq!(info.step, seen);
                seen += 1;
            },
        )
        .unwrap();
        assert_eq!(seen, expected_steps);
        moments(out)
    }

    #[test]
    fn ddim_reproduces_a_known_gaussian() {
        // DDIM is first order: it needs many steps to be exact.
        let (mean, std) = check(SamplerKind::Ddim { eta: 0.0 }, 250);
        assert!((mean - 1.5).abs() < 0.03, "mean {mean}");
        assert!((std - 0.5).abs() < 0.01, "std {std}");
    }

    #[test]
    fn ancestral_ddim_reproduces_a_known_gaussian() {
        let (mean, std) = check(SamplerKind::Ddim { eta: 1.0 }, 250);
        assert!((mean - 1.5).abs() < 0.03, "mean {mean}");
        assert!((std - 0.5).abs() < 0.02, "std {std}");
    }

    #[test]
    fn dpm_solver_reproduces_a_known_gaussian_in_few_steps() {
        // Sampling starts from N(0, 1), ignoring the ᾱ_T^½ μ ≈ 0.018 of signal left at the
        // noisiest step: the mean may miss by that much.
        let (mean, std) = check(SamplerKind::DpmSolverPP, 15);
        assert!((mean - 1.5).abs() < 0.03, "mean {mean}");
        assert!((std - 0.5).abs() < 0.015, "std {std}");
    }

    #[test]
    fn restarts_keep_an_exact_denoisers_distribution() {
        // Each round is a short solve from a moderate noise level: with enough steps it
        // lands on the data distribution again.
        let restart = Restart {
            t: 100,
            steps: 8,
            rounds: 4,
        };
        let (mean, std) = check_with(SamplerKind::DpmSolverPP, 15, Some(restart));
        assert!((mean - 1.5).abs() < 0.03, "mean {mean}");
        assert!((std - 0.5).abs() < 0.015, "std {std}");
        // With 2 steps a round the solver's own error, repeated every round, shrinks the
        // spread: why the CLI and the app restart with at least 6.
        let few = Restart {
            steps: 2,
            ..restart
        };
        let (_, thin) = check_with(SamplerKind::DpmSolverPP, 15, Some(few));
        assert!(thin < 0.4, "std {thin} with 2 steps a round");
    }

    #[test]
    fn restarts_shrink_the_error_a_coarse_pass_leaves() {
        // Five DDIM steps from pure noise leave a first-order error in the spread; restarting
        // from a moderate noise level with the same few steps has less ground to cover.
        let (_, coarse) = check(SamplerKind::Ddim { eta: 0.0 }, 5);
        let restart = Restart {
            t: 200,
            steps: 5,
            rounds: 4,
        };
        let (_, restarted) = check_with(SamplerKind::Ddim { eta: 0.0 }, 5, Some(restart));
        assert!(
            (restarted - 0.5).abs() < 0.5 * (coarse - 0.5).abs(),
            "std {coarse} without restarts, {restarted} with"
        );
    }

    #[test]
    fn restart_parses_and_prints() {
        let r: Restart = "100, 2, 8".parse().unwrap();
        assert_eq!(
            r,
            Restart {
                t: 100,
                steps: 2,
                rounds: 8
            }
        );
        assert_eq!(r.to_string(), "100,2,8");
        for bad in ["100,2", "0,2,8", "1000,2,8", "100,0,8", "a,b,c"] {
            assert!(bad.parse::<Restart>().is_err(), "{bad}");
        }
    }

    #[test]
    fn cancel_stops_before_the_next_step() {
        let device = Device::flex();
        let schedule = Schedule::default();
        let cancel = AtomicBool::new(false);
        let model = |x: Tensor<4>, _t: usize| x.mul_scalar(0.0);
        let mut steps = 0;
        let mut noise = |s: [usize; 4]| device_noise(s, &device);
        let result = sample(
            &schedule,
            &model,
            normal(4, 1, &device),
            SampleOptions {
                kind: SamplerKind::DpmSolverPP,
                steps: 20,
                cancel: Some(&cancel),
                noise: &mut noise,
                known: None,
                restart: None,
                from: None,
                project: None,
            },
            &mut |_| {
                steps += 1;
                if steps == 3 {
                    cancel.store(true, Ordering::Relaxed);
                }
            },
        );
        assert_eq!(result.unwrap_err(), Cancelled);
        assert_eq!(steps, 3);
    }

    #[test]
    fn inpainting_keeps_the_known_region_exactly() {
        let device = Device::flex();
        let schedule = Schedule::default();
        let model = |x: Tensor<4>, _t: usize| x.mul_scalar(0.1);
        let clean = normal(8, 3, &device).reshape([1, 2, 2, 2]);
        let keep = Tensor::<4>::from_data(
            TensorData::new(
                vec![1.0f32, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0],
                [1, 2, 2, 2],
            ),
            &device,
        );
        let mut noise = |s: [usize; 4]| device_noise(s, &device);
        let restart = Restart {
            t: 100,
            steps: 2,
            rounds: 2,
        };
        for (kind, restart) in [
            (SamplerKind::DpmSolverPP, None),
            (SamplerKind::Ddim { eta: 0.5 }, None),
            (SamplerKind::DpmSolverPP, Some(restart)),
        ] {
            let out = sample(
                &schedule,
                &model,
                normal(8, 4, &device).reshape([1, 2, 2, 2]),
                SampleOptions {
                    kind,
                    steps: 6,
                    cancel: None,
                    noise: &mut noise,
                    known: Some((clean.clone(), keep.clone())),
                    restart,
                    from: None,
                    project: None,
                },
                &mut |_| {},
            )
            .unwrap();
            let (o, c): (Vec<f32>, Vec<f32>) = (
                out.into_data().try_to_vec().unwrap(),
                clean.clone().into_data().try_to_vec().unwrap(),
            );
            for i in (0..8).step_by(2) {
                assert_eq!(o[i], c[i], "kept cell {i}");
            }
            assert!((1..8).step_by(2).any(|i| o[i] != c[i]));
        }
    }

    #[test]
    fn sampler_names_parse() {
        assert_eq!("ddim".parse(), Ok(SamplerKind::Ddim { eta: 0.0 }));
        assert_eq!("DPM".parse(), Ok(SamplerKind::DpmSolverPP));
        assert_eq!("ddpm".parse(), Ok(SamplerKind::Ddim { eta: 1.0 }));
        assert_eq!(SamplerKind::Ddim { eta: 1.0 }.to_string(), "ddpm");
        assert!("euler".parse::<SamplerKind>().is_err());
    }

    #[test]
    fn cards_name_the_solver_as_its_paper_does_and_read_the_old_spelling() {
        let json = serde_json::to_string(&SamplerKind::DpmSolverPP).unwrap();
        assert_eq!(json, r#""dpm-solver++""#);
        for old in [json.as_str(), r#""dpm-solver-p-p""#] {
            let kind: SamplerKind = serde_json::from_str(old).unwrap();
            assert_eq!(kind, SamplerKind::DpmSolverPP);
        }
    }
}
