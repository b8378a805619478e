//! The forward noising process: 1000 training steps with the latent-diffusion "linear" schedule
//! (β linear in √β from 0.0015 to 0.0195), and the quantities samplers need.

/// Training timesteps.
pub const TRAIN_STEPS: usize = 1000;
const BETA_START: f64 = 0.0015;
const BETA_END: f64 = 0.0195;

/// ᾱ_t for every training step, in f64 so 1000 products stay exact enough to test.
#[derive(Debug, Clone)]
pub struct Schedule {
    betas: Vec<f64>,
    alphas_cumprod: Vec<f64>,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule::new(TRAIN_STEPS)
    }
}

impl Schedule {
    pub fn new(steps: usize) -> Schedule {
        assert!(steps >= 2, "a schedule needs at least two steps");
        let (s, e) = (BETA_START.sqrt(), BETA_END.sqrt());
        let betas: Vec<f64> = (0..steps)
            .map(|i| {
                let r = s + (e - s) * i as f64 / (steps - 1) as f64;
                r * r
            })
            .collect();
        let mut alphas_cumprod = Vec::with_capacity(steps);
        let mut prod = 1.0;
        for b in &betas {
            prod *= 1.0 - b;
            alphas_cumprod.push(prod);
        }
        Schedule {
            betas,
            alphas_cumprod,
        }
    }

    pub fn len(&self) -> usize {
        self.betas.len()
    }

    pub fn is_empty(&self) -> bool {
        self.betas.is_empty()
    }

    pub fn beta(&self, t: usize) -> f64 {
        self.betas[t]
    }

    /// ᾱ_t; `None` (before the first step, clean data) gives 1.
    pub fn alpha_bar(&self, t: Option<usize>) -> f64 {
        t.map_or(1.0, |t| self.alphas_cumprod[t])
    }

    /// Signal and noise scales (√ᾱ, √(1−ᾱ)) at `t`.
    pub fn scales(&self, t: Option<usize>) -> (f64, f64) {
        let a = self.alpha_bar(t);
        (a.sqrt(), (1.0 - a).sqrt())
    }

    /// Half the log signal-to-noise ratio, λ_t = ½ ln(ᾱ / (1 − ᾱ)); falls as t grows.
    pub fn log_snr(&self, t: usize) -> f64 {
        let a = self.alphas_cumprod[t];
        0.5 * (a / (1.0 - a)).ln()
    }

    /// `n` sampling timesteps from the noisiest step down to step 0, evenly spaced in log-SNR.
    /// Even spacing in t wastes steps where little changes and takes big jumps near clean
    /// data; with exact noise predictions it shrinks a Gaussian's spread by 7 % at 25
    /// DPM-Solver steps, against 0.2 % with this spacing (see the sampler tests).
    pub fn sampling_steps(&self, n: usize) -> Vec<usize> {
        self.sampling_steps_from(self.len() - 1, n)
    }

    /// `n` timesteps from `start` down to step 0, evenly spaced in log-SNR (as
    /// [`Schedule::sampling_steps`]); for a pass that begins part-way, as a restart does.
    pub fn sampling_steps_from(&self, start: usize, n: usize) -> Vec<usize> {
        let last = start.min(self.len() - 1);
        let n = n.clamp(1, last + 1);
        if n == 1 {
            return vec![last];
        }
        let (lo, hi) = (self.log_snr(last), self.log_snr(0));
        let lambdas: Vec<f64> = (0..=last).map(|t| self.log_snr(t)).collect();
        let mut steps: Vec<usize> = (0..n)
            .map(|i| {
                let target = lo + (hi - lo) * i as f64 / (n - 1) as f64;
                // λ falls with t: the first t whose λ is at or below the target, or its
                // predecessor, whichever is nearer.
                let after = lambdas.partition_point(|&l| l > target).min(last);
                if after > 0
                    && (lambdas[after - 1] - target).abs() < (lambdas[after] - target).abs()
                {
                    after - 1
                } else {
                    after
                }
            })
            .collect();
        steps.dedup();
        steps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn betas_follow_the_closed_form() {
        let s = Schedule::default();
        assert_eq!(s.len(), 1000);
        assert!((s.beta(0) - 0.0015).abs() < 1e-12);
        assert!((s.beta(999) - 0.0195).abs() < 1e-12);
        // Midpoint of √β is the mean of the end points' roots.
        let mid = ((0.0015f64.sqrt() + 0.0195f64.sqrt()) / 2.0).powi(2);
        let b = |t: usize| s.beta(t);
        assert!(((b(499) + b(500)) / 2.0 - mid).abs() < 1e-6);
        assert!((1..1000).all(|t| b(t) > b(t - 1)));
    }

    #[test]
    fn alpha_bar_is_the_product_and_ends_near_zero() {
        let s = Schedule::default();
        let log_sum: f64 = (0..1000).map(|t| (1.0 - s.beta(t)).ln()).sum();
        assert!((s.alpha_bar(Some(999)).ln() - log_sum).abs() < 1e-9);
        assert_eq!(s.alpha_bar(None), 1.0);
        assert!((s.alpha_bar(Some(0)) - 0.9985).abs() < 1e-12);
        // The schedule leaves ᾱ_T ≈ 1.4e-4: pure noise for all purposes.
        assert!((s.alpha_bar(Some(999)) - 1.423e-4).abs() < 1e-6);
        let (a, n) = s.scales(Some(500));
        assert!((a * a + n * n - 1.0).abs() < 1e-12);
    }

    #[test]
    fn sampling_steps_span_the_schedule() {
        let s = Schedule::default();
        let steps = s.sampling_steps(25);
        assert_eq!(steps.len(), 25);
        assert_eq!(steps[0], 999);
        assert!(steps.windows(2).all(|w| w[0] > w[1]));
        assert_eq!(*steps.last().unwrap(), 0);
        // Equal log-SNR gaps, up to rounding t to whole steps (coarse near t = 0).
        let gaps: Vec<f64> = steps
            .windows(2)
            .map(|w| s.log_snr(w[1]) - s.log_snr(w[0]))
            .collect();
        let ideal = (s.log_snr(0) - s.log_snr(999)) / 24.0;
        assert!(
            gaps.iter()
                .skip(1)
                .all(|g| (g - ideal).abs() < 0.15 * ideal),
            "{gaps:?}"
        );
        assert!(s.sampling_steps(1000).len() > 500);
        assert_eq!(s.sampling_steps(5000), s.sampling_steps(1000));
    }
}
