//! `diffroll train autoencoder|diffusion|decoder|keys`: the training stages from the command
//! line. Owns their options, the progress bar, Ctrl-C and `--minutes` as the loop's stop, and
//! `train keys`' report; the loops themselves are [`crate::train`]'s.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use super::DeviceArgs;
use crate::model::{AutoencoderConfig, PitchCrop, UNetConfig};
use crate::train::autoencoder::{self, AutoencoderRun, AutoencoderTraining};
use crate::train::checkpoint::dir_of;
use crate::train::decoder::{self, DecoderRun, DecoderTraining};
use crate::train::diffusion::{self, DiffusionRun, DiffusionTraining};
use crate::train::run::{Control, Outcome, Progress};

#[derive(Debug, Args)]
pub struct TrainArgs {
    #[command(subcommand)]
    pub stage: Stage,
}

/// Settings every training stage takes.
#[derive(Debug, Args)]
pub struct Common {
    /// Training corpus: <dir>/<style>/*.mid.
    #[arg(long)]
    pub data: PathBuf,
    /// Model folder to write (card, weights, checkpoint/).
    #[arg(long)]
    pub out: PathBuf,
    /// Continue from <out>/checkpoint exactly where it stopped.
    #[arg(long)]
    pub resume: bool,
    /// Total optimizer steps.
    #[arg(long, value_parser = super::at_least_one)]
    pub steps: Option<usize>,
    /// Training windows per optimizer step.
    #[arg(long, value_parser = super::at_least_one)]
    pub batch: Option<usize>,
    /// Peak learning rate of the cosine schedule (default: the stage's own).
    #[arg(long, help_heading = super::TUNING)]
    pub lr: Option<f64>,
    /// Save a checkpoint every N steps (always also on Ctrl-C and at the end).
    #[arg(long, value_parser = super::at_least_one)]
    pub checkpoint_every: Option<usize>,
    /// Stop (with a checkpoint) after this many minutes; `--resume` continues.
    #[arg(long)]
    pub minutes: Option<f64>,
    /// Seed of the run's random generator (windows, noise, fresh weights).
    #[arg(long, help_heading = super::TUNING)]
    pub seed: Option<u64>,
    #[command(flatten)]
    pub device: DeviceArgs,
}

#[derive(Debug, Subcommand)]
pub enum Stage {
    #[command(flatten)]
    Network(Box<Network>),
    /// Measure each style's keys and register in a corpus and store them in a model's card:
    /// generation moves the pieces the model draws in every key alike to keys the style uses
    /// (`train diffusion` does this itself).
    Keys {
        /// Training corpus: <dir>/<style>/*.mid.
        #[arg(long)]
        data: PathBuf,
        /// Model folder whose card to update.
        #[arg(long)]
        model: PathBuf,
    },
}

