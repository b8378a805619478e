//! Reproducible draws from burn's random generator.
//!
//! Burn draws a fresh module's weights (and `Tensor::random`) from one generator per backend,
//! shared by the whole process, and draws them lazily, when a weight is first used. Seeding it
//! and then building a module was therefore not enough for a run to be reproducible: any other
//! thread drawing in between (a second training run, a test beside this one) shifted the
//! weights. Every draw this crate makes from burn's generator goes through here, one at a time.

use std::sync::{Mutex, MutexGuard, PoisonError};

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Bool, Device, Int, Tensor};

static GENERATOR: Mutex<()> = Mutex::new(());

/// Holds burn's generator for this crate until the guard drops. A panic while it was held
/// leaves nothing half-done that matters here, so a poisoned lock is taken as it is.
pub(crate) fn hold() -> MutexGuard<'static, ()> {
    GENERATOR.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Builds a module with burn's generator seeded to `seed` and draws every one of its weights
/// before the generator is let go: the same seed gives the same weights whatever other threads
/// draw. `init` builds the module on `device`, e.g. `|d| config.init(d)`.
pub fn init_seeded<M: Module>(device: &Device, seed: u64, init: impl FnOnce(&Device) -> M) -> M {
    let _held = hold();
    device.seed(seed);
    let module = init(device);
    module.visit(&mut Materialize);
    module
}

/// Touches every parameter, which makes burn draw the lazily initialised ones now.
struct Materialize;

impl ModuleVisitor for Materialize {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let _ = param.val();
    }

    fn visit_int<const D: usize>(&mut self, param: &Param<Tensor<D, Int>>) {
        let _ = param.val();
    }

    fn visit_bool<const D: usize>(&mut self, param: &Param<Tensor<D, Bool>>) {
        let _ = param.val();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::{Linear, LinearConfig};

    fn weights(l: &Linear) -> Vec<f32> {
        l.weight.val().into_data().try_to_vec().unwrap()
    }

    #[test]
    fn the_same_seed_gives_the_same_weights_while_other_threads_draw() {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let device = Device::flex();
        let init = |d: &Device| -> Linear { LinearConfig::new(64, 64).init(d) };
        let reference = weights(&init_seeded(&device, 11, init));
        let (stop, other_draws) = (AtomicBool::new(false), AtomicUsize::new(0));
        let same = std::thread::scope(|s| {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    let _ = weights(&init_seeded(&device, 5, init));
                    other_draws.fetch_add(1, Ordering::Relaxed);
                }
            });
            while other_draws.load(Ordering::Relaxed) == 0 {
                std::thread::yield_now();
            }
            // Assert only once the other thread is stopped: a failure must not leave it running.
            let same = (0..300).all(|_| weights(&init_seeded(&device, 11, init)) == reference);
            stop.store(true, Ordering::Relaxed);
            same
        });
        assert!(
            same,
            "a seeded build drew other weights while another thread drew"
        );
        assert!(
            other_draws.into_inner() > 1,
            "the other thread drew meanwhile"
        );
        assert_ne!(weights(&init_seeded(&device, 12, init)), reference);
    }
}
