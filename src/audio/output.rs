//! Live sound through cpal: the default output device at its own sample rate, channel count and
//! sample format, with a [`Player`] inside the callback and a lock-free queue into it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{FromSample, SampleFormat, SizedSample, StreamConfig};

use super::AudioError;
use super::event::{Event, EventSink};
use super::player::{InstrumentSpec, Player};
use super::ring::Producer;

/// Events the queue holds: far more than a sequencer sends within one audio buffer.
const QUEUE_CAPACITY: usize = 8192;
/// How long [`AudioOutput::send`] waits for room in a full queue before dropping an event.
/// Only a stalled device fills it.
const SEND_TIMEOUT: Duration = Duration::from_millis(250);

/// An open output stream. Sending events to it ([`EventSink`]) is how notes reach the speaker;
/// dropping it closes the stream.
pub struct AudioOutput {
    // Declared first so it is dropped (and the callback stopped) before the producer.
    _stream: cpal::Stream,
    events: Producer<Event>,
    sample_rate: u32,
    channels: u16,
    device_name: String,
    failed: Arc<AtomicBool>,
    dropped: usize,
}

impl std::fmt::Debug for AudioOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioOutput")
            .field("device", &self.device_name)
            .field("sample_rate", &self.sample_rate)
            .field("channels", &self.channels)
            .finish()
    }
}

fn device_error(e: impl std::fmt::Display) -> AudioError {
    AudioError::Device(e.to_string())
}

impl AudioOutput {
    /// Opens the default output device and starts a stream playing `instrument` (built at the
    /// device's rate). No device, or one that cannot be opened, is an error, never a panic.
    pub fn open(instrument: &InstrumentSpec) -> Result<AudioOutput, AudioError> {
        let host = cpal::default_host();
        let device = host
            .default_output_device()
            .ok_or(AudioError::NoOutputDevice)?;
        let supported = device.default_output_config().map_err(|e| match e {
            cpal::DefaultStreamConfigError::DeviceNotAvailable
            | cpal::DefaultStreamConfigError::StreamTypeNotSupported => AudioError::NoOutputDevice,
            // ALSA lists a "default" device even with no sound card; it fails only when opened.
            // Say so plainly when the host has no real output device at all.
            other if !has_output_devices(&host) => {
                tracing::debug!("default output device: {other}");
                AudioError::NoOutputDevice
            }
            other => device_error(other),
        })?;
        let device_name = device.name().unwrap_or_else(|_| "audio device".to_string());
        let config: StreamConfig = supported.config();
        let sample_rate = config.sample_rate.0;
        let channels = config.channels;
        let (player, events) =
            Player::with_queue(instrument.build(sample_rate)?, sample_rate, QUEUE_CAPACITY);
        let failed = Arc::new(AtomicBool::new(false));
        let stream = match supported.sample_format() {
            SampleFormat::F32 => build::<f32>(&device, &config, player, &failed),
            SampleFormat::F64 => build::<f64>(&device, &config, player, &failed),
            SampleFormat::I16 => build::<i16>(&device, &config, player, &failed),
            SampleFormat::U16 => build::<u16>(&device, &config, player, &failed),
            SampleFormat::I32 => build::<i32>(&device, &config, player, &failed),
            SampleFormat::U32 => build::<u32>(&device, &config, player, &failed),
            SampleFormat::I8 => build::<i8>(&device, &config, player, &failed),
            SampleFormat::U8 => build::<u8>(&device, &config, player, &failed),
            other => Err(device_error(format!("unsupported sample format {other}"))),
        }?;
        stream.play().map_err(device_error)?;
        Ok(AudioOutput {
            _stream: stream,
            events,
            sample_rate,
            channels,
            device_name,
            failed,
            dropped: 0,
        })
    }

    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    pub fn channels(&self) -> u16 {
        self.channels
    }

    pub fn device_name(&self) -> &str {
        &self.device_name
    }

    /// True once the device reported an error (unplugged, say): playback has stopped.
    pub fn failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    /// Events dropped because the stream stopped taking them.
    pub fn dropped_events(&self) -> usize {
        self.dropped
    }
}

fn has_output_devices(host: &cpal::Host) -> bool {
    host.output_devices()
        .is_ok_and(|mut devices| devices.any(|d| d.default_output_config().is_ok()))
}

fn build<T: SizedSample + FromSample<f32>>(
    device: &cpal::Device,
    config: &StreamConfig,
    mut player: Player,
    failed: &Arc<AtomicBool>,
) -> Result<cpal::Stream, AudioError> {
    let channels = usize::from(config.channels);
    let failed = Arc::clone(failed);
    device
        .build_output_stream(
            config,
            move |data: &mut [T], _: &cpal::OutputCallbackInfo| {
                player.render_interleaved(data, channels);
            },
            // Called on the audio thread: only a flag, the main thread reports it.
            move |_err| failed.store(true, Ordering::Relaxed),
            None,
        )
        .map_err(|e| match e {
            cpal::BuildStreamError::DeviceNotAvailable => AudioError::NoOutputDevice,
            other => device_error(other),
        })
}

impl EventSink for AudioOutput {
    /// Queues the event for the callback. A full queue means the callback is behind: wait for
    /// it briefly rather than lose a note-off, but never forever.
    fn send(&mut self, event: Event) {
        let mut event = event;
        let mut deadline = None;
        loop {
            match self.events.push(event) {
                Ok(()) => return,
                Err(back) => event = back,
            }
            let limit = *deadline.get_or_insert_with(|| Instant::now() + SEND_TIMEOUT);
            if self.failed() || Instant::now() >= limit {
                self.dropped += 1;
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}
