//! The model core end to end with tiny configurations: autoencoder overfitting, save/load,
//! exact resume, train → generate determinism, corrupt files, and wgpu against the CPU.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use burn::tensor::Device;
use diffroll::model::{
    AutoencoderConfig, GenerateRequest, KeyChoice, ModelCard, ModelError, Pipeline, PitchCrop,
    SamplerKind, load_weights, save_weights,
};
use diffroll::roll::{Roll, Style};
use diffroll::train::autoencoder::{self, AutoencoderRun, AutoencoderTraining};
use diffroll::train::dataset::WindowSet;
use diffroll::train::decoder::{self, DecoderRun, DecoderTraining};
use diffroll::train::diffusion::{self, DiffusionRun, DiffusionTraining};
use diffroll::train::run::{Control, Outcome};

mod common;
mod tiny;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/midi")
}

fn quiet() -> impl FnMut(&diffroll::train::run::Progress) {
    |_| {}
}

fn train_ae(out: &Path, steps: usize, resume: bool) -> Outcome {
    let stop = AtomicBool::new(false);
    let mut progress = quiet();
    autoencoder::train(
        AutoencoderRun {
            model: tiny::ae(),
            training: AutoencoderTraining::new()
                .with_steps(steps)
                .with_batch(2)
                .with_checkpoint_every(1000)
                .with_eval_every(1000)
                .with_val_per_style(2),
            data: &fixtures(),
            val: None,
            out,
            resume,
            device: Device::flex(),
            hardware: "test".into(),
        },
        Control {
            stop: &stop,
            time_limit: None,
            on_progress: &mut progress,
        },
    )
    .unwrap()
}

/// Trains `steps` steps of the tiny UNet, stopping early (as Ctrl-C would) after `stop_after`.
fn train_diffusion(
    ae: &Path,
    out: &Path,
    steps: usize,
    resume: bool,
    stop_after: Option<usize>,
) -> Outcome {
    train_diffusion_on(ae, out, steps, resume, stop_after, None).unwrap()
}

