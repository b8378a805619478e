//! The built-in synth heard offline through the same `Player` (synth + limiter) the audio
//! callback runs: no clipping, no clicks at note start or end, silence after release, the
//! right pitch at any device rate, velocity that matters, every channel layout and sample type.

mod common;

use diffroll::audio::{Event, Instrument, Limiter, MAX_VOICES, Player, Synth, Timbre};

const SR: u32 = 44_100;

fn on(key: u8, velocity: u8) -> Event {
    Event::NoteOn {
        channel: 0,
        key,
        velocity,
    }
}

fn off(key: u8) -> Event {
    Event::NoteOff { channel: 0, key }
}

fn player(timbre: Timbre, sample_rate: u32) -> Player {
    let mut synth = Synth::new(sample_rate);
    synth.set_timbre(0, timbre);
    Player::new(Instrument::Builtin(Box::new(synth)), sample_rate)
}

/// Left channel of `secs` seconds, rendered in callback-sized blocks.
fn render(player: &mut Player, secs: f64, sample_rate: u32) -> Vec<f32> {
    let frames = (secs * f64::from(sample_rate)) as usize;
    let mut left = vec![0.0f32; frames];
    let mut right = vec![0.0f32; frames];
    for (l, r) in left.chunks_mut(256).zip(right.chunks_mut(256)) {
        player.render(l, r);
    }
    left
}

fn peak(x: &[f32]) -> f32 {
    x.iter().fold(0.0, |m, v| m.max(v.abs()))
}

fn rms(x: &[f32]) -> f32 {
    (x.iter().map(|v| v * v).sum::<f32>() / x.len().max(1) as f32).sqrt()
}

fn max_jump(x: &[f32]) -> f32 {
    x.windows(2).fold(0.0, |m, w| m.max((w[1] - w[0]).abs()))
}

/// Positive-going zero crossings per second between two times.
fn zero_crossing_hz(x: &[f32], from: f64, to: f64, sample_rate: u32) -> f64 {
    let (a, b) = (
        (from * f64::from(sample_rate)) as usize,
        (to * f64::from(sample_rate)) as usize,
    );
    let ups: Vec<usize> = (a..b).filter(|&i| x[i - 1] < 0.0 && x[i] >= 0.0).collect();
    let (first, last) = (ups[0], ups[ups.len() - 1]);
    (ups.len() - 1) as f64 * f64::from(sample_rate) / (last - first) as f64
}

#[test]
fn c_major_chord_is_audible_unclipped_and_smooth() {
    let mut p = player(Timbre::Piano, SR);
    for key in [60, 64, 67] {
        p.handle(on(key, 100));
    }
    let held = render(&mut p, 1.0, SR);
    for key in [60, 64, 67] {
        p.handle(off(key));
    }
    let released = render(&mut p, 2.0, SR);
    let all: Vec<f32> = held.iter().chain(&released).copied().collect();

    assert!(peak(&all) <= 1.0, "peak {}", peak(&all));
    assert!(rms(&held) > 0.02, "audible: rms {}", rms(&held));
    // The attack ramps from zero: the first samples are near silence, not the full waveform.
    assert!(peak(&held[..8]) < 0.02, "onset click: {:?}", &held[..8]);
    // No jump at the edges beats what the tone itself does next to them: the first 3 ms
    // against the next 20 ms, the 50 ms after note-off against the 50 ms before.
    let (attack, after_attack) = (max_jump(&held[..132]), max_jump(&held[132..1014]));
    assert!(attack <= after_attack, "attack {attack} vs {after_attack}");
    let (release, before_release) = (
        max_jump(&released[..2205]),
        max_jump(&held[held.len() - 2205..]),
    );
    assert!(
        release <= before_release * 1.1,
        "release {release} vs {before_release}"
    );
    // Released notes die away to true silence.
    assert!(peak(&released[released.len() - 4410..]) == 0.0);
}

#[test]
fn the_click_measure_catches_a_click() {
    // A sine switched on and off at full amplitude: what the chord test must reject.
    let f = 440.0 / SR as f32;
    let gated: Vec<f32> = (0..4410)
        .map(|i| {
            if (1000..3000).contains(&i) {
                0.3 * (std::f32::consts::TAU * f * i as f32 + 1.0).sin()
            } else {
                0.0
            }
        })
        .collect();
    let (onset, after_onset) = (max_jump(&gated[999..1132]), max_jump(&gated[1132..2014]));
    assert!(onset > after_onset);
    let (end, before_end) = (max_jump(&gated[2995..3200]), max_jump(&gated[2500..2995]));
    assert!(end > before_end * 1.1);
}

#[test]
fn a4_is_440_hz() {
    let mut p = player(Timbre::Piano, SR);
    p.handle(on(69, 90));
    let x = render(&mut p, 2.0, SR);
    let hz = zero_crossing_hz(&x, 0.6, 1.6, SR);
    assert!((hz - 440.0).abs() < 1.0, "A4 at {hz} Hz");
}

#[test]
fn every_timbre_is_in_tune_at_every_device_rate() {
    for rate in [22_050, 44_100, 48_000, 96_000] {
        for timbre in Timbre::ALL {
            let mut p = player(timbre, rate);
            p.handle(on(57, 100));
            let x = render(&mut p, 0.6, rate);
            let window = &x[(rate as usize) * 3 / 10..(rate as usize) * 3 / 10 + 4096];
            let hz = common::autocorrelation_hz(window, rate);
            assert!(
                (hz - 220.0).abs() < 220.0 * 0.005,
                "{} at {rate} Hz: A3 measured {hz} Hz",
                timbre.name()
            );
        }
    }
}

