//! Heatmap geometry: turns a [`Heatmap`] into a [`Scene`] of positioned shapes that the SVG and
//! PNG back ends both draw, so the two outputs agree pixel for pixel on layout.
//!
//! Text metrics are those of the PNG bitmap font at 2x (12 px advance, 16 px line); SVG text uses
//! a monospace font no wider than that, so what fits in the PNG fits in the SVG.

use super::colour::{format_value, Rgb, Scale, INK, MISSING};
use super::heatmap::Heatmap;
use super::wrap::wrap_words;

/// Horizontal advance of one character, px.
pub(crate) const ADVANCE: i32 = 12;
/// Height of a line of text, px.
pub(crate) const LINE: i32 = 16;
const MARGIN: i32 = 16;
/// Spacing of neighbouring tick labels across their lines (a line plus 4 px), px.
const LABELLED: i32 = LINE + 4;
/// Longest tick label, in characters, before it is cut with '…'.
const MAX_TICK_CHARS: usize = 16;
/// A title wraps at the width of the rest of the image, but never narrower than this, px.
const MIN_TITLE_W: i32 = 40 * ADVANCE;

/// Where a text's anchor point sits along the text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Anchor {
    Start,
    Middle,
    End,
}

/// One drawable element. Coordinates are px from the top left.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Shape {
    /// A heatmap cell, with a tooltip (SVG `<title>`) naming it and its value.
    Cell {
        x: i32,
        y: i32,
        w: i32,
        h: i32,
        fill: Rgb,
        tooltip: String,
    },
    /// A filled rectangle (tick marks, the missing-value swatch).
    Rect {
        x: i32,
        y: i32,
        w: i32,
        h: i32,
        fill: Rgb,
    },
    /// A 1 px outline just inside the given box.
    Frame { x: i32, y: i32, w: i32, h: i32 },
    /// A line of text. Horizontal: `x` is the anchor, `y` the top of the 16 px line. Vertical
    /// (reads bottom to top): `x` is the left of the 16 px column, `y` the anchor, where `Start`
    /// is the bottom end.
    Text {
        x: i32,
        y: i32,
        text: String,
        anchor: Anchor,
        vertical: bool,
        bold: bool,
    },
    /// The colour scale from `scale.range().0` (bottom) to `.1` (top).
    ColourBar {
        x: i32,
        y: i32,
        w: i32,
        h: i32,
        scale: Scale,
    },
}

/// A laid-out heatmap.
pub(crate) struct Scene {
    pub width: i32,
    pub height: i32,
    /// Document title (SVG `<title>`).
    pub title: String,
    pub shapes: Vec<Shape>,
}

/// Width of `text` in px.
pub(crate) fn text_width(text: &str) -> i32 {
    text.chars().count() as i32 * ADVANCE
}

/// A tick label as shown: leading/trailing spaces as '␣' (token strings like " Paris"), control
/// characters escaped (`\n`, `\t`, `\x07`), cut to `max_chars` with '…' (`usize::MAX`: no cut).
pub(crate) fn tick_text(s: &str, max_chars: usize) -> String {
    let core = s.trim_matches(' ');
    let lead = s.len() - s.trim_start_matches(' ').len();
    let trail = if core.is_empty() {
        0
    } else {
        s.len() - s.trim_end_matches(' ').len()
    };
    let mut out = "␣".repeat(lead);
    for c in core.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push_str(&"␣".repeat(trail));
    if out.chars().count() > max_chars {
        out = out.chars().take(max_chars.saturating_sub(1)).collect();
        out.push('…');
    }
    out
}

fn text(x: i32, y: i32, s: &str, anchor: Anchor, vertical: bool) -> Shape {
    Shape::Text {
        x,
        y,
        text: s.to_string(),
        anchor,
        vertical,
        bold: false,
    }
}

/// The rows that get a y tick, with their labels: the group ticks when there are any (thinned
/// so neighbours stay LABELLED px apart), else every row's label, every k-th when dense.
fn y_tick_rows(h: &Heatmap, rows: usize, cell_h: i32) -> (Vec<usize>, Vec<String>) {
    let tick = |s: &str| tick_text(s, MAX_TICK_CHARS);
    if h.y_group_ticks.is_empty() {
        let step = (LABELLED as usize).div_ceil(cell_h as usize);
        let shown: Vec<usize> = (0..rows).step_by(step).collect();
        let labels = shown
            .iter()
            .map(|&r| tick(h.y_ticks.get(r).map_or("", |s| s)))
            .collect();
        return (shown, labels);
    }
    let mut shown: Vec<(usize, String)> = Vec::new();
    for (row, label) in &h.y_group_ticks {
        let far_enough = shown
            .last()
            .is_none_or(|(last, _)| (*row as i32 - *last as i32) * cell_h >= LABELLED);
        if *row < rows && far_enough {
            shown.push((*row, tick(label)));
        }
    }
    shown.into_iter().unzip()
}

