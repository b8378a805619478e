//! Notes on a timeline, and the sequencer that plays them on a clock into any [`EventSink`].
//!
//! A [`Sequence`] is a roll's or a song's notes as note-on/off events in seconds (tempo map
//! applied). A [`Sequencer`] walks it as time is advanced, loops if asked, and remembers which
//! notes sound so that [`Sequencer::stop`] at any moment leaves none hanging. Time comes from
//! outside ([`Sequencer::advance`]), so tests drive it exactly and [`run_sequencer`] drives it
//! from a real or fake [`Clock`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::event::{Event, EventSink};
use crate::midi::{Song, TempoChange};
use crate::roll::{DEFAULT_TEMPO_BPM, Note, Roll, STEPS_PER_BEAT};

/// An event and when it happens, in seconds from the start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimedEvent {
    pub time: f64,
    pub event: Event,
}

/// Events sorted by time, and how long the piece lasts (its loop length).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sequence {
    events: Vec<TimedEvent>,
    duration: f64,
}

fn sane_bpm(bpm: f32) -> f64 {
    if bpm.is_finite() && bpm > 0.0 {
        f64::from(bpm.clamp(1.0, 1000.0))
    } else {
        f64::from(DEFAULT_TEMPO_BPM)
    }
}

/// Sixteenth-note steps to seconds under a tempo map.
struct TempoMap {
    /// (first step, seconds at that step, seconds per step), sorted by step.
    segments: Vec<(u32, f64, f64)>,
}

impl TempoMap {
    fn new(initial_bpm: f32, changes: &[TempoChange]) -> Self {
        let per_step = |bpm: f32| 60.0 / (sane_bpm(bpm) * STEPS_PER_BEAT as f64);
        let mut segments = vec![(0u32, 0.0f64, per_step(initial_bpm))];
        let mut sorted: Vec<TempoChange> = changes.to_vec();
        sorted.sort_by_key(|c| c.step);
        for change in sorted {
            let Some(&(step, secs, sps)) = segments.last() else {
                break;
            };
            if change.step == step {
                if let Some(last) = segments.last_mut() {
                    last.2 = per_step(change.bpm);
                }
            } else {
                let at = secs + f64::from(change.step - step) * sps;
                segments.push((change.step, at, per_step(change.bpm)));
            }
        }
        TempoMap { segments }
    }

    fn seconds(&self, step: u32) -> f64 {
        let i = self
            .segments
            .partition_point(|s| s.0 <= step)
            .saturating_sub(1);
        let (start, secs, sps) = self.segments[i];
        secs + f64::from(step - start) * sps
    }
}

impl Sequence {
    /// Events in any order; they are sorted by time (stable, so events at one time keep their
    /// order). The duration is at least the last event's time.
    pub fn new(mut events: Vec<TimedEvent>, duration: f64) -> Self {
        events.retain(|e| e.time.is_finite());
        for e in &mut events {
            e.time = e.time.max(0.0);
        }
        events.sort_by(|a, b| a.time.total_cmp(&b.time));
        let last = events.last().map_or(0.0, |e| e.time);
        let duration = if duration.is_finite() { duration } else { 0.0 };
        Sequence {
            events,
            duration: duration.max(last),
        }
    }

