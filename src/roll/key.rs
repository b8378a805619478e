//! Key and register: which diatonic scale holds most of a roll's sound, where it sits on the
//! keyboard, and how a style's music spreads over both ([`KeyProfile`]). The model learns every
//! key alike (its windows are transposed at random in training), so it draws them alike; a
//! profile says where the style's own music sits, and generation moves each piece there.

use serde::{Deserialize, Serialize};

use super::{PITCHES, Roll};

/// Pitch classes of the major scale on C. A natural minor and the church modes share the
/// pitch classes of a major scale, so one root names the scale of all of them.
pub const MAJOR_SCALE: [usize; 7] = [0, 2, 4, 5, 7, 9, 11];

/// Names of the diatonic scales by the pitch class of their major root, as a musician reads
/// them (the key signature's major key and its relative minor).
pub const KEY_NAMES: [&str; 12] = [
    "C / Am", "Db / Bbm", "D / Bm", "Eb / Cm", "E / C#m", "F / Dm", "F# / D#m", "G / Em",
    "Ab / Fm", "A / F#m", "Bb / Gm", "B / G#m",
];

/// Transpositions a key change may use: −6…+5 reaches every key once.
pub const SHIFTS: std::ops::RangeInclusive<i32> = -6..=5;

impl Roll {
    /// The diatonic root ([`Roll::diatonic_root`]) and the mean pitch of the notes (each
    /// counted once), from one listing of the notes: key moves read them for every piece at
    /// every preview step. `None` for a silent roll.
    fn key_reading(&self) -> Option<KeyReading> {
        let notes = self.notes();
        if notes.is_empty() {
            return None;
        }
        let mut classes = [0.0; 12];
        for note in &notes {
            classes[usize::from(note.pitch) % 12] += f64::from(note.end - note.start);
        }
        let held =
            |root: usize| -> f64 { MAJOR_SCALE.iter().map(|d| classes[(root + d) % 12]).sum() };
        let mut best = 0;
        for root in 1..12 {
            if held(root) > held(best) {
                best = root;
            }
        }
        let mean = notes.iter().map(|n| f64::from(n.pitch)).sum::<f64>() / notes.len() as f64;
        Some(KeyReading {
            root: best as u8,
            mean,
        })
    }

    /// The major-scale root (0 = C … 11 = B) whose diatonic scale holds most of the roll's
    /// sound, counted in steps; the lowest root wins a tie. `None` for a silent roll.
    pub fn diatonic_root(&self) -> Option<u8> {
        self.key_reading().map(|k| k.root)
    }

    /// The transposition that moves the roll's diatonic scale to the one of major root
    /// `target`: at most a tritone, or an octave further where that would push notes off the
    /// keyboard (and the tritone one if neither fits). 0 for a silent roll.
    pub fn shift_into(&self, target: u8) -> i32 {
        let Some(root) = self.diatonic_root() else {
            return 0;
        };
        let near = shift_to(root, target);
        let range = self.pitch_range();
        [near, near + 12, near - 12]
            .into_iter()
            .find(|&s| stays_on_keyboard(range, s))
            .unwrap_or(near)
    }
}

/// Where a style's music sits: the share of its windows in each diatonic scale (by major root)
/// and the spread of their mean pitch. Profiles saved before 2026-12-06 also hold `degrees`
/// (the share of the style's sound on each scale degree), read and dropped: nothing moves notes
/// by them any more.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyProfile {
    /// Share of windows per major root, C first.
    pub roots: [f64; 12],
    pub pitch_mean: f64,
    pub pitch_sd: f64,
    /// Windows measured.
    pub windows: usize,
}

/// What [`Roll::key_reading`] reads.
struct KeyReading {
    root: u8,
    mean: f64,
}

