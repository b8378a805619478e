//! `diffroll eval`: scores a model's samples, a folder of MIDI files or an autoencoder's
//! reconstruction against real music, beside the real-vs-real ceiling and a random-notes
//! baseline. Owns gathering the sets (samples per style, real windows, inpainting), the
//! overrides of the card's settings for tuning, the report, and `--save-to-card`; the metrics
//! themselves are [`crate::eval`]'s.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use rand::SeedableRng;

use super::DeviceArgs;
use crate::eval::{self, FEATURES, Report, STATISTICS};
use crate::model::{GenerateRequest, KeyChoice, ModelCard, Pipeline};
use crate::roll::{Roll, STEPS_PER_BAR, Style, Validity, WINDOW_STEPS};
use crate::train::dataset::WindowSet;

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["model", "samples", "autoencoder"])))]
pub struct EvalArgs {
    /// Model to generate from: a folder, `base` (the shipped model) or the name of a saved
    /// (fine-tuned) model.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Folder of .mid files to score instead of a model (their first 8 bars).
    #[arg(long)]
    pub samples: Option<PathBuf>,
    /// Model folder whose autoencoder's reconstruction of --data to score (onset and frame
    /// F1), at the card's decoding thresholds and at the best ones for this data.
    #[arg(long)]
    pub autoencoder: Option<PathBuf>,
    /// Real music to compare with: <dir>/<style>/*.mid (e.g. ../shared/corpus/val).
    #[arg(long)]
    pub data: PathBuf,
    /// Training corpus, for the real-vs-real ceiling (train windows against --data).
    #[arg(long, default_value = "../shared/corpus/train")]
    pub train: PathBuf,
    /// Samples per style (and real windows per style).
    #[arg(long, default_value_t = 64, value_parser = super::at_least_one)]
    pub count: usize,
    /// Score one style only.
    #[arg(long)]
    pub style: Option<Style>,
    /// Random seed of the generated samples, the inpainting and the random baseline.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print the figures as JSON instead of the text report.
    #[arg(long)]
    pub json: bool,
    /// Classifier two-sample test instead of the overlapping areas: per style, how often a
    /// classifier tells held-out windows of the model (or --samples) from --data's (5 folds,
    /// a piece's windows in one fold), beside --train against --data (real against real) and
    /// random notes; with each set's consonant beats, notes per bar, note length and empty
    /// beats.
    #[arg(long, conflicts_with_all = ["autoencoder", "save_to_card"])]
    pub c2st: bool,
    /// With --c2st: the classifiers to run: a logistic regression on musical features (a
    /// second or so), a small CNN on the roll (minutes), or both.
    #[arg(long, value_enum, default_value_t = Critic::Both, requires = "c2st")]
    pub critic: Critic,
    /// With --model: also store the figures (as --json prints them) in the model's card, with
    /// the sampler settings and thresholds they were measured with as the model's defaults.
    #[arg(long, requires = "model")]
    pub save_to_card: bool,
    /// With --autoencoder: also decode with Gaussian noise of these sizes (times the latents'
    /// standard deviation) added to the latents, comma-separated: how robust the latent space
    /// is to a denoiser's small errors.
    #[arg(long, requires = "autoencoder", value_delimiter = ',', help_heading = super::PROBES)]
    pub latent_noise: Vec<f32>,
    /// With --model: only score one-step denoising of the real windows at these training
    /// steps (0-999, comma-separated): onset and frame F1 and notes without an onset, to see
    /// at which noise level the model loses what.
    #[arg(long, requires = "model", value_delimiter = ',', help_heading = super::PROBES)]
    pub denoise_probe: Vec<usize>,
    /// With --model: sampler (ddim, ddpm, dpm) instead of the card's default.
    #[arg(long, requires = "model", help_heading = super::TUNING)]
    pub sampler: Option<crate::model::SamplerKind>,
    /// With --model: sampler steps instead of the card's default.
    #[arg(long, requires = "model", value_parser = super::at_least_one, help_heading = super::TUNING)]
    pub steps: Option<usize>,
    /// With --model: guidance G[,STYLE=G...] instead of the card's default (for tuning it).
    #[arg(long, requires = "model", help_heading = super::TUNING)]
    pub guidance: Option<crate::model::Guidance>,
    /// With --model: restart rounds T,STEPS,ROUNDS (e.g. 100,6,4) or "none", instead of the
    /// card's default.
    #[arg(long, requires = "model", help_heading = super::TUNING)]
    pub restart: Option<super::OrNone<crate::model::Restart>>,
    /// With --model: validity refinement STEPS,RATE,KEEP,TEMPERATURE or "none", instead of
    /// the card's default.
    #[arg(long, requires = "model", help_heading = super::TUNING)]
    pub refine: Option<super::OrNone<crate::model::Refine>>,
    /// With --model: key of the generated pieces: "typical" (the style's own keys and
    /// register; the default), "drawn" (as the model drew them) or a key such as D
    #[arg(long, requires = "model", help_heading = super::TUNING)]
    pub key: Option<KeyChoice>,
    /// With --model: clear onset-less sustain runs of at most N steps instead of repairing them
    /// (the card's `drop_blips` otherwise; 0: repair all).
    #[arg(long, requires = "model", help_heading = super::TUNING)]
    pub drop_blips: Option<usize>,
    /// With --model: join onset-less sound to the same pitch's note before it across at most N
    /// silent steps (the card's `join_gap` otherwise; 0: never).
    #[arg(long, requires = "model", help_heading = super::TUNING)]
    pub join_gap: Option<usize>,
    /// With --model: start sound that comes before its onset at the onset (true) or give it a
    /// note of its own (false); the card's `trim_early` otherwise.
    #[arg(long, requires = "model", help_heading = super::TUNING)]
    pub trim_early: Option<bool>,
    /// With --model: hold a note to the next onset of any pitch that comes at most N steps
    /// after it ends (the card's `legato_gap` otherwise; 0: never).
    #[arg(long, requires = "model", help_heading = super::TUNING)]
    pub legato_gap: Option<usize>,
    /// With --model: merge a one-step note into the same pitch's note right after it (true) or
    /// keep both (false); the card's `merge_doubled_onsets` otherwise.
    #[arg(long, requires = "model", help_heading = super::TUNING)]
    pub merge_doubled_onsets: Option<bool>,
    /// With --model: onset,sustain decoding thresholds (logits) instead of the card's.
    #[arg(long, requires = "model", value_delimiter = ',', help_heading = super::TUNING)]
    pub thresholds: Option<Vec<f32>>,
    #[command(flatten)]
    pub device: DeviceArgs,
}

