//! A 3×5 pixel font for the octave labels on the keyboard axis: enough for "C-1".."C9" without
//! shipping a font rasterizer.

pub const HEIGHT: usize = 5;
const WIDTH: usize = 3;

/// Rows of a glyph, top to bottom, 3 bits each (bit 2 = left column).
fn glyph(c: char) -> [u8; HEIGHT] {
    match c {
        'C' => [0b111, 0b100, 0b100, 0b100, 0b111],
        '0' => [0b111, 0b101, 0b101, 0b101, 0b111],
        '1' => [0b010, 0b110, 0b010, 0b010, 0b111],
        '2' => [0b111, 0b001, 0b111, 0b100, 0b111],
        '3' => [0b111, 0b001, 0b111, 0b001, 0b111],
        '4' => [0b101, 0b101, 0b111, 0b001, 0b001],
        '5' => [0b111, 0b100, 0b111, 0b001, 0b111],
        '6' => [0b111, 0b100, 0b111, 0b101, 0b111],
        '7' => [0b111, 0b001, 0b010, 0b010, 0b010],
        '8' => [0b111, 0b101, 0b111, 0b101, 0b111],
        '9' => [0b111, 0b101, 0b111, 0b001, 0b111],
        '-' => [0b000, 0b000, 0b111, 0b000, 0b000],
        _ => [0; HEIGHT],
    }
}

/// Pixel width of `text` with one column between glyphs.
pub fn width(text: &str) -> usize {
    let n = text.chars().count();
    (n * (WIDTH + 1)).saturating_sub(1)
}

/// Calls `plot(x, y)` for every lit pixel of `text` placed with its top-left at (x0, y0).
pub fn draw(text: &str, x0: usize, y0: usize, mut plot: impl FnMut(usize, usize)) {
    for (i, c) in text.chars().enumerate() {
        let rows = glyph(c);
        for (dy, bits) in rows.iter().enumerate() {
            for dx in 0..WIDTH {
                if bits & (1 << (WIDTH - 1 - dx)) != 0 {
                    plot(x0 + i * (WIDTH + 1) + dx, y0 + dy);
                }
            }
        }
    }
}
