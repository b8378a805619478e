//! `diffroll generate`: pieces of 1 to 64 bars as MIDI (and PNG) files, or work on MIDI files
//! of yours: new takes on some bars (`--inpaint FILE --bars A-B`), a continuation
//! (`--continue`), variations (`--vary`), a blend of two (`--interpolate`), a harmonization of
//! a melody (`--harmonize`). Owns the command's options, reading the files, placing the model
//! window around the bars to rework, and writing the takes; generation itself is
//! [`crate::model::Pipeline`]'s.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::Args;

use super::DeviceArgs;
use crate::fsutil::atomic_write;
use crate::model::{GenerateRequest, Guidance, KeyChoice, Pipeline, SamplerKind};
use crate::roll::{Note, Roll, Score, Style, WINDOW_STEPS, splice_window, window_around};
use crate::{midi, render};

#[derive(Debug, Args)]
#[command(group(
    clap::ArgGroup::new("edit")
        .args(["inpaint", "continue_from", "vary", "interpolate", "harmonize"])
        .multiple(false)
))]
pub struct GenerateArgs {
    /// Model: a folder, `base` (the shipped model) or the name of a saved (fine-tuned) model.
    #[arg(long, default_value = "base")]
    pub model: PathBuf,
    /// Number of pieces (of takes, for the options that work on your music; of pieces from
    /// A to B, ends included, for --interpolate).
    #[arg(long, short = 'n', default_value_t = 1, value_parser = super::at_least_one)]
    pub count: usize,
    /// Random seed; the same seed and settings give byte-identical files. Random if omitted.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Sampler steps (default: the model's recommendation).
    #[arg(long, value_parser = super::at_least_one, help_heading = "Sampling (advanced)")]
    pub steps: Option<usize>,
    /// ddim, ddpm (ancestral) or dpm (default: the model's recommendation).
    #[arg(long, help_heading = "Sampling (advanced)")]
    pub sampler: Option<SamplerKind>,
    /// chorale, polyphony, classical or folk; without it each piece's style is drawn in
    /// proportion to the training data.
    #[arg(long)]
    pub style: Option<Style>,
    /// Classifier-free guidance: G for every style (1 = off), optionally followed by STYLE=G
    /// for a style of its own, e.g. 1,folk=1.5 (default: the model's recommendation).
    #[arg(long, help_heading = "Sampling (advanced)")]
    pub guidance: Option<Guidance>,
    /// Restart rounds after the main pass: T,STEPS,ROUNDS (e.g. 100,6,4), or "none" (default:
    /// the model's recommendation). Fewer notes without an onset, more time; fewer than 6 steps
    /// a round thin the music out.
    #[arg(long, help_heading = "Sampling (advanced)")]
    pub restart: Option<super::OrNone<crate::model::Restart>>,
    /// Validity refinement of each piece's latent: STEPS,RATE,KEEP,TEMPERATURE (e.g.
    /// 20,0.1,0.3,2), or "none" (default: the model's recommendation).
    #[arg(long, help_heading = "Sampling (advanced)")]
    pub refine: Option<super::OrNone<crate::model::Refine>>,
    /// Key of the pieces: "typical" (a key and register the style's own music uses, drawn per
    /// piece), "drawn" (as the model drew it: any key), or a key such as D, Bb, F#m
    #[arg(long, default_value_t = KeyChoice::Typical)]
    pub key: KeyChoice,
    /// Tempo in BPM written to the files (default: typical for the style).
    #[arg(long)]
    pub tempo: Option<f32>,
    /// Output folder.
    #[arg(long, short = 'o', default_value = "generated")]
    pub out: PathBuf,
    /// Also draw each piece as a PNG beside its MIDI file.
    #[arg(long)]
    pub png: bool,
    /// A MIDI file to rework: the bars given by --bars are generated anew to fit the music
    /// around them, which stays as written (key, notes, velocities); each take is the whole
    /// piece with those bars replaced. --style sets the style they are written in (drawn per
    /// take without it, as for new pieces); --key does not apply.
    #[arg(
        long,
        value_name = "FILE",
        requires = "bars",
        help_heading = "Rework bars of a piece"
    )]
    pub inpaint: Option<PathBuf>,
    /// Length of new pieces in bars (1-64; default 8), of a continuation (default 8); with
    /// --inpaint, the bars to generate anew: FIRST-LAST (e.g. 5-6) or one bar, counted from 1
    /// as the file's time signatures lay them out, at most 8 bars of 4/4.
    #[arg(long)]
    pub bars: Option<BarSpan>,
    /// A MIDI file to continue: --bars bars (default 8) appended that follow on from its last
    /// bars, in its key and (without --style) its style. Its own notes stay as written.
    #[arg(
        long = "continue",
        value_name = "FILE",
        help_heading = "Work on your own music"
    )]
    pub continue_from: Option<PathBuf>,
    /// A MIDI file to vary: takes that keep its shape and move away from it as --strength
    /// rises.
    #[arg(long, value_name = "FILE", help_heading = "Work on your own music")]
    pub vary: Option<PathBuf>,
    /// How far --vary moves from the clip, from 0 (the clip itself) to 1 (new music over its
    /// length); for --interpolate, how freely the pieces between the two ends are rewritten.
    #[arg(long, default_value_t = 0.5, help_heading = "Work on your own music")]
    pub strength: f32,
    /// Two MIDI files to blend: -n pieces (at least 2) from A's first 8 bars to B's, the two
    /// ends included.
    #[arg(
        long,
        num_args = 2,
        value_names = ["A", "B"],
        help_heading = "Work on your own music"
    )]
    pub interpolate: Option<Vec<PathBuf>>,
    /// A MIDI file whose melody to harmonize: its notes stay exactly as written and the other
    /// voices are written around them. The melody is the file's top line, or --track.
    #[arg(long, value_name = "FILE", help_heading = "Work on your own music")]
    pub harmonize: Option<PathBuf>,
    /// The track holding the melody to --harmonize, counted from 1 as a DAW shows them.
    #[arg(long, requires = "harmonize", help_heading = "Work on your own music")]
    pub track: Option<usize>,
    #[command(flatten)]
    pub device: DeviceArgs,
}

