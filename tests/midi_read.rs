//! Reading the MIDI a user may drop in: hand-made files with every quirk the format allows.

mod common;

use common::{Track, smf};
use diffroll::midi::{self, MidiError, TimeSignature};
use diffroll::roll::Note;

fn keys(notes: &[Note]) -> Vec<(u8, u32, u32)> {
    notes.iter().map(Note::key).collect()
}

#[test]
fn type0_running_status_velocity0_and_drums() {
    // 96 ticks per quarter: a sixteenth is 24 ticks.
    let track = Track::new()
        .tempo(0, 90)
        .program(0, 0, 40)
        .on(0, 0, 60, 100)
        // Running status: note-on 64 without repeating the status byte.
        .raw(0, &[64, 90])
        // Velocity 0 ends note 60 after a quarter; running status again for 64.
        .raw(96, &[60, 0])
        .raw(0, &[64, 0])
        .on(0, 9, 36, 127) // a kick drum on channel 10: left out
        .off(24, 9, 36)
        .on(0, 1, 48, 70) // another channel
        .off(48, 1, 48)
        .end(0);
    let song = midi::read(&smf(0, 96, &[track])).unwrap();
    assert_eq!(song.format, 0);
    assert_eq!(keys(&song.notes), vec![(60, 0, 4), (64, 0, 4), (48, 5, 7)]);
    assert_eq!(song.notes[0].velocity, 100);
    assert_eq!(song.dropped_drum_notes, 1);
    assert_eq!(song.tempo_bpm, 90.0);
    assert_eq!(song.program, 40);
    assert_eq!(song.steps, 16);
}

#[test]
fn type1_tracks_merge_and_tempo_maps_are_kept() {
    let conductor = Track::new()
        .tempo(0, 100)
        .time_sig(0, 3, 2)
        .tempo(480 * 3, 50)
        .time_sig(0, 6, 3)
        .end(0);
    let soprano = Track::new().on(0, 0, 72, 80).off(480 * 3, 0, 72).end(0);
    let bass = Track::new().on(480 * 3, 1, 48, 80).off(240, 1, 48).end(0);
    let song = midi::read(&smf(1, 480, &[conductor, soprano, bass])).unwrap();
    assert_eq!(song.tracks, 3);
    assert_eq!(keys(&song.notes), vec![(72, 0, 12), (48, 12, 14)]);
    assert_eq!(song.tempo_changes.len(), 2);
    assert_eq!(song.tempo_changes[1].step, 12);
    assert_eq!(song.tempo_changes[1].bpm, 50.0);
    assert_eq!(
        song.time_signatures,
        vec![
            TimeSignature {
                step: 0,
                numerator: 3,
                denominator: 4
            },
            TimeSignature {
                step: 12,
                numerator: 6,
                denominator: 8
            }
        ]
    );
    // 3/4 bars (12 steps) then 6/8 bars (12 steps).
    assert_eq!(song.bar_starts(), vec![0, 12]);
}

#[test]
fn overlapping_notes_of_one_pitch_pair_first_in_first_out() {
    // on 60 @0, on 60 @1 beat, off @2 beats (ends the first), off @3 beats (ends the second).
    let t = Track::new()
        .on(0, 0, 60, 80)
        .on(480, 0, 60, 81)
        .off(480, 0, 60)
        .off(480, 0, 60)
        .end(0);
    let song = midi::read(&smf(0, 480, &[t])).unwrap();
    assert_eq!(keys(&song.notes), vec![(60, 0, 8), (60, 4, 12)]);
    // In the roll the second strike cuts the first, as on a keyboard.
    assert_eq!(keys(&song.to_roll().notes()), vec![(60, 0, 4), (60, 4, 12)]);
}

#[test]
fn off_grid_notes_snap_to_the_nearest_sixteenth_and_keep_one_step() {
    // 120 ticks per sixteenth at 480 tpq; triplet eighths (160 ticks) and a grace note.
    let t = Track::new()
        .on(0, 0, 60, 80)
        .off(160, 0, 60)
        .on(0, 0, 62, 80)
        .off(160, 0, 62)
        .on(0, 0, 64, 80)
        .off(160, 0, 64)
        .on(0, 0, 65, 80)
        .off(10, 0, 65)
        .end(0);
    let song = midi::read(&smf(1, 480, &[t])).unwrap();
    assert_eq!(
        keys(&song.notes),
        vec![(60, 0, 1), (62, 1, 3), (64, 3, 4), (65, 4, 5)]
    );
}

#[test]
fn unisons_from_two_tracks_become_one_note() {
    let a = Track::new().on(0, 0, 60, 80).off(480, 0, 60).end(0);
    let b = Track::new().on(0, 1, 60, 90).off(960, 1, 60).end(0);
    let song = midi::read(&smf(1, 480, &[a, b])).unwrap();
    assert_eq!(keys(&song.notes), vec![(60, 0, 8)]);
    assert_eq!(song.notes[0].velocity, 90);
}

#[test]
fn notes_never_released_end_with_their_track() {
    let t = Track::new().on(0, 0, 60, 80).end(480 * 2);
    let song = midi::read(&smf(0, 480, &[t])).unwrap();
    assert_eq!(keys(&song.notes), vec![(60, 0, 8)]);
}

#[test]
fn smpte_files_are_placed_at_120_bpm() {
    // 25 fps × 40 ticks per frame = 1000 ticks per second; at 120 BPM a sixteenth is 125 ms.
    let division = ((-25i8 as u8 as u16) << 8) | 40;
    let t = Track::new().on(500, 0, 60, 80).off(500, 0, 60).end(0);
    let song = midi::read(&smf(0, division, &[t])).unwrap();
    assert!(song.smpte);
    assert_eq!(song.tempo_bpm, 120.0);
    assert_eq!(keys(&song.notes), vec![(60, 4, 8)]);
}

#[test]
fn type2_is_refused_with_a_reason() {
    let t = Track::new().on(0, 0, 60, 80).off(10, 0, 60).end(0);
    let err = midi::read(&smf(2, 480, &[t.clone(), t])).unwrap_err();
    assert!(matches!(err, MidiError::Type2), "{err}");
    assert!(err.to_string().contains("type 0 or 1"));
}

#[test]
fn a_file_with_only_meta_events_has_no_notes() {
    let song = midi::read(&smf(1, 480, &[Track::new().tempo(0, 60).end(0)])).unwrap();
    assert!(song.notes.is_empty());
    assert_eq!(song.steps, 0);
}