fn windows(
    dir: &std::path::Path,
    per_style: usize,
    style: Option<Style>,
) -> anyhow::Result<Vec<Roll>> {
    let (set, _) = WindowSet::scan(dir, 8).with_context(|| dir.display().to_string())?;
    let rolls: Vec<Roll> = set
        .fixed(per_style)
        .into_iter()
        .filter(|(_, s)| style.is_none_or(|want| *s == want))
        .map(|(r, _)| r)
        .collect();
    anyhow::ensure!(
        !rolls.is_empty(),
        "{}: no 8-bar windows found",
        dir.display()
    );
    Ok(rolls)
}

/// [`windows`], each with the index of its piece (unique within `dir`).
fn refs(set: &[(Roll, usize)]) -> Vec<(&Roll, usize)> {
    set.iter().map(|(r, g)| (r, *g)).collect()
}

fn grouped_windows(
    dir: &std::path::Path,
    per_style: usize,
    style: Option<Style>,
) -> anyhow::Result<Vec<(Roll, usize)>> {
    let (set, _) = WindowSet::scan(dir, 8).with_context(|| dir.display().to_string())?;
    let rolls: Vec<(Roll, usize)> = set
        .fixed_with_pieces(per_style)
        .into_iter()
        .filter(|(_, s, _)| style.is_none_or(|want| *s == want))
        .map(|(r, _, piece)| (r, piece))
        .collect();
    anyhow::ensure!(
        !rolls.is_empty(),
        "{}: no 8-bar windows found",
        dir.display()
    );
    Ok(rolls)
}

/// `eval --critic`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Critic {
    Both,
    Cnn,
    Features,
}

/// One style's row of `eval --c2st`: each classifier's three tests, where it ran.
#[derive(serde::Serialize)]
struct C2stRow {
    style: Style,
    model: Option<eval::c2st::C2st>,
    real_vs_real: Option<eval::c2st::C2st>,
    random_notes: Option<eval::c2st::C2st>,
    /// The same three on musical features (`eval::feature_c2st`).
    model_features: Option<eval::c2st::C2st>,
    real_vs_real_features: Option<eval::c2st::C2st>,
    random_notes_features: Option<eval::c2st::C2st>,
    texture_real: eval::Texture,
    texture_model: eval::Texture,
    texture_train: eval::Texture,
}

