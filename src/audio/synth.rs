//! The built-in synth: 64 voices of table-lookup FM and additive tones with ADSR envelopes,
//! enough to hear a roll without a SoundFont. Everything is allocated in [`Synth::new`];
//! [`Synth::handle`] and [`Synth::render`] never allocate, lock or block.

use super::event::Event;

/// Voices that can sound at once. A note-on beyond this steals the quietest voice.
pub const MAX_VOICES: usize = 64;

const TABLE_BITS: u32 = 11;
const TABLE_LEN: usize = 1 << TABLE_BITS;
/// Phase bits below the table index: a `u32` phase is one full cycle.
const FRAC_SHIFT: u32 = 32 - TABLE_BITS;
/// Radians to `u32` phase units (2^32 per cycle), for phase modulation.
const PHASE_PER_RADIAN: f32 = 4_294_967_296.0 / std::f32::consts::TAU;
/// Envelope level (relative to the note's peak) below which a voice counts as silent and is
/// freed: -80 dB, far below what 16-bit output resolves, so stopping there is inaudible.
const SILENT: f32 = 1e-4;
/// Output of one voice at full velocity, before the limiter: keeps a few-note chord well below
/// full scale so the limiter only works on dense passages.
const VOICE_GAIN: f32 = 0.22;
/// Time constant of the offset that fades out a stolen voice's last sample, so stealing never
/// steps the waveform.
const DECLICK_SECS: f32 = 0.002;
/// General MIDI percussion channel: this synth has no drum kit, so its notes are ignored.
const DRUM_CHANNEL: u8 = 9;

/// The sounds the built-in synth makes. General MIDI programs map onto them
/// ([`Timbre::from_program`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Timbre {
    /// Bright hammer attack that mellows as it rings, two slightly detuned strings; high notes
    /// decay faster than low ones.
    #[default]
    Piano,
    /// Soft FM tone with a bell-like tine at the start.
    ElectricPiano,
    /// Three drawbars (8', 4', 2' and a touch of the fifth), steady while held.
    Organ,
    /// Slow attack, detuned, sustained: strings, choirs, pads, winds.
    Strings,
    /// Fast bright pluck that decays: guitars, basses, harp, harpsichord.
    Pluck,
}

impl Timbre {
    pub const ALL: [Timbre; 5] = [
        Timbre::Piano,
        Timbre::ElectricPiano,
        Timbre::Organ,
        Timbre::Strings,
        Timbre::Pluck,
    ];

    /// The closest timbre to a General MIDI program (0-based).
    pub fn from_program(program: u8) -> Timbre {
        match program & 0x7F {
            0..=3 => Timbre::Piano,
            4 | 5 | 8..=15 => Timbre::ElectricPiano,
            6 | 7 | 24..=39 | 45 | 46 | 104..=108 => Timbre::Pluck,
            16..=23 | 72..=79 => Timbre::Organ,
            40..=44 | 47..=71 | 80..=95 => Timbre::Strings,
            _ => Timbre::Piano,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Timbre::Piano => "piano",
            Timbre::ElectricPiano => "electric piano",
            Timbre::Organ => "organ",
            Timbre::Strings => "strings",
            Timbre::Pluck => "pluck",
        }
    }

    fn patch(&self) -> Patch {
        match self {
            Timbre::Piano => Patch {
                attack: 0.003,
                decay: 2.2,
                sustain: 0.0,
                release: 0.09,
                key_tracked_decay: true,
                index_start: 2.4,
                index_end: 0.45,
                index_decay: 0.3,
                detune_cents: 1.3,
                tine: 0.0,
                organ: false,
            },
            Timbre::ElectricPiano => Patch {
                attack: 0.002,
                decay: 1.8,
                sustain: 0.0,
                release: 0.12,
                key_tracked_decay: true,
                index_start: 1.4,
                index_end: 0.25,
                index_decay: 0.45,
                detune_cents: 0.0,
                tine: 0.3,
                organ: false,
            },
            Timbre::Organ => Patch {
                attack: 0.006,
                decay: 0.1,
                sustain: 1.0,
                release: 0.05,
                key_tracked_decay: false,
                index_start: 0.0,
                index_end: 0.0,
                index_decay: 1.0,
                detune_cents: 0.0,
                tine: 0.0,
                organ: true,
            },
            Timbre::Strings => Patch {
                attack: 0.14,
                decay: 0.4,
                sustain: 0.8,
                release: 0.3,
                key_tracked_decay: false,
                index_start: 1.8,
                index_end: 1.3,
                index_decay: 0.5,
                detune_cents: 7.0,
                tine: 0.0,
                organ: false,
            },
            Timbre::Pluck => Patch {
                attack: 0.002,
                decay: 0.6,
                sustain: 0.0,
                release: 0.07,
                key_tracked_decay: true,
                index_start: 3.0,
                index_end: 0.3,
                index_decay: 0.07,
                detune_cents: 0.0,
                tine: 0.0,
                organ: false,
            },
        }
    }
}

