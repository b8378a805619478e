//! Exponential moving average of a module's weights: diffusion samples from averaged weights
//! are markedly cleaner than from the last optimizer step's.

use std::collections::VecDeque;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::Tensor;

/// Collects every float parameter, flattened, in visiting order.
struct Collect(VecDeque<Tensor<1>>);

impl ModuleVisitor for Collect {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let t = param.val();
        let n = t.shape().num_elements();
        self.0.push_back(t.reshape([n]));
    }
}

/// Moves every float parameter towards the collected one: p ← d·p + (1 − d)·q.
struct Blend {
    other: VecDeque<Tensor<1>>,
    decay: f64,
}

impl ModuleMapper for Blend {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let other = self
            .other
            .pop_front()
            .expect("EMA and model have the same parameters");
        let decay = self.decay;
        param.map(|p| {
            let shape = p.shape();
            p.mul_scalar(decay) + other.reshape(shape).mul_scalar(1.0 - decay)
        })
    }
}

/// Decay used at `step`: short memory early (so the average is not stuck at the random
/// initialisation), `max` later.
pub fn decay_at(step: usize, max: f64) -> f64 {
    ((1.0 + step as f64) / (10.0 + step as f64)).min(max)
}

/// Updates `ema` (same architecture, plain device) towards `current` (already detached).
pub fn update<M: Module>(ema: M, current: &M, decay: f64) -> M {
    let mut collect = Collect(VecDeque::new());
    current.visit(&mut collect);
    let mut blend = Blend {
        other: collect.0,
        decay,
    };
    ema.map(&mut blend)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::{Linear, LinearConfig};
    use burn::tensor::Device;

    #[test]
    fn ema_moves_towards_the_model() {
        let device = Device::flex();
        let init = |d: &Device| -> Linear { LinearConfig::new(3, 2).init(d) };
        let a = crate::model::init_seeded(&device, 1, init);
        let b = crate::model::init_seeded(&device, 2, init);
        let wa: Vec<f32> = a.weight.val().into_data().try_to_vec().unwrap();
        let wb: Vec<f32> = b.weight.val().into_data().try_to_vec().unwrap();
        let mixed = update(a, &b, 0.75);
        let wm: Vec<f32> = mixed.weight.val().into_data().try_to_vec().unwrap();
        for i in 0..wa.len() {
            assert!((wm[i] - (0.75 * wa[i] + 0.25 * wb[i])).abs() < 1e-6);
        }
        assert!(decay_at(0, 0.999) < 0.2 && decay_at(1_000_000, 0.999) == 0.999);
    }
}