/// `eval --c2st`.
fn c2st_report(args: &EvalArgs, model: Option<&std::path::Path>) -> anyhow::Result<()> {
    let real = grouped_windows(&args.data, args.count, args.style)?;
    let train = grouped_windows(&args.train, args.count, args.style)?;
    let samples = match (model, &args.samples) {
        (Some(dir), _) => generate_per_style(args, &configured_pipeline(args, dir)?.0)?.0,
        (None, Some(dir)) => read_samples(dir)?,
        (None, None) => anyhow::bail!("--c2st compares --model's pieces or --samples' files"),
    };
    // The classifier is small: the CPU (with our kernels) trains it in seconds.
    let device = burn::tensor::Device::flex();
    let config = eval::c2st::C2stConfig::new().with_seed(args.seed);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(args.seed);
    let mut rows = Vec::new();
    for style in Style::ALL {
        let of = |set: &[(Roll, usize)]| -> Vec<(Roll, usize)> {
            set.iter()
                .filter(|(r, _)| r.style == Some(style))
                .cloned()
                .collect()
        };
        let (real, train) = (of(&real), of(&train));
        let generated: Vec<(Roll, usize)> = samples
            .iter()
            .filter(|r| r.style == Some(style))
            .cloned()
            .enumerate()
            .map(|(i, r)| (r, i))
            .collect();
        if real.is_empty() || generated.is_empty() {
            continue;
        }
        let real_rolls: Vec<Roll> = real.iter().map(|(r, _)| r.clone()).collect();
        let random: Vec<(Roll, usize)> = eval::random_baseline(&real_rolls, &mut rng)
            .into_iter()
            .enumerate()
            .map(|(i, r)| (r, i))
            .collect();
        let test = |other: &[(Roll, usize)]| {
            (args.critic != Critic::Features)
                .then(|| eval::c2st::c2st(&refs(other), &refs(&real), &config, &device))
        };
        let on_features = |other: &[(Roll, usize)]| {
            (args.critic != Critic::Cnn)
                .then(|| eval::feature_c2st::feature_c2st(&refs(other), &refs(&real), &config))
        };
        let rolls =
            |set: &[(Roll, usize)]| -> Vec<Roll> { set.iter().map(|(r, _)| r.clone()).collect() };
        rows.push(C2stRow {
            style,
            model: test(&generated),
            real_vs_real: test(&train),
            random_notes: test(&random),
            model_features: on_features(&generated),
            real_vs_real_features: on_features(&train),
            random_notes_features: on_features(&random),
            texture_real: eval::texture(&real_rolls),
            texture_model: eval::texture(&rolls(&generated)),
            texture_train: eval::texture(&rolls(&train)),
        });
    }
    anyhow::ensure!(
        !rows.is_empty(),
        "no style has both real and generated windows"
    );
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!(
        "C2ST: a classifier's held-out accuracy at telling each set from {} ({} folds; 0.5 = it cannot)",
        args.data.display(),
        config.folds
    );
    for row in &rows {
        let acc = |c: &Option<eval::c2st::C2st>| {
            c.as_ref().map_or("-".into(), |c| {
                format!("{:.2} ± {:.2}", c.accuracy, c.spread)
            })
        };
        let per_set = row
            .model
            .as_ref()
            .or(row.model_features.as_ref())
            .map_or(0, |c| c.per_set);
        for (critic, tests) in [
            (
                "CNN on the roll",
                [&row.model, &row.real_vs_real, &row.random_notes],
            ),
            (
                "musical features",
                [
                    &row.model_features,
                    &row.real_vs_real_features,
                    &row.random_notes_features,
                ],
            ),
        ] {
            if tests[0].is_some() {
                println!(
                    "{:<10} {critic}: model {}   real vs real {}   random notes {}   ({per_set} windows a set)",
                    row.style.to_string(),
                    acc(tests[0]),
                    acc(tests[1]),
                    acc(tests[2]),
                );
            }
        }
        let (r, m, t) = (row.texture_real, row.texture_model, row.texture_train);
        println!(
            "{:<10} real / model / train: consonant beats {:.3} / {:.3} / {:.3}, notes per bar {:.1} / {:.1} / {:.1}, mean note length {:.2} / {:.2} / {:.2}, empty beats {:.3} / {:.3} / {:.3}",
            "",
            r.consonant_beats,
            m.consonant_beats,
            t.consonant_beats,
            r.notes_per_bar,
            m.notes_per_bar,
            t.notes_per_bar,
            r.mean_note_length,
            m.mean_note_length,
            t.mean_note_length,
            r.empty_beats,
            m.empty_beats,
            t.empty_beats
        );
    }
    Ok(())
}

