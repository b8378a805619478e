//! The few channel messages the sequencer sends, and where they go.

/// A channel message: what the sequencer emits and every sink understands. Small and `Copy`
/// so it travels through the lock-free queue by value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    NoteOn {
        channel: u8,
        key: u8,
        velocity: u8,
    },
    NoteOff {
        channel: u8,
        key: u8,
    },
    ProgramChange {
        channel: u8,
        program: u8,
    },
    /// Controller 123: every note on the channel stops (with its release).
    AllNotesOff {
        channel: u8,
    },
}

impl Event {
    /// The channel (0..16) the message is for.
    pub fn channel(&self) -> u8 {
        match *self {
            Event::NoteOn { channel, .. }
            | Event::NoteOff { channel, .. }
            | Event::ProgramChange { channel, .. }
            | Event::AllNotesOff { channel } => channel & 0x0F,
        }
    }

    /// The message as MIDI bytes (the first `len` of the array are used). Out-of-range fields
    /// are masked so the bytes are always a valid message.
    pub fn to_midi(&self) -> ([u8; 3], usize) {
        let ch = self.channel();
        match *self {
            // A note-on with velocity 0 would be read as a note-off: send 1 instead.
            Event::NoteOn { key, velocity, .. } => {
                ([0x90 | ch, key & 0x7F, (velocity & 0x7F).max(1)], 3)
            }
            Event::NoteOff { key, .. } => ([0x80 | ch, key & 0x7F, 64], 3),
            Event::ProgramChange { program, .. } => ([0xC0 | ch, program & 0x7F, 0], 2),
            Event::AllNotesOff { .. } => ([0xB0 | ch, 123, 0], 3),
        }
    }
}

/// Where events go: a synth, a MIDI port, the audio queue, or a test recorder.
pub trait EventSink {
    fn send(&mut self, event: Event);
}

impl<S: EventSink + ?Sized> EventSink for &mut S {
    fn send(&mut self, event: Event) {
        (**self).send(event);
    }
}

/// A sink that keeps every event in the order it came, for tests and inspection.
#[derive(Debug, Default, Clone)]
pub struct Recorder {
    pub events: Vec<Event>,
}

impl EventSink for Recorder {
    fn send(&mut self, event: Event) {
        self.events.push(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn midi_bytes() {
        let on = Event::NoteOn {
            channel: 2,
            key: 60,
            velocity: 0,
        };
        assert_eq!(on.to_midi(), ([0x92, 60, 1], 3));
        let off = Event::NoteOff {
            channel: 15,
            key: 200,
        };
        assert_eq!(off.to_midi(), ([0x8F, 72, 64], 3));
        assert_eq!(
            Event::ProgramChange {
                channel: 0,
                program: 5
            }
            .to_midi(),
            ([0xC0, 5, 0], 2)
        );
        assert_eq!(
            Event::AllNotesOff { channel: 9 }.to_midi(),
            ([0xB9, 123, 0], 3)
        );
    }
}
