//! SoundFont playback through rustysynth, driven by the same sequencer and player as the
//! built-in synth, with a real .sf2 when one is installed (Debian: `timgm6mb-soundfont`). Each
//! test prints a note and passes when none is, so the rest of the suite never needs one.

mod common;

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
    let hz = common::autocorrelation_hz(&(&x[SR as usize / 4..])[..4096], SR);
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