fn read_samples(dir: &std::path::Path) -> anyhow::Result<Vec<Roll>> {
    let corpus = crate::train::corpus::scan(dir, STEPS_PER_BAR)
        .with_context(|| dir.display().to_string())?;
    let mut rolls = Vec::new();
    for piece in corpus.pieces {
        let mut roll = piece.song.to_roll().window(0, WINDOW_STEPS);
        // The style folder it sits in (`<dir>/<style>/*.mid`), for the per-style figures.
        roll.style = roll.style.or(piece.style);
        rolls.push(roll);
    }
    for rejected in corpus.rejected {
        eprintln!("skipped {}: {}", rejected.path.display(), rejected.reason);
    }
    anyhow::ensure!(!rolls.is_empty(), "{}: no usable .mid files", dir.display());
    Ok(rolls)
}

fn autoencoder_f1(args: &EvalArgs, dir: &std::path::Path) -> anyhow::Result<()> {
    use crate::train::autoencoder::{noisy_reconstruction, reconstruction_f1, tune_thresholds};
    let chosen = args.device.choose()?;
    let card = ModelCard::load(dir)?;
    let ae = crate::model::load_weights(
        card.autoencoder.init(&chosen.device),
        &dir.join(crate::model::AUTOENCODER_FILE),
        &chosen.device,
    )?;
    let real = windows(&args.data, args.count, args.style)?;
    let (onset, frame) = reconstruction_f1(&ae, &real, &chosen.device, card.thresholds);
    let (best, (best_onset, best_frame)) = tune_thresholds(&ae, &real, &chosen.device);
    let noisy: Vec<serde_json::Value> = args
        .latent_noise
        .iter()
        .map(|&sigma| {
            let (onset, frame, decoded) = noisy_reconstruction(
                &ae,
                &real,
                &chosen.device,
                card.thresholds,
                sigma,
                args.seed,
            );
            serde_json::json!({
                "latent_noise": sigma, "onset_f1": onset, "frame_f1": frame,
                "orphan_notes": OrphanRates::of(decoded.iter().map(|(r, v)| (r, v))).notes,
            })
        })
        .collect();
    // What diffusion on these latents faces: channels of unequal spread or offset need
    // per-channel normalisation.
    let stats = crate::model::LatentNorm::measure(&ae, &real, &chosen.device);
    let std: Vec<f32> = stats.scale.iter().map(|s| 1.0 / s).collect();
    let report = serde_json::json!({
        "windows": real.len(),
        "latent_mean": stats.mean, "latent_std": std,
        "thresholds": card.thresholds, "onset_f1": onset, "frame_f1": frame,
        "best_thresholds": best, "best_onset_f1": best_onset, "best_frame_f1": best_frame,
        "with_latent_noise": noisy,
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{} windows: onset F1 {onset:.4}, frame F1 {frame:.4} at thresholds {:?}; \
             best here: {best_onset:.4} / {best_frame:.4} at {best:?}",
            real.len(),
            card.thresholds
        );
        let fmt = |v: &[f32]| {
            v.iter()
                .map(|x| format!("{x:.3}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        println!("latent channels: mean {}", fmt(&stats.mean));
        println!("                 std  {}", fmt(&std));
        for n in &noisy {
            println!(
                "latent noise {:.2}: onset F1 {:.4}, frame F1 {:.4}, notes without an onset {:.4}",
                n["latent_noise"].as_f64().unwrap_or(f64::NAN),
                n["onset_f1"].as_f64().unwrap_or(f64::NAN),
                n["frame_f1"].as_f64().unwrap_or(f64::NAN),
                n["orphan_notes"].as_f64().unwrap_or(f64::NAN),
            );
        }
    }
    Ok(())
}

pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    if let Some(dir) = &args.autoencoder {
        return autoencoder_f1(&args, dir);
    }
    let model = args
        .model
        .as_deref()
        .map(crate::model::catalog::resolve)
        .transpose()?;
    if args.c2st {
        return c2st_report(&args, model.as_deref());
    }
    let real = windows(&args.data, args.count, args.style)?;
    if !args.denoise_probe.is_empty()
        && let Some(dir) = &model
    {
        return denoise_probe(&args, dir, &real);
    }
    let train = windows(&args.train, args.count, args.style)?;
    let mut orphans = None;
    let mut inpainting = None;
    let mut measured_with = None;
    let (label, samples) = match (&model, &args.samples) {
        (Some(dir), _) => {
            let (pipeline, device) = configured_pipeline(&args, dir)?;
            // The card as the figures were measured with it: what --save-to-card keeps.
            measured_with = Some(pipeline.card.clone());
            inpainting = Some(inpaint_score(&pipeline, &real, &train, args.seed)?);
            let (rolls, repaired) = generate_per_style(&args, &pipeline)?;
            orphans = Some([
                OrphanRates::of(
                    reconstruct(&pipeline, &real, &device)
                        .iter()
                        .map(|(r, v)| (r, v)),
                ),
                OrphanRates::of(rolls.iter().zip(&repaired)),
            ]);
            ("model", rolls)
        }
        (None, Some(dir)) => ("samples", read_samples(dir)?),
        (None, None) => unreachable!("clap requires --model, --samples or --autoencoder"),
    };
    // Copies: the share of samples whose nearest training window has onset F1 > 0.8.
    let corpus = crate::train::corpus::scan(&args.train, STEPS_PER_BAR)
        .with_context(|| args.train.display().to_string())?;
    let index = eval::OnsetIndex::new(
        corpus
            .pieces
            .iter()
            .map(|p| (p.song.notes.as_slice(), p.windows.as_slice())),
    );
    let copy_rate = |rolls: &[Roll]| {
        use rayon::prelude::*;
        let copies = rolls
            .par_iter()
            .filter(|r| index.nearest_f1(r) > 0.8)
            .count();
        copies as f64 / rolls.len().max(1) as f64
    };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(args.seed);
    let copies = [copy_rate(&real), copy_rate(&samples)];
    let ceiling = eval::score(&real, &train);
    let scored = eval::score(&real, &samples);
    let random = eval::score(&real, &eval::random_baseline(&real, &mut rng));
    // Per style, where the samples know theirs (a model's do; a folder's do not).
    let of = |rolls: &[Roll], style: Style| -> Vec<Roll> {
        rolls
            .iter()
            .filter(|r| r.style == Some(style))
            .cloned()
            .collect()
    };
    let mut per_style = Vec::new();
    for style in Style::ALL {
        let (r, t, g) = (of(&real, style), of(&train, style), of(&samples, style));
        if r.len() < 2 || t.is_empty() || g.is_empty() {
            continue;
        }
        let random = eval::score(&r, &eval::random_baseline(&r, &mut rng));
        per_style.push(serde_json::json!({
            "style": style.name(),
            "real_vs_real": eval::score(&r, &t),
            label: eval::score(&r, &g),
            "random": random,
            "copy_rate": copy_rate(&g),
        }));
    }
    let json = serde_json::json!({
            "data": args.data.display().to_string(),
            "count_per_style": args.count,
            "seed": args.seed,
            "real_windows": real.len(),
            "real_vs_real": ceiling,
            label: scored,
            "random": random,
            "orphan_sustain": orphans.map(|[recon, model]| serde_json::json!({
                "autoencoder_on_real": recon, label: model,
            })),
            "copy_rate": { "real_vs_real": copies[0], label: copies[1] },
            "per_style": per_style,
            "inpainting": inpainting,
            "features": FEATURES,
            "statistics": STATISTICS,
            "settings": measured_with.as_ref().map(|card| {
                // Every mending field under the name the card stores it by, so a field added
                // to `Mending` is reported without being listed here too.
                let mut settings = plain_json(&card.mending);
                settings["defaults"] = plain_json(&card.defaults);
                settings["thresholds"] = plain_json(&card.thresholds);
                settings["key"] = serde_json::json!(args.key.unwrap_or_default().to_string());
                settings
            }),
    });
    if args.save_to_card
        && let Some(dir) = &model
    {
        let mut card = ModelCard::load(dir)?;
        card.eval = json.clone();
        if let Some(measured) = measured_with {
            card.take_settings(measured);
        }
        card.save(dir)?;
        eprintln!(
            "figures saved in {}",
            dir.join(crate::model::CARD_FILE).display()
        );
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&json)?);
        return Ok(());
    }
    print_table(label, real.len(), &ceiling, &scored, &random, orphans);
    println!(
        "{:<28} {:>12.3} {:>12.3} {:>12}",
        "copies (train onset-F1>0.8)", copies[0], copies[1], "-"
    );
    if let Some(inp) = &inpainting {
        let f = |k: &str| inp[k]["mean_oa"].as_f64().unwrap_or(f64::NAN);
        println!(
            "{:<28} {:>12.3} {:>12.3} {:>12.3}",
            "inpainting bars 3-6 OA mean",
            f("real_vs_real"),
            f("model"),
            f("random")
        );
    }
    if !per_style.is_empty() {
        println!(
            "\n{:<10} {:>9} {:>9} {:>9} {:>10} {:>10} {:>8}",
            "style", "OA real", "OA model", "OA rand", "poly train", "poly model", "copies"
        );
        let f = |v: &serde_json::Value, k: &str| v[k]["mean_oa"].as_f64().unwrap_or(f64::NAN);
        let poly =
            |v: &serde_json::Value, k: &str| v[k]["statistics"][2].as_f64().unwrap_or(f64::NAN);
        for row in &per_style {
            println!(
                "{:<10} {:>9.3} {:>9.3} {:>9.3} {:>10.2} {:>10.2} {:>8.3}",
                row["style"].as_str().unwrap_or("?"),
                f(row, "real_vs_real"),
                f(row, label),
                f(row, "random"),
                poly(row, "real_vs_real"),
                poly(row, label),
                row["copy_rate"].as_f64().unwrap_or(f64::NAN)
            );
        }
    }
    Ok(())
}

