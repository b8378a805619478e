//! What the edits do to real music, measured: `cargo run --locked --example edits -- [MODEL]
//! [DATA]` (defaults `models/base`, `../shared/corpus/val`). Prints, with the model's default
//! settings:
//! - long pieces (16 bars): onsets per bar in the first window and after it, silent bars,
//!   notes that end on a window boundary where the same pitch starts again (a cut note would),
//!   against the same at the other bar lines;
//! - continuations: the piece's notes kept exactly, onsets per bar before and after;
//! - variations: onset F1 to the clip against strength;
//! - blends: onset F1 to each end along the way;
//! - harmonizations of chorale sopranos: consonant beat sonorities and notes per bar against
//!   the chorales themselves.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::Device;
use diffroll::eval::texture;
use diffroll::model::{GenerateRequest, Pipeline};
use diffroll::roll::{Score, Style};

fn files(data: &Path, style: Style, n: usize) -> Vec<PathBuf> {
    let mut all: Vec<PathBuf> = std::fs::read_dir(data.join(style.name()))
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    all.sort();
    all.into_iter().take(n).collect()
}

fn score(path: &Path) -> Option<(Score, diffroll::midi::Song)> {
    let song = diffroll::midi::read_file(path).ok()?;
    let score = song.to_score();
    (!score.is_empty()).then_some((score, song))
}

/// Onsets per bar in `bars` (0-based range).
fn onsets_per_bar(s: &Score, bars: std::ops::Range<u32>) -> f64 {
    let n = s
        .notes
        .iter()
        .filter(|n| bars.contains(&(n.start / 16)))
        .count();
    n as f64 / bars.len().max(1) as f64
}