/// The stages that train a network: they share [`Common`] and a device.
#[derive(Debug, Subcommand)]
pub enum Network {
    /// Train the roll ⇄ latent autoencoder.
    Autoencoder {
        #[command(flatten)]
        common: Common,
        /// Held-out corpus for onset/frame F1 (e.g. ../shared/corpus/val).
        #[arg(long)]
        val: Option<PathBuf>,
        /// Channels per resolution, comma-separated (each extra entry halves the size).
        #[arg(long, value_delimiter = ',', help_heading = super::TUNING)]
        channels: Option<Vec<usize>>,
        /// Channels of the latent.
        #[arg(long, value_parser = super::at_least_one, help_heading = super::TUNING)]
        latent_channels: Option<usize>,
    },
    /// Train the denoising UNet on a trained autoencoder's latents.
    Diffusion {
        #[command(flatten)]
        common: Common,
        /// Model folder holding the trained autoencoder.
        #[arg(long)]
        autoencoder: PathBuf,
        /// Channels of the UNet's first resolution (the others are multiples of it).
        #[arg(long, value_parser = super::at_least_one, help_heading = super::TUNING)]
        base_channels: Option<usize>,
        /// Work on this band of MIDI pitches only, LOW-HIGH (e.g. 32-95: 64 rows, half the
        /// UNet's work); notes outside it are not learned. Default: the autoencoder's band.
        #[arg(long, value_name = "LOW-HIGH", help_heading = super::TUNING)]
        pitches: Option<PitchCrop>,
        /// Normalise each latent channel on its own instead of all by one scale.
        #[arg(long, help_heading = super::TUNING)]
        per_channel_latents: bool,
        /// Share of training samples per style: four numbers for chorale, polyphony,
        /// classical and folk (e.g. 0.2,0.3,0.1,0.4), normalised. Default: in proportion to
        /// the square root of each style's window count.
        #[arg(
            long,
            value_parser = parse_style_mix,
            value_name = "CHORALE,POLYPHONY,CLASSICAL,FOLK",
            help_heading = super::TUNING
        )]
        style_mix: Option<StyleMix>,
        /// Weight each sample's loss by min(SNR, GAMMA) / (SNR + 1) (min-SNR-γ; 5 is the
        /// paper's choice). Default: every timestep alike.
        #[arg(long, value_name = "GAMMA", value_parser = positive, help_heading = super::TUNING)]
        min_snr_gamma: Option<f64>,
    },
    /// Fit a finished model's decoder to its UNet's estimates of clean latents (the encoder
    /// and UNet stay as they are), so generated latents decode into notes with onsets.
    Decoder {
        #[command(flatten)]
        common: Common,
        /// Finished model folder (autoencoder and UNet) whose decoder to fit; --out may be
        /// the same folder.
        #[arg(long)]
        model: PathBuf,
        /// Held-out corpus for the figures and the decoding thresholds.
        #[arg(long)]
        val: Option<PathBuf>,
        /// Largest diffusion step the training windows are noised to.
        #[arg(long, help_heading = super::TUNING)]
        max_t: Option<usize>,
        /// Share of each batch decoded from exact latents (0-1).
        #[arg(long, help_heading = super::TUNING)]
        clean_share: Option<f64>,
        /// Weight of the validity term (sound started without an onset in the model's own
        /// generated latents); 0 turns it off.
        #[arg(long, help_heading = super::TUNING)]
        validity_weight: Option<f64>,
        /// Generated latents the validity term draws from.
        #[arg(long, help_heading = super::TUNING)]
        generated: Option<usize>,
    },
}

/// `--style-mix`: one share per style, in label order.
#[derive(Debug, Clone, Copy)]
pub struct StyleMix(pub [f64; 4]);

/// Checks what can be checked before the corpus is read: four finite shares, none negative
/// (whether the corpus has the styles that get a share is known only once it is read).
fn positive(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("'{s}' must be a number above 0 (e.g. 5)")),
    }
}

fn parse_style_mix(s: &str) -> Result<StyleMix, String> {
    let shares: Vec<f64> = s
        .split(',')
        .map(|w| match w.trim().parse::<f64>() {
            Ok(w) if w.is_finite() && w >= 0.0 => Ok(w),
            _ => Err(format!("'{w}' is not a share: give a number of 0 or more")),
        })
        .collect::<Result<_, _>>()?;
    shares.try_into().map(StyleMix).map_err(|shares: Vec<f64>| {
        format!(
            "{} shares given: give four, for chorale, polyphony, classical and folk (e.g. 0.2,0.3,0.1,0.4)",
            shares.len()
        )
    })
}

/// `train keys`: measures the corpus and rewrites the card.
fn store_key_profiles(data: &std::path::Path, model: &std::path::Path) -> anyhow::Result<()> {
    let model = crate::model::catalog::resolve(model)?;
    let mut card = crate::model::ModelCard::load(&model)?;
    let (windows, _) = crate::train::dataset::WindowSet::load(data, 1)?;
    let per_style = crate::train::dataset::KEY_PROFILE_WINDOWS;
    card.key_profiles = windows.key_profiles(per_style);
    for (name, profile) in card.styles.iter().zip(&card.key_profiles) {
        match profile {
            Some(p) => {
                let mut roots: Vec<(usize, f64)> = p.roots.iter().copied().enumerate().collect();
                roots.sort_by(|a, b| b.1.total_cmp(&a.1));
                let common: Vec<String> = roots
                    .iter()
                    .take(3)
                    .map(|&(r, share)| {
                        format!("{} {:.0} %", crate::roll::KEY_NAMES[r], share * 100.0)
                    })
                    .collect();
                println!(
                    "{name:10} {} windows; mean pitch {:.1} (sd {:.1}); keys {}",
                    p.windows,
                    p.pitch_mean,
                    p.pitch_sd,
                    common.join(", "),
                );
            }
            None => println!("{name:10} no windows"),
        }
    }
    card.save(&model)?;
    eprintln!("saved in {}", model.join(crate::model::CARD_FILE).display());
    Ok(())
}