/// A timbre's settings in seconds; turned into per-sample coefficients at note-on.
#[derive(Debug, Clone, Copy)]
struct Patch {
    attack: f32,
    /// Time constant of the fall from peak to `sustain`.
    decay: f32,
    sustain: f32,
    /// Time constant of the fall to silence after note-off.
    release: f32,
    /// Shorten `decay` for high notes, as strings on a piano ring shorter the higher they are.
    key_tracked_decay: bool,
    /// FM modulation index (radians) at full velocity, falling to `index_end`.
    index_start: f32,
    index_end: f32,
    index_decay: f32,
    /// A second carrier this many cents above the first (0 = none).
    detune_cents: f32,
    /// Level of a short 14th-harmonic "tine" at the attack (0 = none).
    tine: f32,
    /// Additive drawbars instead of FM.
    organ: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Attack,
    Decay,
    Release,
    Done,
}

/// Linear attack, exponential decay and release: exponential segments never step, and the
/// attack starts from wherever the level is, so a retriggered voice does not click.
#[derive(Debug, Clone, Copy)]
struct Envelope {
    stage: Stage,
    level: f32,
    attack_step: f32,
    decay_coef: f32,
    sustain: f32,
    release_coef: f32,
}

impl Envelope {
    const IDLE: Envelope = Envelope {
        stage: Stage::Done,
        level: 0.0,
        attack_step: 1.0,
        decay_coef: 0.0,
        sustain: 0.0,
        release_coef: 0.0,
    };

    #[inline(always)]
    fn next(&mut self) -> f32 {
        match self.stage {
            Stage::Attack => {
                self.level += self.attack_step;
                if self.level >= 1.0 {
                    self.level = 1.0;
                    self.stage = Stage::Decay;
                }
            }
            Stage::Decay => {
                self.level = self.sustain + (self.level - self.sustain) * self.decay_coef;
                if self.level < SILENT {
                    self.level = 0.0;
                    self.stage = Stage::Done;
                }
            }
            Stage::Release => {
                self.level *= self.release_coef;
                if self.level < SILENT {
                    self.level = 0.0;
                    self.stage = Stage::Done;
                }
            }
            Stage::Done => {}
        }
        self.level
    }
}

#[derive(Debug, Clone, Copy)]
struct Voice {
    channel: u8,
    key: u8,
    /// Key still down (no note-off yet).
    held: bool,
    /// Note-on counter value when started: older voices are stolen first among equals.
    started: u64,
    organ: bool,
    phase: u32,
    phase_inc: u32,
    phase2: u32,
    phase2_inc: u32,
    /// 0 when the timbre has no second carrier.
    mix2: f32,
    amp: f32,
    gain_left: f32,
    gain_right: f32,
    env: Envelope,
    index: f32,
    index_end: f32,
    index_coef: f32,
    tine: f32,
    tine_coef: f32,
    declick_left: f32,
    declick_right: f32,
    last_left: f32,
    last_right: f32,
}

impl Voice {
    const IDLE: Voice = Voice {
        channel: 0,
        key: 0,
        held: false,
        started: 0,
        organ: false,
        phase: 0,
        phase_inc: 0,
        phase2: 0,
        phase2_inc: 0,
        mix2: 0.0,
        amp: 0.0,
        gain_left: 0.0,
        gain_right: 0.0,
        env: Envelope::IDLE,
        index: 0.0,
        index_end: 0.0,
        index_coef: 0.0,
        tine: 0.0,
        tine_coef: 0.0,
        declick_left: 0.0,
        declick_right: 0.0,
        last_left: 0.0,
        last_right: 0.0,
    };

    fn is_active(&self) -> bool {
        self.env.stage != Stage::Done
    }

    fn release(&mut self) {
        self.held = false;
        if self.is_active() {
            self.env.stage = Stage::Release;
        }
    }

