//! MIDI input through a real MIDI system: a second client plays a little melody with known
//! timing and velocities, diffroll records it (connecting to the sender's port, through its own
//! virtual input, and as `diffroll record` writing a file), and the notes must come back with
//! their pitches, velocities and order, each start and end within one sixteenth.
//!
//! Needs a MIDI system (ALSA sequencer, JACK with `--features jack`, CoreMIDI). Without one the
//! tests say so and pass, unless `DIFFROLL_REQUIRE_MIDI=1` (set by `.ci/midi-jack`, which starts
//! a JACK server with its dummy driver). The command-line errors are checked everywhere.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use diffroll::audio::MidiRecorder;
use diffroll::roll::Note;
use midir::{MidiOutput, MidiOutputConnection};

/// The melody's tempo: a sixteenth lasts 125 ms.
const BPM: f32 = 120.0;
const STEP_MS: u64 = 125;
/// When the take is stopped, in steps from its start: the last note is still held.
const STOP_STEP: u32 = 18;

/// A MIDI output client, or `None` (after saying why) where this machine has no MIDI system.
fn midi_output(client: &str) -> Option<MidiOutput> {
    match MidiOutput::new(client) {
        Ok(out) => Some(out),
        Err(e) => {
            assert!(
                std::env::var_os("DIFFROLL_REQUIRE_MIDI").is_none(),
                "DIFFROLL_REQUIRE_MIDI is set but there is no MIDI system: {e}"
            );
            eprintln!("skipped: no MIDI system here ({e})");
            None
        }
    }
}

/// The melody as sent: (milliseconds from the start, bytes). Besides plain notes it holds a
/// note-on of velocity 0 as a note-off, a pitch struck again at once and released after 20 ms,
/// a chord, a drum hit and a pedal (both to be left out), and a note held past the stop.
fn messages() -> Vec<(u64, Vec<u8>)> {
    let s = |step: u64| step * STEP_MS;
    let mut m = vec![
        (s(1), vec![0x90, 60, 100]),
        (s(4), vec![0x80, 60, 64]),
        (s(4) + 5, vec![0x90, 64, 64]),
        (s(6), vec![0x90, 64, 0]),
        (s(6), vec![0x90, 67, 30]),
        (s(8), vec![0x80, 67, 0]),
        (s(8), vec![0x90, 67, 110]),
        (s(8) + 20, vec![0x80, 67, 0]),
        (s(9), vec![0xB0, 64, 127]),
        (s(10), vec![0x90, 72, 90]),
        (s(10), vec![0x90, 76, 80]),
        (s(10), vec![0x99, 36, 120]),
        (s(11), vec![0x89, 36, 0]),
        (s(13), vec![0xB0, 64, 0]),
        (s(14), vec![0x80, 72, 0]),
        (s(14), vec![0x80, 76, 0]),
        (s(14), vec![0x90, 79, 127]),
    ];
    m.sort_by_key(|&(t, _)| t);
    m
}

/// What the recording must hold.
fn expected(stop_step: u32) -> Vec<Note> {
    vec![
        Note::new(60, 1, 4, 100),
        Note::new(64, 4, 6, 64),
        Note::new(67, 6, 8, 30),
        Note::new(67, 8, 9, 110),
        Note::new(72, 10, 14, 90),
        Note::new(76, 10, 14, 80),
        Note::new(79, 14, stop_step, 127),
    ]
}

/// Sends the melody with its timing, counted from `t0`.
fn play_melody(out: &mut MidiOutputConnection, t0: Instant) {
    for (at, bytes) in messages() {
        let when = t0 + Duration::from_millis(at);
        if let Some(wait) = when.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        out.send(&bytes).expect("send a MIDI message");
    }
}

fn wait_until(t0: Instant, step: u32) {
    let when = t0 + Duration::from_millis(u64::from(step) * STEP_MS);
    if let Some(wait) = when.checked_duration_since(Instant::now()) {
        std::thread::sleep(wait);
    }
}

