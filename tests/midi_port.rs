//! MIDI output through a real MIDI system, read back by a second client: a port chosen by name,
//! and the virtual "diffroll" port a DAW records from. Every note the sequencer starts must be
//! ended on the wire when playback is stopped halfway.
//!
//! Needs a MIDI system (ALSA sequencer, JACK with `--features jack`, CoreMIDI). Without one the
//! tests say so and pass, unless `DIFFROLL_REQUIRE_MIDI=1` (set by `.ci/midi-jack`, which starts
//! a JACK server with its dummy driver, so the port code runs where there is no sound hardware).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diffroll::audio::{
    Finish, MidiOut, Sequence, Sequencer, SystemClock, VIRTUAL_PORT_NAME, run_sequencer,
};
use diffroll::roll::{Note, Roll};
use midir::{Ignore, MidiInput, MidiInputConnection};

type Received = Arc<Mutex<Vec<Vec<u8>>>>;

/// A MIDI input client, or `None` (after saying why) where this machine has no MIDI system.
fn midi_input(client: &str) -> Option<MidiInput> {
    match MidiInput::new(client) {
        Ok(mut input) => {
            input.ignore(Ignore::None);
            Some(input)
        }
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

fn recorder() -> (Received, impl FnMut(u64, &[u8], &mut ()) + Send + 'static) {
    let received: Received = Arc::default();
    let sink = Arc::clone(&received);
    (received, move |_stamp, bytes: &[u8], _: &mut ()| {
        sink.lock().unwrap().push(bytes.to_vec())
    })
}

/// A four-bar piece at 120 BPM: a held four-note chord under a running melody, so stopping at
/// any moment leaves long and short notes sounding.
fn piece() -> Roll {
    let mut roll = Roll::new(64);
    for (i, pitch) in [48u8, 55, 64, 67].into_iter().enumerate() {
        roll.add_note(Note::new(pitch, 0, 64 - i as u32, 90));
    }
    for step in (0..64).step_by(2) {
        roll.add_note(Note::new(72 + (step % 12) as u8, step, step + 2, 100));
    }
    roll.tempo_bpm = 120.0;
    roll
}

/// Plays `roll` into `out`, stopping after `stop_after` (or at its end).
fn play(roll: &Roll, out: &mut MidiOut, stop_after: Option<Duration>) -> Finish {
    let mut sequencer = Sequencer::new(Sequence::from_roll(roll), false);
    let stop = Arc::new(AtomicBool::new(false));
    let stopper = stop_after.map(|after| {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            std::thread::sleep(after);
            stop.store(true, Ordering::Release);
        })
    });
    let finish = run_sequencer(&mut sequencer, &mut SystemClock::new(), out, &stop);
    if let Some(t) = stopper {
        t.join().unwrap();
    }
    finish
}

