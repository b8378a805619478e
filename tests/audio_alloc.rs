//! The audio callback is real-time safe: rendering (and queueing events for it) never touches
//! the allocator. A counting global allocator, in its own test binary so no other test runs
//! under it, counts every allocation, reallocation and free a thread makes while its counting is on.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use diffroll::audio::{Event, Instrument, InstrumentSpec, Player, Synth, Timbre};

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    // Per thread, so tests running in parallel do not count each other's allocations.
    static CALLS: Cell<usize> = const { Cell::new(0) };
}

fn note() {
    // `try_with`: the allocator may run while thread-locals are being torn down.
    if COUNTING.try_with(Cell::get).unwrap_or(false) {
        let _ = CALLS.try_with(|c| c.set(c.get() + 1));
    }
}

// SAFETY: every call is passed to the system allocator unchanged; counting has no side effect
// on the memory handed out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note();
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Allocator calls made by `f` on this thread.
fn allocations_in(f: impl FnOnce()) -> usize {
    let before = CALLS.with(Cell::get);
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    CALLS.with(Cell::get) - before
}

#[test]
fn the_counter_sees_allocations() {
    // Without this the other tests could pass by counting nothing.
    let n = allocations_in(|| {
        let v = std::hint::black_box(vec![1u8; 100]);
        drop(v);
    });
    assert_eq!(n, 2, "one allocation and one free");
}

/// A busy few seconds of callbacks: chords, more notes than voices (stealing), program
/// changes across timbres, all-notes-off, odd buffer sizes, stereo, mono and 16-bit output.
fn exercise(instrument: Instrument) {
    let (mut player, mut queue) = Player::with_queue(instrument, 48_000, 1024);
    let mut f32_buf = vec![0.0f32; 2 * 1024];
    let mut mono = vec![0.0f32; 333];
    let mut i16_buf = vec![0i16; 6 * 480];
    let n = allocations_in(|| {
        for block in 0..400u32 {
            if block % 10 == 0 {
                let program = [0u8, 4, 19, 48, 24][(block / 10 % 5) as usize];
                let _ = queue.push(Event::ProgramChange {
                    channel: 0,
                    program,
                });
                for k in 0..24u8 {
                    let key = 30 + ((block as u8).wrapping_mul(7).wrapping_add(k * 3) % 70);
                    let _ = queue.push(Event::NoteOn {
                        channel: 0,
                        key,
                        velocity: 20 + k * 4,
                    });
                }
            }
            if block % 10 == 5 {
                for key in 30..100 {
                    let _ = queue.push(Event::NoteOff { channel: 0, key });
                }
            }
            if block % 100 == 99 {
                let _ = queue.push(Event::AllNotesOff { channel: 0 });
            }
            match block % 3 {
                0 => player.render_interleaved(&mut f32_buf, 2),
                1 => player.render_interleaved(&mut mono, 1),
                _ => player.render_interleaved(&mut i16_buf, 6),
            }
        }
    });
    assert!(
        f32_buf.iter().chain(&mono).any(|&x| x != 0.0),
        "the exercise made sound"
    );
    assert_eq!(n, 0, "allocator calls in the audio path");
}

#[test]
fn builtin_synth_renders_without_allocating() {
    let mut synth = Synth::new(48_000);
    synth.set_timbre(1, Timbre::Strings);
    exercise(Instrument::Builtin(Box::new(synth)));
}

#[test]
fn soundfont_synth_renders_without_allocating() {
    let Some(path) = diffroll::audio::find_soundfonts()
        .into_iter()
        .min_by_key(|p| std::fs::metadata(p).map_or(u64::MAX, |m| m.len()))
    else {
        eprintln!("note: no .sf2 installed (apt-get install timgm6mb-soundfont); skipped");
        return;
    };
    let sound_font = diffroll::audio::load_soundfont(&path).expect("installed SoundFont loads");
    let instrument = InstrumentSpec::SoundFont(sound_font)
        .build(48_000)
        .expect("synth builds");
    exercise(instrument);
}
