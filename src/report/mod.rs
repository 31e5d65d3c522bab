//! Reports of sweep results: heatmaps as SVG and PNG (own PNG encoder and bitmap font).

pub mod heatmap;

mod colour;
mod font;
mod layout;
mod png;
mod raster;
mod svg;
mod wrap;