/// Waits until `received` holds a message matching `last`, or two seconds pass.
fn wait_for(received: &Received, last: impl Fn(&[u8]) -> bool) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(2) {
        if received.lock().unwrap().iter().any(|m| last(m)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Notes started and never ended, per (channel, key), from the messages as they arrived.
fn hanging(messages: &[Vec<u8>]) -> (usize, Vec<(u8, u8)>) {
    let mut on: HashMap<(u8, u8), i32> = HashMap::new();
    let mut note_ons = 0;
    for m in messages {
        let (status, ch) = (m[0] & 0xF0, m[0] & 0x0F);
        match (status, m.get(2).copied()) {
            (0x90, Some(v)) if v > 0 => {
                note_ons += 1;
                *on.entry((ch, m[1])).or_default() += 1;
            }
            (0x80, _) | (0x90, Some(0)) => *on.entry((ch, m[1])).or_default() -= 1,
            // All notes off (controller 123) ends whatever the channel still holds.
            (0xB0, _) if m[1] == 123 => on.retain(|&(c, _), _| c != ch),
            _ => {}
        }
    }
    let left = on
        .into_iter()
        .filter(|&(_, n)| n > 0)
        .map(|(k, _)| k)
        .collect();
    (note_ons, left)
}

fn connect_to(input: MidiInput, part: &str, received: Received) -> MidiInputConnection<()> {
    let ports = input.ports();
    let port = ports
        .iter()
        .find(|p| input.port_name(p).is_ok_and(|n| n.contains(part)))
        .unwrap_or_else(|| panic!("no input-side port named like '{part}'"));
    let sink = Arc::clone(&received);
    input
        .connect(
            port,
            "recorder-in",
            move |_stamp, bytes, _| sink.lock().unwrap().push(bytes.to_vec()),
            (),
        )
        .expect("connect the recorder to the port")
}

#[cfg(unix)]
#[test]
fn stopping_playback_to_a_named_port_leaves_no_note_hanging() {
    use midir::os::unix::VirtualInput;
    let Some(input) = midi_input("diffroll-test-named") else {
        return;
    };
    let (received, callback) = recorder();
    let _recorder = input
        .create_virtual("recorder", callback, ())
        .expect("open the recorder's input port");
    // Chosen by a part of its name, as `--midi-out recorder` would.
    let mut out = MidiOut::connect("recorder").expect("connect by name");
    assert!(out.name().contains("recorder"), "{}", out.name());
    let finish = play(&piece(), &mut out, Some(Duration::from_millis(700)));
    assert_eq!(finish, Finish::Stopped);
    let send_errors = out.send_errors();
    // Closed at once, as `diffroll play` does after Ctrl-C: the last messages must still arrive.
    drop(out);
    wait_for(&received, |m| {
        m.len() == 3 && m[0] & 0xF0 == 0xB0 && m[1] == 123
    });
    let messages = received.lock().unwrap().clone();
    let (note_ons, left) = hanging(&messages);
    assert!(note_ons >= 4, "only {note_ons} notes arrived: {messages:?}");
    assert!(left.is_empty(), "notes left sounding: {left:?}");
    // Every note still sounding at the stop got its own note-off, not only all-notes-off.
    let explicit: Vec<Vec<u8>> = messages
        .iter()
        .filter(|m| m[0] & 0xF0 != 0xB0)
        .cloned()
        .collect();
    assert!(hanging(&explicit).1.is_empty(), "{messages:?}");
    assert_eq!(send_errors, 0);
}

#[cfg(unix)]
#[test]
fn the_virtual_diffroll_port_delivers_the_whole_piece_in_order() {
    let Some(input) = midi_input("diffroll-test-virtual") else {
        return;
    };
    let mut out = MidiOut::open_virtual(VIRTUAL_PORT_NAME).expect("open the virtual port");
    let received: Received = Arc::default();
    let _conn = connect_to(input, VIRTUAL_PORT_NAME, Arc::clone(&received));
    let mut roll = piece();
    roll.tempo_bpm = 480.0; // four bars in two seconds
    assert_eq!(play(&roll, &mut out, None), Finish::Ended);
    drop(out);
    wait_for(&received, |m| {
        m.len() == 3 && m[0] & 0xF0 == 0xB0 && m[1] == 123
    });
    let messages = received.lock().unwrap().clone();
    let keys_on: Vec<u8> = messages
        .iter()
        .filter(|m| m[0] & 0xF0 == 0x90 && m[2] > 0)
        .map(|m| m[1])
        .collect();
    let expected: Vec<u8> = Sequence::from_roll(&roll)
        .events()
        .iter()
        .filter_map(|e| match e.event {
            diffroll::audio::Event::NoteOn { key, .. } => Some(key),
            _ => None,
        })
        .collect();
    assert_eq!(keys_on, expected, "note-ons arrive complete and in order");
    assert_eq!(keys_on.len(), piece().note_count());
    assert!(hanging(&messages).1.is_empty());
}
