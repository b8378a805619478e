//! What one second of audio costs: the built-in synth at 64 voices in every timbre (budget: 5%
//! of one core, i.e. under 50 ms per second), the limiter alone, and a SoundFont at 64 voices
//! when one is installed. All through `Player::render_interleaved` in 512-frame callbacks, as
//! the audio thread runs it. `cargo bench --bench synth`

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use diffroll::audio::{
    Event, Instrument, InstrumentSpec, Limiter, MAX_VOICES, Player, Synth, Timbre,
};

const SR: u32 = 44_100;
const CALLBACK: usize = 512;

/// A player with 64 notes struck, ready to render.
fn busy_player(instrument: Instrument) -> Player {
    let mut player = Player::new(instrument, SR);
    for key in 30..30 + MAX_VOICES as u8 {
        player.handle(Event::NoteOn {
            channel: 0,
            key,
            velocity: 100,
        });
    }
    player
}

/// One second of audio in callback-sized pieces.
fn one_second(player: &mut Player, buf: &mut [f32]) {
    for _ in 0..SR as usize / CALLBACK {
        player.render_interleaved(buf, 2);
    }
    black_box(&buf);
}

fn bench_synth(c: &mut Criterion) {
    let mut group = c.benchmark_group("1 s of audio at 44.1 kHz");
    group.sample_size(20);
    let mut buf = vec![0.0f32; CALLBACK * 2];
    for timbre in Timbre::ALL {
        group.bench_function(format!("builtin {} x64 voices", timbre.name()), |b| {
            // Fresh notes every iteration so all 64 voices sound for the whole second.
            b.iter_batched_ref(
                || {
                    let mut synth = Synth::new(SR);
                    synth.set_timbre(0, timbre);
                    busy_player(Instrument::Builtin(Box::new(synth)))
                },
                |player| one_second(player, &mut buf),
                BatchSize::LargeInput,
            )
        });
    }

    group.bench_function("limiter alone", |b| {
        let mut limiter = Limiter::new(SR);
        let mut left: Vec<f32> = (0..SR).map(|i| (i as f32 * 0.01).sin() * 1.5).collect();
        let mut right = left.clone();
        b.iter(|| limiter.process(black_box(&mut left), black_box(&mut right)))
    });

    let smallest_sf2 = diffroll::audio::find_soundfonts()
        .into_iter()
        .min_by_key(|p| std::fs::metadata(p).map_or(u64::MAX, |m| m.len()));
    match smallest_sf2.map(|p| diffroll::audio::load_soundfont(&p)) {
        Some(Ok(sound_font)) => {
            let spec = InstrumentSpec::SoundFont(sound_font);
            group.bench_function("soundfont piano x64 voices", |b| {
                b.iter_batched_ref(
                    || busy_player(spec.build(SR).expect("SoundFont synth")),
                    |player| one_second(player, &mut buf),
                    BatchSize::LargeInput,
                )
            });
        }
        _ => eprintln!("note: no loadable .sf2 installed; SoundFont benchmark skipped"),
    }
    group.finish();
}

criterion_group!(benches, bench_synth);
criterion_main!(benches);
