//! Offline rendering: a [`Sequence`] through the same [`Sequencer`], [`Player`] and limiter as
//! live playback, as fast as the CPU allows, into 16-bit stereo WAV bytes.

use super::AudioError;
use super::player::{Instrument, InstrumentSpec, Player};
use super::sequencer::{Sequence, Sequencer};

/// Sample rate of rendered WAV files (CD audio).
pub const WAV_SAMPLE_RATE: u32 = 44_100;
/// Seconds rendered after the sequence ends, so release tails ring out instead of being cut.
pub const RENDER_TAIL_SECS: f64 = 1.5;
/// Frames between sequencer steps: events land within 1.5 ms of their time at 44.1 kHz, the
/// same granularity as a small audio callback.
const BLOCK: usize = 64;

/// Longest piece rendered to WAV: two hours is 1.3 GB of 16-bit stereo, kept in memory until
/// the atomic write, and well inside the format's 4 GiB limit.
pub const MAX_RENDER_SECS: f64 = 2.0 * 60.0 * 60.0;

/// Frames a render of `sequence` at `sample_rate` produces: its duration plus the tail.
pub fn rendered_frames(sequence: &Sequence, sample_rate: u32) -> usize {
    ((sequence.duration() + RENDER_TAIL_SECS) * f64::from(sample_rate)).round() as usize
}

/// Plays `sequence` once on `instrument`, handing each block of interleaved stereo samples
/// (in -1..1) to `sink` as it is made.
fn render_blocks(
    sequence: &Sequence,
    instrument: Instrument,
    sample_rate: u32,
    mut sink: impl FnMut(&[f32]),
) {
    let sample_rate = sample_rate.max(1);
    let mut player = Player::new(instrument, sample_rate);
    let mut sequencer = Sequencer::new(sequence.clone(), false);
    let mut left = rendered_frames(sequence, sample_rate);
    let mut block = [0.0f32; BLOCK * 2];
    sequencer.advance(0.0, &mut player);
    while left > 0 {
        let frames = left.min(BLOCK);
        let block = &mut block[..frames * 2];
        player.render_interleaved(block, 2);
        sink(block);
        left -= frames;
        sequencer.advance(frames as f64 / f64::from(sample_rate), &mut player);
        if sequencer.is_finished() {
            // Same as pressing stop at the end of live playback.
            sequencer.stop(&mut player);
        }
    }
}

/// Plays `sequence` once on `instrument` and returns interleaved stereo samples in -1..1:
/// [`rendered_frames`] frames.
pub fn render_sequence(sequence: &Sequence, instrument: Instrument, sample_rate: u32) -> Vec<f32> {
    let mut out = Vec::with_capacity(rendered_frames(sequence, sample_rate) * 2);
    render_blocks(sequence, instrument, sample_rate, |b| {
        out.extend_from_slice(b)
    });
    out
}

/// `sequence` rendered on `instrument` as a complete WAV file: 44.1 kHz, stereo, 16-bit PCM.
pub fn render_wav(sequence: &Sequence, instrument: &InstrumentSpec) -> Result<Vec<u8>, AudioError> {
    if sequence.duration() > MAX_RENDER_SECS {
        return Err(AudioError::TooLong {
            secs: sequence.duration(),
            max: MAX_RENDER_SECS,
        });
    }
    let frames = rendered_frames(sequence, WAV_SAMPLE_RATE);
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: WAV_SAMPLE_RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let wav_error = |e: hound::Error| AudioError::Wav(e.to_string());
    let mut bytes = std::io::Cursor::new(Vec::with_capacity(44 + frames * 4));
    let mut writer = hound::WavWriter::new(&mut bytes, spec).map_err(wav_error)?;
    let mut result = Ok(());
    render_blocks(
        sequence,
        instrument.build(WAV_SAMPLE_RATE)?,
        WAV_SAMPLE_RATE,
        |block| {
            if result.is_err() {
                return;
            }
            let mut samples = writer.get_i16_writer(block.len() as u32);
            for &s in block {
                samples.write_sample(to_i16(s));
            }
            result = samples.flush();
        },
    );
    result.map_err(wav_error)?;
    writer.finalize().map_err(wav_error)?;
    Ok(bytes.into_inner())
}

fn to_i16(sample: f32) -> i16 {
    let s = if sample.is_finite() {
        sample.clamp(-1.0, 1.0)
    } else {
        0.0
    };
    (s * 32_767.0).round() as i16
}
