//! The last stage before the speaker: a stereo peak limiter that guarantees no sample leaves
//! louder than its ceiling, whatever the instrument or the number of notes.

/// Peak limiter with instant attack and smooth release. The gain drops at once to what the
/// loudest channel needs (so the ceiling holds sample by sample, no lookahead needed), then
/// recovers over `release` so dense chords duck smoothly instead of pumping. Both channels share
/// one gain so the stereo image stays put.
#[derive(Debug, Clone)]
pub struct Limiter {
    ceiling: f32,
    gain: f32,
    release_coef: f32,
}

impl Limiter {
    /// Output peak never exceeds this (-0.45 dBFS): leaves room for 16-bit rounding and
    /// resampling in drivers.
    pub const CEILING: f32 = 0.95;

    pub fn new(sample_rate: u32) -> Self {
        let release_secs = 0.15;
        Limiter {
            ceiling: Self::CEILING,
            gain: 1.0,
            release_coef: 1.0 - (-1.0 / (release_secs * sample_rate.max(1) as f32)).exp(),
        }
    }

    /// Limits both channels in place.
    pub fn process(&mut self, left: &mut [f32], right: &mut [f32]) {
        for (l, r) in left.iter_mut().zip(right.iter_mut()) {
            // A NaN or infinity from a broken SoundFont must not reach the device as noise.
            if !l.is_finite() {
                *l = 0.0;
            }
            if !r.is_finite() {
                *r = 0.0;
            }
            let peak = l.abs().max(r.abs());
            let needed = if peak > self.ceiling {
                self.ceiling / peak
            } else {
                1.0
            };
            if needed < self.gain {
                self.gain = needed;
            } else {
                self.gain += (needed - self.gain) * self.release_coef;
            }
            *l *= self.gain;
            *r *= self.gain;
        }
    }

    /// Current gain (1 = untouched): lets tests and meters see how hard it works.
    pub fn gain(&self) -> f32 {
        self.gain
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loud_input_never_exceeds_the_ceiling_and_quiet_input_passes() {
        let mut limiter = Limiter::new(44_100);
        let mut l: Vec<f32> = (0..4410).map(|i| 3.0 * (i as f32 * 0.05).sin()).collect();
        let mut r: Vec<f32> = l.iter().map(|x| -x * 0.5).collect();
        limiter.process(&mut l, &mut r);
        let peak = l.iter().chain(&r).fold(0.0f32, |m, x| m.max(x.abs()));
        assert!(peak <= Limiter::CEILING + 1e-6, "peak {peak}");
        assert!(peak > 0.9, "limited, not silenced: {peak}");

        // After a long quiet stretch the gain is back to 1.
        let mut quiet_l = vec![0.1f32; 44_100];
        let mut quiet_r = quiet_l.clone();
        limiter.process(&mut quiet_l, &mut quiet_r);
        assert!((limiter.gain() - 1.0).abs() < 1e-3);
        assert!((quiet_l[44_099] - 0.1).abs() < 1e-3);
    }

    #[test]
    fn non_finite_samples_become_silence() {
        let mut limiter = Limiter::new(48_000);
        let mut l = [f32::NAN, f32::INFINITY, 0.5];
        let mut r = [f32::NEG_INFINITY, 0.2, 0.5];
        limiter.process(&mut l, &mut r);
        assert!(l.iter().chain(&r).all(|x| x.is_finite() && x.abs() <= 1.0));
    }
}