fn train_diffusion_on(
    ae: &Path,
    out: &Path,
    steps: usize,
    resume: bool,
    stop_after: Option<usize>,
    crop: Option<PitchCrop>,
) -> Result<Outcome, diffroll::train::run::TrainError> {
    let stop = AtomicBool::new(false);
    let mut progress = |p: &diffroll::train::run::Progress| {
        if Some(p.step) == stop_after {
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    };
    diffusion::train(
        DiffusionRun {
            unet: tiny::unet(),
            training: DiffusionTraining::new()
                .with_steps(steps)
                .with_batch(2)
                .with_warmup(2)
                .with_checkpoint_every(1000),
            autoencoder: ae,
            crop,
            data: &fixtures(),
            out,
            resume,
            device: Device::flex(),
            hardware: "test".into(),
        },
        Control {
            stop: &stop,
            time_limit: None,
            on_progress: &mut progress,
        },
    )
}

#[test]
fn a_model_trained_on_a_pitch_band_generates_only_inside_it() {
    let dir = tempfile::tempdir().unwrap();
    let ae = dir.path().join("ae");
    train_ae(&ae, 2, false);
    let crop: PitchCrop = "32-95".parse().unwrap();
    let banded = dir.path().join("banded");
    assert!(
        train_diffusion_on(&ae, &banded, 3, false, None, Some(crop))
            .unwrap()
            .finished
    );
    let card = ModelCard::load(&banded).unwrap();
    assert_eq!(card.autoencoder.crop, Some(crop));
    assert_eq!(card.autoencoder.latent_shape(128, 128), [2, 8, 16]);
    // A run's band is part of what it is: resuming it on another band is refused.
    let err = train_diffusion_on(&ae, &banded, 6, true, None, None).unwrap_err();
    assert!(err.to_string().contains("checkpoint"), "{err}");

    let pipeline = Pipeline::load(&banded, &Device::flex()).unwrap();
    let request = GenerateRequest {
        count: 2,
        seed: 1,
        steps: 3,
        sampler: SamplerKind::DpmSolverPP,
        style: None,
        guidance: 1.0.into(),
        tempo_bpm: 100.0,
        restart: None,
        refine: None,
        key: KeyChoice::AsDrawn,
    };
    let generated = pipeline.generate(&request, None, None).unwrap();
    for roll in &generated.rolls {
        assert_eq!(roll.steps(), 128);
        assert!(roll.notes().iter().all(|n| (32..96).contains(&n.pitch)));
    }
}

#[test]
fn autoencoder_overfits_a_handful_of_windows() {
    let (set, _) = WindowSet::scan(&fixtures(), 8).unwrap();
    let windows: Vec<Roll> = set.fixed(1).into_iter().map(|(r, _)| r).collect();
    assert_eq!(windows.len(), 4);
    let device = Device::flex().autodiff();
    let config = AutoencoderConfig::new()
        .with_channels(vec![32])
        .with_latent_channels(8);
    let mut model = diffroll::model::init_seeded(&device, 0, |d| config.init(d));
    let mut optim = burn::optim::AdamWConfig::new().init();
    let refs: Vec<&Roll> = windows.iter().collect();
    let x = diffroll::model::rolls_to_tensor(&refs, &device);
    use burn::module::Module;
    let mut f1 = (0.0, 0.0);
    for step in 0..1500 {
        let logits = model.decode_logits(model.encode(x.clone()));
        let loss = autoencoder::weighted_bce(logits, x.clone(), [4.0, 2.0]);
        let grads = burn::optim::GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(5e-3, model, grads);
        if step % 100 == 99 {
            f1 = autoencoder::reconstruction_f1(
                &model.valid(),
                &windows,
                &Device::flex(),
                [0.0, 0.0],
            );
            if f1 == (1.0, 1.0) {
                break;
            }
        }
    }
    assert_eq!(f1, (1.0, 1.0), "onset and frame F1 after overfitting");
}

#[test]
fn train_resume_generate_is_exact_and_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let ae = dir.path().join("ae");
    let outcome = train_ae(&ae, 4, false);
    assert!(outcome.finished);
    let card = ModelCard::load(&ae).unwrap();
    assert!(card.unet.is_none());
    assert!(card.training["autoencoder"]["steps"] == 4);
    // `eval --autoencoder` scores its reconstructions.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_diffroll"))
        .args([
            "eval",
            "--device",
            "cpu",
            "--json",
            "--count",
            "2",
            "--autoencoder",
        ])
        .arg(&ae)
        .arg("--data")
        .arg(fixtures())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["best_onset_f1"].as_f64().unwrap() >= 0.0);
    assert!(report["windows"].as_u64().unwrap() > 0);

    // Straight through, versus stopped after 3 steps and resumed: the same weights.
    let straight = dir.path().join("straight");
    assert!(train_diffusion(&ae, &straight, 6, false, None).finished);
    let resumed = dir.path().join("resumed");
    let first = train_diffusion(&ae, &resumed, 6, false, Some(3));
    assert_eq!((first.step, first.finished), (3, false));
    // Settings an eval saved in between survive the resumed run; its figures do not.
    let mut card = ModelCard::load(&resumed).unwrap();
    card.mending.drop_blips = 1;
    card.defaults.steps = 17;
    card.eval = serde_json::json!({"mean_oa": 0.5});
    card.name = "base".to_string();
    card.save(&resumed).unwrap();
    let second = train_diffusion(&ae, &resumed, 6, true, None);
    assert_eq!((second.step, second.finished), (6, true));
    let card = ModelCard::load(&resumed).unwrap();
    assert_eq!((card.mending.drop_blips, card.defaults.steps), (1, 17));
    assert_eq!(card.name, "base", "a resumed model keeps its name");
    assert!(card.eval.get("mean_oa").is_none(), "stale figures kept");
    // Both stretches ran on the same (test) hardware: one entry, from step 0.
    assert_eq!(
        card.training["diffusion"]["hardware_by_step"],
        serde_json::json!([{"step": 0, "hardware": "test"}])
    );
    // Parameter ids are random per run, so compare what the weights compute.
    let probe = |dir: &Path| -> Vec<f32> {
        let device = Device::flex();
        let unet =
            load_weights(tiny::unet().init(&device), &dir.join("unet.bpk"), &device).unwrap();
        let x = burn::tensor::Tensor::<4>::ones([1, 2, 16, 16], &device);
        let label = burn::tensor::Tensor::<1, burn::tensor::Int>::from_data(
            burn::tensor::TensorData::new(vec![1i64], [1]),
            &device,
        );
        unet.forward(x, &[300.0], label)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap()
    };
    let (a, b) = (probe(&straight), probe(&resumed));
    assert!(
        a == b,
        "resumed run must match the uninterrupted one exactly"
    );
    let fresh = dir.path().join("fresh");
    train_diffusion(&ae, &fresh, 5, false, None);
    assert!(
        probe(&fresh) != a,
        "the probe tells different weights apart"
    );

    // Generation: same seed, same files; different seed, different music.
    let device = Device::flex();
    let pipeline = Pipeline::load(&straight, &device).unwrap();
    let request = GenerateRequest {
        count: 2,
        seed: 42,
        steps: 4,
        sampler: SamplerKind::DpmSolverPP,
        style: None,
        guidance: 2.0.into(),
        tempo_bpm: 100.0,
        restart: None,
        refine: None,
        key: KeyChoice::Typical,
    };
    let mut seen_steps = Vec::new();
    let mut on_step = |e: diffroll::model::StepEvent<'_>| {
        assert_eq!(e.preview.len(), 2);
        seen_steps.push(e.step);
    };
    let a = pipeline
        .generate(&request, None, Some(&mut on_step))
        .unwrap();
    assert_eq!(seen_steps, vec![0, 1, 2, 3]);
    let b = pipeline.generate(&request, None, None).unwrap();
    let bytes = |g: &diffroll::model::Generated| -> Vec<Vec<u8>> {
        g.rolls
            .iter()
            .map(|r| diffroll::midi::write_roll(r, "x"))
            .collect()
    };
    assert_eq!(bytes(&a), bytes(&b));
    for roll in &a.rolls {
        assert_eq!(roll.steps(), 128);
        assert!(roll.validity().is_valid());
        assert!(roll.style.is_some());
    }
    let ddim = GenerateRequest {
        sampler: SamplerKind::Ddim { eta: 1.0 },
        style: Some(Style::Folk),
        ..request.clone()
    };
    let c = pipeline.generate(&ddim, None, None).unwrap();
    assert!(c.rolls.iter().all(|r| r.style == Some(Style::Folk)));

    // Restart rounds run after the main pass: their steps are reported too (the app's
    // progress bar counts them), the result is reproducible and differs from the plain pass.
    let restarted = GenerateRequest {
        restart: Some(diffroll::model::Restart {
            t: 100,
            steps: 2,
            rounds: 3,
        }),
        ..request.clone()
    };
    let mut totals = Vec::new();
    let mut on_step = |e: diffroll::model::StepEvent<'_>| totals.push((e.step, e.total));
    let r1 = pipeline
        .generate(&restarted, None, Some(&mut on_step))
        .unwrap();
    assert_eq!(totals, (0..10).map(|s| (s, 10)).collect::<Vec<_>>());
    let r2 = pipeline.generate(&restarted, None, None).unwrap();
    assert_eq!(bytes(&r1), bytes(&r2));
    let latents = |g: &diffroll::model::Generated| -> Vec<f32> {
        g.latents
            .clone()
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .unwrap()
    };
    assert_ne!(latents(&r1), latents(&a));

    // A style's own guidance steers that style's samples alone, even in a batch of mixed
    // styles: the others come out as with no guidance (up to rounding; guided sampling runs
    // the batch twice over).
    let mixed = GenerateRequest {
        count: 8,
        guidance: 1.0.into(),
        ..request.clone()
    };
    let plain = pipeline.generate(&mixed, None, None).unwrap();
    let styles: Vec<Style> = plain.rolls.iter().map(|r| r.style.unwrap()).collect();
    let own = styles[0];
    assert!(
        styles.iter().any(|&s| s != own),
        "the draw must mix styles: {styles:?}"
    );
    let steered = GenerateRequest {
        guidance: format!("1,{own}=4").parse().unwrap(),
        ..mixed.clone()
    };
    let steered = pipeline.generate(&steered, None, None).unwrap();
    let per_sample = |g: &diffroll::model::Generated| -> Vec<Vec<f32>> {
        let l = latents(g);
        l.chunks(l.len() / 8).map(<[f32]>::to_vec).collect()
    };
    for ((style, p), s) in styles
        .iter()
        .zip(per_sample(&plain))
        .zip(per_sample(&steered))
    {
        let diff = p
            .iter()
            .zip(&s)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        if *style == own {
            assert!(diff > 0.05, "{style} was not steered: {diff}");
        } else {
            assert!(diff < 1e-3, "{style} moved by {own}'s guidance: {diff}");
        }
    }

    // Refinement moves the sampled latent, reproducibly.
    let refine = diffroll::model::Refine {
        steps: 3,
        rate: 0.1,
        keep: 0.3,
        temperature: 2.0,
    };
    let refined = GenerateRequest {
        refine: Some(refine),
        ..request.clone()
    };
    let m1 = pipeline.generate(&refined, None, None).unwrap();
    let m2 = pipeline.generate(&refined, None, None).unwrap();
    assert_eq!(latents(&m1), latents(&m2));
    assert_ne!(latents(&m1), latents(&a));

    // Keys: training measured where each style's music sits; a piece the model drew is moved
    // by at most a tritone, to the key asked for or to one the style uses.
    assert_eq!(pipeline.card.key_profiles.len(), Style::ALL.len());
    assert!(pipeline.card.key_profiles.iter().any(Option::is_some));
    let keyed = |key: KeyChoice| {
        pipeline
            .generate(
                &GenerateRequest {
                    key,
                    ..request.clone()
                },
                None,
                None,
            )
            .unwrap()
    };
    let drawn = keyed(KeyChoice::AsDrawn);
    // The drawn piece moved from its own scale into `target`'s (a silent one stays).
    let moved_to = |of: &Roll, target: u8| of.transposed(of.shift_into(target)).notes();
    for target in [0u8, 2, 10] {
        let moved = keyed(KeyChoice::Root(target));
        assert_eq!(latents(&moved), latents(&drawn), "only the notes move");
        for (m, d) in moved.rolls.iter().zip(&drawn.rolls) {
            assert_eq!(m.notes(), moved_to(d, target));
        }
    }
    assert!(
        drawn.rolls.iter().any(|d| moved_to(d, 10) != d.notes()),
        "some piece was not drawn in Bb already"
    );
    let mut in_f = pipeline
        .card
        .key_profiles
        .iter()
        .flatten()
        .next()
        .unwrap()
        .clone();
    in_f.roots = [0.0; 12];
    in_f.roots[5] = 1.0;
    let mut f_only = Pipeline::load(&straight, &device).unwrap();
    f_only.card.key_profiles = vec![Some(in_f); Style::ALL.len()];
    let typical = f_only
        .generate(
            &GenerateRequest {
                key: KeyChoice::Typical,
                ..request.clone()
            },
            None,
            None,
        )
        .unwrap();
    for (t, d) in typical.rolls.iter().zip(&drawn.rolls) {
        // `typical` moves by at most a tritone and never off the keyboard: a piece (the tiny
        // model's are near noise) spanning too much of it to reach F that way stays as drawn.
        let shift = d.shift_into(5);
        let reachable = diffroll::roll::SHIFTS.contains(&shift)
            && d.transposed(shift).note_count() == d.note_count();
        let expected = if reachable { moved_to(d, 5) } else { d.notes() };
        assert_eq!(t.notes(), expected, "every style's music is in F here");
    }
    // The previews are moved too: the last step's is the finished piece (no refinement). The
    // key is one the drawn pieces are not all in already.
    let elsewhere = (0..12u8)
        .find(|&k| drawn.rolls.iter().any(|d| moved_to(d, k) != d.notes()))
        .expect("some key moves the drawn pieces");
    let mut last = Vec::new();
    let mut keep_last = |e: diffroll::model::StepEvent<'_>| last = e.preview.to_vec();
    let finished = pipeline
        .generate(
            &GenerateRequest {
                key: KeyChoice::Root(elsewhere),
                ..request.clone()
            },
            None,
            Some(&mut keep_last),
        )
        .unwrap();
    let notes = |rolls: &[Roll]| rolls.iter().map(Roll::notes).collect::<Vec<_>>();
    assert_eq!(notes(&last), notes(&finished.rolls));
    assert_ne!(notes(&last), notes(&drawn.rolls));

    // `eval --model` generates per style and scores each style against its own real music.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_diffroll"))
        .args([
            "eval",
            "--device",
            "cpu",
            "--json",
            "--count",
            "3",
            "--join-gap",
            "2",
            "--trim-early",
            "true",
            "--thresholds",
            "1.5,0.3",
            "--model",
        ])
        .arg(&straight)
        .arg("--data")
        .arg(fixtures())
        .arg("--train")
        .arg(fixtures())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["model"]["samples"], 12);
    assert!(!report["per_style"].as_array().unwrap().is_empty());
    // The figures say which decoding they were measured with.
    let settings = &report["settings"];
    assert_eq!(
        (&settings["join_gap"], &settings["trim_early"]),
        (&serde_json::json!(2), &serde_json::json!(true))
    );
    assert_eq!(
        settings["thresholds"],
        serde_json::json!([1.5, 0.3]),
        "as typed, not widened from f32"
    );
    for who in ["autoencoder_on_real", "model"] {
        let rates = &report["orphan_sustain"][who];
        for per in ["notes", "samples", "late_onset", "after_gap", "blips"] {
            let r = rates[per].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&r), "{who} {per}: {r}");
        }
    }
    let inpainting = &report["inpainting"];
    assert_eq!(inpainting["bars"], serde_json::json!([3, 6]));
    assert_eq!(inpainting["model"]["samples"], report["real_windows"]);
    for who in ["real_vs_real", "model", "random"] {
        let oa = inpainting[who]["mean_oa"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&oa), "{who}: {oa}");
    }

    // Inpainting bars 3-6 keeps bars 1-2 and 7-8 as the autoencoder reconstructs them, with
    // refinement too (it moves only the generated bars).
    let (set, _) = WindowSet::scan(&fixtures(), 8).unwrap();
    let (source, _) = set.fixed(1).remove(0);
    let keep: Vec<bool> = (0..128).map(|t| !(32..96).contains(&t)).collect();
    let inpainted = pipeline
        .inpaint(
            &GenerateRequest {
                count: 2,
                refine: Some(refine),
                ..request.clone()
            },
            &source,
            &keep,
            None,
            None,
        )
        .unwrap();
    // The kept latent columns (8 steps each) come back exactly as the encoder made them.
    let clean: Vec<f32> = pipeline
        .card
        .latent_norm()
        .normalize(
            pipeline
                .autoencoder()
                .encode(diffroll::model::rolls_to_tensor(
                    &[&source],
                    &Device::flex(),
                )),
        )
        .into_data()
        .try_to_vec()
        .unwrap();
    let latents: Vec<f32> = inpainted.latents.clone().into_data().try_to_vec().unwrap();
    let per = clean.len();
    let [_, c, h, w] = inpainted.latents.dims();
    assert_eq!(c * h * w, per);
    for sample in 0..2 {
        for i in 0..per {
            let column = i % w;
            let got = latents[sample * per + i];
            if !(4..12).contains(&column) {
                assert_eq!(got, clean[i], "kept latent {i} of sample {sample}");
            }
        }
    }
    let masked_differs = (0..per).any(|i| (4..12).contains(&(i % w)) && latents[i] != clean[i]);
    assert!(masked_differs, "bars 3-6 are generated anew");
    // Inpainting keeps the key of the bars it keeps, whatever key new pieces get.
    let inpaint_in = |key| {
        pipeline
            .inpaint(
                &GenerateRequest {
                    key,
                    ..request.clone()
                },
                &source,
                &keep,
                None,
                None,
            )
            .unwrap()
    };
    assert_eq!(
        bytes(&inpaint_in(KeyChoice::Root(6))),
        bytes(&inpaint_in(KeyChoice::AsDrawn))
    );

    // Cancel before the first step.
    let cancel = AtomicBool::new(true);
    assert!(matches!(
        pipeline.generate(&request, Some(&cancel), None),
        Err(ModelError::Cancelled)
    ));
    // Cancel during the last step: the sampler finishes it, refinement does not start.
    for (refine, cancelled) in [(None, false), (Some(refine), true)] {
        let cancel = AtomicBool::new(false);
        let mut at_last = |e: diffroll::model::StepEvent<'_>| {
            if e.step + 1 == e.total {
                cancel.store(true, std::sync::atomic::Ordering::Release);
            }
        };
        let result = pipeline.generate(
            &GenerateRequest {
                refine,
                ..request.clone()
            },
            Some(&cancel),
            Some(&mut at_last),
        );
        assert_eq!(
            matches!(result, Err(ModelError::Cancelled)),
            cancelled,
            "refine {refine:?}"
        );
    }

    // The CLI writes the same bytes for the same seed.
    let exe = env!("CARGO_BIN_EXE_diffroll");
    for out in ["g1", "g2"] {
        let status = std::process::Command::new(exe)
            .args(["generate", "--model"])
            .arg(&straight)
            .args([
                "--count", "2", "--seed", "7", "--steps", "3", "--png", "--device", "cpu", "-o",
            ])
            .arg(dir.path().join(out))
            .output()
            .unwrap();
        assert!(
            status.status.success(),
            "{}",
            String::from_utf8_lossy(&status.stderr)
        );
    }
    let list = |d: &str| {
        let mut v: Vec<_> = std::fs::read_dir(dir.path().join(d))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        v.sort();
        v
    };
    let (g1, g2) = (list("g1"), list("g2"));
    assert_eq!(g1.len(), 4);
    for (x, y) in g1.iter().zip(&g2) {
        assert_eq!(x.file_name(), y.file_name());
        assert_eq!(std::fs::read(x).unwrap(), std::fs::read(y).unwrap());
    }
}

