//! `diffroll render -o OUT.wav` and `diffroll play` end to end: WAV files read back with hound
//! (44.1 kHz, stereo, 16-bit, the expected length, limited, written atomically), SoundFonts
//! when one is installed, and clear one-line errors, never a panic, where there is no sound
//! card, no MIDI system or a bad SoundFont.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{Track, smf};
use diffroll::audio::{Limiter, Sequence, WAV_SAMPLE_RATE, rendered_frames};

fn diffroll(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_diffroll"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("diffroll runs")
}

fn chorale() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/midi/chorale/bach__bwv332.mid")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A failed run that said why on one `diffroll: ` line and did not panic.
fn assert_clean_failure(out: &Output, words: &[&str]) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let line = err
        .lines()
        .find(|l| l.starts_with("diffroll: "))
        .unwrap_or_else(|| panic!("no diffroll: line in {err}"));
    for w in words {
        assert!(line.contains(w), "'{w}' missing from: {line}");
    }
}

/// Samples of a WAV file after checking its format.
fn read_wav(path: &Path) -> Vec<i16> {
    let mut reader = hound::WavReader::open(path).expect("a readable WAV");
    let spec = reader.spec();
    assert_eq!(spec.sample_rate, 44_100);
    assert_eq!(spec.channels, 2);
    assert_eq!(spec.bits_per_sample, 16);
    assert_eq!(spec.sample_format, hound::SampleFormat::Int);
    reader.samples::<i16>().map(Result::unwrap).collect()
}

fn expected_samples(midi: &Path) -> usize {
    let song = diffroll::midi::read_file(midi).unwrap();
    rendered_frames(&Sequence::from_song(&song, None), WAV_SAMPLE_RATE) * 2
}

#[test]
fn render_wav_is_cd_audio_of_the_whole_piece() {
    let dir = tempfile::tempdir().unwrap();
    let out = diffroll(
        &["render", chorale().to_str().unwrap(), "-o", "chorale.wav"],
        dir.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let samples = read_wav(&dir.path().join("chorale.wav"));
    assert_eq!(samples.len(), expected_samples(&chorale()));
    let peak = samples.iter().map(|s| s.unsigned_abs()).max().unwrap();
    assert!(peak > 1000, "audible: peak {peak}");
    assert!(
        f32::from(peak) <= Limiter::CEILING * 32_767.0 + 1.0,
        "limited: peak {peak}"
    );
    // The tail is silence once the last release has rung out.
    assert!(samples[samples.len() - 2000..].iter().all(|&s| s == 0));
    // Written atomically: no temporary file is left beside it.
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(names.len(), 1);
}

#[test]
fn render_wav_follows_the_tempo_map() {
    let dir = tempfile::tempdir().unwrap();
    // One bar at 60 BPM, one at 120: 4 s + 2 s.
    let track = Track::new()
        .tempo(0, 60)
        .on(0, 0, 60, 100)
        .off(1920, 0, 60)
        .tempo(0, 120)
        .on(0, 0, 67, 100)
        .off(1920, 0, 67)
        .end(0);
    std::fs::write(dir.path().join("two.mid"), smf(1, 480, &[track])).unwrap();
    let out = diffroll(&["render", "two.mid", "-o", "two.wav"], dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let samples = read_wav(&dir.path().join("two.wav"));
    let secs = samples.len() as f64 / 2.0 / 44_100.0;
    assert!(
        (secs - (6.0 + diffroll::audio::RENDER_TAIL_SECS)).abs() < 1e-3,
        "{secs} s"
    );
}

#[test]
fn render_wav_with_an_installed_soundfont() {
    let Some(sf2) = diffroll::audio::find_soundfonts()
        .into_iter()
        .min_by_key(|p| std::fs::metadata(p).map_or(u64::MAX, |m| m.len()))
    else {
        eprintln!("note: no .sf2 installed (apt-get install timgm6mb-soundfont); skipped");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = diffroll(
        &[
            "render",
            chorale().to_str().unwrap(),
            "-o",
            "sf.wav",
            "--soundfont",
            sf2.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let samples = read_wav(&dir.path().join("sf.wav"));
    assert_eq!(samples.len(), expected_samples(&chorale()));
    assert!(samples.iter().any(|s| s.unsigned_abs() > 1000));

    // An installed SoundFont can be named without its folder.
    let stem = sf2.file_stem().unwrap().to_str().unwrap();
    let out = diffroll(
        &[
            "render",
            chorale().to_str().unwrap(),
            "-o",
            "by-name.wav",
            "--soundfont",
            stem,
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn bad_soundfonts_are_clear_errors_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("fake.sf2"), b"RIFF\x04\0\0\0WAVE").unwrap();
    let input = chorale();
    let out = diffroll(
        &[
            "render",
            input.to_str().unwrap(),
            "-o",
            "x.wav",
            "--soundfont",
            "fake.sf2",
        ],
        dir.path(),
    );
    assert_clean_failure(&out, &["fake.sf2", "SoundFont"]);
    let out = diffroll(
        &[
            "render",
            input.to_str().unwrap(),
            "-o",
            "x.wav",
            "--soundfont",
            "no-such-font",
        ],
        dir.path(),
    );
    assert_clean_failure(&out, &["no-such-font"]);
    assert!(!dir.path().join("x.wav").exists());
}

#[test]
fn play_without_a_sound_card_says_how_to_listen_offline() {
    // One short quiet note: on a machine with a sound card this plays for half a second.
    let dir = tempfile::tempdir().unwrap();
    let track = Track::new().on(0, 0, 72, 30).off(240, 0, 72).end(0);
    std::fs::write(dir.path().join("blip.mid"), smf(1, 480, &[track])).unwrap();
    let out = diffroll(&["play", "blip.mid"], dir.path());
    if !out.status.success() {
        assert_clean_failure(&out, &["audio", "diffroll render"]);
    }
}

#[test]
fn midi_output_without_a_midi_system_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = diffroll(&["play", "--list-ports"], dir.path());
    if !out.status.success() {
        assert_clean_failure(&out, &["MIDI"]);
    }
    let out = diffroll(
        &[
            "play",
            chorale().to_str().unwrap(),
            "--midi-out",
            "no such port 42",
        ],
        dir.path(),
    );
    // With a MIDI system there is still no port of that name.
    assert_clean_failure(&out, &["MIDI"]);
}

#[test]
fn play_lists_soundfonts_and_refuses_what_it_cannot_play() {
    let dir = tempfile::tempdir().unwrap();
    let out = diffroll(&["play", "--list-soundfonts"], dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let listed = String::from_utf8_lossy(&out.stdout);
    for sf2 in diffroll::audio::find_soundfonts() {
        assert!(listed.contains(sf2.to_str().unwrap()), "{listed}");
    }

    let out = diffroll(&["play", "missing.mid"], dir.path());
    assert_clean_failure(&out, &["missing.mid"]);
    let out = diffroll(
        &["play", chorale().to_str().unwrap(), "--tempo", "0"],
        dir.path(),
    );
    assert_clean_failure(&out, &["tempo"]);
    // No file and nothing to list: a usage error from clap, not a crash.
    let out = diffroll(&["play"], dir.path());
    assert_eq!(out.status.code(), Some(2));
}
