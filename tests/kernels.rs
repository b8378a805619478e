//! Our CPU convolution kernels (`diffroll::kernels`) against burn's own ops: forward outputs
//! and the input, weight and bias gradients on random shapes and on every shape the shipped
//! model runs; a short training run's losses; the notes `generate` draws.

use std::path::Path;

use burn::optim::AdamWConfig;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Tensor, TensorData};
use diffroll::kernels::{self, conv::ConvShape};
use diffroll::model::{GenerateRequest, Pipeline, Schedule, init_seeded};
use diffroll::train::diffusion::noise_batch;
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

const TOLERANCE: f32 = 1e-4;

fn shipped() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/models/base"))
}

/// Largest difference relative to the reference's largest magnitude.
fn relative_error(ours: Tensor<4>, reference: Tensor<4>) -> f32 {
    let a = ours.into_data().try_to_vec::<f32>().unwrap();
    let b = reference.into_data().try_to_vec::<f32>().unwrap();
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-6);
    a.iter()
        .zip(&b)
        .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()))
        / scale
}

fn random(shape: [usize; 4], seed: u64, device: &Device) -> Tensor<4> {
    diffroll::model::normal(&mut ChaCha8Rng::seed_from_u64(seed), shape, device)
}

struct Results {
    y: Tensor<4>,
    dx: Tensor<4>,
    dw: Tensor<4>,
    db: Tensor<4>,
}

/// The convolution of shape `s` on seeded operands, its output and the gradients of
/// `sum(y · r)` for a seeded `r`, through `kernels::conv2d` (ours, unless inside
/// `with_stock_ops`).
fn run(s: &ConvShape, seed: u64) -> Results {
    let ad = Device::flex().autodiff();
    let x = random([s.batch, s.c_in, s.h, s.w], seed, &ad).require_grad();
    let w = random([s.c_out, s.c_in, s.kh, s.kw], seed + 1, &ad).require_grad();
    let b = random([1, 1, 1, s.c_out], seed + 2, &ad)
        .reshape([s.c_out])
        .require_grad();
    let options = ConvOptions::new(s.stride, s.pad, [1, 1], 1);
    let y = kernels::conv2d(x.clone(), w.clone(), Some(b.clone()), options);
    let r = random(y.dims(), seed + 3, &ad);
    let grads = (y.clone() * r).sum().backward();
    let grad4 = |t: &Tensor<4>| t.grad(&grads).expect("a gradient");
    Results {
        y: y.inner(),
        dx: grad4(&x),
        dw: grad4(&w),
        db: b
            .grad(&grads)
            .expect("a bias gradient")
            .reshape([1, 1, 1, s.c_out]),
    }
}

/// The first of output and gradients (named by `names`) that differs beyond [`TOLERANCE`].
fn first_difference(ours: Results, stock: Results, names: [&str; 2]) -> Option<String> {
    [
        ("output", ours.y, stock.y),
        ("input gradient", ours.dx, stock.dx),
        (names[0], ours.dw, stock.dw),
        (names[1], ours.db, stock.db),
    ]
    .into_iter()
    .map(|(what, a, b)| (what, relative_error(a, b)))
    .find(|(_, e)| *e > TOLERANCE)
    .map(|(what, e)| format!("{what} differs by {e:e} (relative)"))
}

fn assert_matches_burn(s: &ConvShape, seed: u64) {
    let ours = run(s, seed);
    let stock = kernels::with_stock_ops(|| run(s, seed));
    let names = ["weight gradient", "bias gradient"];
    if let Some(difference) = first_difference(ours, stock, names) {
        panic!("{s:?}: {difference}");
    }
}