    /// How much stealing this voice would be heard.
    fn loudness(&self) -> f32 {
        let released = if self.held { 1.0 } else { 0.25 };
        self.env.level * self.amp * released
    }
}

/// The built-in polyphonic synth. Feed it [`Event`]s, pull stereo samples out.
pub struct Synth {
    sample_rate: f32,
    /// One sine cycle plus a guard sample so interpolation never wraps.
    table: Box<[f32; TABLE_LEN + 1]>,
    voices: Box<[Voice; MAX_VOICES]>,
    timbres: [Timbre; 16],
    note_count: u64,
    declick_coef: f32,
}

impl std::fmt::Debug for Synth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Synth")
            .field("sample_rate", &self.sample_rate)
            .field("active_voices", &self.active_voices())
            .finish()
    }
}

impl Synth {
    /// A synth rendering at `sample_rate` Hz, every channel on the piano until a program change
    /// says otherwise.
    pub fn new(sample_rate: u32) -> Self {
        let sample_rate = sample_rate.max(1) as f32;
        let mut table = Box::new([0.0f32; TABLE_LEN + 1]);
        for (i, v) in table.iter_mut().enumerate() {
            *v = (i as f64 * std::f64::consts::TAU / TABLE_LEN as f64).sin() as f32;
        }
        Synth {
            sample_rate,
            table,
            voices: Box::new([Voice::IDLE; MAX_VOICES]),
            timbres: [Timbre::Piano; 16],
            note_count: 0,
            declick_coef: coef(DECLICK_SECS, sample_rate),
        }
    }

    pub fn sample_rate(&self) -> u32 {
        self.sample_rate as u32
    }

    /// Makes `channel` play `timbre` (until its next program change).
    pub fn set_timbre(&mut self, channel: u8, timbre: Timbre) {
        self.timbres[usize::from(channel & 0x0F)] = timbre;
    }

    /// Voices sounding now, held or releasing.
    pub fn active_voices(&self) -> usize {
        self.voices.iter().filter(|v| v.is_active()).count()
    }

    pub fn handle(&mut self, event: Event) {
        match event {
            Event::NoteOn {
                channel,
                key,
                velocity,
            } => {
                if velocity == 0 {
                    self.note_off(channel & 0x0F, key);
                } else if channel & 0x0F != DRUM_CHANNEL {
                    self.note_on(channel & 0x0F, key & 0x7F, velocity.min(127));
                }
            }
            Event::NoteOff { channel, key } => self.note_off(channel & 0x0F, key),
            Event::ProgramChange { channel, program } => {
                self.set_timbre(channel, Timbre::from_program(program));
            }
            Event::AllNotesOff { channel } => {
                let channel = channel & 0x0F;
                for v in self.voices.iter_mut().filter(|v| v.channel == channel) {
                    v.release();
                }
            }
        }
    }

    /// Stops every voice at once (with the declick fade, not a step), for a reset.
    pub fn silence(&mut self) {
        for v in self.voices.iter_mut() {
            if v.is_active() {
                v.declick_left = v.last_left;
                v.declick_right = v.last_right;
            }
            v.env = Envelope::IDLE;
            v.held = false;
        }
    }

    fn note_off(&mut self, channel: u8, key: u8) {
        for v in self.voices.iter_mut() {
            if v.held && v.channel == channel && v.key == key {
                v.release();
            }
        }
    }

