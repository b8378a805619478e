//! Sound: everything between a [`crate::roll::Roll`] (or a MIDI file) and a speaker, a DAW or
//! a WAV file.
//!
//! - [`Synth`]: the built-in polyphonic synth (64 voices, ADSR, a piano-like default and a few
//!   other timbres chosen by General MIDI program), or a SoundFont through rustysynth; both
//!   behind [`Instrument`], followed by a [`Limiter`] so nothing clips.
//! - [`Sequencer`]: plays a [`Sequence`] (notes on a tempo map) on its own clock, loops, and on
//!   stop sends a note-off for every sounding note and all-notes-off on every used channel.
//! - [`Player`]: what the audio callback owns. Events reach it through a preallocated lock-free
//!   SPSC [`ring`]; rendering allocates nothing, takes no lock and does no I/O.
//! - [`AudioOutput`] (cpal, the device's own rate and channel count), [`MidiOut`] (midir: ports
//!   by name or index, a virtual "diffroll" port on Linux and macOS) and [`render_wav`] (offline,
//!   through the same sequencer, instrument and limiter as live playback).
//!
//! Nothing here assumes a sound card or a MIDI system exists: their absence is an
//! [`AudioError`] that says what to do instead.

mod event;
mod limiter;
mod midi_in;
mod midi_out;
mod output;
mod player;
pub mod ring;
mod sequencer;
mod soundfont;
mod synth;
mod wav;

pub use event::{Event, EventSink, Recorder};
pub use limiter::Limiter;
pub use midi_in::{
    MAX_RECORDED_EVENTS, MidiInError, MidiRecorder, Recording, VIRTUAL_INPUT_PORT_NAME,
    list_input_ports, parse_message, piece_steps, quantize, select_input_port, step_seconds,
};
pub use midi_out::{MidiOut, VIRTUAL_PORT_NAME, list_output_ports, select_port};
pub use output::AudioOutput;
pub use player::{Instrument, InstrumentSpec, Player};
pub use sequencer::{
    Clock, Finish, ManualClock, Sequence, Sequencer, SystemClock, TimedEvent, run_sequencer,
    run_sequencer_observed,
};
pub use soundfont::{
    find_soundfonts, find_soundfonts_in, load_soundfont, resolve_soundfont, soundfont_dirs,
};
pub use synth::{MAX_VOICES, Synth, Timbre};
pub use wav::{
    MAX_RENDER_SECS, RENDER_TAIL_SECS, WAV_SAMPLE_RATE, render_sequence, render_wav,
    rendered_frames,
};

/// Why sound could not be made. Each message is one line a user can act on.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    #[error(
        "no audio output device found; use `diffroll render IN.mid -o OUT.wav` to listen offline"
    )]
    NoOutputDevice,
    #[error(
        "the audio output device cannot be used ({0}); use `diffroll render IN.mid -o OUT.wav` to listen offline"
    )]
    Device(String),
    #[error(
        "no MIDI system available (on Linux the ALSA sequencer, /dev/snd/seq, is missing); play through the built-in synth or render a WAV instead"
    )]
    NoMidiSystem,
    #[error("no MIDI output ports found; try `--virtual` to open a port a DAW can record from")]
    NoMidiPorts,
    #[error("no MIDI output port matches '{spec}'; ports: {available}")]
    NoSuchPort { spec: String, available: String },
    #[error("cannot open MIDI output '{port}': {reason}")]
    MidiConnect { port: String, reason: String },
    #[error("virtual MIDI ports are not supported on this system; name an existing port")]
    NoVirtualPorts,
    #[error("no SoundFont '{0}': not a file, and no installed .sf2 has that name")]
    SoundFontNotFound(String),
    #[error("cannot load SoundFont {path}: {reason}")]
    SoundFont { path: String, reason: String },
    #[error("the piece lasts {secs:.0} s; WAV renders are limited to {max:.0} s")]
    TooLong { secs: f64, max: f64 },
    #[error("cannot write WAV: {0}")]
    Wav(String),
}