#[test]
fn save_load_round_trip_gives_identical_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let device = Device::flex();
    let unet = diffroll::model::init_seeded(&device, 0, |d| tiny::unet().init(d));
    let path = dir.path().join("unet.bpk");
    save_weights(&unet, &path).unwrap();
    let loaded = load_weights(tiny::unet().init(&device), &path, &device).unwrap();
    let x = burn::tensor::Tensor::<4>::ones([1, 2, 16, 16], &device);
    let label = burn::tensor::Tensor::<1, burn::tensor::Int>::from_data(
        burn::tensor::TensorData::new(vec![1i64], [1]),
        &device,
    );
    let a = unet.forward(x.clone(), &[10.0], label.clone()).into_data();
    let b = loaded.forward(x, &[10.0], label).into_data();
    assert_eq!(a, b);

    // Wrong architecture and corrupt bytes: an error that names the file, not a panic.
    let other = tiny::unet()
        .with_base_channels(16)
        .with_latent_channels(2)
        .init(&device);
    let err = load_weights(other, &path, &device).expect_err("shape mismatch refused");
    assert!(err.to_string().contains("unet.bpk"), "{err}");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let err = load_weights(tiny::unet().init(&device), &path, &device)
        .expect_err("truncated file refused");
    assert!(err.to_string().contains("unet.bpk"), "{err}");
    std::fs::write(&path, b"not weights at all").unwrap();
    assert!(load_weights(tiny::unet().init(&device), &path, &device).is_err());
}

