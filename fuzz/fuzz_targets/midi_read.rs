#![no_main]
//! Any bytes into the MIDI reader: errors are fine, panics and hangs are bugs. Whatever is
//! accepted must also survive the roll and the writer.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(song) = diffroll::midi::read(data) {
        let roll = song.to_roll();
        let bytes = diffroll::midi::write_roll(&roll, "fuzz");
        let again = diffroll::midi::read(&bytes).expect("our own output reads back");
        assert_eq!(again.to_roll().notes(), roll.notes());
    }
});