/// Same pitches, velocities and order; starts and ends within one step.
fn assert_close(got: &[Note], want: &[Note]) {
    let keys = |n: &[Note]| n.iter().map(|n| (n.pitch, n.velocity)).collect::<Vec<_>>();
    assert_eq!(keys(got), keys(want), "got {got:?}, want {want:?}");
    for (g, w) in got.iter().zip(want) {
        assert!(
            g.start.abs_diff(w.start) <= 1 && g.end.abs_diff(w.end) <= 1,
            "{g:?} is not within a step of {w:?}; got {got:?}"
        );
    }
}

#[cfg(unix)]
#[test]
fn recording_from_a_port_by_name_keeps_pitch_velocity_and_timing() {
    use midir::os::unix::VirtualOutput;
    let Some(output) = midi_output("diffroll-test-keyboard") else {
        return;
    };
    let mut keyboard = output
        .create_virtual("melody-for-connect")
        .expect("open the sender's port");
    // Chosen by a part of its name, as `diffroll record --port melody-for-connect` would.
    let recorder = MidiRecorder::connect("melody-for-connect").expect("connect by name");
    assert!(recorder.name().contains("melody-for-connect"));
    let t0 = Instant::now();
    play_melody(&mut keyboard, t0);
    wait_until(t0, STOP_STEP);
    let take = recorder.stop(BPM);
    assert_close(&take.notes, &expected(STOP_STEP));
    assert_eq!(take.steps, 32, "two bars");
    assert_eq!(take.drum_notes, 1);
    assert_eq!(take.lost_events, 0);
}

#[cfg(unix)]
#[test]
fn the_virtual_input_records_what_is_sent_to_it() {
    let Some(output) = midi_output("diffroll-test-daw") else {
        return;
    };
    let recorder = MidiRecorder::open_virtual("melody-sink").expect("open the virtual input");
    let ports = output.ports();
    let port = ports
        .iter()
        .find(|p| output.port_name(p).is_ok_and(|n| n.contains("melody-sink")))
        .expect("the virtual input is visible to other clients");
    let mut daw = output
        .connect(port, "to-diffroll")
        .expect("connect to the virtual input");
    // Whatever arrived while connecting is forgotten; the take counts from here.
    daw.send(&[0x90, 40, 50]).expect("send");
    std::thread::sleep(Duration::from_millis(100));
    recorder.restart();
    let t0 = Instant::now();
    play_melody(&mut daw, t0);
    std::thread::sleep(Duration::from_millis(300));
    // Seen while it is played: the held note ends now.
    let so_far = recorder.snapshot(BPM);
    assert_close(&so_far.notes[..6], &expected(STOP_STEP)[..6]);
    wait_until(t0, STOP_STEP);
    let take = recorder.stop(BPM);
    assert_close(&take.notes, &expected(STOP_STEP));
}

fn diffroll(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_diffroll"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("diffroll runs")
}

/// Notes of a MIDI file in sixteenth steps, read with midly, not diffroll's own reader.
fn notes_in(bytes: &[u8]) -> (Vec<Note>, Option<u32>) {
    let smf = midly::Smf::parse(bytes).expect("a Standard MIDI File");
    let midly::Timing::Metrical(tpq) = smf.header.timing else {
        panic!("metrical timing expected");
    };
    let ticks_per_step = u32::from(tpq.as_int()) / 4;
    let mut tempo = None;
    let mut notes = Vec::new();
    for track in &smf.tracks {
        let mut tick = 0u32;
        let mut held: Vec<(u8, u32, u8)> = Vec::new();
        for event in track {
            tick += event.delta.as_int();
            match event.kind {
                midly::TrackEventKind::Meta(midly::MetaMessage::Tempo(us)) => {
                    tempo = Some(us.as_int());
                }
                midly::TrackEventKind::Midi { message, .. } => match message {
                    midly::MidiMessage::NoteOn { key, vel } if vel.as_int() > 0 => {
                        held.push((key.as_int(), tick, vel.as_int()));
                    }
                    midly::MidiMessage::NoteOn { key, .. }
                    | midly::MidiMessage::NoteOff { key, .. } => {
                        let i = held
                            .iter()
                            .position(|h| h.0 == key.as_int())
                            .expect("a note-off for a sounding note");
                        let (pitch, on, vel) = held.remove(i);
                        notes.push(Note::new(
                            pitch,
                            on / ticks_per_step,
                            tick / ticks_per_step,
                            vel,
                        ));
                    }
                    _ => {}
                },
                _ => {}
            }
        }
        assert!(held.is_empty(), "notes never ended: {held:?}");
    }
    notes.sort();
    (notes, tempo)
}