/// Bars `first..=last`, counted from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BarSpan {
    pub first: usize,
    pub last: usize,
}

impl std::str::FromStr for BarSpan {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("bars '{s}': give FIRST-LAST (e.g. 5-6) or one bar, counted from 1");
        let number = |t: &str| t.trim().parse::<usize>().ok().filter(|&n| n >= 1);
        let (first, last) = match s.split_once('-') {
            Some((a, b)) => (number(a).ok_or_else(bad)?, number(b).ok_or_else(bad)?),
            None => {
                let n = number(s).ok_or_else(bad)?;
                (n, n)
            }
        };
        if first > last {
            return Err(format!("bars '{s}': the first bar comes after the last"));
        }
        Ok(BarSpan { first, last })
    }
}

impl std::fmt::Display for BarSpan {
    /// `bar 5` or `bars 5-6`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.first == self.last {
            write!(f, "bar {}", self.first)
        } else {
            write!(f, "bars {}-{}", self.first, self.last)
        }
    }
}

/// A piece to rework: its notes, the steps to generate anew, and the model window around them.
struct Rework {
    stem: String,
    bars: BarSpan,
    notes: Vec<Note>,
    bar_starts: Vec<u32>,
    steps: u32,
    tempo_bpm: f32,
    program: u8,
    /// Steps of the piece generated anew.
    span: Range<u32>,
    /// First step of the model window (8 bars of 4/4) that holds the span.
    window_start: u32,
    window: Roll,
}

impl Rework {
    fn load(path: &Path, bars: BarSpan) -> anyhow::Result<Rework> {
        let song = midi::read_file(path).with_context(|| super::shown(path))?;
        anyhow::ensure!(
            !song.notes.is_empty(),
            "{}: no pitched notes to rework",
            super::shown(path)
        );
        let bar_starts = song.bar_starts();
        let count = bar_starts.len();
        anyhow::ensure!(
            bars.last <= count,
            "{} has {count} bars; --bars asks for {bars}",
            super::shown(path)
        );
        let span =
            bar_starts[bars.first - 1]..bar_starts.get(bars.last).copied().unwrap_or(song.steps);
        let window = WINDOW_STEPS as u32;
        anyhow::ensure!(
            span.len() <= WINDOW_STEPS,
            "{bars} span {} sixteenths; the model writes at most {window} (8 bars of 4/4) at \
             once",
            span.len()
        );
        let window_start = window_around(&bar_starts, &span, song.steps);
        let roll = song.to_roll().window(window_start as usize, WINDOW_STEPS);
        let stem = path
            .file_stem()
            .map_or("piece".into(), |s| s.to_string_lossy().into_owned());
        Ok(Rework {
            stem,
            bars,
            notes: song.notes,
            bar_starts,
            steps: song.steps,
            tempo_bpm: song.tempo_bpm,
            program: song.program,
            span,
            window_start,
            window: roll,
        })
    }

