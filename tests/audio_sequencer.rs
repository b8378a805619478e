//! The sequencer never leaves a note hanging: driven by explicit time steps or a fake clock
//! into a recording sink, stopped at random moments, looping or not, every note-on is matched
//! by a note-off and every used channel gets all-notes-off. Also: events come at their time,
//! tempo maps and tempo overrides apply, loops repeat.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use common::{Track, smf};
use diffroll::audio::{
    Clock, Event, EventSink, Finish, ManualClock, Recorder, Sequence, Sequencer, run_sequencer,
};
use diffroll::midi;
use diffroll::roll::{Note, Roll};
use proptest::prelude::*;

/// Checks a recorded stream: per key, note-ons and note-offs alternate starting with an on,
/// and nothing sounds at the end; every channel with notes got all-notes-off after its last
/// note-off. Returns the number of note-ons.
fn assert_nothing_hangs(events: &[Event]) -> usize {
    let mut sounding: HashMap<(u8, u8), bool> = HashMap::new();
    let mut last_note: HashMap<u8, usize> = HashMap::new();
    let mut all_off: HashMap<u8, usize> = HashMap::new();
    let mut ons = 0;
    for (i, e) in events.iter().enumerate() {
        match *e {
            Event::NoteOn { channel, key, .. } => {
                let was = sounding.insert((channel, key), true).unwrap_or(false);
                assert!(!was, "event {i}: key {key} struck while sounding");
                last_note.insert(channel, i);
                ons += 1;
            }
            Event::NoteOff { channel, key } => {
                let was = sounding.insert((channel, key), false).unwrap_or(false);
                assert!(was, "event {i}: note-off for silent key {key}");
                last_note.insert(channel, i);
            }
            Event::AllNotesOff { channel } => {
                all_off.insert(channel, i);
            }
            Event::ProgramChange { .. } => {}
        }
    }
    let hanging: Vec<_> = sounding.iter().filter(|(_, on)| **on).collect();
    assert!(hanging.is_empty(), "hanging notes: {hanging:?}");
    for (channel, last) in last_note {
        let off = all_off.get(&channel).copied();
        assert!(
            off.is_some_and(|o| o > last),
            "channel {channel}: no all-notes-off after its last note"
        );
    }
    ons
}

fn notes_strategy() -> impl Strategy<Value = Vec<Note>> {
    prop::collection::vec(
        (0u8..128, 0u32..64, 1u32..24, 1u8..128)
            .prop_map(|(pitch, start, len, vel)| Note::new(pitch, start, start + len, vel)),
        0..80,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn stop_at_any_moment_leaves_nothing_hanging(
        notes in notes_strategy(),
        bpm in 20.0f32..400.0,
        looping in any::<bool>(),
        steps in prop::collection::vec(0.0f64..0.4, 0..200),
        channel in 0u8..16,
    ) {
        let seq = Sequence::from_notes(&notes, 64, bpm, &[], 0, channel);
        let mut sequencer = Sequencer::new(seq, looping);
        let mut rec = Recorder::default();
        for dt in steps {
            sequencer.advance(dt, &mut rec);
        }
        sequencer.stop(&mut rec);
        prop_assert_eq!(sequencer.sounding_notes(), 0);
        assert_nothing_hangs(&rec.events);
        // Once stopped, time passing sends nothing.
        let sent = rec.events.len();
        sequencer.advance(100.0, &mut rec);
        prop_assert_eq!(rec.events.len(), sent);
    }

    #[test]
    fn a_fake_clock_stopping_at_random_times_leaves_nothing_hanging(
        notes in notes_strategy(),
        bpm in 40.0f32..300.0,
        looping in any::<bool>(),
        stop_at in 0.0f64..20.0,
        jitter in prop::collection::vec(0.0f64..0.02, 1..16),
    ) {
        let seq = Sequence::from_notes(&notes, 64, bpm, &[], 0, 0);
        let duration = seq.duration();
        let mut sequencer = Sequencer::new(seq, looping);
        let stop = AtomicBool::new(false);
        let mut clock = JitterClock { time: 0.0, jitter, n: 0, stop_at, stop: &stop };
        let mut rec = Recorder::default();
        let finish = run_sequencer(&mut sequencer, &mut clock, &mut rec, &stop);
        assert_nothing_hangs(&rec.events);
        if looping || stop_at < duration - 0.05 {
            prop_assert_eq!(finish, Finish::Stopped);
        }
        if !looping && finish == Finish::Ended {
            // Played to the end: every note was heard.
            let ons = rec.events.iter().filter(|e| matches!(e, Event::NoteOn { .. })).count();
            let expected = sequencer.sequence().events().iter()
                .filter(|e| matches!(e.event, Event::NoteOn { .. })).count();
            prop_assert_eq!(ons, expected);
        }
    }

    #[test]
    fn events_come_exactly_when_due(
        notes in notes_strategy(),
        bpm in 30.0f32..300.0,
        steps in prop::collection::vec(0.0f64..0.3, 1..100),
    ) {
        let seq = Sequence::from_notes(&notes, 64, bpm, &[], 0, 0);
        let times: Vec<f64> = seq.events().iter().map(|e| e.time).collect();
        let mut sequencer = Sequencer::new(seq, false);
        let mut rec = Recorder::default();
        let mut now = 0.0;
        for dt in steps {
            sequencer.advance(dt, &mut rec);
            now += dt;
            // Everything due was sent, nothing early.
            let due = times.iter().filter(|&&t| t <= now).count();
            prop_assert_eq!(rec.events.len(), due, "at {} s", now);
        }
    }
}

/// A clock whose sleeps overshoot by a varying amount (as a loaded machine's do), that
/// raises the stop flag once it passes `stop_at`, as Ctrl-C would.
struct JitterClock<'a> {
    time: f64,
    jitter: Vec<f64>,
    n: usize,
    stop_at: f64,
    stop: &'a AtomicBool,
}