/// Lays out `h` (rows = `y_ticks`, columns = `x_ticks`; missing values are NaN).
pub(crate) fn layout(h: &Heatmap) -> Scene {
    let (rows, cols) = (h.y_ticks.len().max(1), h.x_ticks.len().max(1));
    let value = |r: usize, c: usize| *h.values.get(r * cols + c).unwrap_or(&f64::NAN);
    let values: Vec<f64> = (0..rows * cols)
        .map(|i| value(i / cols, i % cols))
        .collect();
    let scale = Scale::for_values(&values);
    // Square cells that fit about 960 x 640 px, 4 to 48 px a side; but a short axis next to a
    // dense one gets up to LABELLED px per cell, so each of its few rows/columns keeps a label.
    let (fit_w, fit_h) = (960 / cols as i32, 640 / rows as i32);
    let square = fit_w.min(fit_h).clamp(4, 48);
    let cell_w = square.max(fit_w.min(LABELLED));
    let cell_h = square.max(fit_h.min(LABELLED));
    let (grid_w, grid_h) = (cols as i32 * cell_w, rows as i32 * cell_h);
    let tick =
        |ticks: &[String], i: usize| tick_text(ticks.get(i).map_or("", |s| s), MAX_TICK_CHARS);

    // X tick labels: horizontal when every label fits its cell, else vertical, thinned so
    // neighbouring labels are at least LABELLED px apart; y labels likewise.
    let x_labels: Vec<String> = (0..cols).map(|c| tick(&h.x_ticks, c)).collect();
    let x_horizontal = x_labels.iter().all(|s| text_width(s) + 4 <= cell_w);
    let x_step = if x_horizontal {
        1
    } else {
        (LABELLED as usize).div_ceil(cell_w as usize)
    };
    let x_shown: Vec<usize> = (0..cols).step_by(x_step).collect();
    let (y_shown, y_labels) = y_tick_rows(h, rows, cell_h);
    let y_tick_w = y_labels.iter().map(|s| text_width(s)).max().unwrap_or(0);
    let x_tick_h = if x_horizontal {
        LINE
    } else {
        x_shown
            .iter()
            .map(|&c| text_width(&x_labels[c]))
            .max()
            .unwrap_or(0)
    };

    // Columns, left to right: y label | y ticks | grid | colour bar | bar labels | bar title.
    let y_label_x = MARGIN;
    let mut grid_x = MARGIN + y_tick_w + 8;
    if !h.y_label.is_empty() {
        grid_x += LINE + 8;
    }
    let bar_x = grid_x + grid_w + 24;
    let bar_w = 20;
    let bar_label_x = bar_x + bar_w + 10;
    let bar_labels: Vec<(f64, String)> = scale
        .ticks()
        .into_iter()
        .map(|v| (v, format_value(v)))
        .collect();
    let has_missing = values.iter().any(|v| v.is_nan());
    let bar_label_w = bar_labels
        .iter()
        .map(|(_, s)| text_width(s))
        .chain(has_missing.then(|| text_width("missing")))
        .max()
        .unwrap_or(0);
    let colour_label_x = bar_label_x + bar_label_w + 10;
    let mut right = colour_label_x - 10;
    if !h.colour_label.is_empty() {
        right = colour_label_x + LINE;
    }

    // Rows, top to bottom: title (wrapped to the width of the rest) | grid | x ticks | x label.
    let grid_mid = grid_x + grid_w / 2;
    let content_w = right.max(grid_mid + text_width(&h.x_label) / 2) - MARGIN;
    let title_chars = content_w.max(MIN_TITLE_W) / ADVANCE;
    let title_lines = wrap_words(&h.title, title_chars as usize);
    let title_y = MARGIN;
    let grid_y = if title_lines.is_empty() {
        MARGIN
    } else {
        MARGIN + title_lines.len() as i32 * (LINE + 4) + 8
    };
    let x_tick_y = grid_y + grid_h + 8;
    let x_label_y = x_tick_y + x_tick_h + 8;
    let mut bottom = if h.x_label.is_empty() {
        x_tick_y + x_tick_h
    } else {
        x_label_y + LINE
    };
    let bar_h = grid_h.max(160).max(text_width(&h.colour_label));
    bottom = bottom
        .max(grid_y + bar_h)
        .max(grid_y + text_width(&h.y_label));
    let swatch_y = grid_y + bar_h + 12;
    if has_missing {
        bottom = bottom.max(swatch_y + LINE);
    }

    let title_w = title_lines.iter().map(|l| text_width(l)).max().unwrap_or(0);
    let width = [
        right,
        grid_mid + text_width(&h.x_label) / 2,
        grid_mid + title_w / 2,
        MARGIN + title_w,
    ]
    .into_iter()
    .max()
    .unwrap_or(0)
        + MARGIN;
    let height = bottom + MARGIN;
    // Centre a horizontal label on the grid, kept inside the margins.
    let centred = |s: &str| {
        let half = text_width(s) / 2;
        grid_mid.clamp(MARGIN + half, (width - MARGIN - half).max(MARGIN + half))
    };

    let mut shapes = Vec::with_capacity(rows * cols + 2 * (rows + cols) + 16);
    for (i, line) in title_lines.iter().enumerate() {
        shapes.push(Shape::Text {
            x: centred(line),
            y: title_y + i as i32 * (LINE + 4),
            text: line.clone(),
            anchor: Anchor::Middle,
            vertical: false,
            bold: true,
        });
    }
    for r in 0..rows {
        for c in 0..cols {
            let v = value(r, c);
            let shown = if v.is_nan() {
                "missing".to_string()
            } else {
                v.to_string()
            };
            let full = |t: &[String], i: usize| tick_text(t.get(i).map_or("", |s| s), usize::MAX);
            let tooltip = format!(
                "{} {}, {} {} [{r}, {c}]: {shown}",
                h.y_label,
                full(&h.y_ticks, r),
                h.x_label,
                full(&h.x_ticks, c)
            );
            let (x, y) = (grid_x + c as i32 * cell_w, grid_y + r as i32 * cell_h);
            let fill = scale.colour(v);
            shapes.push(Shape::Cell {
                x,
                y,
                w: cell_w,
                h: cell_h,
                fill,
                tooltip: tooltip.trim().into(),
            });
        }
    }
    shapes.push(Shape::Frame {
        x: grid_x - 1,
        y: grid_y - 1,
        w: grid_w + 2,
        h: grid_h + 2,
    });
    for &c in &x_shown {
        let cx = grid_x + c as i32 * cell_w + cell_w / 2;
        shapes.push(Shape::Rect {
            x: cx,
            y: grid_y + grid_h + 1,
            w: 1,
            h: 4,
            fill: INK,
        });
        shapes.push(if x_horizontal {
            text(cx, x_tick_y, &x_labels[c], Anchor::Middle, false)
        } else {
            text(cx - LINE / 2, x_tick_y, &x_labels[c], Anchor::End, true)
        });
    }
    for (&r, label) in y_shown.iter().zip(&y_labels) {
        let cy = grid_y + r as i32 * cell_h + cell_h / 2;
        shapes.push(Shape::Rect {
            x: grid_x - 5,
            y: cy,
            w: 4,
            h: 1,
            fill: INK,
        });
        shapes.push(text(grid_x - 8, cy - LINE / 2, label, Anchor::End, false));
    }
    if !h.x_label.is_empty() {
        shapes.push(text(
            centred(&h.x_label),
            x_label_y,
            &h.x_label,
            Anchor::Middle,
            false,
        ));
    }
    if !h.y_label.is_empty() {
        let mid = grid_y + grid_h.max(text_width(&h.y_label)) / 2;
        shapes.push(text(y_label_x, mid, &h.y_label, Anchor::Middle, true));
    }

    // Colour bar with its end (and zero) labels, the missing swatch, and its title.
    shapes.push(Shape::ColourBar {
        x: bar_x,
        y: grid_y,
        w: bar_w,
        h: bar_h,
        scale,
    });
    shapes.push(Shape::Frame {
        x: bar_x - 1,
        y: grid_y - 1,
        w: bar_w + 2,
        h: bar_h + 2,
    });
    let (lo, hi) = scale.range();
    for (v, label) in bar_labels {
        let s = (v - lo) / (hi - lo);
        let y = grid_y + bar_h - 1 - (s * (bar_h - 1) as f64).round() as i32;
        shapes.push(Shape::Rect {
            x: bar_x + bar_w + 1,
            y,
            w: 4,
            h: 1,
            fill: INK,
        });
        shapes.push(text(
            bar_label_x,
            y - LINE / 2,
            &label,
            Anchor::Start,
            false,
        ));
    }
    if has_missing {
        shapes.push(Shape::Rect {
            x: bar_x,
            y: swatch_y,
            w: bar_w,
            h: 14,
            fill: MISSING,
        });
        shapes.push(text(
            bar_label_x,
            swatch_y - 1,
            "missing",
            Anchor::Start,
            false,
        ));
    }
    if !h.colour_label.is_empty() {
        let mid = grid_y + bar_h / 2;
        shapes.push(text(
            colour_label_x,
            mid,
            &h.colour_label,
            Anchor::Middle,
            true,
        ));
    }
    Scene {
        width,
        height,
        title: h.title.clone(),
        shapes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_text_makes_tokens_readable() {
        assert_eq!(tick_text(" Paris", 16), "␣Paris");
        assert_eq!(tick_text("a b ", 16), "a b␣");
        assert_eq!(tick_text("  ", 16), "␣␣");
        assert_eq!(tick_text("\n", 16), "\\n");
        assert_eq!(tick_text("x\u{7}", 16), "x\\x07");
        assert_eq!(tick_text("abcdefghij", 5), "abcd…");
        assert_eq!(tick_text("", 5), "");
    }
}
