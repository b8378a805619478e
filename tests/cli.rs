//! The `diffroll` binary end to end: render to PNG and MIDI, and corpus scanning.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn diffroll(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_diffroll"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("diffroll runs")
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/midi")
}

#[test]
fn render_png_is_a_picture_of_the_roll() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixtures().join("chorale/bach__bwv332.mid");
    let out = diffroll(
        &["render", input.to_str().unwrap(), "-o", "roll.png"],
        dir.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(dir.path().join("roll.png")).unwrap(),
    ));
    let reader = decoder.read_info().unwrap();
    let info = reader.info();
    let song = diffroll::midi::read_file(&input).unwrap();
    // Width: keyboard plus whole pixels per step; height: whole octaves of 4-pixel rows.
    assert!(info.width as usize > song.steps as usize);
    assert_eq!(info.height % (12 * 4), 0);
}

#[test]
fn render_mid_twice_gives_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    for style in ["chorale", "folk", "polyphony", "classical"] {
        let input = std::fs::read_dir(fixtures().join(style))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let first = diffroll(
            &["render", input.to_str().unwrap(), "-o", "a.mid"],
            dir.path(),
        );
        assert!(first.status.success());
        let second = diffroll(&["render", "a.mid", "-o", "b.mid"], dir.path());
        assert!(second.status.success());
        let a = diffroll::midi::read_file(&dir.path().join("a.mid")).unwrap();
        let b = diffroll::midi::read_file(&dir.path().join("b.mid")).unwrap();
        assert_eq!(a.notes, b.notes, "{style}");
        let source = diffroll::midi::read_file(&input).unwrap();
        assert_eq!(a.to_roll().notes(), source.to_roll().notes(), "{style}");
    }
}

#[test]
fn data_scans_styles_windows_and_rejections() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("corpus");
    for entry in walkdir::WalkDir::new(fixtures()) {
        let entry = entry.unwrap();
        let rel = entry.path().strip_prefix(fixtures()).unwrap();
        let target = root.join(rel);
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
    std::fs::write(root.join("folk/broken.mid"), b"MThd\0\0\0\x06\0\x01").unwrap();
    std::fs::write(root.join("folk/notes.txt"), b"not midi").unwrap();
    let out = diffroll(&["data", root.to_str().unwrap()], dir.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("rejected"), "{stdout}");
    assert!(stdout.contains("broken.mid"), "{stdout}");
    // The 6-bar folk fixture is too short for an 8-bar window.
    assert!(
        stdout.contains("4 files read, 2 rejected, 1 other files skipped"),
        "{stdout}"
    );
    assert!(
        stdout.contains("6 bars long; at least 8 are needed"),
        "{stdout}"
    );

    let corpus = diffroll::train::corpus::scan(&root, 16).unwrap();
    for (style, summary) in corpus.summary() {
        assert!(style.is_some());
        assert_eq!(summary.files, 1, "{stdout}");
        assert!(summary.windows > 0);
        let line = stdout
            .lines()
            .find(|l| l.starts_with(style.unwrap().name()))
            .unwrap();
        assert!(line.contains(&format!(" {} ", summary.windows)), "{line}");
    }
}

#[test]
fn eval_scores_a_folder_against_real_data() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = fixtures();
    let out = diffroll(
        &[
            "eval",
            "--samples",
            fixtures.join("chorale").to_str().unwrap(),
            "--data",
            fixtures.to_str().unwrap(),
            "--train",
            fixtures.to_str().unwrap(),
            "--count",
            "8",
            "--json",
        ],
        dir.path(),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    // The chorale is in the training data: its first eight bars are a copy.
    assert_eq!(json["copy_rate"]["samples"], 1.0);
    let oa = json["samples"]["oa"].as_array().unwrap();
    assert_eq!(oa.len(), 6);
    assert!(
        oa.iter()
            .all(|v| (0.0..=1.0001).contains(&v.as_f64().unwrap()))
    );
}