impl KeyProfile {
    /// The profile of `rolls`; `None` if none of them has a note.
    pub fn measure<'a>(rolls: impl IntoIterator<Item = &'a Roll>) -> Option<KeyProfile> {
        let mut roots = [0.0; 12];
        let mut means = Vec::new();
        for roll in rolls {
            if let Some(k) = roll.key_reading() {
                roots[usize::from(k.root)] += 1.0;
                means.push(k.mean);
            }
        }
        let n = means.len();
        if n == 0 {
            return None;
        }
        roots.iter_mut().for_each(|r| *r /= n as f64);
        let pitch_mean = means.iter().sum::<f64>() / n as f64;
        let var = means.iter().map(|m| (m - pitch_mean).powi(2)).sum::<f64>() / n as f64;
        Some(KeyProfile {
            roots,
            pitch_mean,
            // One window (a fine-tune of one short file) has no spread: allow a few semitones.
            pitch_sd: var.sqrt().max(2.0),
            windows: n,
        })
    }

    /// How likely each transposition in [`SHIFTS`] (in order) makes `roll` one of this
    /// style's pieces: the share of the key it lands in, times how usual its new register
    /// is; 0 for one that would push notes off the keyboard. All zero when no shift lands in
    /// a key the style uses (or the roll is silent).
    pub fn shift_weights(&self, roll: &Roll) -> Vec<f64> {
        let Some(KeyReading { root, mean, .. }) = roll.key_reading() else {
            return vec![0.0; SHIFTS.count()];
        };
        let range = roll.pitch_range();
        SHIFTS
            .map(|s| {
                if !stays_on_keyboard(range, s) {
                    return 0.0;
                }
                let key = (i32::from(root) + s).rem_euclid(12) as usize;
                let z = (mean + f64::from(s) - self.pitch_mean) / self.pitch_sd;
                self.roots[key] * (-0.5 * z * z).exp()
            })
            .collect()
    }
}

/// Whether notes spanning `range` (lowest, highest pitch; `None`: no notes) stay on the
/// keyboard when moved by `shift` semitones.
fn stays_on_keyboard(range: Option<(u8, u8)>, shift: i32) -> bool {
    range.is_none_or(|(lo, hi)| {
        (0..PITCHES as i32).contains(&(i32::from(lo) + shift))
            && (0..PITCHES as i32).contains(&(i32::from(hi) + shift))
    })
}

/// The transposition in [`SHIFTS`] that moves diatonic `root` to `target`.
pub fn shift_to(root: u8, target: u8) -> i32 {
    (i32::from(target) - i32::from(root) + 6).rem_euclid(12) - 6
}