#[cfg(unix)]
#[test]
fn diffroll_record_writes_what_was_played() {
    use midir::os::unix::VirtualOutput;
    let Some(output) = midi_output("diffroll-test-cli-keyboard") else {
        return;
    };
    let mut keyboard = output
        .create_virtual("melody-for-cli")
        .expect("open the sender's port");
    let dir = tempfile::tempdir().unwrap();
    let seconds = 2.5;
    let mut child = Command::new(env!("CARGO_BIN_EXE_diffroll"))
        .args(["record", "--port", "melody-for-cli", "--tempo", "120"])
        .args(["--seconds", &seconds.to_string(), "-o", "take.mid"])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("diffroll runs");
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let mut said = String::new();
    // The port is open and the clock runs once this line is out.
    while !said.contains("recording from") {
        let mut line = String::new();
        if stderr.read_line(&mut line).expect("read stderr") == 0 {
            panic!("diffroll record ended before recording: {said}");
        }
        said.push_str(&line);
    }
    let t0 = Instant::now();
    play_melody(&mut keyboard, t0);
    let status = child.wait().expect("diffroll record ends");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).expect("read stderr");
    said.push_str(&rest);
    assert!(status.success(), "{said}");
    assert!(said.contains("take.mid: 7 notes, 2 bars"), "{said}");
    assert!(
        said.contains("drum notes left out (channel 10): 1;"),
        "{said}"
    );
    let bytes = std::fs::read(dir.path().join("take.mid")).expect("the file was written");
    let (notes, tempo) = notes_in(&bytes);
    assert_eq!(tempo, Some(500_000), "120 BPM");
    let stop_step = (seconds * 1000.0 / STEP_MS as f64) as u32;
    let mut want = expected(stop_step);
    want.sort();
    assert_close(&notes, &want);
}

/// A failed run that said why on one `diffroll: ` line, did not panic and wrote nothing.
fn assert_clean_failure(out: &Output, dir: &Path, words: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let line = err
        .lines()
        .find(|l| l.starts_with("diffroll: "))
        .unwrap_or_else(|| panic!("no diffroll: line in {err}"));
    assert!(
        words.iter().any(|w| line.contains(w)),
        "none of {words:?} in: {line}"
    );
    assert!(!dir.join("take.mid").exists());
}

#[test]
fn record_refuses_bad_options_and_missing_ports_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = ["record", "--port", "no-such-keyboard-here"];
    let out = diffroll(
        &[&port[..], &["--tempo", "0", "-o", "take.mid"]].concat(),
        d,
    );
    assert_clean_failure(&out, d, &["1 to 1000 BPM"]);
    let out = diffroll(
        &[&port[..], &["--seconds", "0", "-o", "take.mid"]].concat(),
        d,
    );
    assert_clean_failure(&out, d, &["--seconds"]);
    let out = diffroll(&[&port[..], &["-o", "take.wav"]].concat(), d);
    assert_clean_failure(&out, d, &["use a .mid file name"]);
    // Either there is no MIDI system, or there is and it has no such port: both say so.
    let out = diffroll(
        &[&port[..], &["--seconds", "1", "-o", "take.mid"]].concat(),
        d,
    );
    assert_clean_failure(
        &out,
        d,
        &[
            "no MIDI system",
            "no MIDI input port",
            "no MIDI input ports",
        ],
    );
    // Without a port or --list, clap asks for one.
    let out = diffroll(&["record", "-o", "take.mid"], d);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--port"));
}
