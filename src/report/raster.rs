//! Draws a [`Scene`] into an RGB pixel buffer, text with the bitmap font at 2x.

use super::colour::{Rgb, INK, WHITE};
use super::font::{glyph, GLYPH_W};
use super::layout::{text_width, Anchor, Scene, Shape, ADVANCE};

/// Font pixels are drawn as SCALE x SCALE blocks.
const SCALE: i32 = ADVANCE / (GLYPH_W as i32 + 1);

/// An RGB image, 3 bytes per pixel, row-major.
pub(crate) struct Canvas {
    pub width: i32,
    pub height: i32,
    pub rgb: Vec<u8>,
}

impl Canvas {
    fn new(width: i32, height: i32, background: Rgb) -> Self {
        let (width, height) = (width.max(1), height.max(1));
        let px = [background.0, background.1, background.2];
        Canvas {
            width,
            height,
            rgb: px.repeat((width * height) as usize),
        }
    }

    /// The pixel at (x, y), for tests.
    #[cfg(test)]
    pub(crate) fn pixel(&self, x: i32, y: i32) -> Rgb {
        let i = ((y * self.width + x) * 3) as usize;
        Rgb(self.rgb[i], self.rgb[i + 1], self.rgb[i + 2])
    }

    /// Fills a rectangle, clipped to the canvas.
    fn fill(&mut self, x: i32, y: i32, w: i32, h: i32, c: Rgb) {
        let (x0, x1) = (x.max(0), (x + w).min(self.width));
        for yy in y.max(0)..(y + h).min(self.height) {
            for xx in x0..x1 {
                let i = ((yy * self.width + xx) * 3) as usize;
                self.rgb[i..i + 3].copy_from_slice(&[c.0, c.1, c.2]);
            }
        }
    }

    /// Draws `text` as laid out by [`Shape::Text`].
    fn text(&mut self, x: i32, y: i32, text: &str, anchor: Anchor, vertical: bool, bold: bool) {
        let len = text_width(text);
        let offset = match anchor {
            Anchor::Start => 0,
            Anchor::Middle => len / 2,
            Anchor::End => len,
        };
        for (k, ch) in text.chars().enumerate() {
            for (row, bits) in glyph(ch).iter().enumerate() {
                for col in 0..GLYPH_W {
                    if bits >> (GLYPH_W - 1 - col) & 1 == 0 {
                        continue;
                    }
                    // (u, v): along the text and down from its top, in px.
                    let u = k as i32 * ADVANCE + col as i32 * SCALE - offset;
                    let v = row as i32 * SCALE;
                    let (px, py, w, h) = if vertical {
                        (x + v, y - u - SCALE, SCALE, SCALE + bold as i32)
                    } else {
                        (x + u, y + v, SCALE + bold as i32, SCALE)
                    };
                    let py = if vertical && bold { py - 1 } else { py };
                    self.fill(px, py, w, h, INK);
                }
            }
        }
    }

    fn frame(&mut self, x: i32, y: i32, w: i32, h: i32) {
        self.fill(x, y, w, 1, INK);
        self.fill(x, y + h - 1, w, 1, INK);
        self.fill(x, y, 1, h, INK);
        self.fill(x + w - 1, y, 1, h, INK);
    }
}

/// Rasterizes `scene` at one pixel per layout unit.
pub(crate) fn render(scene: &Scene) -> Canvas {
    let mut canvas = Canvas::new(scene.width, scene.height, WHITE);
    for shape in &scene.shapes {
        match shape {
            Shape::Cell {
                x, y, w, h, fill, ..
            }
            | Shape::Rect { x, y, w, h, fill } => canvas.fill(*x, *y, *w, *h, *fill),
            Shape::Frame { x, y, w, h } => canvas.frame(*x, *y, *w, *h),
            Shape::Text {
                x,
                y,
                text,
                anchor,
                vertical,
                bold,
            } => canvas.text(*x, *y, text, *anchor, *vertical, *bold),
            Shape::ColourBar { x, y, w, h, scale } => {
                let (lo, hi) = scale.range();
                for row in 0..*h {
                    // Pixel centres, bottom row near `lo`, top row near `hi`.
                    let s = (*h - row) as f64 - 0.5;
                    let colour = scale.colour(lo + (hi - lo) * s / *h as f64);
                    canvas.fill(*x, y + row, *w, 1, colour);
                }
            }
        }
    }
    canvas
}

#[cfg(test)]
mod tests {
    use super::super::font::GLYPH_H;
    use super::super::layout::LINE;
    use super::*;

    fn one_text(text: &str, anchor: Anchor, vertical: bool) -> Scene {
        let shape = Shape::Text {
            x: 40,
            y: 40,
            text: text.into(),
            anchor,
            vertical,
            bold: false,
        };
        Scene {
            width: 80,
            height: 80,
            title: String::new(),
            shapes: vec![shape],
        }
    }

    fn ink_bounds(c: &Canvas) -> (i32, i32, i32, i32) {
        let (mut x0, mut y0, mut x1, mut y1) = (i32::MAX, i32::MAX, i32::MIN, i32::MIN);
        for y in 0..c.height {
            for x in 0..c.width {
                if c.pixel(x, y) == INK {
                    (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
                }
            }
        }
        (x0, y0, x1, y1)
    }

    #[test]
    fn text_lands_where_the_layout_says() {
        assert_eq!(GLYPH_H as i32 * SCALE, LINE);
        // 'H' spans its full 5x7 body: 10x14 px at 2x.
        let c = render(&one_text("H", Anchor::Start, false));
        assert_eq!(ink_bounds(&c), (40, 40, 49, 53));
        let c = render(&one_text("H", Anchor::End, false));
        assert_eq!(ink_bounds(&c), (28, 40, 37, 53));
        // Vertical text reads bottom to top: its first column is at the bottom.
        let c = render(&one_text("H", Anchor::Start, true));
        assert_eq!(ink_bounds(&c), (40, 30, 53, 39));
        let c = render(&one_text("H", Anchor::End, true));
        assert_eq!(ink_bounds(&c), (40, 42, 53, 51));
    }

    /// Renders every glyph, large, to `$TMPDIR/hooklens-font.png` for a visual check.
    #[test]
    fn write_font_sheet() {
        let chars: Vec<char> = (' '..='~').chain(['␣', '…', 'Δ', 'é']).collect();
        let shapes = chars
            .chunks(16)
            .enumerate()
            .map(|(i, line)| Shape::Text {
                x: 8,
                y: 8 + i as i32 * 24,
                text: line.iter().flat_map(|&c| [c, ' ']).collect(),
                anchor: Anchor::Start,
                vertical: false,
                bold: false,
            })
            .collect();
        let scene = Scene {
            width: 400,
            height: 176,
            title: String::new(),
            shapes,
        };
        let c = render(&scene);
        let png = super::super::png::encode_rgb(c.width as u32, c.height as u32, &c.rgb);
        std::fs::write(std::env::temp_dir().join("hooklens-font.png"), png).unwrap();
    }
}
