//! Classifier two-sample test: a small CNN learns to tell two sets of 8-bar windows apart,
//! and its accuracy on windows it did not train on says how far apart they are (0.5: it
//! cannot; 1.0: always). Folds hold out whole groups (a real piece's overlapping windows stay
//! together), so the classifier cannot score by recognising a piece it saw.

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::activation::{relu, silu};
use burn::tensor::{Device, Tensor, TensorData};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::model::layers::{ConvApply, conv3, downsample, fold};
use crate::model::{init_seeded, rolls_to_tensor};
use crate::roll::Roll;

/// How the classifier is trained and scored.
#[derive(Config, Debug)]
pub struct C2stConfig {
    /// Folds of the cross-validation (groups are split among them).
    #[config(default = 5)]
    pub folds: usize,
    /// Optimiser steps per fold.
    #[config(default = 100)]
    pub steps: usize,
    #[config(default = 32)]
    pub batch: usize,
    #[config(default = 1e-3)]
    pub lr: f64,
    #[config(default = 0)]
    pub seed: u64,
}

/// Held-out accuracy of the classifier, over the folds.
#[derive(Debug, Clone, serde::Serialize)]
pub struct C2st {
    pub accuracy: f64,
    /// Standard deviation of the folds' accuracies.
    pub spread: f64,
    pub folds: Vec<f64>,
    /// Windows per set after balancing (the larger set is cut to the smaller's size).
    pub per_set: usize,
}

/// A window and the group it must stay with (its piece).
pub type Grouped<'a> = (&'a Roll, usize);

/// Each 4×4 patch of the roll folded into channels (128×128 → 32×32), a 3×3 convolution, two
/// strided ones (→ 8×8), and a linear read-out of the flattened map, which keeps where in
/// pitch and time a feature is (register, bar).
#[derive(Module, Debug)]
struct Critic {
    conv: Conv2d,
    down: Vec<Conv2d>,
    head: Linear,
}

const PATCH: usize = 4;

impl Critic {
    fn new(device: &Device) -> Critic {
        let folded = 2 * PATCH * PATCH;
        Critic {
            conv: conv3(folded, 32, device),
            down: vec![downsample(32, 64, device), downsample(64, 64, device)],
            head: LinearConfig::new(64 * 8 * 8, 1).init(device),
        }
    }

    /// One logit per window: positive for the second set.
    fn forward(&self, x: Tensor<4>) -> Tensor<1> {
        let mut h = silu(self.conv.apply(fold(x, PATCH)));
        for conv in &self.down {
            h = silu(conv.apply(h));
        }
        let [b, c, hh, ww] = h.dims();
        self.head.forward(h.reshape([b, c * hh * ww])).reshape([b])
    }
}

/// `log(1 + exp(-z))`, stable for large |z|.
fn softplus_neg(z: Tensor<1>) -> Tensor<1> {
    relu(-z.clone()) + (-z.abs()).exp().log1p()
}

/// How well a classifier tells `first` from `second` on held-out groups. Groups are
/// per set: the same number in both sets names two different groups.
pub fn c2st(first: &[Grouped], second: &[Grouped], config: &C2stConfig, device: &Device) -> C2st {
    cross_validate(first, second, config, |train, test, seed| {
        let critic = train_critic(train, config, seed, device);
        accuracy(&critic, test, config.batch, device)
    })
}

/// Balances the two sets, deals their groups to `config.folds` folds and returns the
/// held-out accuracy `fit_and_score(train, test, seed)` reaches on each fold (labels: 0 for
/// `first`, 1 for `second`). Items are whatever the classifier reads: rolls, or features
/// computed once per window.
pub(crate) fn cross_validate<T: Copy>(
    first: &[(T, usize)],
    second: &[(T, usize)],
    config: &C2stConfig,
    mut fit_and_score: impl FnMut(&[(T, f32)], &[(T, f32)], u64) -> f64,
) -> C2st {
    let n = first.len().min(second.len());
    // Balanced classes, so that 0.5 is chance whatever the set sizes.
    let pick = |set: &[(T, usize)]| -> Vec<(T, usize)> {
        crate::train::dataset::evenly_spread(set, n)
            .copied()
            .collect()
    };
    let sets = [pick(first), pick(second)];
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let fold_of: Vec<Vec<usize>> = sets
        .iter()
        .map(|set| {
            let groups: Vec<usize> = set.iter().map(|(_, g)| *g).collect();
            deal(&groups, config.folds, &mut rng)
        })
        .collect();
    let mut accuracies = Vec::new();
    for fold in 0..config.folds.max(1) {
        let split = |held: bool| -> Vec<(T, f32)> {
            sets.iter()
                .enumerate()
                .flat_map(|(label, set)| {
                    set.iter()
                        .zip(&fold_of[label])
                        .filter(move |(_, f)| (**f == fold) == held)
                        .map(move |((item, _), _)| (*item, label as f32))
                })
                .collect()
        };
        let (train, test) = (split(false), split(true));
        if train.is_empty() || test.is_empty() {
            continue;
        }
        accuracies.push(fit_and_score(&train, &test, config.seed + fold as u64));
    }
    let k = accuracies.len().max(1) as f64;
    let mean = accuracies.iter().sum::<f64>() / k;
    let spread = (accuracies.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / k).sqrt();
    C2st {
        accuracy: mean,
        spread,
        folds: accuracies,
        per_set: n,
    }
}

