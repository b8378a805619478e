//! SoundFont playback through rustysynth, driven by the same sequencer and player as the
//! built-in synth, with a real .sf2 when one is installed (Debian: `timgm6mb-soundfont`). Each
//! test prints a note and passes when none is, so the rest of the suite never needs one.

use std::sync::Arc;

use diffroll::audio::{
    Event, Instrument, InstrumentSpec, Limiter, Player, Sequence, find_soundfonts, load_soundfont,
    render_sequence, rendered_frames,
};
use diffroll::roll::{Note, Roll};

const SR: u32 = 44_100;

/// The smallest installed SoundFont, loaded.
fn installed() -> Option<Arc<rustysynth::SoundFont>> {
    let Some(path) = find_soundfonts()
        .into_iter()
        .min_by_key(|p| std::fs::metadata(p).map_or(u64::MAX, |m| m.len()))
    else {
        eprintln!("note: no .sf2 installed (apt-get install timgm6mb-soundfont); skipped");
        return None;
    };
    Some(load_soundfont(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

fn rms(x: &[f32]) -> f32 {
    (x.iter().map(|v| v * v).sum::<f32>() / x.len().max(1) as f32).sqrt()
}

fn left(interleaved: &[f32]) -> Vec<f32> {
    interleaved.iter().step_by(2).copied().collect()
}

/// Fundamental by normalized autocorrelation (50..2000 Hz) with parabolic refinement:
/// SoundFont samples carry overtones, breath and vibrato that defeat zero-crossing counts.
fn pitch_hz(x: &[f32]) -> f64 {
    let x: Vec<f64> = x[..4096].iter().map(|&v| f64::from(v)).collect();
    let n = x.len() / 2;
    let corr = |lag: usize| -> f64 {
        let (mut xy, mut xx, mut yy) = (0.0, 0.0, 0.0);
        for i in 0..n {
            xy += x[i] * x[i + lag];
            xx += x[i] * x[i];
            yy += x[i + lag] * x[i + lag];
        }
        xy / (xx * yy).sqrt().max(1e-30)
    };
    let (min_lag, max_lag) = ((SR / 2000) as usize, (SR / 50) as usize);
    let values: Vec<f64> = (min_lag..=max_lag).map(corr).collect();
    let best = values.iter().cloned().fold(f64::MIN, f64::max);
    let i = (1..values.len() - 1)
        .find(|&i| {
            values[i] >= 0.9 * best && values[i] >= values[i - 1] && values[i] >= values[i + 1]
        })
        .expect("a periodic signal");
    let (y0, y1, y2) = (values[i - 1], values[i], values[i + 1]);
    let shift = 0.5 * (y0 - y2) / (y0 - 2.0 * y1 + y2);
    f64::from(SR) / ((min_lag + i) as f64 + shift)
}

#[test]
fn a_chord_through_a_soundfont_is_audible_limited_and_ends() {
    let Some(sf) = installed() else { return };
    let roll = Roll::from_notes(
        &[
            Note::new(60, 0, 8, 100),
            Note::new(64, 0, 8, 100),
            Note::new(67, 0, 8, 100),
        ],
        8,
    );
    let seq = Sequence::from_roll(&roll);
    let instrument = InstrumentSpec::SoundFont(sf).build(SR).unwrap();
    let out = render_sequence(&seq, instrument, SR);
    assert_eq!(out.len(), rendered_frames(&seq, SR) * 2);
    let peak = out.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(peak <= Limiter::CEILING + 1e-6, "peak {peak}");
    let held = &out[..SR as usize * 2];
    assert!(rms(held) > 0.005, "audible: rms {}", rms(held));
    // The notes end with the sequence: the last 100 ms are (near) silence.
    let tail = &out[out.len() - 8820..];
    assert!(rms(tail) < rms(held) * 0.01, "released: rms {}", rms(tail));
}

#[test]
fn a4_through_a_soundfont_is_440_hz() {
    let Some(sf) = installed() else { return };
    let mut player = Player::new(InstrumentSpec::SoundFont(sf).build(SR).unwrap(), SR);
    player.handle(Event::NoteOn {
        channel: 0,
        key: 69,
        velocity: 100,
    });
    let mut buf = vec![0.0f32; SR as usize * 2];
    player.render_interleaved(&mut buf, 2);
    let x = left(&buf);
    let hz = pitch_hz(&x[SR as usize / 4..]);
    assert!((hz - 440.0).abs() < 440.0 * 0.01, "A4 at {hz} Hz");
}

#[test]
fn program_changes_reach_the_soundfont() {
    let Some(sf) = installed() else { return };
    let spec = InstrumentSpec::SoundFont(sf);
    let sound = |program: u8| {
        let mut player = Player::new(spec.build(SR).unwrap(), SR);
        player.handle(Event::ProgramChange {
            channel: 0,
            program,
        });
        player.handle(Event::NoteOn {
            channel: 0,
            key: 60,
            velocity: 100,
        });
        let mut buf = vec![0.0f32; SR as usize];
        player.render_interleaved(&mut buf, 2);
        left(&buf)
    };
    let (piano, organ) = (sound(0), sound(19));
    let difference: Vec<f32> = piano.iter().zip(&organ).map(|(a, b)| a - b).collect();
    assert!(
        rms(&difference) > 0.2 * rms(&piano),
        "piano and church organ sound alike"
    );
}

#[test]
fn builtin_and_soundfont_share_the_player() {
    // Same events, same player code: both kinds answer note-on and all-notes-off.
    let mut specs = vec![InstrumentSpec::Builtin];
    specs.extend(installed().map(InstrumentSpec::SoundFont));
    for spec in specs {
        let instrument: Instrument = spec.build(48_000).unwrap();
        let mut player = Player::new(instrument, 48_000);
        player.handle(Event::NoteOn {
            channel: 0,
            key: 64,
            velocity: 90,
        });
        let mut buf = vec![0.0f32; 9600];
        player.render_interleaved(&mut buf, 2);
        assert!(rms(&buf) > 0.001, "{spec:?} sounds");
        player.handle(Event::AllNotesOff { channel: 0 });
        for _ in 0..50 {
            player.render_interleaved(&mut buf, 2);
        }
        assert!(rms(&buf) < 1e-3, "{spec:?} stops: rms {}", rms(&buf));
    }
}
