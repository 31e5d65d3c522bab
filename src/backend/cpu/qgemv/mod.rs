//! Small-batch products that read quantised weights as the model file stores them.
//!
//! A batch of one to [`MAX_ROWS`] rows (generation's per-token passes, a sweep's last-block
//! rows) is bound by reading the weights from memory: the packed f32 panels of a Q4_1 model
//! are 6.4 times its file's bytes. When a [`super::gemm::PackedMatrix`] carries the
//! [`QuantRows`] it was dequantised from, such a product decodes each block in registers and
//! multiplies it there. The decoded weights are bit-identical to the loader's dequantisation
//! (the same f32 operations in the same order), so the product differs from the packed GEMM
//! only in the order of its sums.
//!
//! `HOOKLENS_QUANT_GEMV=off` keeps every product on the packed GEMM.
//! Files: `rows.rs` (the rows and their block types), `portable.rs`, `avx2.rs`, `avx512.rs`
//! (one row's dot products per instruction set), `run.rs` (threads and epilogues).

/// Defines an instruction set's `row_dots` (the interface of [`portable::row_dots`]) over
/// its `dots::<KIND, R>`, which must exist in the invoking module; `$features` names what
/// the CPU must have.
macro_rules! row_dots_by_kind_and_rows {
    ($features:literal) => {
        /// [`super::portable::row_dots`] with this module's instruction set.
        ///
        /// # Safety
        #[doc = concat!($features, " available;")]
        /// `row` holds whole blocks of `kind`; `x` holds `rows` rows of `ldx >= row's
        /// weights` values; `1 <= rows <= MAX_ROWS`.
        pub(super) unsafe fn row_dots(
            kind: super::QuantKind,
            row: &[u8],
            x: &[f32],
            ldx: usize,
            rows: usize,
            out: &mut [f32; MAX_ROWS],
        ) {
            use super::rows::{KIND_Q4_0, KIND_Q4_1, KIND_Q8_0};
            let bb = kind.block_bytes();
            debug_assert!(x.len() >= (rows - 1) * ldx + row.len() / bb * BLOCK);
            let x = x.as_ptr();
            macro_rules! by_rows {
                ($kind:ident) => {
                    // SAFETY: the features and extents are the caller's promise.
                    unsafe {
                        match rows {
                            1 => dots::<$kind, 1>(row, bb, x, ldx, out),
                            2 => dots::<$kind, 2>(row, bb, x, ldx, out),
                            3 => dots::<$kind, 3>(row, bb, x, ldx, out),
                            _ => dots::<$kind, 4>(row, bb, x, ldx, out),
                        }
                    }
                };
            }
            match kind {
                super::QuantKind::Q8_0 => by_rows!(KIND_Q8_0),
                super::QuantKind::Q4_0 => by_rows!(KIND_Q4_0),
                super::QuantKind::Q4_1 => by_rows!(KIND_Q4_1),
            }
        }
    };
}
use row_dots_by_kind_and_rows;

mod portable;
mod rows;
mod run;
#[cfg(test)]
mod tests;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;

use std::sync::OnceLock;

pub use rows::{QuantKind, QuantRows};
pub use run::quant_gemm;

/// The most rows of `x` a quantised product takes; larger batches use the packed GEMM, whose
/// blocking reuses each weight for many rows.
pub const MAX_ROWS: usize = 4;

/// The environment variable that turns quantised products off (`off`) or on (`on`, the
/// default).
pub const QUANT_ENV: &str = "HOOKLENS_QUANT_GEMV";

/// Whether products with quantised rows use them ([`QUANT_ENV`], read once). An unknown
/// value is reported once on stderr and taken as `on`.
pub fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| match std::env::var(QUANT_ENV).as_deref() {
        Ok("off") | Ok("0") => false,
        Ok("on") | Ok("1") | Ok("") | Err(_) => true,
        Ok(other) => {
            eprintln!("hooklens: {QUANT_ENV}={other}: expected on or off; using on");
            true
        }
    })
}