/// The model in `dir` on the chosen device, with the card settings given on the command line.
fn configured_pipeline(
    args: &EvalArgs,
    dir: &std::path::Path,
) -> anyhow::Result<(Pipeline, burn::tensor::Device)> {
    let chosen = args.device.choose()?;
    let mut pipeline = Pipeline::load(dir, &chosen.device)?;
    match args.thresholds.as_deref() {
        None => {}
        Some(&[onset, sustain]) => pipeline.card.thresholds = [onset, sustain],
        Some(_) => anyhow::bail!("--thresholds takes two numbers: onset,sustain"),
    }
    if let Some(g) = args.guidance.clone() {
        pipeline.card.defaults.guidance = g;
    }
    if let Some(restart) = args.restart {
        pipeline.card.defaults.restart = restart.0;
    }
    if let Some(refine) = args.refine {
        pipeline.card.defaults.refine = refine.0;
    }
    if let Some(sampler) = args.sampler {
        pipeline.card.defaults.sampler = sampler;
    }
    if let Some(steps) = args.steps {
        pipeline.card.defaults.steps = steps;
    }
    if let Some(n) = args.drop_blips {
        pipeline.card.mending.drop_blips = n;
    }
    if let Some(n) = args.join_gap {
        pipeline.card.mending.join_gap = n;
    }
    if let Some(t) = args.trim_early {
        pipeline.card.mending.trim_early = t;
    }
    if let Some(n) = args.legato_gap {
        pipeline.card.mending.legato_gap = n;
    }
    if let Some(m) = args.merge_doubled_onsets {
        pipeline.card.mending.merge_doubled_onsets = m;
    }
    Ok((pipeline, chosen.device))
}

