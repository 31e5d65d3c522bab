use super::*;
use crate::report::colour::{Scale, BLUE_END, MISSING, RED_END, WHITE};
use crate::report::layout::{layout, text_width, Anchor, Shape, LINE};
use crate::report::png::decode::decode_rgb;

fn ticks(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// 3 rows x 4 columns, both signs, one missing cell, labels that need escaping.
fn sample() -> Heatmap {
    let values = vec![
        1.0,
        -2.0,
        0.0,
        0.5, //
        f64::NAN,
        2.0,
        -1.0,
        0.25, //
        0.0,
        0.0,
        1.5,
        -0.5,
    ];
    Heatmap::new(
        "A <b>&\"title\"",
        "token",
        "layer",
        ticks(&[" Paris", "<eos>", "a&b", "'q'"]),
        Heatmap::index_ticks(3),
        values,
        "Δ log-prob",
    )
    .unwrap()
}

fn cells(h: &Heatmap) -> Vec<(i32, i32, i32, i32, crate::report::colour::Rgb)> {
    layout(h)
        .shapes
        .into_iter()
        .filter_map(|s| match s {
            Shape::Cell {
                x, y, w, h, fill, ..
            } => Some((x, y, w, h, fill)),
            _ => None,
        })
        .collect()
}

#[test]
fn new_rejects_mismatched_lengths() {
    let err = Heatmap::new(
        "t",
        "x",
        "y",
        ticks(&["a", "b"]),
        ticks(&["r"]),
        vec![1.0],
        "v",
    );
    let msg = err.unwrap_err().to_string();
    assert!(msg.contains("1 values") && msg.contains("need 2"), "{msg}");
    let err = Heatmap::new("t", "x", "y", vec![], vec![], vec![], "v").unwrap_err();
    assert!(matches!(err, HookLensError::Input { .. }));
    let mut ok = sample();
    ok.values.pop();
    assert!(matches!(ok.validate(), Err(HookLensError::Input { .. })));
    // Rendering a struct whose fields disagree still works (missing cells are grey).
    assert!(ok.to_png().starts_with(b"\x89PNG"));
    assert_eq!(ok.to_svg().matches(r#"class="cell""#).count(), 12);
}

#[test]
fn colours_follow_the_scale() {
    let h = sample();
    let fills: Vec<_> = cells(&h).into_iter().map(|c| c.4).collect();
    assert_eq!(
        Scale::for_values(&h.values),
        Scale::Diverging { limit: 2.0 }
    );
    assert_eq!(fills[2], WHITE); // 0
    assert_eq!(fills[5], RED_END); // +max
    assert_eq!(fills[1], BLUE_END); // -max
    assert_eq!(fills[4], MISSING); // NaN
}

#[test]
fn svg_has_one_rect_per_cell_escaped_labels_and_title() {
    let svg = sample().to_svg();
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert!(svg.trim_end().ends_with("</svg>"));
    assert_eq!(svg.matches(r#"class="cell""#).count(), 12);
    // Other rects: background, 2 frames, 4 + 3 + 3 tick marks, colour bar, missing swatch.
    assert_eq!(svg.matches("<rect").count(), 12 + 15);
    assert!(svg.contains("<title>A &lt;b&gt;&amp;&quot;title&quot;</title>"));
    assert!(svg.contains(">␣Paris</text>"));
    assert!(svg.contains(">&lt;eos&gt;</text>"));
    assert!(svg.contains(">a&amp;b</text>"));
    assert!(svg.contains(">&#39;q&#39;</text>"));
    assert!(!svg.contains("<b>") && !svg.contains("<eos>"));
    // Tooltips, colour bar labels, axis labels, the missing-value legend.
    assert!(svg.contains("<title>layer 2, token a&amp;b [2, 2]: 1.5</title>"));
    assert!(svg.contains("<title>layer 1, token ␣Paris [1, 0]: missing</title>"));
    assert!(svg.contains("<title>layer 1, token &lt;eos&gt; [1, 1]: 2</title>"));
    for label in [
        ">2</text>",
        ">-2</text>",
        ">0</text>",
        ">missing</text>",
        ">Δ log-prob</text>",
    ] {
        assert!(svg.contains(label), "{label} missing");
    }
    assert!(svg.contains("url(#hooklens-colour-bar)"));
}

#[test]
fn png_decodes_and_cells_have_their_colours() {
    let h = sample();
    let scene = layout(&h);
    let (w, hgt, rgb) = decode_rgb(&h.to_png());
    assert_eq!((w as i32, hgt as i32), (scene.width, scene.height));
    let pixel = |x: i32, y: i32| {
        let i = ((y * w as i32 + x) * 3) as usize;
        crate::report::colour::Rgb(rgb[i], rgb[i + 1], rgb[i + 2])
    };
    let cells = cells(&h);
    assert_eq!(cells.len(), 12);
    for (x, y, cw, ch, fill) in cells {
        assert_eq!(pixel(x + cw / 2, y + ch / 2), fill);
        assert_eq!(pixel(x, y), fill);
        assert_eq!(pixel(x + cw - 1, y + ch - 1), fill);
    }
    // Cell (1, 1) is +max: the red end.
    let (x, y, cw, ch, _) = self::cells(&h)[5];
    assert_eq!(pixel(x + cw / 2, y + ch / 2), RED_END);
    // The corner is background, and some text was drawn.
    assert_eq!(pixel(0, 0), WHITE);
    assert!(rgb.chunks(3).any(|p| p == [34, 34, 34]));
}

/// Every text's box, (x0, y0, x1, y1).
fn text_boxes(h: &Heatmap) -> Vec<(String, (i32, i32, i32, i32))> {
    let scene = layout(h);
    let mut out = Vec::new();
    for s in scene.shapes {
        if let Shape::Text {
            x,
            y,
            text,
            anchor,
            vertical,
            ..
        } = s
        {
            let len = text_width(&text);
            let shift = match anchor {
                Anchor::Start => 0,
                Anchor::Middle => len / 2,
                Anchor::End => len,
            };
            let b = if vertical {
                (x, y - len + shift, x + LINE, y + shift)
            } else {
                (x - shift, y, x - shift + len, y + LINE)
            };
            assert!(
                b.0 >= 0 && b.1 >= 0 && b.2 <= scene.width && b.3 <= scene.height,
                "{text}"
            );
            out.push((text, b));
        }
    }
    out
}

fn overlaps(a: (i32, i32, i32, i32), b: (i32, i32, i32, i32)) -> bool {
    // Boxes include a 1-character advance of slack; text glyphs are narrower than the box.
    a.0 < b.2 - 2 && b.0 < a.2 - 2 && a.1 < b.3 && b.1 < a.3
}

#[test]
fn labels_never_overlap_and_stay_on_the_canvas() {
    let token = |i: usize| format!(" tok{i}{}", "x".repeat(i % 5));
    for (rows, cols) in [(12, 12), (10, 30), (30, 200), (1, 1), (2, 60), (100, 3)] {
        let values: Vec<f64> = (0..rows * cols).map(|i| (i as f64).sin()).collect();
        let x_ticks: Vec<String> = (0..cols).map(token).collect();
        let h = Heatmap::new(
            "Activation patching: a rather long title for a small grid",
            "position",
            "layer",
            x_ticks,
            Heatmap::index_ticks(rows),
            values,
            "logit difference recovered",
        )
        .unwrap();
        let boxes = text_boxes(&h);
        for (i, (a, ba)) in boxes.iter().enumerate() {
            for (b, bb) in &boxes[i + 1..] {
                assert!(
                    !overlaps(*ba, *bb),
                    "{rows}x{cols}: '{a}' {ba:?} overlaps '{b}' {bb:?}"
                );
            }
        }
    }
}

#[test]
fn dense_axes_are_thinned_and_short_ticks_stay_horizontal() {
    let h = |rows: usize, cols: usize| {
        Heatmap::new(
            "",
            "",
            "",
            Heatmap::index_ticks(cols),
            Heatmap::index_ticks(rows),
            vec![1.0; rows * cols],
            "",
        )
        .unwrap()
    };
    let texts = |h: &Heatmap| -> Vec<(String, bool)> {
        layout(h)
            .shapes
            .into_iter()
            .filter_map(|s| match s {
                Shape::Text { text, vertical, .. } => Some((text, vertical)),
                _ => None,
            })
            .collect()
    };
    // 12 x 12: 48 px cells, every label horizontal ("1" is the colour bar's top label).
    let t = texts(&h(12, 12));
    assert_eq!(t.len(), 12 + 12 + 2);
    assert!(t.iter().all(|(_, v)| !v));
    // 200 columns of 4 px: vertical x labels, every 5th.
    let t = texts(&h(3, 200));
    let vertical: Vec<_> = t
        .iter()
        .filter(|(_, v)| *v)
        .map(|(s, _)| s.as_str())
        .collect();
    assert_eq!(vertical.len(), 40);
    assert_eq!(&vertical[..3], ["0", "5", "10"]);
    // ... while each of the 3 rows still gets its label (rows grow to 20 px).
    assert_eq!(t.len(), 40 + 3 + 2);
    // 100 rows x 3 columns: 6 px rows, every 4th labelled; all 3 columns (20 px wide).
    let t = texts(&h(100, 3));
    assert_eq!(t.len(), 25 + 3 + 2);
}

#[test]
fn write_picks_the_format_from_the_extension() {
    let dir = std::env::temp_dir().join(format!("hooklens-heatmap-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let h = sample();
    h.write(&dir.join("a.svg")).unwrap();
    h.write(&dir.join("b.PNG")).unwrap();
    assert!(std::fs::read_to_string(dir.join("a.svg"))
        .unwrap()
        .starts_with("<svg"));
    assert_eq!(
        decode_rgb(&std::fs::read(dir.join("b.PNG")).unwrap())
            .2
            .len()
            % 3,
        0
    );
    let err = h.write(&dir.join("c.jpg")).unwrap_err();
    assert!(matches!(err, HookLensError::Input { .. }));
    assert!(err.to_string().contains(".svg") && err.to_string().contains(".png"));
    assert!(h.write(&dir.join("noext")).is_err());
    let err = h.write(&dir.join("no/such/dir/d.png")).unwrap_err();
    assert!(matches!(err, HookLensError::Write { .. }), "{err}");
    assert!(err.to_string().starts_with("cannot write"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Writes sample heatmaps to `$TMPDIR/hooklens-heatmap-samples/` for a visual check.
#[test]
fn write_samples() {
    let dir = std::env::temp_dir().join("hooklens-heatmap-samples");
    std::fs::create_dir_all(&dir).unwrap();
    let div: Vec<f64> = (0..144)
        .map(|i| ((i / 12) as f64 * 0.7).sin() * ((i % 12) as f64 * 0.5).cos() * 3.0)
        .collect();
    let mut div = Heatmap::new(
        "Head ablation (12 x 12)",
        "head",
        "layer",
        Heatmap::index_ticks(12),
        Heatmap::index_ticks(12),
        div,
        "Δ log-prob",
    )
    .unwrap();
    div.values[13] = f64::NAN;
    // 30 tokens, '/'-separated.
    let words =
        "<|endoftext|>/The/ Eiffel/ Tower/ is/ in/ the/ city/ of/ Paris/,/ which/ is/ the/ \
                 capital/ of/ France/./\n/ It/ was/ built/ in/ 1889/ by/ Gustave/ Eiffel/'s/ \
                 company/ &";
    let seq: Vec<f64> = (0..300)
        .map(|i| ((i % 30) as f64 / 29.0).powi(2) * (1.0 + (i / 30) as f64 * 0.1))
        .collect();
    let seq = Heatmap::new(
        "Activation patching: resid_pre",
        "position",
        "layer",
        words.split('/').map(str::to_string).collect(),
        Heatmap::index_ticks(10),
        seq,
        "logit diff recovered",
    )
    .unwrap();
    // Dense and degenerate cases: 200 thinned vertical labels, all negative; one cell.
    let dense = Heatmap::new(
        "Dense",
        "position",
        "",
        Heatmap::index_ticks(200),
        ticks(&["attn", "mlp", "resid"]),
        (0..600).map(|i| -((i % 200) as f64) / 7.0).collect(),
        "",
    )
    .unwrap();
    let single = Heatmap::new("", "", "", ticks(&["x"]), ticks(&["y"]), vec![0.3], "v").unwrap();
    let samples = [
        ("diverging_12x12", &div),
        ("tokens_10x30", &seq),
        ("dense_3x200", &dense),
        ("single_1x1", &single),
    ];
    for (name, h) in samples {
        h.write(&dir.join(format!("{name}.png"))).unwrap();
        h.write(&dir.join(format!("{name}.svg"))).unwrap();
    }
}

#[test]
fn long_titles_wrap_inside_the_margins() {
    let title = "z (per head and position) patching clean -> corrupted: logit(\" Paris\" (id 7042)) - logit(\" Rome\" (id 12345)) over every layer";
    let h = Heatmap::new(
        title,
        "position",
        "layer",
        Heatmap::index_ticks(3),
        Heatmap::index_ticks(2),
        vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0],
        "recovery",
    )
    .unwrap();
    let scene = layout(&h);
    let lines: Vec<(String, i32, i32)> = scene
        .shapes
        .iter()
        .filter_map(|s| match s {
            Shape::Text {
                x,
                y,
                text,
                bold: true,
                ..
            } => Some((text.clone(), *x, *y)),
            _ => None,
        })
        .collect();
    assert!(lines.len() >= 2, "{lines:?}");
    let joined: Vec<&str> = lines.iter().map(|(t, _, _)| t.as_str()).collect();
    assert_eq!(joined.join(" "), title);
    for (text, x, _) in &lines {
        let half = text_width(text) / 2;
        assert!(
            x - half >= 16 && x + half <= scene.width - 16,
            "{text} touches the edge"
        );
    }
    assert!(
        lines.windows(2).all(|w| w[1].2 >= w[0].2 + LINE),
        "lines must not overlap"
    );
    // The grid starts below the last title line.
    let first_cell_y = scene
        .shapes
        .iter()
        .find_map(|s| match s {
            Shape::Cell { y, .. } => Some(*y),
            _ => None,
        })
        .unwrap();
    assert!(first_cell_y >= lines.last().unwrap().2 + LINE);
    text_boxes(&h);
}

#[test]
fn group_ticks_label_the_first_row_of_each_group() {
    let (layers, heads, cols) = (30, 9, 10);
    let rows = layers * heads;
    let y_ticks: Vec<String> = (0..rows)
        .map(|i| format!("L{}H{}", i / heads, i % heads))
        .collect();
    let groups = (0..layers).map(|l| (l * heads, format!("L{l}"))).collect();
    let h = Heatmap::new(
        "",
        "position",
        "layer.head",
        Heatmap::index_ticks(cols),
        y_ticks,
        vec![0.5; rows * cols],
        "",
    )
    .unwrap()
    .with_y_group_ticks(groups)
    .unwrap();
    let scene = layout(&h);
    let cell_of_row = |r: usize| {
        scene
            .shapes
            .iter()
            .filter_map(|s| match s {
                Shape::Cell { y, h, .. } => Some((*y, *h)),
                _ => None,
            })
            .nth(r * cols)
            .unwrap()
    };
    let y_labels: Vec<(String, i32)> = scene
        .shapes
        .iter()
        .filter_map(|s| match s {
            Shape::Text {
                text,
                y,
                anchor: Anchor::End,
                vertical: false,
                ..
            } => Some((text.clone(), *y)),
            _ => None,
        })
        .collect();
    assert_eq!(y_labels.len(), layers, "{y_labels:?}");
    for (l, (text, y)) in y_labels.iter().enumerate() {
        assert_eq!(text, &format!("L{l}"));
        let (cell_y, cell_h) = cell_of_row(l * heads);
        let centre = y + LINE / 2;
        assert!(
            centre >= cell_y && centre <= cell_y + cell_h,
            "L{l} is not on its layer's first row"
        );
    }
    // Tooltips still name every row.
    assert!(h.to_svg().contains("layer.head L4H7, position 3"));
    let bad = h.clone().with_y_group_ticks(vec![(rows, "x".into())]);
    assert!(bad.is_err());
}