/// The fold of each item: its group's distinct value shuffled and dealt to the folds in turn,
/// so the items of one group share a fold and the folds get groups in equal numbers.
fn deal(groups: &[usize], folds: usize, rng: &mut ChaCha8Rng) -> Vec<usize> {
    let mut distinct = groups.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    distinct.shuffle(rng);
    let fold: std::collections::HashMap<usize, usize> = distinct
        .iter()
        .enumerate()
        .map(|(i, g)| (*g, i % folds.max(1)))
        .collect();
    groups.iter().map(|g| fold[g]).collect()
}

fn batch(items: &[(&Roll, f32)], device: &Device) -> (Tensor<4>, Tensor<1>) {
    let rolls: Vec<&Roll> = items.iter().map(|(r, _)| *r).collect();
    let labels: Vec<f32> = items.iter().map(|(_, l)| *l).collect();
    let n = labels.len();
    (
        rolls_to_tensor(&rolls, device),
        Tensor::from_data(TensorData::new(labels, [n]), device),
    )
}

fn train_critic(train: &[(&Roll, f32)], config: &C2stConfig, seed: u64, device: &Device) -> Critic {
    let ad = device.clone().autodiff();
    let mut critic = init_seeded(&ad, seed, Critic::new);
    let mut optim = AdamWConfig::new().with_weight_decay(1e-4).init();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut order: Vec<usize> = (0..train.len()).collect();
    let mut at = order.len();
    for _ in 0..config.steps {
        let mut chosen = Vec::with_capacity(config.batch);
        while chosen.len() < config.batch.min(train.len()) {
            if at == order.len() {
                order.shuffle(&mut rng);
                at = 0;
            }
            chosen.push(train[order[at]]);
            at += 1;
        }
        let (x, y) = batch(&chosen, &ad);
        // Label 1 → sign +1, label 0 → sign −1; the loss is softplus(−sign · logit).
        let sign = y * 2.0 - 1.0;
        let loss = softplus_neg(critic.forward(x) * sign).mean();
        let grads = GradientsParams::from_grads(loss.backward(), &critic);
        critic = optim.step(config.lr, critic, grads);
    }
    critic.valid()
}

fn accuracy(critic: &Critic, test: &[(&Roll, f32)], batch_size: usize, device: &Device) -> f64 {
    let mut correct = 0usize;
    for chunk in test.chunks(batch_size.max(1)) {
        let (x, _) = batch(chunk, device);
        let logits = critic
            .forward(x)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap_or_default();
        correct += logits
            .iter()
            .zip(chunk)
            .filter(|(z, (_, label))| (**z > 0.0) == (*label > 0.5))
            .count();
    }
    correct as f64 / test.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::roll::{Note, WINDOW_STEPS};

    /// Windows of one repeated chord rhythm: block chords every `every` steps, varied by seed.
    fn windows(every: u32, dense: bool, count: usize, seed: u64) -> Vec<Roll> {
        use rand::RngExt;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..count)
            .map(|_| {
                let root = rng.random_range(48..72u8);
                let mut notes = Vec::new();
                let mut t = 0;
                while t + every <= WINDOW_STEPS as u32 {
                    let chord: &[u8] = if dense {
                        &[0, 1, 2, 3, 5, 6]
                    } else {
                        &[0, 4, 7]
                    };
                    for d in chord {
                        notes.push(Note::new(root + d, t, t + every, 80));
                    }
                    t += every;
                }
                Roll::from_notes(&notes, WINDOW_STEPS)
            })
            .collect()
    }

    fn grouped(rolls: &[Roll]) -> Vec<Grouped<'_>> {
        rolls.iter().enumerate().map(|(i, r)| (r, i)).collect()
    }

    #[test]
    fn tells_different_sets_apart_and_not_alike_ones() {
        let device = Device::flex();
        let config = C2stConfig::new()
            .with_folds(3)
            .with_steps(40)
            .with_batch(16);
        let triads = windows(4, false, 48, 1);
        let clusters = windows(4, true, 48, 2);
        let more_triads = windows(4, false, 48, 3);
        let apart = c2st(&grouped(&triads), &grouped(&clusters), &config, &device);
        assert!(apart.accuracy > 0.9, "{apart:?}");
        let alike = c2st(&grouped(&triads), &grouped(&more_triads), &config, &device);
        assert!(alike.accuracy < 0.75, "{alike:?}");
        assert_eq!(apart.folds.len(), 3);
        assert_eq!(apart.per_set, 48);
    }

    #[test]
    fn a_group_stays_in_one_fold_and_folds_share_the_groups() {
        let groups: Vec<usize> = (0..60).map(|i| i / 4).collect(); // 15 groups of 4
        let folds = deal(&groups, 5, &mut ChaCha8Rng::seed_from_u64(3));
        for (g, f) in groups.iter().zip(&folds) {
            let first = groups.iter().position(|x| x == g).unwrap();
            assert_eq!(*f, folds[first], "group {g} split");
        }
        let mut per_fold = [0usize; 5];
        folds.iter().for_each(|f| per_fold[*f] += 1);
        assert_eq!(per_fold, [12; 5], "three groups of four per fold");
        // Another seed deals them differently.
        assert_ne!(folds, deal(&groups, 5, &mut ChaCha8Rng::seed_from_u64(4)));
    }
}
