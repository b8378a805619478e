//! Pictures of piano rolls: PNG images with a keyboard axis and a bar grid, for the CLI's
//! `render` command, the README and test reports. Pure pixels; the caller decides where they go.

mod font;

use crate::roll::{PITCHES, Roll, STEPS_PER_BEAT};

const KEYBOARD_WIDTH: usize = 30;
const ROW_HEIGHT: usize = 4;
/// Widest image drawn; longer pieces get fewer pixels per step.
const MAX_WIDTH: usize = 8192;

const BACKGROUND: [u8; 3] = [30, 32, 38];
const BLACK_KEY_ROW: [u8; 3] = [24, 26, 31];
const BEAT_LINE: [u8; 3] = [44, 47, 55];
const BAR_LINE: [u8; 3] = [90, 95, 110];
const OCTAVE_LINE: [u8; 3] = [52, 55, 64];
const NOTE: [u8; 3] = [242, 160, 60];
const ONSET: [u8; 3] = [255, 230, 180];
const WHITE_KEY: [u8; 3] = [225, 225, 225];
const BLACK_KEY: [u8; 3] = [20, 20, 20];
const LABEL: [u8; 3] = [90, 20, 20];

/// An RGB image, row-major, 3 bytes per pixel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<u8>,
}

impl Image {
    fn new(width: usize, height: usize, fill: [u8; 3]) -> Image {
        Image {
            width,
            height,
            pixels: fill.repeat(width * height),
        }
    }

    pub fn pixel(&self, x: usize, y: usize) -> [u8; 3] {
        let i = (y * self.width + x) * 3;
        [self.pixels[i], self.pixels[i + 1], self.pixels[i + 2]]
    }

    fn fill_rect(&mut self, x0: usize, y0: usize, w: usize, h: usize, color: [u8; 3]) {
        for y in y0..(y0 + h).min(self.height) {
            for x in x0..(x0 + w).min(self.width) {
                let i = (y * self.width + x) * 3;
                self.pixels[i..i + 3].copy_from_slice(&color);
            }
        }
    }

    /// The image as PNG bytes.
    pub fn to_png(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut encoder = png::Encoder::new(&mut out, self.width as u32, self.height as u32);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        // Encoding into memory fails only on dimensions png rejects (zero or > 2^31), which
        // `draw` never produces.
        let mut writer = encoder
            .write_header()
            .expect("roll image dimensions are valid for PNG");
        writer
            .write_image_data(&self.pixels)
            .expect("pixel buffer matches the image size");
        writer.finish().expect("PNG written to memory");
        out
    }
}

fn is_black_key(pitch: usize) -> bool {
    matches!(pitch % 12, 1 | 3 | 6 | 8 | 10)
}

/// The pitch rows shown: whole octaves around the notes (at least two), or C3–B5 when empty.
fn shown_pitches(roll: &Roll) -> (usize, usize) {
    let (lo, hi) = match roll.pitch_range() {
        Some((lo, hi)) => (lo as usize / 12 * 12, (hi as usize / 12 * 12 + 11).min(127)),
        None => (48, 83),
    };
    if hi + 1 - lo < 24 {
        let hi = (lo + 23).min(PITCHES - 1);
        return (hi.saturating_sub(23), hi);
    }
    (lo, hi)
}

