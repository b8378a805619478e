//! What makes the samples: an [`Instrument`] (built-in synth or SoundFont) and the limiter,
//! wrapped in a [`Player`] that the audio callback (live) or the offline renderer owns. The same
//! `Player` code runs in both, so a WAV sounds like playback.

use std::sync::Arc;

use cpal::{FromSample, Sample};

use super::AudioError;
use super::event::{Event, EventSink};
use super::limiter::Limiter;
use super::ring::{Consumer, Producer, ring};
use super::synth::Synth;

/// Frames rendered per inner step; the scratch buffers hold this many, so a callback asking for
/// more is served in pieces instead of allocating.
const CHUNK: usize = 512;

/// Which instrument to build once the sample rate is known (a device decides it).
#[derive(Clone, Default)]
pub enum InstrumentSpec {
    #[default]
    Builtin,
    SoundFont(Arc<rustysynth::SoundFont>),
}

impl std::fmt::Debug for InstrumentSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InstrumentSpec::Builtin => f.write_str("Builtin"),
            InstrumentSpec::SoundFont(sf) => {
                write!(f, "SoundFont({})", sf.get_info().get_bank_name())
            }
        }
    }
}

impl InstrumentSpec {
    /// The instrument, rendering at `sample_rate` Hz.
    pub fn build(&self, sample_rate: u32) -> Result<Instrument, AudioError> {
        match self {
            InstrumentSpec::Builtin => Ok(Instrument::Builtin(Box::new(Synth::new(sample_rate)))),
            InstrumentSpec::SoundFont(sound_font) => {
                let rate = i32::try_from(sample_rate).unwrap_or(i32::MAX);
                let settings = rustysynth::SynthesizerSettings::new(rate);
                let synth = rustysynth::Synthesizer::new(sound_font, &settings)
                    .map_err(|e| AudioError::Device(format!("SoundFont synth: {e}")))?;
                Ok(Instrument::SoundFont(Box::new(synth)))
            }
        }
    }
}

/// A sound source driven by [`Event`]s. Both kinds allocate nothing after construction.
pub enum Instrument {
    Builtin(Box<Synth>),
    SoundFont(Box<rustysynth::Synthesizer>),
}

impl std::fmt::Debug for Instrument {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Instrument::Builtin(s) => s.fmt(f),
            Instrument::SoundFont(_) => f.write_str("SoundFont synthesizer"),
        }
    }
}

impl Instrument {
    pub fn handle(&mut self, event: Event) {
        match self {
            Instrument::Builtin(synth) => synth.handle(event),
            Instrument::SoundFont(synth) => {
                let ch = i32::from(event.channel());
                match event {
                    Event::NoteOn { key, velocity, .. } => {
                        synth.note_on(ch, i32::from(key & 0x7F), i32::from(velocity & 0x7F));
                    }
                    Event::NoteOff { key, .. } => synth.note_off(ch, i32::from(key & 0x7F)),
                    Event::ProgramChange { program, .. } => {
                        synth.process_midi_message(ch, 0xC0, i32::from(program & 0x7F), 0);
                    }
                    Event::AllNotesOff { .. } => synth.note_off_all_channel(ch, false),
                }
            }
        }
    }

    /// Overwrites both buffers (same length) with the next frames.
    pub fn render(&mut self, left: &mut [f32], right: &mut [f32]) {
        let n = left.len().min(right.len());
        match self {
            Instrument::Builtin(synth) => synth.render(&mut left[..n], &mut right[..n]),
            Instrument::SoundFont(synth) => synth.render(&mut left[..n], &mut right[..n]),
        }
    }
}

/// The sample-making end of playback: events in (directly or from a lock-free queue), limited
/// stereo out, in any channel count and sample format. Real-time safe: after construction no
/// method allocates, locks or does I/O.
pub struct Player {
    instrument: Instrument,
    limiter: Limiter,
    events: Option<Consumer<Event>>,
    left: Box<[f32]>,
    right: Box<[f32]>,
}

impl std::fmt::Debug for Player {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Player")
            .field("instrument", &self.instrument)
            .field("queued", &self.events.is_some())
            .finish()
    }
}

impl Player {
    /// A player fed directly through [`Player::handle`] (offline rendering).
    pub fn new(instrument: Instrument, sample_rate: u32) -> Self {
        Player {
            instrument,
            limiter: Limiter::new(sample_rate),
            events: None,
            left: vec![0.0; CHUNK].into_boxed_slice(),
            right: vec![0.0; CHUNK].into_boxed_slice(),
        }
    }

    /// A player that also drains a queue of at least `capacity` events at the start of every
    /// render; push into the returned producer from another thread.
    pub fn with_queue(
        instrument: Instrument,
        sample_rate: u32,
        capacity: usize,
    ) -> (Self, Producer<Event>) {
        let (producer, consumer) = ring(capacity);
        let mut player = Player::new(instrument, sample_rate);
        player.events = Some(consumer);
        (player, producer)
    }

    pub fn handle(&mut self, event: Event) {
        self.instrument.handle(event);
    }

    fn drain_queue(&mut self) {
        if let Some(events) = self.events.as_mut() {
            while let Some(event) = events.pop() {
                self.instrument.handle(event);
            }
        }
    }

    /// Fills `left` and `right` (the shorter length decides) with limited stereo.
    pub fn render(&mut self, left: &mut [f32], right: &mut [f32]) {
        self.drain_queue();
        let n = left.len().min(right.len());
        self.instrument.render(&mut left[..n], &mut right[..n]);
        self.limiter.process(&mut left[..n], &mut right[..n]);
    }

    /// Fills an interleaved buffer of `channels` channels: stereo on the first two, both mixed
    /// on a mono device, silence on any further channels. This is the audio callback's body.
    pub fn render_interleaved<T: Sample + FromSample<f32>>(
        &mut self,
        out: &mut [T],
        channels: usize,
    ) {
        if channels == 0 {
            return;
        }
        self.drain_queue();
        for frames in out.chunks_mut(CHUNK * channels) {
            let n = frames.len() / channels;
            let (left, right) = (&mut self.left[..n], &mut self.right[..n]);
            self.instrument.render(left, right);
            self.limiter.process(left, right);
            for ((frame, &l), &r) in frames
                .chunks_exact_mut(channels)
                .zip(left.iter())
                .zip(right.iter())
            {
                if channels == 1 {
                    frame[0] = T::from_sample(0.5 * (l + r));
                } else {
                    frame[0] = T::from_sample(l);
                    frame[1] = T::from_sample(r);
                    for extra in &mut frame[2..] {
                        *extra = T::EQUILIBRIUM;
                    }
                }
            }
            // A buffer that is not a whole number of frames: silence the partial frame.
            for sample in frames.chunks_exact_mut(channels).into_remainder() {
                *sample = T::EQUILIBRIUM;
            }
        }
    }
}

impl EventSink for Player {
    fn send(&mut self, event: Event) {
        self.handle(event);
    }
}