#[test]
fn our_kernels_run_where_they_should() {
    let s = ConvShape {
        batch: 1,
        c_in: 2,
        h: 4,
        w: 4,
        c_out: 2,
        kh: 3,
        kw: 3,
        stride: [1, 1],
        pad: [1, 1],
    };
    let x = random([1, 2, 4, 4], 0, &Device::flex());
    let w = random([2, 2, 3, 3], 1, &Device::flex());
    let options = ConvOptions::new(s.stride, s.pad, [1, 1], 1);
    assert!(kernels::covers(&x, &w, &options));
    assert!(kernels::covers(
        &x.clone().autodiff(),
        &w.clone().autodiff(),
        &options
    ));
    assert!(!kernels::with_stock_ops(|| kernels::covers(
        &x, &w, &options
    )));
    let dilated = ConvOptions::new(s.stride, s.pad, [2, 2], 1);
    assert!(!kernels::covers(&x, &w, &dilated));
    let asymmetric = ConvOptions::new_with_padding(s.stride, [(1, 0), (1, 1)], [1, 1], 1);
    assert!(!kernels::covers(&x, &w, &asymmetric));
    // What they do not cover still runs, through burn.
    let y = kernels::conv2d(x.clone(), w.clone(), None, dilated);
    assert_eq!(y.dims(), [1, 2, 2, 2]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn forward_and_gradients_match_burn(
        batch in 1usize..4,
        c_in in 1usize..7,
        c_out in 1usize..7,
        h in 3usize..11,
        w in 3usize..11,
        k in prop::sample::select(vec![1usize, 2, 3]),
        stride in 1usize..3,
        pad in 0usize..2,
        seed in 0u64..1000,
    ) {
        let s = ConvShape {
            batch, c_in, h, w, c_out, kh: k, kw: k,
            stride: [stride, stride], pad: [pad.min(k - 1); 2],
        };
        prop_assume!(s.is_supported());
        assert_matches_burn(&s, seed);
    }
}

/// GroupNorm (then SiLU when `silu`) of a seeded input through `kernels::group_norm`, and the
/// gradients of `sum(y · r)` with respect to the input, gamma and beta.
fn run_norm(shape: [usize; 4], groups: usize, silu: bool, seed: u64) -> Results {
    let ad = Device::flex().autodiff();
    let channels = shape[1];
    let mut layer = burn::nn::GroupNormConfig::new(groups, channels).init(&ad);
    // Non-trivial affine parameters, so a swapped gamma and beta would show.
    let gamma = random([1, 1, 1, channels], seed + 1, &ad).reshape([channels]);
    let beta = random([1, 1, 1, channels], seed + 2, &ad).reshape([channels]);
    layer.gamma = Some(burn::module::Param::from_tensor(gamma));
    layer.beta = Some(burn::module::Param::from_tensor(beta));
    let x = (random(shape, seed, &ad) * 3.0 + 0.5).require_grad();
    let y = kernels::group_norm(&layer, x.clone(), silu);
    let r = random(y.dims(), seed + 3, &ad);
    let grads = (y.clone() * r).sum().backward();
    let param = |p: &Option<burn::module::Param<Tensor<1>>>| {
        let p = p.as_ref().expect("affine");
        p.val()
            .grad(&grads)
            .expect("a parameter gradient")
            .reshape([1, 1, 1, channels])
    };
    Results {
        y: y.inner(),
        dx: x.grad(&grads).expect("an input gradient"),
        dw: param(&layer.gamma),
        db: param(&layer.beta),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn group_norm_and_silu_match_burn(
        batch in 1usize..4,
        groups in 1usize..5,
        per_group in 1usize..4,
        h in 1usize..9,
        w in 1usize..9,
        silu in any::<bool>(),
        seed in 0u64..1000,
    ) {
        let shape = [batch, groups * per_group, h, w];
        // A group of two values normalises to ±1 whatever they are: its input gradient is zero
        // and both sides return rounding noise. Our layers' groups hold hundreds of values.
        prop_assume!(h * w * per_group >= 4);
        let ours = run_norm(shape, groups, silu, seed);
        let stock = kernels::with_stock_ops(|| run_norm(shape, groups, silu, seed));
        let difference = first_difference(ours, stock, ["gamma gradient", "beta gradient"]);
        prop_assert!(difference.is_none(), "{shape:?} silu {silu}: {difference:?}");
    }
}

/// Every convolution the shipped model runs to make a piece (the UNet's sampling, the
/// decoder, the refinement's gradients) and to encode, at batch 1 and at the training batch.
#[test]
fn every_shape_of_the_shipped_model_matches_burn() {
    let pipeline = Pipeline::load(shipped(), &Device::flex()).unwrap();
    let request = request(&pipeline, 1);
    let (generated, mut shapes) =
        kernels::record_shapes(|| pipeline.generate(&request, None, None).unwrap());
    let roll = &generated.rolls[0];
    let ((), encoder) = kernels::record_shapes(|| {
        let x = diffroll::model::rolls_to_tensor(&[roll], pipeline.device());
        let _ = pipeline.autoencoder().encode(x);
    });
    shapes.extend(encoder);
    shapes.sort_by_key(|s| format!("{s:?}"));
    shapes.dedup();
    assert!(shapes.len() >= 8, "only {} shapes recorded", shapes.len());
    for (i, s) in shapes.iter().enumerate() {
        assert_matches_burn(s, i as u64);
        assert_matches_burn(&ConvShape { batch: 16, ..*s }, i as u64);
    }
}

fn request(pipeline: &Pipeline, seed: u64) -> GenerateRequest {
    GenerateRequest::card_defaults(&pipeline.card, 2, seed)
}

/// The losses of a few AdamW steps of the shipped UNet's architecture on fixed latents.
fn losses(steps: usize) -> Vec<f32> {
    let card = diffroll::model::ModelCard::load(shipped()).unwrap();
    let config = card.unet.clone().unwrap();
    let latent = card
        .autoencoder
        .latent_shape(diffroll::roll::PITCHES, diffroll::roll::WINDOW_STEPS);
    let device = Device::flex();
    let ad = device.clone().autodiff();
    let mut unet = init_seeded(&ad, 3, |d| config.init(d));
    let mut optim = AdamWConfig::new().with_weight_decay(0.0).init();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let z0 = random([4, latent[0], latent[1], latent[2]], 9, &device);
    let schedule = Schedule::default();
    (0..steps)
        .map(|_| {
            let noised = noise_batch(z0.clone(), &schedule, &mut rng);
            let (stepped, value) =
                noised.step(unet.clone(), &mut optim, vec![0, 1, 2, 4], 1e-3, &ad);
            unet = stepped;
            value
        })
        .collect()
}

#[test]
fn a_short_training_run_follows_burns_loss_curve() {
    let ours = losses(6);
    let stock = kernels::with_stock_ops(|| losses(6));
    for (step, (a, b)) in ours.iter().zip(&stock).enumerate() {
        assert!(
            (a - b).abs() <= 1e-3 * b.abs(),
            "step {step}: loss {a} with our kernels, {b} with burn's ({ours:?} vs {stock:?})"
        );
    }
}

#[test]
fn generate_gives_the_same_notes_as_with_burns_ops() {
    let pipeline = Pipeline::load(shipped(), &Device::flex()).unwrap();
    for seed in [1, 2, 3] {
        let request = request(&pipeline, seed);
        let ours = pipeline.generate(&request, None, None).unwrap();
        let stock = kernels::with_stock_ops(|| pipeline.generate(&request, None, None).unwrap());
        for (a, b) in ours.rolls.iter().zip(&stock.rolls) {
            assert_eq!(a.notes(), b.notes(), "seed {seed}");
        }
    }
}

#[test]
fn data_round_trip_helper_is_exact() {
    // `relative_error` itself must see a difference.
    let d = Device::flex();
    let a = Tensor::<4>::from_data(TensorData::new(vec![1.0f32, 2.0], [1, 1, 1, 2]), &d);
    let b = Tensor::<4>::from_data(TensorData::new(vec![1.0f32, 2.1], [1, 1, 1, 2]), &d);
    assert!(relative_error(a.clone(), b) > 0.04);
    assert_eq!(relative_error(a.clone(), a), 0.0);
}
