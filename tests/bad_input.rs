//! Broken, truncated, random and hostile files: a clear error, exit status 1, one line on
//! stderr naming the file, no panic, and nothing written or touched.

mod common;

use std::path::Path;
use std::process::Command;

use common::{Track, chunk, header, smf, vlq};
use diffroll::midi::{self, MidiError};

fn good_file() -> Vec<u8> {
    let t = Track::new()
        .tempo(0, 120)
        .on(0, 0, 60, 80)
        .off(480, 0, 60)
        .on(0, 0, 64, 80)
        .off(480, 0, 64)
        .end(0);
    smf(1, 480, &[t])
}

/// A broken file's name, its bytes, and a check of the error it must give.
type Broken = (&'static str, Vec<u8>, fn(&MidiError) -> bool);

/// Every broken file with a name, and the error it must give.
fn broken_files() -> Vec<Broken> {
    let good = good_file();
    let mut huge_chunk = header(1, 1, 480);
    huge_chunk.extend_from_slice(b"MTrk");
    huge_chunk.extend_from_slice(&0xFFFF_FFF0u32.to_be_bytes());
    huge_chunk.extend_from_slice(&[0x00, 0x90, 60, 80]);

    // A delta time of five bytes, one more than MIDI allows, in the middle of a track.
    let mut five_byte_delta = Track::new().on(0, 0, 60, 80).0;
    five_byte_delta.extend_from_slice(&[0x8F, 0xFF, 0xFF, 0xFF, 0x7F, 0x80, 60, 0]);
    five_byte_delta.extend_from_slice(&[0x00, 0xFF, 0x2F, 0x00]);

    // Deltas that add up to more than 4096 bars.
    let far = Track::new()
        .on(0, 0, 60, 80)
        .off(0x0FFF_FFFF, 0, 60)
        .on(0x0FFF_FFFF, 0, 61, 80)
        .end(0);

    let truncated = good[..good.len() - 7].to_vec();
    let mut random = Vec::with_capacity(4096);
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    for _ in 0..4096 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        random.push(x as u8);
    }
    let mut no_end = header(0, 1, 480);
    no_end.extend(chunk(
        b"MTrk",
        &Track::new().on(0, 0, 60, 80).off(10, 0, 60).0,
    ));

    vec![
        ("empty.mid", vec![], |e| matches!(e, MidiError::Empty)),
        ("header-only.mid", b"MThd".to_vec(), |e| {
            matches!(e, MidiError::Malformed(_) | MidiError::Truncated { .. })
        }),
        ("truncated.mid", truncated, |e| {
            matches!(e, MidiError::Truncated { .. })
        }),
        ("random.mid", random, |e| matches!(e, MidiError::NotMidi)),
        ("text.mid", b"%PDF-1.7 this is not music".to_vec(), |e| {
            matches!(e, MidiError::NotMidi)
        }),
        ("huge-chunk.mid", huge_chunk, |e| {
            matches!(e, MidiError::Truncated { .. })
        }),
        (
            "five-byte-delta.mid",
            smf(0, 480, &[five_byte_delta]),
            |e| matches!(e, MidiError::BrokenTrack { .. } | MidiError::TooLong { .. }),
        ),
        ("far-away.mid", smf(0, 480, &[far]), |e| {
            matches!(e, MidiError::TooLong { .. })
        }),
        ("no-end-of-track.mid", no_end, |e| {
            matches!(e, MidiError::BrokenTrack { .. })
        }),
        (
            "zero-division.mid",
            smf(0, 0, &[Track::new().end(0)]),
            |e| matches!(e, MidiError::ZeroDivision),
        ),
        ("type2.mid", smf(2, 480, &[Track::new().end(0)]), |e| {
            matches!(e, MidiError::Type2)
        }),
    ]
}

#[test]
fn broken_files_give_the_expected_error() {
    for (name, bytes, expected) in broken_files() {
        match midi::read(&bytes) {
            Ok(song) => panic!("{name}: read as {} notes", song.notes.len()),
            Err(e) => assert!(expected(&e), "{name}: unexpected error: {e}"),
        }
    }
}

#[test]
fn thousands_of_tracks_are_read() {
    let track = Track::new().on(0, 0, 60, 80).off(120, 0, 60).end(0);
    let tracks = vec![track; 5000];
    let song = midi::read(&smf(1, 480, &tracks)).unwrap();
    assert_eq!(song.tracks, 5000);
    assert_eq!(song.notes.len(), 1, "unisons merge");
}

#[test]
fn oversized_files_are_refused_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.mid");
    let f = std::fs::File::create(&path).unwrap();
    f.set_len(midi::MAX_FILE_BYTES + 1).unwrap();
    assert!(matches!(
        midi::read_file(&path),
        Err(MidiError::TooLarge { .. })
    ));
    assert!(matches!(
        midi::read_file(&dir.path().join("missing.mid")),
        Err(MidiError::Io(_))
    ));
}

fn diffroll(args: &[&std::ffi::OsStr], dir: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_diffroll"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("diffroll runs")
}

#[test]
fn cli_exits_1_with_one_line_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    // A bystander file that must survive every failed run untouched.
    let bystander = dir.path().join("keep.mid");
    std::fs::write(&bystander, good_file()).unwrap();
    let mut broken = broken_files();
    let track = Track::new().on(0, 0, 60, 80).off(120, 0, 60).end(0);
    broken.push((
        "many-tracks-but-truncated.mid",
        {
            let mut b = smf(1, 480, &vec![track; 3000]);
            b.truncate(b.len() - 3);
            b
        },
        |_| true,
    ));
    for (name, bytes, _) in broken {
        let input = dir.path().join(name);
        std::fs::write(&input, &bytes).unwrap();
        for out in ["out.png", "out.mid"] {
            let output = diffroll(
                &[
                    "render".as_ref(),
                    input.as_os_str(),
                    "-o".as_ref(),
                    out.as_ref(),
                ],
                dir.path(),
            );
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(output.status.code(), Some(1), "{name}: {stderr}");
            assert_eq!(stderr.lines().count(), 1, "{name}: {stderr}");
            assert!(stderr.contains(name), "{name}: {stderr}");
            assert!(!stderr.contains("panicked"), "{name}: {stderr}");
            assert!(!dir.path().join(out).exists(), "{name}: wrote {out}");
        }
    }
    assert_eq!(std::fs::read(&bystander).unwrap(), good_file());
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().starts_with(".diffroll-"))
        .collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
}

#[test]
fn cli_reports_missing_files_and_unknown_formats_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ok.mid"), good_file()).unwrap();
    for args in [
        vec!["render", "missing.mid", "-o", "x.png"],
        vec!["render", "ok.mid", "-o", "x.jpg"],
        vec!["render", "ok.mid", "-o", "no/such/folder/x.png"],
    ] {
        let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_ref()).collect();
        let output = diffroll(&args, dir.path());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
    }
}

#[test]
fn vlq_helper_is_right() {
    assert_eq!(vlq(0), [0]);
    assert_eq!(vlq(0x80), [0x81, 0x00]);
    assert_eq!(vlq(0x0FFF_FFFF), [0xFF, 0xFF, 0xFF, 0x7F]);
}