#[test]
fn eval_c2st_runs_the_classifiers_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = fixtures();
    let run = |critic: &str| -> serde_json::Value {
        let out = diffroll(
            &[
                "eval",
                "--c2st",
                "--critic",
                critic,
                "--samples",
                fixtures.to_str().unwrap(),
                "--data",
                fixtures.to_str().unwrap(),
                "--train",
                fixtures.to_str().unwrap(),
                "--count",
                "8",
                "--json",
            ],
            dir.path(),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let features = run("features");
    let rows = features.as_array().unwrap();
    assert!(!rows.is_empty());
    for row in rows {
        assert!(row["model"].is_null(), "{row}");
        let accuracy = row["model_features"]["accuracy"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&accuracy), "{row}");
        assert!(row["random_notes_features"]["accuracy"].is_number());
    }
    let cnn = run("cnn");
    assert!(
        cnn.as_array()
            .unwrap()
            .iter()
            .all(|row| row["model"]["accuracy"].is_number() && row["model_features"].is_null())
    );
}

/// The per-style decoding rules are gone (every style decodes at the card's thresholds), and
/// so are the options that set them: asked for, one is refused as unknown.
#[test]
fn eval_no_longer_takes_per_style_decoding_rules() {
    let dir = tempfile::tempdir().unwrap();
    for (flag, value) in [
        ("--style-thresholds", "chorale=2:0.5"),
        ("--single-line", "folk"),
        ("--voices", "chorale=4"),
        ("--fuller-above", "folk=1.8"),
        ("--rare-degrees-below", "folk=0.012"),
        ("--fill-silent-beats", "folk=1"),
    ] {
        let out = diffroll(
            &["eval", "--model", "base", "--data", "nowhere", flag, value],
            dir.path(),
        );
        assert_eq!(out.status.code(), Some(2), "{flag}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("unexpected argument"), "{flag}: {stderr}");
    }
}

/// A command's help split at its headings: the lines under "Options", and every other
/// heading's lines by its name.
fn help_sections(args: &[&str]) -> (String, std::collections::BTreeMap<String, String>) {
    let dir = tempfile::tempdir().unwrap();
    let out = diffroll(args, dir.path());
    assert!(out.status.success(), "{args:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let mut sections = std::collections::BTreeMap::new();
    let mut name = String::from("Options");
    let mut body = String::new();
    for line in text.lines() {
        if !line.starts_with(' ') && line.ends_with(':') && !line.starts_with("Usage") {
            sections.insert(std::mem::take(&mut name), std::mem::take(&mut body));
            name = line.trim_end_matches(':').to_string();
        } else {
            body.push_str(line);
            body.push('\n');
        }
    }
    sections.insert(name, body);
    (sections.remove("Options").unwrap_or_default(), sections)
}

#[test]
fn generate_help_shows_a_musicians_options_first_and_the_sampler_apart() {
    let (options, sections) = help_sections(&["generate", "--help"]);
    for flag in [
        "--model", "--count", "--seed", "--style", "--key", "--tempo", "--out", "--png",
    ] {
        assert!(options.contains(flag), "{flag} is not among the options");
    }
    let sampling = &sections["Sampling (advanced)"];
    for flag in [
        "--steps",
        "--sampler",
        "--guidance",
        "--restart",
        "--refine",
    ] {
        assert!(
            !options.contains(flag),
            "{flag} is among a musician's options"
        );
        assert!(
            sampling.contains(flag),
            "{flag} is not under Sampling (advanced)"
        );
    }
    assert!(sections["Rework bars of a piece"].contains("--inpaint"));
}

#[test]
fn eval_and_train_keep_their_research_options_under_their_own_heading() {
    let (options, sections) = help_sections(&["eval", "--help"]);
    let tuning = &sections["Research / tuning"];
    for flag in [
        "--thresholds",
        "--merge-doubled-onsets",
        "--legato-gap",
        "--refine",
    ] {
        assert!(tuning.contains(flag) && !options.contains(flag), "{flag}");
    }
    assert!(sections["Research / probes"].contains("--denoise-probe"));
    assert!(options.contains("--model") && options.contains("--data"));
    let (options, sections) = help_sections(&["train", "decoder", "--help"]);
    for flag in ["--validity-weight", "--max-t", "--lr"] {
        assert!(sections["Research / tuning"].contains(flag) && !options.contains(flag));
    }
    assert!(options.contains("--steps") && options.contains("--resume"));
}