    /// The span's steps within the model window.
    fn span_in_window(&self) -> Range<usize> {
        (self.span.start - self.window_start) as usize..(self.span.end - self.window_start) as usize
    }

    /// The whole piece with the span replaced by what `take` (a generated window) plays there.
    fn with_take(&self, take: &Roll) -> Vec<Note> {
        splice_window(&self.notes, take, self.window_start, self.span.clone())
    }
}

/// A MIDI file read for one of the options that work on your music.
struct Input {
    path: PathBuf,
    stem: String,
    song: midi::Song,
    score: Score,
}

impl Input {
    /// Reads `path`; a file with no tracks or no pitched notes says so.
    fn read(path: &Path) -> anyhow::Result<Input> {
        let song = midi::read_file(path).with_context(|| super::shown(path))?;
        anyhow::ensure!(
            song.tracks > 0,
            "{}: the file has no tracks, so there is no music to work on",
            super::shown(path)
        );
        anyhow::ensure!(
            !song.notes.is_empty(),
            "{}: no pitched notes to work on (drums on channel 10 are left out)",
            super::shown(path)
        );
        let score = song.to_score();
        let stem = path
            .file_stem()
            .map_or("piece".into(), |s| s.to_string_lossy().into_owned());
        Ok(Input {
            path: path.to_path_buf(),
            stem,
            song,
            score,
        })
    }

    /// The melody to harmonize: track `track` (from 1), or the top line of the whole file.
    fn melody(&self, track: Option<usize>) -> anyhow::Result<Score> {
        let notes = match track {
            None => self.score.top_line(),
            Some(n) => {
                let found = self.song.tracks_with_notes();
                let listed = found
                    .iter()
                    .map(|(t, count)| format!("{} ({count} notes)", t + 1))
                    .collect::<Vec<_>>()
                    .join(", ");
                let notes = n.checked_sub(1).map(|t| self.song.track_notes(t));
                match notes {
                    Some(notes) if !notes.is_empty() => notes,
                    _ => anyhow::bail!(
                        "{}: track {n} holds no notes; the tracks with notes are {listed}",
                        super::shown(&self.path)
                    ),
                }
            }
        };
        Ok(Score {
            notes,
            ..self.score.clone()
        })
    }
}

/// What the command was asked to do with files of the user's.
enum Edit {
    Continue(Input, usize),
    Vary(Input),
    Blend(Input, Input),
    Harmonize(Input, Score),
}

impl Edit {
    fn from_args(args: &GenerateArgs) -> anyhow::Result<Option<Edit>> {
        let length = |args: &GenerateArgs| -> anyhow::Result<usize> { bars_count(args.bars) };
        Ok(if let Some(path) = &args.continue_from {
            Some(Edit::Continue(Input::read(path)?, length(args)?))
        } else if let Some(path) = &args.vary {
            anyhow::ensure!(
                (0.0..=1.0).contains(&args.strength),
                "--strength {} must be between 0 (the clip itself) and 1",
                args.strength
            );
            Some(Edit::Vary(Input::read(path)?))
        } else if let Some(paths) = &args.interpolate {
            anyhow::ensure!(
                args.count >= 2,
                "--interpolate writes -n pieces from A to B, the ends included: give -n 2 or more"
            );
            let [a, b] = paths.as_slice() else {
                anyhow::bail!("--interpolate takes two MIDI files, A and B");
            };
            Some(Edit::Blend(Input::read(a)?, Input::read(b)?))
        } else if let Some(path) = &args.harmonize {
            let input = Input::read(path)?;
            let melody = input.melody(args.track)?;
            Some(Edit::Harmonize(input, melody))
        } else {
            None
        })
    }
}