#[test]
fn velocity_changes_loudness() {
    let level = |velocity: u8| {
        let mut p = player(Timbre::Piano, SR);
        p.handle(on(60, velocity));
        rms(&render(&mut p, 0.5, SR))
    };
    let (soft, mid, loud) = (level(25), level(64), level(120));
    assert!(soft < mid && mid < loud, "{soft} {mid} {loud}");
    assert!(loud > 4.0 * soft, "soft {soft} vs loud {loud}");
}

#[test]
fn sixty_four_loud_voices_are_limited_not_clipped() {
    for timbre in Timbre::ALL {
        let mut p = player(timbre, SR);
        for key in 30..30 + MAX_VOICES as u8 {
            p.handle(on(key, 127));
        }
        let x = render(&mut p, 1.0, SR);
        assert!(
            peak(&x) <= Limiter::CEILING + 1e-6,
            "{}: peak {}",
            timbre.name(),
            peak(&x)
        );
        assert!(rms(&x) > 0.05, "{}: rms {}", timbre.name(), rms(&x));
    }
}

#[test]
fn stolen_voices_do_not_click() {
    let mut p = player(Timbre::Organ, SR);
    for key in 40..40 + MAX_VOICES as u8 {
        p.handle(on(key, 60));
    }
    let before = render(&mut p, 0.5, SR);
    // Every further note steals a sounding voice mid-waveform.
    for key in 110..120 {
        p.handle(on(key, 60));
    }
    let after = render(&mut p, 0.05, SR);
    let steady = max_jump(&before[11_025..]);
    assert!(
        max_jump(&after[..220]) <= steady * 1.5,
        "steal {} vs steady {steady}",
        max_jump(&after[..220])
    );
}

#[test]
fn interleaved_output_fits_any_channel_count_and_sample_type() {
    let mut stereo = player(Timbre::Piano, SR);
    let mut mono = player(Timbre::Piano, SR);
    let mut quad = player(Timbre::Piano, SR);
    for p in [&mut stereo, &mut mono, &mut quad] {
        p.handle(on(64, 100));
    }
    let mut s = vec![0.0f32; 2 * 1000];
    let mut m = vec![0.0f32; 1000];
    let mut q = vec![0i16; 4 * 1000];
    stereo.render_interleaved(&mut s, 2);
    mono.render_interleaved(&mut m, 1);
    quad.render_interleaved(&mut q, 4);
    for i in 0..1000 {
        let (l, r) = (s[2 * i], s[2 * i + 1]);
        assert!((m[i] - 0.5 * (l + r)).abs() < 1e-6);
        assert!((f32::from(q[4 * i]) / 32768.0 - l).abs() < 1e-3);
        assert_eq!(
            (q[4 * i + 2], q[4 * i + 3]),
            (0, 0),
            "extra channels silent"
        );
    }
    assert!(peak(&m) > 0.01);

    // Unsigned formats are silent at their midpoint, and odd buffer sizes do not panic.
    let mut u = vec![0u16; 7];
    player(Timbre::Piano, SR).render_interleaved(&mut u, 2);
    assert!(u.iter().all(|&v| v == 32768));
}

#[test]
fn events_reach_the_player_through_the_queue() {
    let synth = Synth::new(SR);
    let (mut p, mut queue) = Player::with_queue(Instrument::Builtin(Box::new(synth)), SR, 64);
    assert!(queue.push(on(60, 100)).is_ok());
    let mut buf = vec![0.0f32; 2 * 4410];
    p.render_interleaved(&mut buf, 2);
    assert!(peak(&buf) > 0.01, "note-on arrived");
    assert!(queue.push(Event::AllNotesOff { channel: 0 }).is_ok());
    for _ in 0..20 {
        p.render_interleaved(&mut buf, 2);
    }
    assert_eq!(
        peak(&buf),
        0.0,
        "all-notes-off arrived and the note died away"
    );
}

/// Prints how much of one core the synth needs for 64 voices (not a pass/fail timing: the
/// criterion benchmark `cargo bench --bench synth` is the measure). Run with
/// `cargo test --test audio_synth -- --ignored --nocapture`.
#[test]
#[ignore]
fn synth_cost_per_second_of_audio() {
    for timbre in Timbre::ALL {
        let mut buf = vec![0.0f32; 2 * 512];
        let runs = 5;
        let mut elapsed = std::time::Duration::ZERO;
        for _ in 0..runs {
            // Fresh notes for every second measured, so all 64 voices sound throughout.
            let mut p = player(timbre, SR);
            for key in 30..30 + MAX_VOICES as u8 {
                p.handle(on(key, 100));
            }
            let start = std::time::Instant::now();
            for _ in 0..SR as usize / 512 {
                p.render_interleaved(&mut buf, 2);
            }
            elapsed += start.elapsed();
        }
        let per_second = elapsed.as_secs_f64() / f64::from(runs);
        println!(
            "{:>14}: {:.2} ms per second of audio at 64 voices = {:.2}% of one core",
            timbre.name(),
            per_second * 1e3,
            per_second * 100.0
        );
    }
}