/// Notes ending at `step` whose pitch starts again there.
fn restruck_at(s: &Score, step: u32) -> usize {
    s.notes
        .iter()
        .filter(|n| n.end == step)
        .filter(|n| {
            s.notes
                .iter()
                .any(|m| m.pitch == n.pitch && m.start == step)
        })
        .count()
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let model = PathBuf::from(args.first().map_or("models/base", String::as_str));
    let data = PathBuf::from(args.get(1).map_or("../shared/corpus/val", String::as_str));
    let pipeline = Pipeline::load(&model, &Device::flex())?;
    let request = |count, seed, style| {
        let mut r = GenerateRequest::card_defaults(&pipeline.card, count, seed);
        r.style = style;
        r
    };

    println!("## Long pieces: 16 bars, 4 a style");
    println!(
        "| style | onsets/bar 1-8 | 9-16 | silent bars | notes re-struck at a window boundary / at other bar lines (per bar line) | s a piece |"
    );
    println!("|---|---|---|---|---|---|");
    for style in Style::ALL {
        let t = Instant::now();
        let pieces = pipeline.generate_bars(&request(4, 1, Some(style)), 16, None, None)?;
        let secs = t.elapsed().as_secs_f64() / 4.0;
        let first: Vec<f64> = pieces.iter().map(|p| onsets_per_bar(p, 0..8)).collect();
        let rest: Vec<f64> = pieces.iter().map(|p| onsets_per_bar(p, 8..16)).collect();
        let silent: usize = pieces.iter().map(|p| p.silent_bars().len()).sum();
        let boundaries = [128u32, 192];
        let at: usize = pieces
            .iter()
            .map(|p| boundaries.iter().map(|&b| restruck_at(p, b)).sum::<usize>())
            .sum();
        let elsewhere: usize = pieces
            .iter()
            .map(|p| {
                (1..16u32)
                    .map(|bar| bar * 16)
                    .filter(|s| !boundaries.contains(s))
                    .map(|s| restruck_at(p, s))
                    .sum::<usize>()
            })
            .sum();
        println!(
            "| {style} | {:.1} | {:.1} | {silent} | {:.2} / {:.2} | {secs:.1} |",
            mean(&first),
            mean(&rest),
            at as f64 / (2 * pieces.len()) as f64,
            elsewhere as f64 / (13 * pieces.len()) as f64
        );
    }

    println!("\n## Continuations: 8 bars after 2 val pieces a style, 2 takes each");
    println!("| style | own notes kept | onsets/bar: last 4 bars of the piece | the new 8 bars |");
    println!("|---|---|---|---|");
    for style in Style::ALL {
        let (mut kept, mut own, mut new) = (true, Vec::new(), Vec::new());
        for path in files(&data, style, 2) {
            let Some((s, _)) = score(&path) else { continue };
            let end = s.steps / 16;
            let takes = match pipeline.continue_score(&request(2, 2, None), &s, 8, None, None) {
                Err(diffroll::model::ModelError::TooLong { .. }) => continue,
                other => other?,
            };
            for take in takes {
                kept &= take
                    .notes
                    .iter()
                    .filter(|n| n.start < s.steps)
                    .eq(s.notes.iter());
                new.push(onsets_per_bar(&take, end..end + 8));
            }
            own.push(onsets_per_bar(&s, end.saturating_sub(4)..end));
        }
        println!(
            "| {style} | {kept} | {:.1} | {:.1} |",
            mean(&own),
            mean(&new)
        );
    }

    let strengths = [0.0f32, 0.25, 0.5, 0.75, 1.0];
    println!(
        "\n## Variations: onset F1 to the clip (first 16 bars of 2 val pieces a style, 2 takes each)"
    );
    println!(
        "| style | {} |",
        strengths.map(|s| format!("S = {s}")).join(" | ")
    );
    println!("|---|{}", "---|".repeat(strengths.len()));
    for style in Style::ALL {
        // Their first 16 bars: a movement of chamber music runs to hundreds.
        let clips: Vec<Score> = files(&data, style, 2)
            .iter()
            .filter_map(|p| score(p).map(|(s, _)| s))
            .map(|mut s| {
                s.truncate(s.steps.min(256));
                s
            })
            .collect();
        let mut row = Vec::new();
        for &strength in &strengths {
            let mut f1 = Vec::new();
            for clip in &clips {
                for take in pipeline.vary(&request(2, 3, None), clip, strength, None, None)? {
                    f1.push(take.onset_f1(clip));
                }
            }
            row.push(format!("{:.3}", mean(&f1)));
        }
        println!("| {style} | {} |", row.join(" | "));
    }

    let k = 7;
    println!(
        "\n## Blends: 7 pieces from A to B, onset F1 to A's and B's round trips (2 pairs a style)"
    );
    println!("| style | to A | to B |");
    println!("|---|---|---|");
    for style in Style::ALL {
        let scores: Vec<Score> = files(&data, style, 4)
            .iter()
            .filter_map(|p| score(p).map(|(s, _)| s))
            .collect();
        let (mut to_a, mut to_b) = (vec![Vec::new(); k], vec![Vec::new(); k]);
        for pair in scores.chunks_exact(2) {
            let pieces = pipeline.blend(
                &request(1, 4, None),
                [&pair[0], &pair[1]],
                k,
                0.5,
                None,
                None,
            )?;
            for (i, p) in pieces.iter().enumerate() {
                to_a[i].push(p.onset_f1(&pieces[0]));
                to_b[i].push(p.onset_f1(&pieces[k - 1]));
            }
        }
        let fmt = |v: &[Vec<f64>]| {
            v.iter()
                .map(|x| format!("{:.2}", mean(x)))
                .collect::<Vec<_>>()
                .join(" ")
        };
        println!("| {style} | {} | {} |", fmt(&to_a), fmt(&to_b));
    }

    println!("\n## Harmonizations of the soprano (track 2) of 4 val chorales, 2 takes each");
    let (mut real, mut made, mut style_takes) = (Vec::new(), Vec::new(), Vec::new());
    let mut kept = true;
    for path in files(&data, Style::Chorale, 4) {
        let Some((s, song)) = score(&path) else {
            continue;
        };
        let melody = Score {
            notes: song.track_notes(1),
            ..s.clone()
        };
        real.push(s.to_roll());
        for take in pipeline.harmonize(&request(2, 5, None), &melody, None, None)? {
            kept &= melody.notes.iter().all(|m| take.notes.contains(m));
            made.push(take.to_roll());
        }
        for take in pipeline.harmonize(&request(2, 5, Some(Style::Chorale)), &melody, None, None)? {
            style_takes.push(take.to_roll());
        }
    }
    println!("| set | consonant beat sonorities | notes per bar | mean note length |");
    println!("|---|---|---|---|");
    for (name, set) in [
        ("the chorales", &real),
        ("harmonized, no style", &made),
        ("harmonized, chorale", &style_takes),
    ] {
        let t = texture(set);
        println!(
            "| {name} | {:.3} | {:.1} | {:.1} |",
            t.consonant_beats, t.notes_per_bar, t.mean_note_length
        );
    }
    println!("melody kept exactly: {kept}");
    Ok(())
}