/// `--count` pieces per style (or of `--style`) with the card's settings, each labelled with
/// the style it is compared under, and what the decoder's mending did to each.
fn generate_per_style(
    args: &EvalArgs,
    pipeline: &Pipeline,
) -> anyhow::Result<(Vec<Roll>, Vec<Validity>)> {
    let styles: Vec<Style> = match args.style {
        Some(s) => vec![s],
        None => Style::ALL.to_vec(),
    };
    let mut rolls = Vec::new();
    let mut repaired = Vec::new();
    // A fine-tuned model writes like its files under the label it learned them as
    // (its card says which), whatever the style folder they are compared with.
    let learned = pipeline.card.defaults.style;
    for (i, style) in styles.into_iter().enumerate() {
        let request = GenerateRequest {
            count: args.count,
            seed: args.seed + i as u64,
            steps: pipeline.card.defaults.steps,
            sampler: pipeline.card.defaults.sampler,
            style: Some(learned.unwrap_or(style)),
            guidance: pipeline.card.defaults.guidance.clone(),
            tempo_bpm: style.default_tempo(),
            restart: pipeline.card.defaults.restart,
            refine: pipeline.card.defaults.refine,
            key: args.key.unwrap_or_default(),
        };
        let generated = pipeline.generate(&request, None, None)?;
        repaired.extend(generated.repaired);
        rolls.extend(generated.rolls.into_iter().map(|mut r| {
            r.style = Some(style);
            r
        }));
    }
    Ok((rolls, repaired))
}

/// `value` as JSON with each `f32` at its shortest decimal (0.3, not the 0.30000001192092896
/// that `serde_json::to_value` widens it to), so the settings a card stores read as they were
/// typed.
fn plain_json<T: serde::Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_string(value)
        .and_then(|text| serde_json::from_str(&text))
        .expect("card settings serialize to JSON")
}

