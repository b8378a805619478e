//! MIDI → roll → MIDI round trips over real music, checked with an independent parser, and
//! property tests roll → MIDI → roll over random rolls.

mod common;

use std::collections::BTreeSet;

use diffroll::midi::{self, ExportOptions, TICKS_PER_QUARTER};
use diffroll::roll::{Note, Roll};
use midi_msg::{ChannelVoiceMsg, Division, Meta, MidiFile, MidiMsg, SMFFormat};
use proptest::prelude::*;

type Key = (u8, u32, u32);

fn keys(notes: &[Note]) -> Vec<Key> {
    notes.iter().map(Note::key).collect()
}

/// Notes of a file as midi-msg sees them ([`common::independent_notes`]), without velocity,
/// sorted by start, pitch, end.
fn independent_notes(bytes: &[u8]) -> (Vec<Key>, MidiFile) {
    let (notes, file) = common::independent_notes(bytes);
    let notes: BTreeSet<Key> = notes.into_iter().map(|(p, s, e, _)| (p, s, e)).collect();
    let mut keys: Vec<Key> = notes.into_iter().collect();
    keys.sort_by_key(|&(p, s, e)| (s, p, e));
    (keys, file)
}

#[test]
fn every_corpus_file_round_trips_and_quantizing_is_idempotent() {
    let files = common::corpus_files();
    assert!(files.len() >= 4, "fixtures missing");
    for path in &files {
        let song = midi::read_file(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(!song.notes.is_empty(), "{}: no notes", path.display());
        let roll = song.to_roll();
        assert!(roll.validity().is_valid());
        let exported = midi::write_roll(&roll, "round trip");

        // Our reader gets back exactly the roll's notes...
        let again = midi::read(&exported).unwrap();
        assert_eq!(
            keys(&again.notes),
            keys(&roll.notes()),
            "{}",
            path.display()
        );
        assert_eq!(again.tempo_bpm.round(), song.tempo_bpm.round());
        assert_eq!(again.program, song.program);
        // ...so a second export is byte-identical: quantizing twice changes nothing.
        assert_eq!(midi::write_roll(&again.to_roll(), "round trip"), exported);

        // And a parser that shares no code with ours reads the same notes.
        let (independent, _) = independent_notes(&exported);
        assert_eq!(independent, keys(&roll.notes()), "{}", path.display());
    }
    eprintln!("{} files round-tripped", files.len());
}

#[test]
fn exported_files_are_what_daws_expect() {
    let notes = [Note::new(60, 0, 4, 90), Note::new(60, 4, 8, 70)];
    let options = ExportOptions {
        tempo_bpm: 96.0,
        program: 19,
        track_name: "Organ".into(),
    };
    let bytes = midi::write(&notes, &options);
    let (keys, file) = independent_notes(&bytes);
    assert_eq!(keys, vec![(60, 0, 4), (60, 4, 8)]);
    assert_eq!(file.header.format, SMFFormat::MultiTrack);
    assert_eq!(
        file.header.division,
        Division::TicksPerQuarterNote(TICKS_PER_QUARTER)
    );
    let metas: Vec<&Meta> = file
        .tracks
        .iter()
        .flat_map(|t| t.events())
        .filter_map(|e| match &e.event {
            MidiMsg::Meta { msg } => Some(msg),
            _ => None,
        })
        .collect();
    assert!(metas.contains(&&Meta::SetTempo(625_000)));
    assert!(metas.contains(&&Meta::TrackName("Organ".into())));
    assert!(
        metas.iter().any(
            |m| matches!(m, Meta::TimeSignature(ts) if ts.numerator == 4 && ts.denominator == 4)
        )
    );
    assert_eq!(
        metas
            .iter()
            .filter(|m| matches!(m, Meta::EndOfTrack))
            .count(),
        2
    );
    let programs: Vec<u8> = file
        .tracks
        .iter()
        .flat_map(|t| t.events())
        .filter_map(|e| match &e.event {
            MidiMsg::ChannelVoice {
                msg: ChannelVoiceMsg::ProgramChange { program },
                ..
            } => Some(*program),
            _ => None,
        })
        .collect();
    assert_eq!(programs, vec![19]);
}

fn arb_notes(steps: u32) -> impl Strategy<Value = Vec<Note>> {
    prop::collection::vec(
        (0u8..128, 0..steps, 1u32..40, 1u8..128).prop_map(move |(pitch, start, len, vel)| {
            Note::new(pitch, start, (start + len).min(steps), vel)
        }),
        0..120,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn roll_to_midi_to_roll_is_identity(notes in arb_notes(256), tempo in 30.0f32..240.0, program in 0u8..128) {
        let mut roll = Roll::from_notes(&notes, 256);
        roll.tempo_bpm = tempo;
        roll.program = program;
        let song = midi::read(&midi::write_roll(&roll, "p")).unwrap();
        let back = song.to_roll();
        prop_assert_eq!(keys(&back.notes()), keys(&roll.notes()));
        // Tempo travels as whole microseconds per quarter.
        prop_assert!((song.tempo_bpm - tempo).abs() < 0.01);
        if !roll.is_empty() {
            prop_assert_eq!(song.program, program);
        }
        // The re-read roll is at most as long as ours and pads to whole bars.
        prop_assert!(back.steps() <= 256 && back.steps().is_multiple_of(16));
    }

    #[test]
    fn repair_always_yields_a_valid_roll_with_the_same_sound(cells in prop::collection::vec((0usize..128, 0usize..64, any::<bool>(), any::<bool>()), 0..300)) {
        let mut roll = Roll::new(64);
        for (p, t, o, s) in cells {
            roll.set(p, t, o, s);
        }
        let before = roll.clone();
        roll.repair();
        prop_assert!(roll.validity().is_valid());
        // Repair only adds: every cell that sounded still sounds.
        for p in 0..128 {
            for t in 0..64 {
                prop_assert!(!before.sustain(p, t) || roll.sustain(p, t));
                prop_assert!(!before.onset(p, t) || roll.onset(p, t));
            }
        }
        let again = Roll::from_notes(&roll.notes(), 64);
        prop_assert_eq!(again, roll);
    }
}
