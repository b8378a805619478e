//! Long pieces and edits of the musician's own music, end to end with the tiny model: what must
//! come back exactly does (read back with midi-msg, a parser diffroll does not use), long
//! pieces have no seam, strength 0 is the clip, a blend's ends are round trips, bad input is
//! told and harmless.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use diffroll::model::{GenerateRequest, KeyChoice, ModelCard, ModelError, Pipeline};
use diffroll::roll::{Note, Score, Style};

mod common;
mod tiny;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/midi/folk/essenFolksong__boehme10_004.mid")
}

/// The tiny model with its decoding thresholds set to `thresholds`.
fn model(dir: &Path, thresholds: Option<[f32; 2]>) -> Pipeline {
    tiny::model_folder(dir);
    if let Some(t) = thresholds {
        let mut card = ModelCard::load(dir).unwrap();
        card.thresholds = t;
        card.save(dir).unwrap();
    }
    Pipeline::load(dir, &Device::flex()).unwrap()
}

fn request(pipeline: &Pipeline, count: usize, seed: u64) -> GenerateRequest {
    let mut r = GenerateRequest::card_defaults(&pipeline.card, count, seed);
    r.steps = 3;
    r.refine = None;
    r.restart = None;
    r.key = KeyChoice::AsDrawn;
    r
}

fn file_score() -> Score {
    diffroll::midi::read_file(&fixture()).unwrap().to_score()
}

/// A decoder that draws sound everywhere and no onset: every pitch is one note as long as the
/// window. A note held over a window boundary must then stay one note to the piece's end.
#[test]
fn a_long_piece_holds_its_notes_over_every_window_boundary() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = model(dir.path(), Some([50.0, -50.0]));
    let mut req = request(&pipeline, 2, 3);
    req.style = Some(Style::Chorale);
    let pieces = pipeline.generate_bars(&req, 20, None, None).unwrap();
    assert_eq!(pieces.len(), 2);
    for piece in &pieces {
        assert_eq!(piece.steps, 320);
        assert!(!piece.notes.is_empty());
        for n in &piece.notes {
            assert_eq!(
                (n.start, n.end),
                (0, 320),
                "{n:?}: cut at a window boundary"
            );
        }
        assert!(piece.silent_bars().is_empty());
    }
    // Shorter than a window: cut to its length.
    let short = pipeline.generate_bars(&req, 3, None, None).unwrap();
    assert!(
        short
            .iter()
            .all(|p| p.steps == 48 && p.notes.iter().all(|n| n.end <= 48))
    );
    for bad in [0, 65] {
        assert!(matches!(
            pipeline.generate_bars(&req, bad, None, None),
            Err(ModelError::BarsOutOfRange { .. })
        ));
    }
}

#[test]
fn the_same_request_writes_the_same_long_piece() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = model(dir.path(), Some([-0.5, -0.5]));
    let req = request(&pipeline, 1, 9);
    let a = pipeline.generate_bars(&req, 12, None, None).unwrap();
    let b = pipeline.generate_bars(&req, 12, None, None).unwrap();
    assert_eq!(a, b);
    // The windows after the first are new music, not copies of it.
    let bar = |s: &Score, b: u32| -> Vec<(u8, u32, u32)> {
        s.notes
            .iter()
            .filter(|n| n.start / 16 == b)
            .map(|n| (n.pitch, n.start % 16, n.end - n.start))
            .collect()
    };
    assert_ne!(bar(&a[0], 9), bar(&a[0], 5));
}

#[test]
fn a_continuation_keeps_the_piece_note_for_note_and_follows_it() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = model(dir.path(), Some([-0.5, -0.5]));
    let score = file_score();
    let takes = pipeline
        .continue_score(&request(&pipeline, 2, 4), &score, 6, None, None)
        .unwrap();
    for take in &takes {
        assert_eq!(take.steps, score.steps + 96);
        let kept: Vec<Note> = take
            .notes
            .iter()
            .filter(|n| n.start < score.steps)
            .copied()
            .collect();
        assert_eq!(
            kept, score.notes,
            "the piece's own notes, velocities included"
        );
        assert!(take.notes.len() > score.notes.len(), "new notes follow");
        assert!(take.notes.iter().all(|n| n.end <= take.steps));
    }
    let empty = Score::new(Vec::new(), 64);
    assert!(matches!(
        pipeline.continue_score(&request(&pipeline, 1, 4), &empty, 4, None, None),
        Err(ModelError::NothingToBuildOn(_))
    ));
    let long = Score::new(vec![Note::new(60, 8150, 8160, 90)], 8160);
    let err = pipeline
        .continue_score(&request(&pipeline, 1, 4), &long, 8, None, None)
        .unwrap_err();
    assert!(err.to_string().contains("pieces stop at 512 bars"), "{err}");
}

#[test]
fn variations_start_from_the_clip() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = model(dir.path(), Some([-0.5, -0.5]));
    let clip = file_score();
    let req = request(&pipeline, 2, 5);
    let same = pipeline.vary(&req, &clip, 0.0, None, None).unwrap();
    assert!(same.iter().all(|t| t.notes == clip.notes));
    let moved = pipeline.vary(&req, &clip, 0.6, None, None).unwrap();
    for take in &moved {
        assert_eq!(take.steps, clip.steps);
        assert!(take.notes.iter().all(|n| n.end <= clip.steps));
        assert_ne!(take.notes, clip.notes);
    }
    assert!(matches!(
        pipeline.vary(&req, &clip, 1.5, None, None),
        Err(ModelError::BadStrength(_))
    ));
}

