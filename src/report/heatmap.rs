//! Heatmaps of sweep results (layer x head ablation grids, layer x position patching grids) as
//! SVG or PNG, with axis and tick labels, a colour bar, and grey cells for missing values.
//!
//! ```no_run
//! use hooklens::report::heatmap::Heatmap;
//! # fn main() -> hooklens::Result<()> {
//! let (layers, heads) = (2, 3);
//! let effects = vec![0.1, -0.4, 0.0, 1.2, f64::NAN, -0.2]; // row-major [layer, head]
//! let map = Heatmap::new(
//!     "Head ablation",
//!     "head",
//!     "layer",
//!     Heatmap::index_ticks(heads),
//!     Heatmap::index_ticks(layers),
//!     effects,
//!     "Δ log-prob",
//! )?;
//! map.write(std::path::Path::new("ablation.svg"))?;
//! # Ok(())
//! # }
//! ```

use std::path::Path;

use super::{layout, png, raster, svg};
use crate::{HookLensError, Result};

/// A grid of values with labelled axes, rendered by [`Heatmap::to_svg`], [`Heatmap::to_png`] or
/// [`Heatmap::write`].
///
/// Row 0 is drawn at the top. Colours are diverging blue-white-red, symmetric around 0, when
/// the values have both signs; otherwise sequential from white (the value nearest 0) to red
/// (positive) or blue (negative). NaN marks a missing cell, drawn grey. Tick labels are shown
/// with leading and trailing spaces as '␣' and control characters escaped, so token strings such
/// as `" Paris"` read correctly; long labels are cut with '…', and with many columns the x labels
/// turn vertical and, if still too dense, only every k-th is shown.
#[derive(Clone, Debug, PartialEq)]
pub struct Heatmap {
    /// Title above the grid.
    pub title: String,
    /// Label of the horizontal axis (columns), e.g. "head" or "position".
    pub x_label: String,
    /// Label of the vertical axis (rows), e.g. "layer".
    pub y_label: String,
    /// One label per column, e.g. "0".."8" or token strings.
    pub x_ticks: Vec<String>,
    /// One label per row.
    pub y_ticks: Vec<String>,
    /// Row-major values, `y_ticks.len()` rows of `x_ticks.len()` columns; NaN = missing.
    pub values: Vec<f64>,
    /// Label of the colour bar, e.g. "Δ log-prob".
    pub colour_label: String,
    /// Row ticks drawn instead of one per row, as (row, label): e.g. one per layer on the
    /// first head's row of a (layer, head) x position grid. Empty: each row's `y_ticks` label,
    /// thinned when rows are dense. `y_ticks` still name every row in the cell tooltips.
    pub y_group_ticks: Vec<(usize, String)>,
}

impl Heatmap {
    /// A heatmap of `values` (row-major, one row per `y_ticks` entry, one column per `x_ticks`
    /// entry). Fails with [`HookLensError::Input`] if there is no row or column or the number
    /// of values is not rows x columns.
    pub fn new(
        title: impl Into<String>,
        x_label: impl Into<String>,
        y_label: impl Into<String>,
        x_ticks: Vec<String>,
        y_ticks: Vec<String>,
        values: Vec<f64>,
        colour_label: impl Into<String>,
    ) -> Result<Self> {
        let map = Heatmap {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            x_ticks,
            y_ticks,
            values,
            colour_label: colour_label.into(),
            y_group_ticks: Vec::new(),
        };
        map.validate()?;
        Ok(map)
    }

    /// The same heatmap with row ticks only at `ticks` (row, label), e.g. `(layer * heads,
    /// "L{layer}")` for every layer. Fails with [`HookLensError::Input`] for a row out of range.
    pub fn with_y_group_ticks(mut self, ticks: Vec<(usize, String)>) -> Result<Self> {
        self.y_group_ticks = ticks;
        self.validate()?;
        Ok(self)
    }

    /// Tick labels "0", "1", ..., `n - 1`, for layer, head or position indices.
    pub fn index_ticks(n: usize) -> Vec<String> {
        (0..n).map(|i| i.to_string()).collect()
    }

    /// Number of rows (`y_ticks.len()`).
    pub fn rows(&self) -> usize {
        self.y_ticks.len()
    }

    /// Number of columns (`x_ticks.len()`).
    pub fn cols(&self) -> usize {
        self.x_ticks.len()
    }

    /// Checks that the fields agree (they are public, so they can change after [`Heatmap::new`]).
    pub fn validate(&self) -> Result<()> {
        let (rows, cols) = (self.rows(), self.cols());
        if rows == 0 || cols == 0 {
            return Err(HookLensError::input(format!(
                "heatmap needs at least one row and one column, got {rows} y_ticks and {cols} \
                 x_ticks"
            )));
        }
        if self.values.len() != rows * cols {
            return Err(HookLensError::input(format!(
                "heatmap has {} values but {rows} rows (y_ticks) x {cols} columns (x_ticks) \
                 need {}",
                self.values.len(),
                rows * cols
            )));
        }
        if let Some((row, _)) = self.y_group_ticks.iter().find(|(r, _)| *r >= rows) {
            return Err(HookLensError::input(format!(
                "heatmap group tick at row {row} but there are {rows} rows"
            )));
        }
        Ok(())
    }

    /// The heatmap as a standalone SVG document. Cells carry tooltips with their exact value.
    /// Never panics; if the fields disagree, missing values are drawn as missing.
    pub fn to_svg(&self) -> String {
        svg::render(&layout::layout(self))
    }

    /// The heatmap as a PNG file (8-bit RGB). Never panics; if the fields disagree, missing
    /// values are drawn as missing.
    pub fn to_png(&self) -> Vec<u8> {
        let canvas = raster::render(&layout::layout(self));
        png::encode_rgb(canvas.width as u32, canvas.height as u32, &canvas.rgb)
    }

    /// Writes the heatmap to `path` as SVG or PNG, chosen by the extension (`.svg` or `.png`,
    /// any case), atomically (see [`crate::output::write_atomic`]). Fails with
    /// [`HookLensError::Input`] for another extension or fields that disagree, and
    /// [`HookLensError::Write`] if the file cannot be written.
    pub fn write(&self, path: &Path) -> Result<()> {
        self.validate()?;
        let bytes = match Heatmap::format_of(path)? {
            ImageFormat::Svg => self.to_svg().into_bytes(),
            ImageFormat::Png => self.to_png(),
        };
        crate::output::write_atomic(path, &bytes)
    }

    /// The image format [`Heatmap::write`] uses for `path`, from its extension; fails with
    /// [`HookLensError::Input`] for an extension other than `.svg` or `.png` (any case), so
    /// a caller can check an output path before computing what goes in it.
    pub fn format_of(path: &Path) -> Result<ImageFormat> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("svg") => Ok(ImageFormat::Svg),
            Some("png") => Ok(ImageFormat::Png),
            _ => Err(HookLensError::input(format!(
                "cannot write heatmap to `{}`: unsupported extension; use .svg or .png",
                path.display()
            ))),
        }
    }
}

/// The file formats a heatmap is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageFormat {
    /// Scalable vector graphics, with tooltips.
    Svg,
    /// 8-bit RGB PNG.
    Png,
}

#[cfg(test)]
#[path = "heatmap_tests.rs"]
mod tests;