/// Applies the options both stages share to either stage's training config (two config
/// types with the same builder methods).
macro_rules! with_common {
    ($training:expr, $common:expr) => {{
        let mut t = $training;
        if let Some(v) = $common.steps {
            t = t.with_steps(v);
        }
        if let Some(v) = $common.batch {
            t = t.with_batch(v);
        }
        if let Some(v) = $common.lr {
            t = t.with_lr(v);
        }
        if let Some(v) = $common.checkpoint_every {
            t = t.with_checkpoint_every(v);
        }
        if let Some(v) = $common.seed {
            t = t.with_seed(v);
        }
        t
    }};
}

fn progress_bar(total: usize) -> ProgressBar {
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:30} {pos}/{len} steps  loss {msg}  [{elapsed_precise}, ETA {eta_precise}]",
        )
        .expect("valid template"),
    );
    bar
}

/// Ctrl-C raises the flag once (the loop then checkpoints and returns); a second one exits.
/// Shows training progress: a bar on a terminal, plain lines every 50 steps otherwise.
pub(super) fn progress_printer() -> impl FnMut(&Progress) {
    let mut bar: Option<ProgressBar> = None;
    move |p: &Progress| {
        let bar = bar.get_or_insert_with(|| {
            // A resumed run starts mid-way: the ETA must not count the resumed steps as speed.
            let bar = progress_bar(p.total);
            bar.set_position(p.step.saturating_sub(1) as u64);
            bar.reset_eta();
            bar
        });
        bar.set_position(p.step as u64);
        bar.set_message(format!("{:.4}  {:.1} samples/s", p.loss, p.samples_per_sec));
        if bar.is_hidden() {
            // Not a terminal (a log file, CI): plain lines instead of a bar.
            if p.step.is_multiple_of(50) || p.message.is_some() {
                let eta = bar.eta().as_secs_f64() / 60.0;
                eprintln!(
                    "step {}/{}  loss {:.4}  {:.1} samples/s  ETA {eta:.0} min",
                    p.step, p.total, p.loss, p.samples_per_sec
                );
            }
        }
        if let Some(m) = &p.message {
            // A hidden bar prints nothing, and these lines (held-out figures) matter in logs.
            if bar.is_hidden() {
                eprintln!("{m}");
            } else {
                bar.println(m);
            }
        }
        if p.step == p.total {
            bar.finish_and_clear();
        }
    }
}

pub(super) fn stop_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let handler_flag = flag.clone();
    let installed = ctrlc::set_handler(move || {
        if handler_flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\nstopping: saving a checkpoint (Ctrl-C again to quit at once)");
    });
    if let Err(e) = installed {
        tracing::warn!("Ctrl-C will not checkpoint: {e}");
    }
    flag
}

/// `checkpoint` is where the run's checkpoint lives (for the resume hint).
fn report(outcome: &Outcome, out: &std::path::Path, checkpoint: &std::path::Path) {
    let metrics: Vec<String> = outcome
        .metrics
        .iter()
        .map(|(k, v)| format!("{k} {v:.4}"))
        .collect();
    if outcome.finished {
        eprintln!(
            "done: {} steps in {:.2} h; {}; model in {}",
            outcome.step,
            outcome.elapsed.as_secs_f64() / 3600.0,
            metrics.join(", "),
            out.display()
        );
    } else {
        eprintln!(
            "stopped at step {}/{}; checkpoint in {}; continue with --resume",
            outcome.step,
            outcome.total,
            checkpoint.display()
        );
    }
}

pub fn run(args: TrainArgs) -> anyhow::Result<()> {
    match args.stage {
        Stage::Network(network) => train_network(*network),
        Stage::Keys { data, model } => store_key_profiles(&data, &model),
    }
}