#[test]
fn a_blend_ends_on_the_round_trips_of_its_two_pieces() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = model(dir.path(), Some([-0.5, -0.5]));
    let a = file_score();
    let b = Score {
        notes: a
            .notes
            .iter()
            .map(|n| Note {
                pitch: n.pitch - 5,
                ..*n
            })
            .collect(),
        ..a.clone()
    };
    let req = request(&pipeline, 1, 6);
    let pieces = pipeline.blend(&req, [&a, &b], 5, 0.5, None, None).unwrap();
    assert_eq!(pieces.len(), 5);
    let round_trip = |s: &Score| {
        let z = pipeline.encode_rolls(&[&s.window(0, 128)]);
        let mut r = Score::from_roll(&pipeline.decode(z).remove(0).0);
        r.truncate(s.steps.min(128));
        r.notes
    };
    assert_eq!(pieces[0].notes, round_trip(&a));
    assert_eq!(pieces[4].notes, round_trip(&b));
    assert!(matches!(
        pipeline.blend(&req, [&a, &b], 1, 0.5, None, None),
        Err(ModelError::BlendTooShort(1))
    ));
}

#[test]
fn a_harmonization_keeps_the_melody_exactly_and_doubles_none_of_it() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = model(dir.path(), Some([-0.5, -0.5]));
    let melody = file_score();
    let takes = pipeline
        .harmonize(&request(&pipeline, 2, 7), &melody, None, None)
        .unwrap();
    for take in &takes {
        let kept: Vec<&Note> = take
            .notes
            .iter()
            .filter(|n| melody.notes.contains(n))
            .collect();
        assert_eq!(kept.len(), melody.notes.len(), "every melody note, exactly");
        let voices: Vec<&Note> = take
            .notes
            .iter()
            .filter(|n| !melody.notes.contains(n))
            .collect();
        assert!(!voices.is_empty(), "voices were written");
        for v in voices {
            assert!(
                !melody
                    .notes
                    .iter()
                    .any(|m| m.pitch == v.pitch && m.start < v.end && v.start < m.end),
                "{v:?} doubles the melody"
            );
        }
    }
}

fn diffroll(args: &[&str], extra: &[&std::ffi::OsStr]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_diffroll"))
        .args(["generate", "--device", "cpu", "--steps", "3", "--seed", "2"])
        .args(["--refine", "none", "--restart", "none"])
        .args(args)
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn the_command_line_continues_a_file_and_keeps_its_notes() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("model");
    model(&folder, Some([-0.5, -0.5]));
    let out = dir.path().join("out");
    let done = diffroll(
        &["--bars", "4"],
        &[
            "--model".as_ref(),
            folder.as_os_str(),
            "--continue".as_ref(),
            fixture().as_os_str(),
            "-o".as_ref(),
            out.as_os_str(),
        ],
    );
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let song = diffroll::midi::read_file(&fixture()).unwrap();
    let mut original: Vec<common::FileNote> = song
        .notes
        .iter()
        .map(|n| (n.pitch, n.start, n.end, n.velocity))
        .collect();
    original.sort_unstable();
    let written =
        std::fs::read(out.join("essenFolksong__boehme10_004-continued-2-01.mid")).unwrap();
    let notes = common::independent_notes(&written).0;
    let before: Vec<common::FileNote> =
        notes.iter().filter(|n| n.1 < song.steps).copied().collect();
    assert_eq!(before, original);
    assert!(notes.iter().any(|n| n.1 >= song.steps));
    assert!(notes.iter().all(|n| n.2 <= song.steps + 64));

    // A long piece from nothing, and --bars as a span without --inpaint.
    let done = diffroll(
        &["--bars", "12", "--style", "folk"],
        &[
            "--model".as_ref(),
            folder.as_os_str(),
            "-o".as_ref(),
            out.as_os_str(),
        ],
    );
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let stdout = String::from_utf8_lossy(&done.stdout);
    assert!(stdout.contains("12 bars, folk"), "{stdout}");
    let done = diffroll(
        &["--bars", "3-4"],
        &["--model".as_ref(), folder.as_os_str()],
    );
    assert!(!done.status.success());
    assert!(String::from_utf8_lossy(&done.stderr).contains("needs --inpaint"));
}

#[test]
fn files_with_nothing_to_work_on_are_told_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("model");
    model(&folder, None);
    // A header that announces no tracks, and a track with only drums.
    let no_tracks = dir.path().join("no-tracks.mid");
    std::fs::write(&no_tracks, common::smf(1, 480, &[])).unwrap();
    let drums = dir.path().join("drums.mid");
    let track = common::Track::new()
        .on(0, 9, 36, 100)
        .off(480, 9, 36)
        .end(0);
    std::fs::write(&drums, common::smf(1, 480, &[track])).unwrap();
    let out = dir.path().join("out");
    for (option, file, says) in [
        ("--continue", &no_tracks, "has no tracks"),
        ("--vary", &drums, "no pitched notes"),
        ("--harmonize", &no_tracks, "has no tracks"),
    ] {
        let done = diffroll(
            &[],
            &[
                "--model".as_ref(),
                folder.as_os_str(),
                option.as_ref(),
                file.as_os_str(),
                "-o".as_ref(),
                out.as_os_str(),
            ],
        );
        let stderr = String::from_utf8_lossy(&done.stderr);
        assert_eq!(done.status.code(), Some(1), "{option}: {stderr}");
        assert!(stderr.contains(says), "{option}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(!out.exists(), "nothing written");
    }
    let done = diffroll(
        &["--track", "3"],
        &[
            "--model".as_ref(),
            folder.as_os_str(),
            "--harmonize".as_ref(),
            fixture().as_os_str(),
        ],
    );
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert!(
        stderr.contains("track 3 holds no notes; the tracks with notes are"),
        "{stderr}"
    );
}