    /// Notes on the sixteenth grid, played on `channel` with `program`, lasting at least
    /// `steps`. Notes of one pitch that overlap are cut where the next one starts, as a
    /// keyboard would, so every key alternates on, off, on, off.
    pub fn from_notes(
        notes: &[Note],
        steps: u32,
        initial_bpm: f32,
        tempo_changes: &[TempoChange],
        program: u8,
        channel: u8,
    ) -> Self {
        let channel = channel & 0x0F;
        let map = TempoMap::new(initial_bpm, tempo_changes);
        let mut sorted: Vec<Note> = notes
            .iter()
            .copied()
            .filter(|n| n.pitch < 128 && n.end > n.start)
            .collect();
        sorted.sort_by_key(|n| (n.pitch, n.start, n.end));
        for i in 1..sorted.len() {
            let next = sorted[i];
            let prev = &mut sorted[i - 1];
            if prev.pitch == next.pitch && prev.end > next.start {
                prev.end = next.start;
            }
        }
        sorted.retain(|n| n.end > n.start);

        // (time, order within a time, event): note-offs go before note-ons at the same moment
        // so a repeated key is released before it is struck again.
        let mut keyed: Vec<(f64, u8, Event)> = Vec::with_capacity(sorted.len() * 2 + 1);
        keyed.push((0.0, 0, Event::ProgramChange { channel, program }));
        let mut end = steps;
        for n in &sorted {
            end = end.max(n.end);
            let velocity = n.velocity.clamp(1, 127);
            keyed.push((
                map.seconds(n.start),
                2,
                Event::NoteOn {
                    channel,
                    key: n.pitch,
                    velocity,
                },
            ));
            keyed.push((
                map.seconds(n.end),
                1,
                Event::NoteOff {
                    channel,
                    key: n.pitch,
                },
            ));
        }
        keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let events = keyed
            .into_iter()
            .map(|(time, _, event)| TimedEvent { time, event })
            .collect();
        Sequence::new(events, map.seconds(end))
    }

    /// A roll at its own tempo and program, on channel 1.
    pub fn from_roll(roll: &Roll) -> Self {
        Sequence::from_notes(
            &roll.notes(),
            roll.steps() as u32,
            roll.tempo_bpm,
            &[],
            roll.program,
            0,
        )
    }

    /// A song with its velocities and tempo map, on channel 1, or at a constant `tempo_bpm`
    /// when given.
    pub fn from_song(song: &Song, tempo_bpm: Option<f32>) -> Self {
        // SMPTE files were placed on the grid at the default tempo; their tempo events do not
        // apply to that grid.
        let changes: &[TempoChange] = if tempo_bpm.is_some() || song.smpte {
            &[]
        } else {
            &song.tempo_changes
        };
        Sequence::from_notes(
            &song.notes,
            song.steps,
            tempo_bpm.unwrap_or(song.tempo_bpm),
            changes,
            song.program,
            0,
        )
    }

    pub fn events(&self) -> &[TimedEvent] {
        &self.events
    }