fn train_network(network: Network) -> anyhow::Result<()> {
    let common = match &network {
        Network::Autoencoder { common, .. }
        | Network::Diffusion { common, .. }
        | Network::Decoder { common, .. } => common,
    };
    let chosen = common.device.choose()?;
    let stop = stop_flag();
    let time_limit = common.minutes.map(|m| Duration::from_secs_f64(m * 60.0));
    let mut on_progress = progress_printer();
    let control = Control {
        stop: &stop,
        time_limit,
        on_progress: &mut on_progress,
    };
    match network {
        Network::Autoencoder {
            common,
            val,
            channels,
            latent_channels,
        } => {
            let mut model = AutoencoderConfig::new();
            if let Some(c) = channels {
                model = model.with_channels(c);
            }
            if let Some(l) = latent_channels {
                model = model.with_latent_channels(l);
            }
            model.check().map_err(anyhow::Error::msg)?;
            let training = with_common!(AutoencoderTraining::new(), common);
            let outcome = autoencoder::train(
                AutoencoderRun {
                    model,
                    training,
                    data: &common.data,
                    val: val.as_deref(),
                    out: &common.out,
                    resume: common.resume,
                    device: chosen.device.clone(),
                    hardware: chosen.description.clone(),
                },
                control,
            )
            .with_context(|| format!("training the autoencoder into {}", common.out.display()))?;
            report(&outcome, &common.out, &dir_of(&common.out));
        }
        Network::Diffusion {
            common,
            autoencoder: ae_dir,
            base_channels,
            pitches,
            per_channel_latents,
            style_mix,
            min_snr_gamma,
        } => {
            let mut unet = UNetConfig::new();
            if let Some(b) = base_channels {
                unet = unet.with_base_channels(b);
            }
            let training = with_common!(DiffusionTraining::new(), common)
                .with_per_channel_latents(per_channel_latents)
                .with_style_mix(style_mix.map(|m| m.0.to_vec()))
                .with_min_snr_gamma(min_snr_gamma);
            let outcome = diffusion::train(
                DiffusionRun {
                    unet,
                    training,
                    autoencoder: &ae_dir,
                    crop: pitches,
                    data: &common.data,
                    out: &common.out,
                    resume: common.resume,
                    device: chosen.device.clone(),
                    hardware: chosen.description.clone(),
                },
                control,
            )
            .with_context(|| format!("training diffusion into {}", common.out.display()))?;
            report(&outcome, &common.out, &dir_of(&common.out));
        }
        Network::Decoder {
            common,
            model,
            val,
            max_t,
            clean_share,
            validity_weight,
            generated,
        } => {
            let mut training = with_common!(DecoderTraining::new(), common);
            if let Some(t) = max_t {
                anyhow::ensure!(
                    t < crate::model::schedule::TRAIN_STEPS,
                    "--max-t {t}: diffusion steps run from 0 to {}",
                    crate::model::schedule::TRAIN_STEPS - 1
                );
                training = training.with_max_t(t);
            }
            if let Some(c) = clean_share {
                anyhow::ensure!(
                    (0.0..=1.0).contains(&c),
                    "--clean-share {c}: give a share from 0 to 1"
                );
                training = training.with_clean_share(c);
            }
            if let Some(w) = validity_weight {
                anyhow::ensure!(
                    w >= 0.0,
                    "--validity-weight {w}: give a weight of 0 or more"
                );
                training = training.with_validity_weight(w);
            }
            if let Some(n) = generated {
                training = training.with_generated(n);
            }
            let model = crate::model::catalog::resolve(&model)?;
            let outcome = decoder::train(
                DecoderRun {
                    training,
                    model: &model,
                    data: &common.data,
                    val: val.as_deref(),
                    out: &common.out,
                    resume: common.resume,
                    device: chosen.device.clone(),
                    hardware: chosen.description.clone(),
                },
                control,
            )
            .with_context(|| {
                format!(
                    "fitting the decoder of {} into {}",
                    model.display(),
                    common.out.display()
                )
            })?;
            report(&outcome, &common.out, &decoder::checkpoint_dir(&common.out));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn style_mix_wants_four_shares_of_zero_or_more() {
        let mix = parse_style_mix("0.2, 0.3,0.1,0.4").expect("four shares");
        assert_eq!(mix.0, [0.2, 0.3, 0.1, 0.4]);
        assert_eq!(parse_style_mix("0,0,0,1").expect("zeros allowed").0[3], 1.0);
        for (bad, says) in [
            ("1,2,3", "3 shares"),
            ("1,2,3,4,5", "5 shares"),
            ("1,-2,3,4", "'-2'"),
            ("1,x,3,4", "'x'"),
            ("1,inf,3,4", "'inf'"),
            ("", "''"),
        ] {
            let err = parse_style_mix(bad).expect_err(bad);
            assert!(err.contains(says), "{bad}: {err}");
        }
    }
}