/// `--bars` as a length: one number from 1 to 64 (8 when not given).
fn bars_count(bars: Option<BarSpan>) -> anyhow::Result<usize> {
    match bars {
        None => Ok(crate::roll::WINDOW_BARS),
        Some(b) if b.first == b.last => {
            anyhow::ensure!(
                (1..=crate::model::MAX_BARS).contains(&b.first),
                "--bars {}: a piece is 1 to {} bars long",
                b.first,
                crate::model::MAX_BARS
            );
            Ok(b.first)
        }
        Some(b) => anyhow::bail!(
            "--bars {}-{} names bars to rework, which needs --inpaint FILE; for the length of \
             a piece give one number",
            b.first,
            b.last
        ),
    }
}

/// Writes `score` as `{stem}.mid` (and `.png`) in `out`; returns the MIDI file's path.
fn write_score(out: &Path, stem: &str, score: &Score, png: bool) -> anyhow::Result<PathBuf> {
    let options = midi::ExportOptions {
        tempo_bpm: score.tempo_bpm,
        program: score.program,
        track_name: stem.to_string(),
    };
    let mid = out.join(format!("{stem}.mid"));
    atomic_write(&mid, &midi::write(&score.notes, &options))
        .with_context(|| mid.display().to_string())?;
    if png {
        let path = out.join(format!("{stem}.png"));
        let bars = midi::bar_starts(&[], score.steps);
        atomic_write(&path, &render::draw(&score.to_roll(), &bars).to_png())
            .with_context(|| path.display().to_string())?;
    }
    Ok(mid)
}

/// Bars, style, and the bars in which nothing sounds, for the line printed after each file.
fn describe(score: &Score) -> String {
    let style = score.style.map_or("no style".into(), |s| s.to_string());
    let silent = score.silent_bars();
    let silent = if silent.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = silent.iter().map(|b| (b + 1).to_string()).collect();
        format!(", silent bars: {}", list.join(" "))
    };
    format!(
        "{} notes, {} bars, {style}{silent}",
        score.notes.len(),
        score.bars()
    )
}

/// Runs an edit and writes its takes.
fn run_edit(
    args: &GenerateArgs,
    pipeline: &Pipeline,
    request: &GenerateRequest,
    edit: &Edit,
) -> anyhow::Result<()> {
    let seed = request.seed;
    std::fs::create_dir_all(&args.out).with_context(|| args.out.display().to_string())?;
    let tempo = |input: &Input| args.tempo.unwrap_or(input.score.tempo_bpm);
    match edit {
        Edit::Continue(input, bars) => {
            let takes = pipeline.continue_score(request, &input.score, *bars, None, None)?;
            for (i, mut take) in takes.into_iter().enumerate() {
                take.tempo_bpm = tempo(input);
                let stem = format!("{}-continued-{seed}-{:02}", input.stem, i + 1);
                let mid = write_score(&args.out, &stem, &take, args.png)?;
                println!(
                    "{}: {}, {} of them new in the last {bars} bars",
                    mid.display(),
                    describe(&take),
                    take.notes.len() - input.score.notes.len()
                );
            }
        }
        Edit::Vary(input) => {
            let takes = pipeline.vary(request, &input.score, args.strength, None, None)?;
            for (i, mut take) in takes.into_iter().enumerate() {
                take.tempo_bpm = tempo(input);
                let stem = format!(
                    "{}-vary-{:.2}-{seed}-{:02}",
                    input.stem,
                    args.strength,
                    i + 1
                );
                let mid = write_score(&args.out, &stem, &take, args.png)?;
                println!(
                    "{}: {}, onset F1 to the clip {:.3}",
                    mid.display(),
                    describe(&take),
                    take.onset_f1(&input.score)
                );
            }
        }
        Edit::Blend(a, b) => {
            let pieces = pipeline.blend(
                request,
                [&a.score, &b.score],
                args.count,
                args.strength,
                None,
                None,
            )?;
            let (first, last) = (pieces[0].clone(), pieces[pieces.len() - 1].clone());
            for (k, mut piece) in pieces.into_iter().enumerate() {
                piece.tempo_bpm = tempo(a);
                let stem = format!("{}-to-{}-{seed}-{:02}", a.stem, b.stem, k + 1);
                let mid = write_score(&args.out, &stem, &piece, args.png)?;
                println!(
                    "{}: {}, onset F1 to A {:.3}, to B {:.3}",
                    mid.display(),
                    describe(&piece),
                    piece.onset_f1(&first),
                    piece.onset_f1(&last)
                );
            }
        }
        Edit::Harmonize(input, melody) => {
            let takes = pipeline.harmonize(request, melody, None, None)?;
            let own = crate::eval::texture(&[input.score.to_roll()]).consonant_beats;
            eprintln!(
                "{}: {:.0}% of its own beat sonorities are consonant",
                input.path.display(),
                100.0 * own
            );
            for (i, mut take) in takes.into_iter().enumerate() {
                take.tempo_bpm = tempo(input);
                let stem = format!("{}-harmonized-{seed}-{:02}", input.stem, i + 1);
                let mid = write_score(&args.out, &stem, &take, args.png)?;
                let texture = crate::eval::texture(&[take.to_roll()]);
                println!(
                    "{}: {}, melody {} notes, {:.0}% of beat sonorities consonant",
                    mid.display(),
                    describe(&take),
                    melody.notes.len(),
                    100.0 * texture.consonant_beats
                );
            }
        }
    }
    Ok(())
}