    fn note_on(&mut self, channel: u8, key: u8, velocity: u8) {
        // A repeated key on a keyboard restrikes: the old note is damped as the new one starts.
        self.note_off(channel, key);
        let slot = match self.voices.iter().position(|v| !v.is_active()) {
            Some(free) => free,
            None => self.quietest_voice(),
        };
        self.note_count += 1;
        let patch = self.timbres[usize::from(channel)].patch();
        let sr = self.sample_rate;
        let freq = 440.0 * ((f32::from(key) - 69.0) / 12.0).exp2();
        let vel = f32::from(velocity) / 127.0;

        let mut decay = patch.decay;
        if patch.key_tracked_decay {
            decay = (decay * ((60.0 - f32::from(key)) / 24.0).exp2()).clamp(0.3, 8.0);
        }
        // FM bandwidth grows with the index: narrow it for high notes so nothing aliases.
        let index_scale = (0.35 + 0.65 * vel) * (1500.0 / freq).min(1.0);
        let tine_ok = freq * 14.0 < sr * 0.45;
        // Gentle stereo spread by pitch, like sitting at a piano; equal-power pan.
        let pan = ((f32::from(key) - 64.0) / 64.0 * 0.3).clamp(-1.0, 1.0);
        let angle = (pan + 1.0) * std::f32::consts::FRAC_PI_4;
        let phase_inc = phase_increment(freq, sr);
        let phase2_inc = if patch.detune_cents > 0.0 {
            phase_increment(freq * (patch.detune_cents / 1200.0).exp2(), sr)
        } else {
            0
        };

        let old = self.voices[slot];
        // Whatever the slot was still putting out fades away instead of stopping dead.
        let (declick_left, declick_right) = if old.is_active() {
            (old.last_left, old.last_right)
        } else {
            (old.declick_left, old.declick_right)
        };
        self.voices[slot] = Voice {
            channel,
            key,
            held: true,
            started: self.note_count,
            organ: patch.organ,
            phase: 0,
            phase_inc,
            // Start the second string a quarter cycle apart so the two do not add up to a
            // peak at the very first sample.
            phase2: 1 << 30,
            phase2_inc,
            mix2: if phase2_inc > 0 { 0.5 } else { 0.0 },
            // Loudness follows velocity on a curve close to how players hear dynamics.
            amp: VOICE_GAIN * (0.04 + 0.96 * vel * vel),
            gain_left: angle.cos() * std::f32::consts::SQRT_2,
            gain_right: angle.sin() * std::f32::consts::SQRT_2,
            env: Envelope {
                stage: Stage::Attack,
                level: 0.0,
                attack_step: 1.0 / (patch.attack * sr).max(1.0),
                decay_coef: coef(decay, sr),
                sustain: patch.sustain,
                release_coef: coef(patch.release, sr),
            },
            index: patch.index_start * index_scale,
            index_end: patch.index_end * index_scale,
            index_coef: coef(patch.index_decay, sr),
            tine: if tine_ok { patch.tine * vel } else { 0.0 },
            tine_coef: coef(0.06, sr),
            declick_left,
            declick_right,
            last_left: 0.0,
            last_right: 0.0,
        };
    }

    fn quietest_voice(&self) -> usize {
        let mut best = 0;
        for (i, v) in self.voices.iter().enumerate() {
            let (a, b) = (v.loudness(), self.voices[best].loudness());
            if a < b || (a == b && v.started < self.voices[best].started) {
                best = i;
            }
        }
        best
    }

    /// Renders the next `left.len()` stereo frames, overwriting both buffers (which must be the
    /// same length; the shorter one decides).
    pub fn render(&mut self, left: &mut [f32], right: &mut [f32]) {
        let n = left.len().min(right.len());
        let (left, right) = (&mut left[..n], &mut right[..n]);
        left.fill(0.0);
        right.fill(0.0);
        let table = &*self.table;
        let declick_coef = self.declick_coef;
        for voice in self.voices.iter_mut() {
            if !voice.is_active() && voice.declick_left == 0.0 && voice.declick_right == 0.0 {
                continue;
            }
            if voice.organ {
                render_voice::<true>(voice, table, declick_coef, left, right);
            } else {
                render_voice::<false>(voice, table, declick_coef, left, right);
            }
        }
    }
}

/// Per-sample multiplier that makes a level fall to 1/e in `secs`.
fn coef(secs: f32, sample_rate: f32) -> f32 {
    (-1.0 / (secs * sample_rate).max(1.0)).exp()
}

fn phase_increment(freq: f32, sample_rate: f32) -> u32 {
    let cycles_per_sample = f64::from(freq) / f64::from(sample_rate);
    // Notes above Nyquist (never in MIDI range at 44.1 kHz) wrap instead of overflowing.
    (cycles_per_sample.clamp(0.0, 0.5) * 4_294_967_296.0) as u32
}

#[inline(always)]
fn sine(table: &[f32; TABLE_LEN + 1], phase: u32) -> f32 {
    let i = (phase >> FRAC_SHIFT) as usize;
    let frac = ((phase >> (FRAC_SHIFT - 16)) & 0xFFFF) as f32 * (1.0 / 65_536.0);
    let (a, b) = (table[i], table[i + 1]);
    a + (b - a) * frac
}