    /// Seconds from the start to the end (the loop point).
    pub fn duration(&self) -> f64 {
        self.duration
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

/// Plays a [`Sequence`] as time advances. It owns no clock and no thread: whoever drives it
/// says how much time has passed.
#[derive(Debug, Clone)]
pub struct Sequencer {
    sequence: Sequence,
    looping: bool,
    position: f64,
    next: usize,
    /// Sounding keys, one bit per key, per channel.
    sounding: [u128; 16],
    /// Channels any event has gone to, one bit each.
    used_channels: u16,
    finished: bool,
}

impl Sequencer {
    pub fn new(sequence: Sequence, looping: bool) -> Self {
        Sequencer {
            sequence,
            looping,
            position: 0.0,
            next: 0,
            sounding: [0; 16],
            used_channels: 0,
            finished: false,
        }
    }

    pub fn sequence(&self) -> &Sequence {
        &self.sequence
    }

    /// Seconds into the sequence (within the current loop).
    pub fn position(&self) -> f64 {
        self.position
    }

    /// True once a non-looping sequence has played to its end, or after [`Sequencer::stop`].
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Notes that have had a note-on and no note-off yet.
    pub fn sounding_notes(&self) -> usize {
        self.sounding.iter().map(|k| k.count_ones() as usize).sum()
    }

    /// Seconds until the next thing happens (an event, the loop point or the end).
    pub fn time_to_next_event(&self) -> Option<f64> {
        if self.finished {
            return None;
        }
        let at = self
            .sequence
            .events
            .get(self.next)
            .map_or(self.sequence.duration, |e| e.time);
        Some((at - self.position).max(0.0))
    }

    fn emit(&mut self, event: Event, sink: &mut impl EventSink) {
        let ch = usize::from(event.channel());
        self.used_channels |= 1 << ch;
        match event {
            Event::NoteOn { key, .. } => self.sounding[ch] |= 1u128 << (key & 0x7F),
            Event::NoteOff { key, .. } => self.sounding[ch] &= !(1u128 << (key & 0x7F)),
            Event::AllNotesOff { .. } => self.sounding[ch] = 0,
            Event::ProgramChange { .. } => {}
        }
        sink.send(event);
    }

    /// Sends a note-off for every sounding note.
    fn release_all(&mut self, sink: &mut impl EventSink) {
        for channel in 0..16u8 {
            let mut keys = self.sounding[usize::from(channel)];
            while keys != 0 {
                let key = keys.trailing_zeros() as u8;
                keys &= keys - 1;
                self.emit(Event::NoteOff { channel, key }, sink);
            }
        }
    }

    /// Moves `seconds` forward, sending every event that falls in that time. At the end of a
    /// looping sequence it releases what still sounds and starts over.
    pub fn advance(&mut self, seconds: f64, sink: &mut impl EventSink) {
        if self.finished || !seconds.is_finite() || seconds < 0.0 {
            return;
        }
        let duration = self.sequence.duration;
        let mut target = self.position + seconds;
        loop {
            while let Some(e) = self.sequence.events.get(self.next) {
                if e.time > target {
                    break;
                }
                let event = e.event;
                self.next += 1;
                self.emit(event, sink);
            }
            if self.next < self.sequence.events.len() || target < duration {
                break;
            }
            if self.looping && duration > 0.0 {
                self.release_all(sink);
                target -= duration;
                // A clock that jumped several loops ahead plays only the last of them.
                if target >= duration {
                    target %= duration;
                }
                self.next = 0;
            } else {
                self.finished = true;
                break;
            }
        }
        self.position = target;
    }

    /// Stops now: a note-off for every sounding note, then all-notes-off (controller 123) on
    /// every channel used, for receivers that missed something. Further advances do nothing.
    pub fn stop(&mut self, sink: &mut impl EventSink) {
        self.release_all(sink);
        for channel in 0..16u8 {
            if self.used_channels & (1 << channel) != 0 {
                self.emit(Event::AllNotesOff { channel }, sink);
            }
        }
        self.finished = true;
    }

    /// Back to the start, ready to play again (call [`Sequencer::stop`] first if notes sound).
    pub fn rewind(&mut self) {
        self.position = 0.0;
        self.next = 0;
        self.finished = false;
    }
}

/// Where playback time comes from.
pub trait Clock {
    /// Seconds since some fixed moment; never goes backwards.
    fn now(&mut self) -> f64;
    /// Waits about `seconds`.
    fn sleep(&mut self, seconds: f64);
}

/// Wall-clock time.
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    start: Instant,
}

impl SystemClock {
    pub fn new() -> Self {
        SystemClock {
            start: Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now(&mut self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    fn sleep(&mut self, seconds: f64) {
        // At least half a millisecond, so a run of simultaneous events never spins a core.
        std::thread::sleep(Duration::from_secs_f64(seconds.clamp(0.0005, 1.0)));
    }
}

/// A clock that moves only when slept on, by exactly the time asked: tests run a whole
/// piece in microseconds and the same way every time.
#[derive(Debug, Clone, Copy, Default)]
pub struct ManualClock {
    pub time: f64,
}

impl Clock for ManualClock {
    fn now(&mut self) -> f64 {
        self.time
    }

    fn sleep(&mut self, seconds: f64) {
        self.time += seconds.max(0.0);
    }
}

/// How [`run_sequencer`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// The sequence played to its end.
    Ended,
    /// `stop` was set.
    Stopped,
}

/// Longest wait between looks at the stop flag: stopping is felt within this.
const MAX_WAIT_SECS: f64 = 0.005;

/// Plays `sequencer` in real time by `clock` into `sink` until it ends or `stop` is set, then
/// stops it (no note left sounding). This is the sequencer thread's loop.
pub fn run_sequencer(
    sequencer: &mut Sequencer,
    clock: &mut impl Clock,
    sink: &mut impl EventSink,
    stop: &AtomicBool,
) -> Finish {
    run_sequencer_observed(sequencer, clock, sink, stop, &mut |_| {})
}

/// [`run_sequencer`], telling `on_position` the playing position (seconds into the sequence)
/// after every advance: the app's playhead follows it.
pub fn run_sequencer_observed(
    sequencer: &mut Sequencer,
    clock: &mut impl Clock,
    sink: &mut impl EventSink,
    stop: &AtomicBool,
    on_position: &mut dyn FnMut(f64),
) -> Finish {
    let mut last = clock.now();
    sequencer.advance(0.0, sink);
    loop {
        on_position(sequencer.position());
        if stop.load(Ordering::Acquire) {
            sequencer.stop(sink);
            return Finish::Stopped;
        }
        let now = clock.now();
        sequencer.advance((now - last).max(0.0), sink);
        last = now;
        if sequencer.is_finished() {
            sequencer.stop(sink);
            return Finish::Ended;
        }
        let wait = sequencer
            .time_to_next_event()
            .unwrap_or(0.0)
            .min(MAX_WAIT_SECS);
        clock.sleep(wait);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::Recorder;

    #[test]
    fn tempo_map_places_steps() {
        let map = TempoMap::new(
            120.0,
            &[
                TempoChange { step: 8, bpm: 60.0 },
                TempoChange { step: 0, bpm: 60.0 },
            ],
        );
        // 60 BPM from the start (the change at step 0 replaces the initial tempo): 0.25 s/step.
        assert!((map.seconds(4) - 1.0).abs() < 1e-12);
        assert!((map.seconds(12) - 3.0).abs() < 1e-12);
        let map = TempoMap::new(120.0, &[TempoChange { step: 8, bpm: 60.0 }]);
        assert!((map.seconds(8) - 1.0).abs() < 1e-12);
        assert!((map.seconds(12) - 2.0).abs() < 1e-12);
    }

    #[test]
    fn overlapping_notes_of_a_key_alternate() {
        let notes = [Note::new(60, 0, 8, 90), Note::new(60, 4, 6, 70)];
        let seq = Sequence::from_notes(&notes, 16, 120.0, &[], 0, 0);
        let kinds: Vec<_> = seq
            .events()
            .iter()
            .filter_map(|e| match e.event {
                Event::NoteOn { .. } => Some('+'),
                Event::NoteOff { .. } => Some('-'),
                _ => None,
            })
            .collect();
        assert_eq!(kinds, ['+', '-', '+', '-']);
        assert!((seq.duration() - 2.0).abs() < 1e-12);
    }

    #[test]
    fn loop_repeats_and_non_loop_ends() {
        let seq = Sequence::from_notes(&[Note::new(60, 0, 4, 90)], 8, 120.0, &[], 0, 0);
        let mut once = Sequencer::new(seq.clone(), false);
        let mut rec = Recorder::default();
        once.advance(10.0, &mut rec);
        assert!(once.is_finished());
        assert_eq!(rec.events.len(), 3);

        let mut looped = Sequencer::new(seq, true);
        let mut rec = Recorder::default();
        for _ in 0..35 {
            looped.advance(0.1, &mut rec);
        }
        assert!(!looped.is_finished());
        let ons = rec
            .events
            .iter()
            .filter(|e| matches!(e, Event::NoteOn { .. }))
            .count();
        assert_eq!(ons, 4, "3.5 s of a 1 s loop");
    }
}
