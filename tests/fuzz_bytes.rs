//! The MIDI reader over arbitrary and mutated bytes: it may refuse, it must never panic.
//! (`fuzz/` holds the same property as a cargo-fuzz target for long coverage-guided runs.)

mod common;

use diffroll::midi;
use proptest::prelude::*;

fn seed_file() -> Vec<u8> {
    std::fs::read(&common::corpus_files()[0]).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = midi::read(&bytes);
    }

    #[test]
    fn arbitrary_bytes_after_a_valid_header_never_panic(
        format in 0u16..3, tracks in any::<u16>(), division in any::<u16>(),
        body in prop::collection::vec(any::<u8>(), 0..2048),
    ) {
        let mut bytes = common::header(format, tracks, division);
        bytes.extend_from_slice(b"MTrk");
        bytes.extend_from_slice(&(body.len() as u32).to_be_bytes());
        bytes.extend(body);
        if let Ok(song) = midi::read(&bytes) {
            // Whatever is accepted is well-formed.
            prop_assert!(song.notes.iter().all(|n| n.start < n.end && u64::from(n.end) <= midi::MAX_STEPS));
            let _ = song.to_roll();
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn mutated_real_files_never_panic(edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..16)) {
        let mut bytes = seed_file();
        for (at, value, op) in edits {
            let i = at.index(bytes.len().max(1));
            match op {
                0 if i < bytes.len() => bytes[i] = value,
                1 => bytes.insert(i.min(bytes.len()), value),
                _ if i < bytes.len() => { bytes.remove(i); }
                _ => {}
            }
        }
        if let Ok(song) = midi::read(&bytes) {
            let roll = song.to_roll();
            let _ = midi::write_roll(&roll, "fuzz");
        }
    }
}