impl Clock for JitterClock<'_> {
    fn now(&mut self) -> f64 {
        if self.time >= self.stop_at {
            self.stop.store(true, Ordering::Release);
        }
        self.time
    }
    fn sleep(&mut self, seconds: f64) {
        self.n += 1;
        self.time += seconds + self.jitter[self.n % self.jitter.len()];
    }
}

#[test]
fn a_roll_plays_at_its_tempo_and_program() {
    let mut roll = Roll::from_notes(&[Note::new(60, 0, 4, 80), Note::new(64, 4, 8, 80)], 16);
    roll.tempo_bpm = 60.0;
    roll.program = 19;
    let seq = Sequence::from_roll(&roll);
    // 60 BPM: a sixteenth lasts 0.25 s; 16 steps are 4 s.
    assert!((seq.duration() - 4.0).abs() < 1e-9);
    let on_times: Vec<(u8, f64)> = seq
        .events()
        .iter()
        .filter_map(|e| match e.event {
            Event::NoteOn { key, .. } => Some((key, e.time)),
            _ => None,
        })
        .collect();
    assert_eq!(on_times, vec![(60, 0.0), (64, 1.0)]);
    assert_eq!(
        seq.events()[0].event,
        Event::ProgramChange {
            channel: 0,
            program: 19
        }
    );
}

#[test]
fn a_midi_file_plays_with_its_tempo_map_or_at_a_given_tempo() {
    // 120 BPM for one quarter, then 60 BPM: the second note starts at 0.5 s and lasts 1 s.
    let track = Track::new()
        .tempo(0, 120)
        .on(0, 0, 60, 100)
        .off(480, 0, 60)
        .tempo(0, 60)
        .on(0, 0, 62, 50)
        .off(480, 0, 62)
        .end(0);
    let song = midi::read(&smf(1, 480, &[track])).unwrap();
    let seq = Sequence::from_song(&song, None);
    let timed: Vec<(f64, Event)> = seq.events().iter().map(|e| (e.time, e.event)).collect();
    let find = |want: Event| {
        timed
            .iter()
            .find(|(_, e)| *e == want)
            .map(|(t, _)| *t)
            .unwrap()
    };
    let on62 = Event::NoteOn {
        channel: 0,
        key: 62,
        velocity: 50,
    };
    assert!((find(on62) - 0.5).abs() < 1e-9);
    assert!(
        (find(Event::NoteOff {
            channel: 0,
            key: 62
        }) - 1.5)
            .abs()
            < 1e-9
    );

    let fast = Sequence::from_song(&song, Some(240.0));
    let t = fast.events().iter().find(|e| e.event == on62).unwrap().time;
    assert!(
        (t - 0.25).abs() < 1e-9,
        "at 240 BPM a quarter is 0.25 s, got {t}"
    );
}

#[test]
fn looping_replays_until_stopped() {
    let seq = Sequence::from_notes(&[Note::new(60, 0, 16, 90)], 16, 120.0, &[], 0, 0);
    assert!((seq.duration() - 2.0).abs() < 1e-9);
    let mut sequencer = Sequencer::new(seq, true);
    let stop = AtomicBool::new(false);
    let mut clock = StopAfter {
        clock: ManualClock::default(),
        at: 7.0,
        stop: &stop,
    };
    let mut rec = Recorder::default();
    assert_eq!(
        run_sequencer(&mut sequencer, &mut clock, &mut rec, &stop),
        Finish::Stopped
    );
    // Loops start at 0, 2, 4, 6 s; the last is cut by the stop at 7 s.
    assert_eq!(assert_nothing_hangs(&rec.events), 4);
}

struct StopAfter<'a> {
    clock: ManualClock,
    at: f64,
    stop: &'a AtomicBool,
}

impl Clock for StopAfter<'_> {
    fn now(&mut self) -> f64 {
        let t = self.clock.now();
        if t >= self.at {
            self.stop.store(true, Ordering::Release);
        }
        t
    }
    fn sleep(&mut self, seconds: f64) {
        self.clock.sleep(seconds);
    }
}

#[test]
fn an_empty_piece_ends_at_once_and_a_hanging_stream_is_caught() {
    let mut sequencer = Sequencer::new(Sequence::from_notes(&[], 0, 120.0, &[], 0, 0), true);
    let mut rec = Recorder::default();
    let stop = AtomicBool::new(false);
    let finish = run_sequencer(&mut sequencer, &mut ManualClock::default(), &mut rec, &stop);
    assert_eq!(
        finish,
        Finish::Ended,
        "a zero-length loop does not spin forever"
    );

    // The checker itself fails on a note left on.
    let bad = [Event::NoteOn {
        channel: 0,
        key: 60,
        velocity: 1,
    }];
    assert!(std::panic::catch_unwind(|| assert_nothing_hangs(&bad)).is_err());
}

/// Sinks compose: a reference to a sink is a sink.
#[test]
fn sinks_by_reference() {
    fn send_twice(mut sink: impl EventSink) {
        sink.send(Event::AllNotesOff { channel: 1 });
        sink.send(Event::AllNotesOff { channel: 2 });
    }
    let mut rec = Recorder::default();
    send_twice(&mut rec);
    assert_eq!(rec.events.len(), 2);
}