#[test]
fn bad_model_folders_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let device = Device::flex();
    let err = Pipeline::load(dir.path(), &device).err().unwrap();
    assert!(matches!(err, ModelError::NotAModel(_)), "{err}");
    std::fs::write(dir.path().join("model.json"), b"{ not json").unwrap();
    let err = Pipeline::load(dir.path(), &device).err().unwrap();
    assert!(matches!(err, ModelError::BadCard { .. }), "{err}");
    let exe = env!("CARGO_BIN_EXE_diffroll");
    let out = std::process::Command::new(exe)
        .args(["generate", "--device", "cpu", "--model"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("model.json"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    // A card that parses but describes no model that can be built (edited by hand, damaged):
    // refused when it is read, where building the model would panic.
    type Damage = fn(&mut ModelCard);
    let damaged: [(&str, Damage); 5] = [
        ("channels", |c| c.autoencoder.channels.clear()),
        ("attention", |c| {
            c.unet.as_mut().unwrap().attention.pop();
        }),
        ("heads", |c| c.unet.as_mut().unwrap().heads = 3),
        ("latent channels", |c| {
            c.unet.as_mut().unwrap().latent_channels = 5
        }),
        ("folk guidance", |c| {
            c.defaults.guidance.per_style.insert(Style::Folk, -1.0);
        }),
    ];
    for (says, damage) in damaged {
        let folder = dir.path().join(says);
        tiny::model_folder(&folder);
        let mut card = ModelCard::load(&folder).unwrap();
        damage(&mut card);
        card.save(&folder).unwrap();
        let err = Pipeline::load(&folder, &device).err().unwrap();
        assert!(matches!(err, ModelError::BadConfig { .. }), "{says}: {err}");
        assert!(err.to_string().contains(says), "{says}: {err}");
        let out = std::process::Command::new(exe)
            .args(["generate", "--device", "cpu", "--model"])
            .arg(&folder)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{says}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("cannot work"), "{says}: {stderr}");
        assert!(!stderr.contains("panicked"), "{says}: {stderr}");
    }
}

#[test]
fn wgpu_and_cpu_give_the_same_notes() {
    let adapters = diffroll::device::adapters();
    if adapters.is_empty() {
        assert!(
            std::env::var_os("DIFFROLL_REQUIRE_WGPU").is_none(),
            "DIFFROLL_REQUIRE_WGPU is set but wgpu finds no adapter"
        );
        eprintln!("note: no wgpu adapter here; wgpu/CPU comparison skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ae = dir.path().join("ae");
    train_ae(&ae, 30, false);
    let model = dir.path().join("m");
    train_diffusion(&ae, &model, 30, false, None);
    let request = GenerateRequest {
        count: 2,
        seed: 3,
        steps: 5,
        sampler: SamplerKind::DpmSolverPP,
        style: Some(Style::Chorale),
        guidance: 1.5.into(),
        tempo_bpm: 90.0,
        // The restart's fresh noise comes from the same seeded generator on both devices.
        restart: Some(diffroll::model::Restart {
            t: 100,
            steps: 2,
            rounds: 1,
        }),
        refine: None,
        key: KeyChoice::Typical,
    };
    let cpu = Pipeline::load(&model, &Device::flex()).unwrap();
    let gpu_device = diffroll::device::choose(diffroll::device::DeviceRequest::Gpu)
        .unwrap()
        .device;
    let gpu = Pipeline::load(&model, &gpu_device).unwrap();
    let a = cpu.generate(&request, None, None).unwrap();
    let b = gpu.generate(&request, None, None).unwrap();
    let notes: usize = a.rolls.iter().map(Roll::note_count).sum();
    eprintln!("{notes} notes generated on each device");
    for (x, y) in a.rolls.iter().zip(&b.rolls) {
        assert_eq!(x.notes(), y.notes());
    }
    // Refinement takes gradients on the GPU too (autodiff over wgpu).
    let refined = GenerateRequest {
        refine: Some(diffroll::model::Refine::RECOMMENDED),
        ..request.clone()
    };
    let r = gpu.generate(&refined, None, None).unwrap();
    assert_eq!(r.latents.dims(), b.latents.dims());
    let orphans = |g: &diffroll::model::Generated| -> usize {
        g.repaired.iter().map(|v| v.orphan_notes).sum()
    };
    assert!(
        orphans(&b) == 0 || r.latents.to_data() != b.latents.to_data(),
        "orphans were drawn ({}) and refinement moved nothing",
        orphans(&b)
    );
    eprintln!(
        "notes without an onset on the GPU: {} before refinement, {} after",
        orphans(&b),
        orphans(&r)
    );
    // The same weights compute the same numbers on both backends, to float rounding.
    let numbers = |p: &Pipeline, device: &Device| -> Vec<f32> {
        let x = burn::tensor::Tensor::<4>::from_data(
            burn::tensor::TensorData::new(
                (0..2 * 16 * 16)
                    .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
                    .collect::<Vec<f32>>(),
                [1, 2, 16, 16],
            ),
            device,
        );
        p.autoencoder()
            .decode_logits(x)
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .unwrap()
    };
    let (u, v) = (numbers(&cpu, &Device::flex()), numbers(&gpu, &gpu_device));
    let worst = u
        .iter()
        .zip(&v)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(worst < 1e-3, "decoder outputs differ by {worst}");
}

fn fit_decoder(model: &Path, out: &Path, steps: usize, resume: bool, stop_after: Option<usize>) {
    let stop = AtomicBool::new(false);
    let mut progress = |p: &diffroll::train::run::Progress| {
        if Some(p.step) == stop_after {
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    };
    decoder::train(
        DecoderRun {
            training: DecoderTraining::new()
                .with_steps(steps)
                .with_batch(4)
                .with_warmup(1)
                .with_clean_share(0.5)
                .with_validity_weight(0.1)
                .with_generated(4)
                .with_val_per_style(1),
            model,
            data: &fixtures(),
            val: None,
            out,
            resume,
            device: Device::flex(),
            hardware: "test".into(),
        },
        Control {
            stop: &stop,
            time_limit: None,
            on_progress: &mut progress,
        },
    )
    .unwrap();
}

#[test]
fn fitting_the_decoder_leaves_encoder_and_unet_alone_and_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let ae = dir.path().join("ae");
    train_ae(&ae, 4, false);
    let base = dir.path().join("base");
    train_diffusion(&ae, &base, 4, false, None);
    let straight = dir.path().join("straight");
    fit_decoder(&base, &straight, 4, false, None);
    let resumed = dir.path().join("resumed");
    fit_decoder(&base, &resumed, 4, false, Some(2));
    let stopped = ModelCard::load(&resumed).unwrap();
    assert_eq!(stopped.training["decoder"]["steps"], 2);
    assert_eq!(stopped.training["decoder"]["finished"], false);
    fit_decoder(&base, &resumed, 4, true, None);

    let card = ModelCard::load(&straight).unwrap();
    assert_eq!(card.training["decoder"]["steps"], 4);
    assert!(card.unet.is_some());
    assert_eq!(
        std::fs::read(base.join("unet.bpk")).unwrap(),
        std::fs::read(straight.join("unet.bpk")).unwrap()
    );
    let (set, _) = WindowSet::scan(&fixtures(), 8).unwrap();
    let windows: Vec<Roll> = set.fixed(1).into_iter().map(|(r, _)| r).collect();
    let refs: Vec<&Roll> = windows.iter().collect();
    let device = Device::flex();
    let x = diffroll::model::rolls_to_tensor(&refs, &device);
    let values = |t: burn::tensor::Tensor<4>| -> Vec<f32> {
        t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
    };
    let codes = |dir: &Path| {
        let p = Pipeline::load(dir, &device).unwrap();
        let z = p.autoencoder().encode(x.clone());
        (values(z.clone()), values(p.autoencoder().decode_logits(z)))
    };
    let (z_base, logits_base) = codes(&base);
    let (z_fit, logits_fit) = codes(&straight);
    let (z_res, logits_res) = codes(&resumed);
    assert_eq!(z_base, z_fit, "the encoder must not change");
    assert_ne!(logits_base, logits_fit, "the decoder must change");
    assert_eq!(
        (z_fit, logits_fit),
        (z_res, logits_res),
        "resumed fit must match the uninterrupted one"
    );
    // Fitting in place keeps a working model folder.
    fit_decoder(&base, &base, 2, false, None);
    let pipeline = Pipeline::load(&base, &device).unwrap();
    let request = GenerateRequest {
        count: 1,
        seed: 3,
        steps: 3,
        sampler: SamplerKind::DpmSolverPP,
        style: Some(Style::Chorale),
        guidance: 1.0.into(),
        tempo_bpm: 100.0,
        restart: None,
        refine: None,
        key: KeyChoice::Typical,
    };
    assert_eq!(
        pipeline.generate(&request, None, None).unwrap().rolls.len(),
        1
    );
}

/// The shipped card reads and saves back to the same bytes: no figure drifts in its last digit
/// (serde_json's `float_roundtrip` parses them exactly) and no field is lost on the way, so a
/// `--save-to-card` or a fine-tune changes only what it means to.
#[test]
fn the_shipped_card_saves_as_it_reads() {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/base");
    let card = ModelCard::load(&shipped).unwrap();
    let dir = tempfile::tempdir().unwrap();
    card.save(dir.path()).unwrap();
    let read = |d: &Path| std::fs::read_to_string(d.join("model.json")).unwrap();
    let (was, now) = (read(&shipped), read(dir.path()));
    if let Some((line, (a, b))) = was
        .lines()
        .zip(now.lines())
        .enumerate()
        .find(|(_, (a, b))| a != b)
    {
        panic!("line {}: {a:?} saved as {b:?}", line + 1);
    }
    assert_eq!(was, now);
}

/// A card saved before the per-style decoding rules were removed (a musician's fine-tuned
/// model, say) still loads, and generates exactly what the same card without them does: every
/// style decodes at the card's one pair of thresholds and no note is moved off a scale degree.
/// Saved again, it drops them.
#[test]
fn a_card_with_the_removed_decoding_rules_still_loads() {
    let dir = tempfile::tempdir().unwrap();
    let (plain, old) = (dir.path().join("plain"), dir.path().join("old"));
    tiny::model_folder(&plain);
    let mut card = ModelCard::load(&plain).unwrap();
    let mut roots = [0.0; 12];
    roots[2] = 1.0;
    card.key_profiles = vec![
        Some(diffroll::roll::KeyProfile {
            roots,
            pitch_mean: 64.0,
            pitch_sd: 3.0,
            windows: 10,
        });
        Style::ALL.len()
    ];
    card.save(&plain).unwrap();
    let text = std::fs::read_to_string(plain.join("model.json")).unwrap();

    // The fields as the shipped card carried them until 2026-12-06.
    let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let fields = serde_json::json!({
        "style_thresholds": {"chorale": [-1e4, -1e4], "polyphony": [-1e4, -1e4],
                             "classical": [-1e4, -1e4], "folk": [-1e4, -1e4]},
        "single_line": ["folk"],
        "fuller_above": {"chorale": 4.3, "folk": 1.8},
        "voices": {"chorale": 4},
        "rare_degrees_below": {"chorale": 0.5, "polyphony": 0.5, "classical": 0.5, "folk": 0.5},
        "fill_silent_beats": {"chorale": 5.0, "polyphony": 5.0, "classical": 5.0, "folk": 5.0},
    });
    for (name, value) in fields.as_object().unwrap() {
        json[name] = value.clone();
    }
    for profile in json["key_profiles"].as_array_mut().unwrap() {
        profile["degrees"] =
            serde_json::json!([0.5, 0.0, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
    }
    std::fs::create_dir_all(&old).unwrap();
    for file in [
        diffroll::model::AUTOENCODER_FILE,
        diffroll::model::UNET_FILE,
    ] {
        std::fs::copy(plain.join(file), old.join(file)).unwrap();
    }
    std::fs::write(
        old.join("model.json"),
        serde_json::to_string_pretty(&json).unwrap(),
    )
    .unwrap();

    let device = Device::flex();
    let request = GenerateRequest {
        count: 4,
        seed: 5,
        steps: 2,
        sampler: SamplerKind::DpmSolverPP,
        style: None,
        guidance: 1.0.into(),
        tempo_bpm: 100.0,
        restart: None,
        refine: Some(diffroll::model::Refine {
            steps: 2,
            rate: 0.1,
            keep: 0.3,
            temperature: 2.0,
        }),
        key: KeyChoice::Typical,
    };
    let notes = |dir: &Path| {
        let pipeline = Pipeline::load(dir, &device).unwrap();
        let generated = pipeline.generate(&request, None, None).unwrap();
        generated.rolls.iter().map(Roll::notes).collect::<Vec<_>>()
    };
    assert_eq!(notes(&old), notes(&plain));

    let again = dir.path().join("again");
    std::fs::create_dir_all(&again).unwrap();
    ModelCard::load(&old).unwrap().save(&again).unwrap();
    assert_eq!(
        std::fs::read_to_string(again.join("model.json")).unwrap(),
        text
    );
}

/// `generate --inpaint FILE --bars A-B`: a new take on those bars, the rest of the piece as
/// written (read back with midi-msg, a parser diffroll does not use); clear errors for
/// bars the file does not have.
#[test]
fn inpainting_a_file_replaces_only_the_bars_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    tiny::model_folder(&model);
    // The same model decoding nothing: its takes leave the bars empty, which shows exactly
    // which steps a take replaces.
    let silent = dir.path().join("silent");
    tiny::model_folder(&silent);
    let mut card = ModelCard::load(&silent).unwrap();
    card.thresholds = [50.0, 50.0];
    card.save(&silent).unwrap();
    let input = fixtures().join("folk/essenFolksong__boehme10_004.mid");
    let song = diffroll::midi::read_file(&input).unwrap();
    let bars = song.bar_starts();
    let span = bars[2]..bars[4];
    let exe = env!("CARGO_BIN_EXE_diffroll");
    let run_with = |model: &Path, out: &str, extra: &[&str]| {
        std::process::Command::new(exe)
            .args(["generate", "--device", "cpu", "--steps", "3", "--seed", "5"])
            .arg("--model")
            .arg(model)
            .arg("--inpaint")
            .arg(&input)
            .args(extra)
            .arg("-o")
            .arg(dir.path().join(out))
            .output()
            .unwrap()
    };
    let run = |out: &str, extra: &[&str]| run_with(&model, out, extra);
    for out in ["a", "b"] {
        let done = run(out, &["--bars", "3-4", "-n", "2"]);
        assert!(
            done.status.success(),
            "{}",
            String::from_utf8_lossy(&done.stderr)
        );
    }
    let notes_of = |bytes: &[u8]| common::independent_notes(bytes).0;
    let stem = "essenFolksong__boehme10_004-bars-3-4-5";
    let original: Vec<_> = song
        .notes
        .iter()
        .map(|n| (n.pitch, n.start, n.end, n.velocity))
        .collect();
    let inside = |notes: &[common::FileNote]| -> Vec<common::FileNote> {
        notes
            .iter()
            .filter(|n| span.contains(&n.1))
            .copied()
            .collect()
    };
    // The file's notes outside bars 3-4, a note sounding into them ended where they start.
    let mut around: Vec<_> = original
        .iter()
        .filter(|n| !span.contains(&n.1))
        .map(|&(pitch, start, end, velocity)| {
            let end = if start < span.start {
                end.min(span.start)
            } else {
                end
            };
            (pitch, start, end, velocity)
        })
        .collect();
    around.sort_unstable();
    for take in 1..=2 {
        let name = format!("{stem}-{take:02}.mid");
        let bytes = std::fs::read(dir.path().join("a").join(&name)).unwrap();
        assert_eq!(
            bytes,
            std::fs::read(dir.path().join("b").join(&name)).unwrap()
        );
        let notes = notes_of(&bytes);
        assert_ne!(
            inside(&notes),
            inside(&original),
            "take {take}: bars 3-4 are new"
        );
        let got: Vec<_> = notes
            .iter()
            .filter(|n| !span.contains(&n.1))
            .copied()
            .collect();
        assert_eq!(
            got, around,
            "take {take}: the music around bars 3-4 as written"
        );
        assert!(
            notes
                .iter()
                .all(|n| !span.contains(&n.1) || n.2 <= span.end),
            "new notes end by the end of bar 4"
        );
    }

    // A silent take: exactly bars 3-4 fall silent, a note sounding into them ends at bar 3.
    let done = run_with(&silent, "s", &["--bars", "3-4"]);
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let notes =
        notes_of(&std::fs::read(dir.path().join("s").join(format!("{stem}-01.mid"))).unwrap());
    assert_eq!(
        notes, around,
        "a silent take empties bars 3-4 and nothing else"
    );
    assert!(
        !inside(&original).is_empty(),
        "the fixture has notes in bars 3-4"
    );

    let fails = |extra: &[&str], says: &str| {
        let done = run("c", extra);
        let stderr = String::from_utf8_lossy(&done.stderr);
        assert!(!done.status.success(), "{extra:?} succeeded");
        assert!(stderr.contains(says), "{extra:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    };
    let count = bars.len();
    fails(
        &["--bars", &format!("{}-{}", count, count + 1)],
        &format!("has {count} bars"),
    );
    fails(&["--bars", "4-2"], "after the last");
    fails(&["--bars", "1-20"], "at most 128");
    fails(&[], "--bars");
    // A broken file: an error that names it.
    let broken = dir.path().join("broken.mid");
    std::fs::write(&broken, b"MThd\0\0\0\x06\0\x01").unwrap();
    let done = std::process::Command::new(exe)
        .args(["generate", "--device", "cpu", "--model"])
        .arg(&model)
        .arg("--inpaint")
        .arg(&broken)
        .args(["--bars", "1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert_eq!(done.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("broken.mid"), "{stderr}");
}