/// Draws `roll` with a keyboard on the left (C's labelled with their octave, middle C = C4),
/// a line at every step in `bar_starts` and fainter lines on beats, notes as bars whose first
/// step is lighter so repeated notes stay distinct.
pub fn draw(roll: &Roll, bar_starts: &[u32]) -> Image {
    let (lo, hi) = shown_pitches(roll);
    let rows = hi + 1 - lo;
    let steps = roll.steps().max(1);
    let step_w = (MAX_WIDTH / steps).clamp(1, 6);
    let width = KEYBOARD_WIDTH + steps * step_w;
    let height = rows * ROW_HEIGHT;
    let mut img = Image::new(width, height, BACKGROUND);
    let y_of = |pitch: usize| (hi - pitch) * ROW_HEIGHT;

    for pitch in lo..=hi {
        let y = y_of(pitch);
        if is_black_key(pitch) {
            img.fill_rect(KEYBOARD_WIDTH, y, steps * step_w, ROW_HEIGHT, BLACK_KEY_ROW);
        }
        if pitch % 12 == 0 {
            img.fill_rect(
                KEYBOARD_WIDTH,
                y + ROW_HEIGHT - 1,
                steps * step_w,
                1,
                OCTAVE_LINE,
            );
        }
    }
    if step_w >= 2 {
        for t in (0..steps).step_by(STEPS_PER_BEAT) {
            img.fill_rect(KEYBOARD_WIDTH + t * step_w, 0, 1, height, BEAT_LINE);
        }
    }
    for &bar in bar_starts {
        img.fill_rect(
            KEYBOARD_WIDTH + bar as usize * step_w,
            0,
            1,
            height,
            BAR_LINE,
        );
    }

    for note in roll.notes() {
        let pitch = note.pitch as usize;
        if !(lo..=hi).contains(&pitch) {
            continue;
        }
        let x = KEYBOARD_WIDTH + note.start as usize * step_w;
        let w = (note.len() as usize * step_w).saturating_sub(1).max(1);
        let y = y_of(pitch);
        img.fill_rect(x, y, w, ROW_HEIGHT - 1, NOTE);
        img.fill_rect(x, y, step_w.min(w).div_ceil(2), ROW_HEIGHT - 1, ONSET);
    }

    draw_keyboard(&mut img, lo, hi, y_of);
    img
}

fn draw_keyboard(img: &mut Image, lo: usize, hi: usize, y_of: impl Fn(usize) -> usize) {
    let height = img.height;
    img.fill_rect(0, 0, KEYBOARD_WIDTH, height, WHITE_KEY);
    for pitch in lo..=hi {
        let y = y_of(pitch);
        if is_black_key(pitch) {
            img.fill_rect(0, y, KEYBOARD_WIDTH * 3 / 5, ROW_HEIGHT, BLACK_KEY);
        }
        if pitch % 12 == 0 || pitch % 12 == 5 {
            // The boundary below C and F, where two white keys meet.
            img.fill_rect(0, y + ROW_HEIGHT - 1, KEYBOARD_WIDTH, 1, [150, 150, 150]);
        }
        if pitch % 12 == 0 {
            let label = format!("C{}", pitch as i32 / 12 - 1);
            let text_w = font::width(&label);
            let text_y = (y + ROW_HEIGHT).saturating_sub(font::HEIGHT + 1);
            font::draw(&label, KEYBOARD_WIDTH - text_w - 2, text_y, |x, y| {
                img.fill_rect(x, y, 1, 1, LABEL)
            });
        }
    }
    img.fill_rect(KEYBOARD_WIDTH - 1, 0, 1, height, [120, 120, 120]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::roll::Note;

    #[test]
    fn notes_and_bars_land_where_expected() {
        let roll = Roll::from_notes(&[Note::new(60, 4, 8, 90)], 32);
        let img = draw(&roll, &[0, 16]);
        let (lo, hi) = shown_pitches(&roll);
        assert_eq!((lo, hi), (60, 83));
        let step_w = img.width.saturating_sub(KEYBOARD_WIDTH) / 32;
        let y = (hi - 60) * ROW_HEIGHT + 1;
        assert_eq!(img.pixel(KEYBOARD_WIDTH + 6 * step_w, y), NOTE);
        assert_eq!(img.pixel(KEYBOARD_WIDTH + 4 * step_w, y), ONSET);
        assert_ne!(img.pixel(KEYBOARD_WIDTH + 10 * step_w + 1, y), NOTE);
        assert_eq!(img.pixel(KEYBOARD_WIDTH + 16 * step_w, 0), BAR_LINE);
        let png = img.to_png();
        assert_eq!(&png[1..4], b"PNG");
    }

    #[test]
    fn empty_and_long_rolls_draw() {
        let img = draw(&Roll::new(0), &[]);
        assert!(img.width > KEYBOARD_WIDTH && img.height == 36 * ROW_HEIGHT);
        let long = Roll::from_notes(&[Note::new(0, 0, 1, 1), Note::new(127, 0, 16384, 1)], 16384);
        assert!(draw(&long, &[]).width <= KEYBOARD_WIDTH + 16384);
    }
}