/// First and last bar (1-based) that inpainting regenerates: Polyffusion's protocol.
const INPAINT_BARS: (usize, usize) = (3, 6);

/// EVALUATION item 6: bars 3-6 of each real window are masked and regenerated around the
/// kept bars; only those four bars are scored, against the real windows' own bars 3-6 (with
/// training windows' bars 3-6 as the ceiling and random notes as the floor).
fn inpaint_score(
    pipeline: &Pipeline,
    real: &[Roll],
    train: &[Roll],
    seed: u64,
) -> anyhow::Result<serde_json::Value> {
    let from = (INPAINT_BARS.0 - 1) * STEPS_PER_BAR;
    let len = (INPAINT_BARS.1 - INPAINT_BARS.0 + 1) * STEPS_PER_BAR;
    let keep: Vec<bool> = (0..WINDOW_STEPS)
        .map(|s| s < from || s >= from + len)
        .collect();
    let defaults = &pipeline.card.defaults;
    let mut filled = Vec::with_capacity(real.len());
    for (i, roll) in real.iter().enumerate() {
        let request = GenerateRequest {
            count: 1,
            seed: seed.wrapping_add(1_000_000 + i as u64),
            steps: defaults.steps,
            sampler: defaults.sampler,
            style: roll.style,
            guidance: defaults.guidance.clone(),
            tempo_bpm: roll.tempo_bpm,
            restart: defaults.restart,
            refine: defaults.refine,
            key: KeyChoice::AsDrawn,
        };
        let generated = pipeline.inpaint(&request, roll, &keep, None, None)?;
        filled.extend(generated.rolls.iter().map(|r| r.window(from, len)));
    }
    let masked =
        |rolls: &[Roll]| -> Vec<Roll> { rolls.iter().map(|r| r.window(from, len)).collect() };
    let real_masked = masked(real);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x1a9a1);
    Ok(serde_json::json!({
        "bars": [INPAINT_BARS.0, INPAINT_BARS.1],
        "real_vs_real": eval::score(&real_masked, &masked(train)),
        "model": eval::score(&real_masked, &filled),
        "random": eval::score(&real_masked, &eval::random_baseline(&real_masked, &mut rng)),
    }))
}

fn print_table(
    label: &str,
    real: usize,
    ceiling: &Report,
    scored: &Report,
    random: &Report,
    orphans: Option<[OrphanRates; 2]>,
) {
    println!(
        "{:<28} {:>12} {:>12} {:>12}",
        format!("vs {real} real windows"),
        "real-vs-real",
        label,
        "random"
    );
    for (i, name) in FEATURES.iter().enumerate() {
        println!(
            "{:<28} {:>12.3} {:>12.3} {:>12.3}",
            format!("OA {name}"),
            ceiling.oa[i],
            scored.oa[i],
            random.oa[i]
        );
    }
    println!(
        "{:<28} {:>12.3} {:>12.3} {:>12.3}",
        "OA mean", ceiling.mean_oa, scored.mean_oa, random.mean_oa
    );
    for (i, name) in STATISTICS.iter().enumerate() {
        println!(
            "{:<28} {:>12.3} {:>12.3} {:>12.3}",
            name, ceiling.statistics[i], scored.statistics[i], random.statistics[i]
        );
    }
    println!(
        "{:<28} {:>12.3} {:>12.3} {:>12.3}",
        "empty-sample rate", ceiling.empty_rate, scored.empty_rate, random.empty_rate
    );
    for (i, what) in ["pitch", "duration"].iter().enumerate() {
        let row = |r: &Report| r.self_similarity[i];
        println!(
            "{:<28} {:>12.3} {:>12.3} {:>12.3}",
            format!("self-sim. {what} consistency"),
            row(ceiling).0,
            row(scored).0,
            row(random).0
        );
        println!(
            "{:<28} {:>12.3} {:>12.3} {:>12.3}",
            format!("self-sim. {what} variance"),
            row(ceiling).1,
            row(scored).1,
            row(random).1
        );
    }
    // The ceiling column is the autoencoder's own round trip of the real windows: the floor a
    // decoder that thresholds each cell sets.
    if let Some([recon, model]) = orphans {
        println!(
            "{:<28} {:>12.4} {:>12.4} {:>12}",
            "orphan-sustain, of notes", recon.notes, model.notes, "-"
        );
        println!(
            "{:<28} {:>12.3} {:>12.3} {:>12}",
            "samples with an orphan", recon.samples, model.samples, "-"
        );
        for (what, share) in [
            (
                "orphans: onset came late",
                (recon.late_onset, model.late_onset),
            ),
            ("orphans: note broken", (recon.after_gap, model.after_gap)),
            ("orphans: blips cleared", (recon.blips, model.blips)),
        ] {
            println!("{what:<28} {:>12.3} {:>12.3} {:>12}", share.0, share.1, "-");
        }
    }
}

