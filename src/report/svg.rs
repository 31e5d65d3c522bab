//! Draws a [`Scene`] as a standalone SVG document.

use std::fmt::Write;

use super::colour::{INK, WHITE};
use super::layout::{Anchor, Scene, Shape};

/// Font size of labels, px; a monospace face at this size advances at most
/// [`super::layout::ADVANCE`] px per character.
const FONT_SIZE: i32 = 18;
/// Distance from the top of a line to the text baseline, px.
const BASELINE: i32 = 14;

/// Escapes `s` for SVG text and attribute values. Characters XML 1.0 forbids (control
/// characters other than tab, newline and carriage return) become U+FFFD.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if c.is_control() || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// The SVG text of `scene`.
pub(crate) fn render(scene: &Scene) -> String {
    let (w, h) = (scene.width, scene.height);
    let mut out = String::new();
    // `write!` into a String cannot fail; the results are ignored below for that reason.
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="DejaVu Sans Mono, Menlo, Consolas, monospace" font-size="{FONT_SIZE}" fill="{}" xml:space="preserve">"#,
        INK.hex()
    );
    let _ = writeln!(out, "<title>{}</title>", escape(&scene.title));
    let _ = writeln!(
        out,
        r#"<rect width="{w}" height="{h}" fill="{}"/>"#,
        WHITE.hex()
    );
    for shape in &scene.shapes {
        draw(&mut out, shape);
    }
    out.push_str("</svg>\n");
    out
}

fn draw(out: &mut String, shape: &Shape) {
    let _ = match shape {
        Shape::Cell {
            x,
            y,
            w,
            h,
            fill,
            tooltip,
        } => writeln!(
            out,
            r#"<rect class="cell" x="{x}" y="{y}" width="{w}" height="{h}" fill="{}" shape-rendering="crispEdges"><title>{}</title></rect>"#,
            fill.hex(),
            escape(tooltip)
        ),
        Shape::Rect { x, y, w, h, fill } => writeln!(
            out,
            r#"<rect x="{x}" y="{y}" width="{w}" height="{h}" fill="{}" shape-rendering="crispEdges"/>"#,
            fill.hex()
        ),
        Shape::Frame { x, y, w, h } => writeln!(
            out,
            r#"<rect x="{}" y="{}" width="{}" height="{}" fill="none" stroke="{}" stroke-width="1"/>"#,
            *x as f64 + 0.5,
            *y as f64 + 0.5,
            w - 1,
            h - 1,
            INK.hex()
        ),
        Shape::Text {
            x,
            y,
            text,
            anchor,
            vertical,
            bold,
        } => {
            let anchor = match anchor {
                Anchor::Start => "start",
                Anchor::Middle => "middle",
                Anchor::End => "end",
            };
            let bold = if *bold {
                r#" font-weight="bold" font-size="20""#
            } else {
                ""
            };
            let place = if *vertical {
                format!(r#"transform="translate({},{y}) rotate(-90)""#, x + BASELINE)
            } else {
                format!(r#"x="{x}" y="{}""#, y + BASELINE)
            };
            writeln!(
                out,
                r#"<text {place} text-anchor="{anchor}"{bold}>{}</text>"#,
                escape(text)
            )
        }
        Shape::ColourBar { x, y, w, h, scale } => {
            let _ = writeln!(
                out,
                r#"<defs><linearGradient id="hooklens-colour-bar" x1="0" y1="1" x2="0" y2="0">"#
            );
            for (offset, colour) in scale.bar_stops() {
                let _ = writeln!(
                    out,
                    r#"<stop offset="{offset}" stop-color="{}"/>"#,
                    colour.hex()
                );
            }
            writeln!(
                out,
                r##"</linearGradient></defs><rect x="{x}" y="{y}" width="{w}" height="{h}" fill="url(#hooklens-colour-bar)"/>"##
            )
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_forbidden_characters() {
        assert_eq!(
            escape(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(escape("ok\u{1}"), "ok\u{FFFD}");
        assert_eq!(escape("␣Paris"), "␣Paris");
        // Text drawn at these sizes stays inside the boxes the layout reserves.
        use super::super::layout::{ADVANCE, LINE};
        const { assert!(BASELINE < LINE && FONT_SIZE * 6 / 10 <= ADVANCE) };
    }
}