fn render_voice<const ORGAN: bool>(
    v: &mut Voice,
    table: &[f32; TABLE_LEN + 1],
    declick_coef: f32,
    left: &mut [f32],
    right: &mut [f32],
) {
    let (gl, gr) = (v.gain_left * v.amp, v.gain_right * v.amp);
    let (mut last_l, mut last_r) = (v.last_left, v.last_right);
    for (l, r) in left.iter_mut().zip(right.iter_mut()) {
        let env = v.env.next();
        let tone = if ORGAN {
            let p = v.phase;
            0.55 * sine(table, p)
                + 0.3 * sine(table, p.wrapping_mul(2))
                + 0.12 * sine(table, p.wrapping_mul(3))
                + 0.18 * sine(table, p.wrapping_mul(4))
        } else {
            v.index = v.index_end + (v.index - v.index_end) * v.index_coef;
            let modulation = v.index * sine(table, v.phase);
            let offset = (modulation * PHASE_PER_RADIAN) as i64 as u32;
            let mut s = sine(table, v.phase.wrapping_add(offset));
            if v.mix2 > 0.0 {
                s = (1.0 - v.mix2) * s + v.mix2 * sine(table, v.phase2.wrapping_add(offset));
                v.phase2 = v.phase2.wrapping_add(v.phase2_inc);
            }
            if v.tine > 1e-4 {
                s += v.tine * sine(table, v.phase.wrapping_mul(14));
                v.tine *= v.tine_coef;
            }
            s
        };
        v.phase = v.phase.wrapping_add(v.phase_inc);
        let s = tone * env;
        last_l = s * gl + v.declick_left;
        last_r = s * gr + v.declick_right;
        v.declick_left *= declick_coef;
        v.declick_right *= declick_coef;
        *l += last_l;
        *r += last_r;
    }
    if v.declick_left.abs() < 1e-6 && v.declick_right.abs() < 1e-6 {
        v.declick_left = 0.0;
        v.declick_right = 0.0;
    }
    v.last_left = last_l;
    v.last_right = last_r;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on(key: u8, velocity: u8) -> Event {
        Event::NoteOn {
            channel: 0,
            key,
            velocity,
        }
    }

    #[test]
    fn programs_map_to_timbres() {
        assert_eq!(Timbre::from_program(0), Timbre::Piano);
        assert_eq!(Timbre::from_program(4), Timbre::ElectricPiano);
        assert_eq!(Timbre::from_program(19), Timbre::Organ);
        assert_eq!(Timbre::from_program(48), Timbre::Strings);
        assert_eq!(Timbre::from_program(24), Timbre::Pluck);
        assert_eq!(Timbre::from_program(200), Timbre::from_program(200 & 0x7F));
    }

    #[test]
    fn more_notes_than_voices_steal_and_release_frees() {
        let mut synth = Synth::new(44_100);
        for key in 0..100u8 {
            synth.handle(on(key, 90));
        }
        assert_eq!(synth.active_voices(), MAX_VOICES);
        for key in 0..100u8 {
            synth.handle(Event::NoteOff { channel: 0, key });
        }
        let (mut l, mut r) = (vec![0.0; 44_100], vec![0.0; 44_100]);
        synth.render(&mut l, &mut r);
        assert_eq!(synth.active_voices(), 0, "released voices end");
    }

    #[test]
    fn drum_channel_is_silent_and_velocity_zero_is_note_off() {
        let mut synth = Synth::new(44_100);
        synth.handle(Event::NoteOn {
            channel: 9,
            key: 38,
            velocity: 100,
        });
        assert_eq!(synth.active_voices(), 0);
        synth.handle(on(60, 100));
        synth.handle(on(60, 0));
        assert!(synth.voices.iter().all(|v| !v.held));
    }

    #[test]
    fn every_timbre_sounds_and_ends() {
        for timbre in Timbre::ALL {
            let mut synth = Synth::new(48_000);
            synth.set_timbre(0, timbre);
            synth.handle(on(64, 100));
            let (mut l, mut r) = (vec![0.0; 24_000], vec![0.0; 24_000]);
            synth.render(&mut l, &mut r);
            let energy: f32 = l.iter().map(|x| x * x).sum();
            assert!(energy > 1.0, "{} is audible", timbre.name());
            synth.handle(Event::AllNotesOff { channel: 0 });
            // The longest release (strings) reaches -80 dB in under 3 s.
            for _ in 0..8 {
                synth.render(&mut l, &mut r);
            }
            assert_eq!(synth.active_voices(), 0, "{} ends", timbre.name());
        }
    }
}