/// How often decoded rolls held sound without an onset (each such run becomes a note when the
/// roll is repaired): as a share of all notes, and the share of rolls with any.
#[derive(Debug, Clone, Copy, serde::Serialize)]
struct OrphanRates {
    notes: f64,
    samples: f64,
    /// Of the orphan runs: the share with an onset further in (sound began early), with no
    /// onset right after a run of the same pitch (a note broken in two), and cleared as blips.
    late_onset: f64,
    after_gap: f64,
    blips: f64,
}

impl OrphanRates {
    /// From repaired rolls and what their repair fixed.
    fn of<'a>(decoded: impl IntoIterator<Item = (&'a Roll, &'a Validity)>) -> Self {
        let (mut orphans, mut notes, mut with_any, mut rolls) = (0, 0, 0, 0);
        let (mut late, mut gap, mut blips) = (0, 0, 0);
        for (roll, fixed) in decoded {
            orphans += fixed.orphan_notes;
            late += fixed.late_onsets;
            gap += fixed.after_gap;
            blips += fixed.dropped_blips;
            // Per run the decoder drew: cleared blips and joined runs were runs too, and a
            // trimmed run was two (its early sound and the note after its onset) before
            // trimming, as it is when repair gives the early sound a note of its own; merged
            // doubled onsets were two notes.
            notes += roll.note_count()
                + fixed.dropped_blips
                + fixed.joined
                + fixed.trimmed
                + fixed.merged;
            with_any += usize::from(fixed.orphan_notes > 0);
            rolls += 1;
        }
        let of_orphans = |n: usize| n as f64 / orphans.max(1) as f64;
        OrphanRates {
            notes: orphans as f64 / notes.max(1) as f64,
            samples: with_any as f64 / rolls.max(1) as f64,
            late_onset: of_orphans(late),
            after_gap: of_orphans(gap),
            blips: of_orphans(blips),
        }
    }
}

fn denoise_probe(args: &EvalArgs, dir: &std::path::Path, real: &[Roll]) -> anyhow::Result<()> {
    let chosen = args.device.choose()?;
    let pipeline = Pipeline::load(dir, &chosen.device)?;
    let mut rows = Vec::new();
    for &t in &args.denoise_probe {
        anyhow::ensure!(
            t < crate::model::schedule::TRAIN_STEPS,
            "--denoise-probe {t}: steps run from 0 to {}",
            crate::model::schedule::TRAIN_STEPS - 1
        );
        let mut decoded = Vec::new();
        for (i, chunk) in real.chunks(32).enumerate() {
            decoded.extend(pipeline.denoise_once(chunk, t, args.seed + i as u64)?);
        }
        let (onset, frame) = crate::train::autoencoder::rolls_f1(&decoded, real);
        let orphans = OrphanRates::of(decoded.iter().map(|(r, v)| (r, v)));
        let (a, s) = pipeline.schedule().scales(Some(t));
        println!(
            "t {t:>3} (signal/noise {:>7.3}): onset F1 {:.4}, frame F1 {:.4}, notes without an onset {:.4}",
            a / s,
            onset,
            frame,
            orphans.notes
        );
        rows.push(serde_json::json!({
            "t": t, "onset_f1": onset, "frame_f1": frame, "orphan_notes": orphans.notes,
        }));
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    }
    Ok(())
}

/// The pipeline's autoencoder's round trip of `real` (encode, decode, repair).
fn reconstruct(
    pipeline: &Pipeline,
    real: &[Roll],
    device: &burn::tensor::Device,
) -> Vec<(Roll, Validity)> {
    use crate::train::autoencoder::{decode_all, reconstruction_logits};
    decode_all(
        &reconstruction_logits(pipeline.autoencoder(), real, device),
        pipeline.card.thresholds,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_keep_their_f32s_as_typed() {
        let mut guidance = std::collections::BTreeMap::new();
        guidance.insert(Style::Chorale, 4.3_f32);
        guidance.insert(Style::Folk, 1.8_f32);
        let json = plain_json(&guidance);
        assert_eq!(json.to_string(), r#"{"chorale":4.3,"folk":1.8}"#);
        // What the plain conversion would have stored.
        assert_ne!(serde_json::to_value(&guidance).unwrap(), json);
    }
}