pub fn run(args: GenerateArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.count > 0, "--count must be at least 1");
    // The files to work on are read first: a wrong file or bar is told before the model loads.
    let rework = match (&args.inpaint, args.bars) {
        (Some(path), Some(bars)) => Some(Rework::load(path, bars)?),
        _ => None,
    };
    let edit = Edit::from_args(&args)?;
    let bars = if rework.is_none() && edit.is_none() {
        bars_count(args.bars)?
    } else {
        crate::roll::WINDOW_BARS
    };
    let chosen = args.device.choose()?;
    let model_dir = crate::model::catalog::resolve(&args.model)?;
    let pipeline = Pipeline::load(&model_dir, &chosen.device)?;
    let defaults = pipeline.card.defaults.clone();
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64 % 1_000_000)
    });
    let request = GenerateRequest {
        count: args.count,
        seed,
        steps: args.steps.unwrap_or(defaults.steps),
        sampler: args.sampler.unwrap_or(defaults.sampler),
        // Music of the user's carries its own style unless one is asked for.
        style: if edit.is_some() {
            args.style
        } else {
            args.style.or(defaults.style)
        },
        guidance: args.guidance.clone().unwrap_or(defaults.guidance),
        tempo_bpm: args.tempo.unwrap_or(0.0),
        restart: args.restart.map_or(defaults.restart, |r| r.0),
        refine: args.refine.map_or(defaults.refine, |r| r.0),
        key: args.key,
    };
    let started = Instant::now();
    if let Some(edit) = &edit {
        run_edit(&args, &pipeline, &request, edit)?;
        eprintln!(
            "{} take(s), seed {seed}, in {:.2} s",
            args.count,
            started.elapsed().as_secs_f64()
        );
        return Ok(());
    }
    if bars != crate::roll::WINDOW_BARS {
        let pieces = pipeline.generate_bars(&request, bars, None, None)?;
        std::fs::create_dir_all(&args.out).with_context(|| args.out.display().to_string())?;
        for (i, mut piece) in pieces.into_iter().enumerate() {
            let style = piece.style.unwrap_or(Style::Folk);
            piece.tempo_bpm = args.tempo.unwrap_or(style.default_tempo());
            let stem = format!("{}-{seed}-{:02}", style.name(), i + 1);
            let mid = write_score(&args.out, &stem, &piece, args.png)?;
            println!("{}: {}", mid.display(), describe(&piece));
        }
        eprintln!(
            "{} piece(s) of {bars} bars, seed {seed}, in {:.2} s",
            args.count,
            started.elapsed().as_secs_f64()
        );
        return Ok(());
    }
    let started = Instant::now();
    let generated = match &rework {
        Some(r) => pipeline.rework(&request, &r.window, r.span_in_window(), None, None)?,
        None => pipeline.generate(&request, None, None)?,
    };
    let secs = started.elapsed().as_secs_f64();
    std::fs::create_dir_all(&args.out).with_context(|| args.out.display().to_string())?;
    for (i, (mut roll, fixed)) in generated
        .rolls
        .into_iter()
        .zip(generated.repaired)
        .enumerate()
    {
        let style = roll.style.unwrap_or(Style::Folk);
        if let Some(r) = &rework {
            let stem = format!(
                "{}-{}-{seed}-{:02}",
                r.stem,
                r.bars.to_string().replace(' ', "-"),
                i + 1
            );
            let notes = r.with_take(&roll);
            let options = midi::ExportOptions {
                tempo_bpm: args.tempo.unwrap_or(r.tempo_bpm),
                program: r.program,
                track_name: stem.clone(),
            };
            let mid = args.out.join(format!("{stem}.mid"));
            atomic_write(&mid, &midi::write(&notes, &options))
                .with_context(|| mid.display().to_string())?;
            if args.png {
                let png = args.out.join(format!("{stem}.png"));
                let whole = Roll::from_notes(&notes, r.steps as usize);
                atomic_write(&png, &render::draw(&whole, &r.bar_starts).to_png())
                    .with_context(|| png.display().to_string())?;
            }
            let new = notes.iter().filter(|n| r.span.contains(&n.start)).count();
            println!(
                "{}: {} notes, {new} of them new in {}, {style}",
                mid.display(),
                notes.len(),
                r.bars
            );
            continue;
        }
        if args.tempo.is_none() {
            roll.tempo_bpm = style.default_tempo();
        }
        let stem = format!("{}-{seed}-{:02}", style.name(), i + 1);
        let mid = args.out.join(format!("{stem}.mid"));
        atomic_write(&mid, &midi::write_roll(&roll, &stem))
            .with_context(|| mid.display().to_string())?;
        if args.png {
            let png = args.out.join(format!("{stem}.png"));
            let bars = midi::bar_starts(&[], roll.steps() as u32);
            atomic_write(&png, &render::draw(&roll, &bars).to_png())
                .with_context(|| png.display().to_string())?;
        }
        let given = fixed
            .orphan_notes
            .saturating_sub(fixed.dropped_blips + fixed.joined + fixed.trimmed);
        let parts: Vec<String> = [
            (fixed.dropped_blips, "blips dropped"),
            (fixed.joined, "joined to the note before"),
            (fixed.trimmed, "started at their onset"),
            (given, "given an onset"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
        let repaired = if parts.is_empty() {
            String::new()
        } else {
            format!(
                ", {} decoded without an onset: {}",
                fixed.orphan_notes,
                parts.join(", ")
            )
        };
        let key = roll.diatonic_root().map_or(String::new(), |r| {
            format!(", {}", crate::roll::KEY_NAMES[usize::from(r)])
        });
        println!(
            "{}: {} notes, {style}{key}{repaired}",
            mid.display(),
            roll.note_count()
        );
    }
    let restart = request
        .restart
        .map_or(String::new(), |r| format!(", restart {r}"));
    let refine = request
        .refine
        .map_or(String::new(), |r| format!(", refine {r}"));
    eprintln!(
        "{} piece(s), seed {seed}, {} {} steps{restart}{refine}, guidance {}, in {:.2} s",
        args.count, request.sampler, request.steps, request.guidance, secs
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bar_spans_parse_as_typed() {
        let span = |first, last| BarSpan { first, last };
        assert_eq!("5-6".parse::<BarSpan>(), Ok(span(5, 6)));
        assert_eq!(" 3 - 3 ".parse::<BarSpan>(), Ok(span(3, 3)));
        assert_eq!("7".parse::<BarSpan>(), Ok(span(7, 7)));
        assert_eq!(
            (span(7, 7).to_string(), span(5, 6).to_string()),
            ("bar 7".into(), "bars 5-6".into())
        );
        for bad in ["", "0-2", "a-b", "3-", "-4", "1-2-3"] {
            let err = bad.parse::<BarSpan>().unwrap_err();
            assert!(err.contains("FIRST-LAST"), "{bad}: {err}");
        }
        assert!(
            "6-5"
                .parse::<BarSpan>()
                .unwrap_err()
                .contains("after the last")
        );
    }
}