/// Parses a key as a musician writes it: a major key ("D", "Bb", "F#") or a minor one ("Bm",
/// "c#m"); gives the major root of its diatonic scale (B minor: D).
pub fn parse_key(text: &str) -> Option<u8> {
    let t = text.trim();
    let (body, minor) = match t.strip_suffix('m') {
        Some(b) => (b, true),
        None => (t, false),
    };
    let mut chars = body.chars();
    let letter = chars.next()?.to_ascii_uppercase();
    let base: i32 = match letter {
        'C' => 0,
        'D' => 2,
        'E' => 4,
        'F' => 5,
        'G' => 7,
        'A' => 9,
        'B' => 11,
        _ => return None,
    };
    let accidental: i32 = match chars.as_str() {
        "" => 0,
        "#" | "♯" => 1,
        "b" | "♭" => -1,
        _ => return None,
    };
    let tonic = base + accidental;
    // A minor key's scale is that of the major key a minor third up.
    let root = if minor { tonic + 3 } else { tonic };
    Some(root.rem_euclid(12) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::roll::{DEFAULT_VELOCITY, Note};

    fn roll(notes: &[(u8, u32, u32)]) -> Roll {
        let notes: Vec<Note> = notes
            .iter()
            .map(|&(p, s, e)| Note::new(p, s, e, DEFAULT_VELOCITY))
            .collect();
        Roll::from_notes(&notes, 64)
    }

    #[test]
    fn the_scale_that_holds_most_sound_names_the_key() {
        // D major: D, F#, A, C# and G (A major lacks the G, G major the C#), with a short
        // chromatic F natural that no scale holding the rest has.
        let notes = [
            (62, 0, 8),
            (66, 8, 16),
            (69, 16, 24),
            (61, 24, 26),
            (67, 26, 28),
            (65, 28, 29),
        ];
        let d = roll(&notes);
        assert_eq!(d.diatonic_root(), Some(2));
        assert_eq!(d.transposed(-2).diatonic_root(), Some(0));
        assert_eq!(d.transposed(8).diatonic_root(), Some(10));
        assert_eq!(Roll::new(32).diatonic_root(), None);
        let mean = notes.iter().map(|n| f64::from(n.0)).sum::<f64>() / 6.0;
        let k = d.key_reading().unwrap();
        assert_eq!((k.root, k.mean), (2, mean));
    }

    #[test]
    fn keys_parse_as_musicians_write_them() {
        assert_eq!(parse_key("C"), Some(0));
        assert_eq!(parse_key("Am"), Some(0));
        assert_eq!(parse_key("D"), Some(2));
        assert_eq!(parse_key("Bm"), Some(2));
        assert_eq!(parse_key("bb"), Some(10));
        assert_eq!(parse_key("F#"), Some(6));
        assert_eq!(parse_key("c#m"), Some(4));
        assert_eq!(parse_key("H"), None);
        assert_eq!(parse_key(""), None);
        assert_eq!(parse_key("Cx"), None);
    }

    #[test]
    fn a_piece_moves_into_a_key_without_losing_notes() {
        let d = roll(&[
            (62, 0, 8),
            (66, 8, 16),
            (69, 16, 24),
            (61, 24, 26),
            (67, 26, 28),
        ]);
        assert_eq!(d.shift_into(0), -2);
        assert_eq!(d.shift_into(8), -6);
        // At the bottom of the keyboard, down a tone would lose the D: up ten instead.
        let low = d.transposed(-60);
        assert_eq!(low.shift_into(0), 10);
        assert_eq!(low.transposed(10).note_count(), low.note_count());
        assert_eq!(Roll::new(32).shift_into(5), 0);
    }

    #[test]
    fn shifts_reach_every_key_within_a_tritone() {
        for root in 0..12 {
            for target in 0..12 {
                let s = shift_to(root, target);
                assert!(SHIFTS.contains(&s));
                assert_eq!((i32::from(root) + s).rem_euclid(12), i32::from(target));
            }
        }
    }

    #[test]
    fn a_profile_weighs_shifts_by_key_and_register() {
        // Every window in C, around middle C.
        let c = roll(&[(60, 0, 8), (64, 8, 16), (67, 16, 24)]);
        let profile = KeyProfile::measure([&c, &c.transposed(12)]).unwrap();
        assert_eq!(profile.roots[0], 1.0);
        assert_eq!(profile.windows, 2);
        assert!((profile.pitch_mean - (63.67 + 6.0)).abs() < 0.01);
        // The same piece in D, an octave up: only a shift to C counts, down a tone.
        let d = c.transposed(14);
        let w = profile.shift_weights(&d);
        let best = SHIFTS.zip(&w).max_by(|a, b| a.1.total_cmp(b.1)).unwrap();
        assert_eq!(best.0, -2);
        assert_eq!(w.iter().filter(|&&x| x > 0.0).count(), 1);
        // Not where that would push notes off the keyboard.
        let low = roll(&[(1, 0, 4), (2, 4, 8), (6, 8, 16), (9, 16, 24)]);
        assert_eq!(low.diatonic_root(), Some(2));
        assert!(profile.shift_weights(&low).iter().all(|&x| x == 0.0));
        assert!(
            profile
                .shift_weights(&Roll::new(32))
                .iter()
                .all(|&x| x == 0.0)
        );
        assert!(KeyProfile::measure([&Roll::new(32)]).is_none());
    }
}
