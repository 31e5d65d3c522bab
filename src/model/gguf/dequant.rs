//! ggml tensor types and their dequantisation to `f32`.
//!
//! Block layouts (all little-endian, `d`/`m`/`dmin` are IEEE half floats):
//!
//! | type | elements per block | bytes per block | layout |
//! |------|-------------------:|----------------:|--------|
//! | Q8_0 | 32  | 34  | `d`, 32 x i8 `q`; `x = d * q` |
//! | Q4_0 | 32  | 18  | `d`, 16 bytes of nibbles; low nibbles are elements 0..16, high nibbles 16..32; `x = d * (q - 8)` |
//! | Q4_1 | 32  | 20  | `d`, `m`, 16 bytes of nibbles as Q4_0; `x = d * q + m` |
//! | Q4_K | 256 | 144 | `d`, `dmin`, 12 bytes of packed 6-bit (scale, min) for 8 sub-blocks of 32, 128 bytes of nibbles |
//! | Q6_K | 256 | 210 | 128 bytes low 4 bits, 64 bytes high 2 bits, 16 x i8 scales (one per 16 elements), `d` |
//!
//! The arithmetic follows ggml's reference dequantisation (and the `gguf` Python package) in
//! the same f32 operation order, so results are bit-identical to it.

use half::{bf16, f16};

use crate::error::{HookLensError, Result};

/// Elements per super-block of the k-quants.
const QK_K: usize = 256;

/// The ggml tensor element types that can appear in a GGUF file, with their ggml type ids.
///
/// Every type is known for its storage size, so files holding any of them can be opened and
/// validated; [`GgmlType::can_dequantize`] says which ones [`dequantize`] converts to `f32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(non_camel_case_types)]
pub enum GgmlType {
    /// 32-bit float (id 0).
    F32,
    /// IEEE half float (id 1).
    F16,
    /// 4-bit, scale only (id 2).
    Q4_0,
    /// 4-bit, scale and minimum (id 3).
    Q4_1,
    /// 5-bit, scale only (id 6).
    Q5_0,
    /// 5-bit, scale and minimum (id 7).
    Q5_1,
    /// 8-bit, scale only (id 8).
    Q8_0,
    /// 8-bit with block sums (id 9).
    Q8_1,
    /// 2-bit k-quant (id 10).
    Q2_K,
    /// 3-bit k-quant (id 11).
    Q3_K,
    /// 4-bit k-quant (id 12).
    Q4_K,
    /// 5-bit k-quant (id 13).
    Q5_K,
    /// 6-bit k-quant (id 14).
    Q6_K,
    /// 8-bit k-quant (id 15).
    Q8_K,
    /// Importance-matrix 2-bit (id 16).
    IQ2_XXS,
    /// Importance-matrix 2-bit (id 17).
    IQ2_XS,
    /// Importance-matrix 3-bit (id 18).
    IQ3_XXS,
    /// Importance-matrix 1-bit (id 19).
    IQ1_S,
    /// Non-linear 4-bit (id 20).
    IQ4_NL,
    /// Importance-matrix 3-bit (id 21).
    IQ3_S,
    /// Importance-matrix 2-bit (id 22).
    IQ2_S,
    /// Non-linear 4-bit k-quant (id 23).
    IQ4_XS,
    /// 8-bit integer (id 24).
    I8,
    /// 16-bit integer (id 25).
    I16,
    /// 32-bit integer (id 26).
    I32,
    /// 64-bit integer (id 27).
    I64,
    /// 64-bit float (id 28).
    F64,
    /// Importance-matrix 1-bit (id 29).
    IQ1_M,
    /// bfloat16 (id 30).
    BF16,
    /// Ternary (id 34).
    TQ1_0,
    /// Ternary (id 35).
    TQ2_0,
    /// Microscaling FP4 (id 39).
    MXFP4,
}

impl GgmlType {
    /// The type with ggml id `id`, or `None` when the id is not a known ggml type.
    pub fn from_id(id: u32) -> Option<GgmlType> {
        use GgmlType::*;
        Some(match id {
            0 => F32,
            1 => F16,
            2 => Q4_0,
            3 => Q4_1,
            6 => Q5_0,
            7 => Q5_1,
            8 => Q8_0,
            9 => Q8_1,
            10 => Q2_K,
            11 => Q3_K,
            12 => Q4_K,
            13 => Q5_K,
            14 => Q6_K,
            15 => Q8_K,
            16 => IQ2_XXS,
            17 => IQ2_XS,
            18 => IQ3_XXS,
            19 => IQ1_S,
            20 => IQ4_NL,
            21 => IQ3_S,
            22 => IQ2_S,
            23 => IQ4_XS,
            24 => I8,
            25 => I16,
            26 => I32,
            27 => I64,
            28 => F64,
            29 => IQ1_M,
            30 => BF16,
            34 => TQ1_0,
            35 => TQ2_0,
            39 => MXFP4,
            _ => return None,
        })
    }

    /// (elements per block, bytes per block).
    fn layout(self) -> (usize, usize) {
        use GgmlType::*;
        match self {
            F32 => (1, 4),
            F16 => (1, 2),
            Q4_0 => (32, 2 + 16),
            Q4_1 => (32, 2 + 2 + 16),
            Q5_0 => (32, 2 + 4 + 16),
            Q5_1 => (32, 2 + 2 + 4 + 16),
            Q8_0 => (32, 2 + 32),
            Q8_1 => (32, 4 + 4 + 32),
            Q2_K => (QK_K, 2 + 2 + QK_K / 16 + QK_K / 4),
            Q3_K => (QK_K, 2 + QK_K / 4 + QK_K / 8 + 12),
            Q4_K => (QK_K, 2 + 2 + QK_K / 2 + 12),
            Q5_K => (QK_K, 2 + 2 + QK_K / 2 + QK_K / 8 + 12),
            Q6_K => (QK_K, 2 + QK_K / 2 + QK_K / 4 + QK_K / 16),
            Q8_K => (QK_K, 4 + QK_K + QK_K / 8),
            IQ2_XXS => (QK_K, 2 + QK_K / 4),
            IQ2_XS => (QK_K, 2 + QK_K / 4 + QK_K / 32),
            IQ3_XXS => (QK_K, 2 + QK_K / 4 + QK_K / 8),
            IQ1_S => (QK_K, 2 + QK_K / 8 + QK_K / 16),
            IQ4_NL => (32, 2 + 16),
            IQ3_S => (QK_K, 2 + QK_K / 4 + QK_K / 8 + QK_K / 32 + 4),
            IQ2_S => (QK_K, 2 + QK_K / 4 + QK_K / 16),
            IQ4_XS => (QK_K, 2 + 2 + QK_K / 2 + QK_K / 64),
            I8 => (1, 1),
            I16 => (1, 2),
            I32 => (1, 4),
            I64 => (1, 8),
            F64 => (1, 8),
            IQ1_M => (QK_K, QK_K / 8 + QK_K / 16 + QK_K / 32),
            BF16 => (1, 2),
            TQ1_0 => (QK_K, 2 + 4 * 13),
            TQ2_0 => (QK_K, 2 + 64),
            MXFP4 => (32, 1 + 16),
        }
    }

    /// Number of elements one block holds (1 for plain types).
    pub fn block_size(self) -> usize {
        self.layout().0
    }

    /// Number of bytes one block occupies.
    pub fn type_size(self) -> usize {
        self.layout().1
    }

    /// Bytes needed to store `n_elements` elements, or `None` when `n_elements` is not a whole
    /// number of blocks or the size overflows.
    pub fn bytes_for(self, n_elements: usize) -> Option<usize> {
        let (block, size) = self.layout();
        if !n_elements.is_multiple_of(block) {
            return None;
        }
        (n_elements / block).checked_mul(size)
    }

    /// True when [`dequantize`] supports this type.
    pub fn can_dequantize(self) -> bool {
        kernel_for(self).is_some()
    }
}

impl std::fmt::Display for GgmlType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

/// A dequantisation kernel: converts whole blocks of `src` into `dst` (lengths pre-checked).
type Kernel = fn(&[u8], &mut [f32]);

/// The kernel for `ty`, or `None` when hooklens cannot dequantise it.
fn kernel_for(ty: GgmlType) -> Option<Kernel> {
    Some(match ty {
        GgmlType::F32 => dequant_f32,
        GgmlType::F16 => dequant_f16,
        GgmlType::BF16 => dequant_bf16,
        GgmlType::Q8_0 => dequant_q8_0,
        GgmlType::Q4_0 => dequant_q4_0,
        GgmlType::Q4_1 => dequant_q4_1,
        GgmlType::Q4_K => dequant_q4_k,
        GgmlType::Q6_K => dequant_q6_k,
        _ => return None,
    })
}

/// Dequantises `n_elements` values of type `ty` from `data` into `out`, in storage order.
///
/// `data` must hold exactly the bytes of `n_elements` elements and `out` exactly `n_elements`
/// slots; otherwise, or when `ty` is not supported, an error is returned and `out` is untouched.
pub fn dequantize(ty: GgmlType, data: &[u8], n_elements: usize, out: &mut [f32]) -> Result<()> {
    let Some(kernel) = kernel_for(ty) else {
        return Err(HookLensError::unsupported(format!(
            "dequantising ggml type {ty} (hooklens supports F32, F16, BF16, Q8_0, Q4_0, Q4_1, \
             Q4_K and Q6_K)"
        )));
    };
    let Some(expected_bytes) = ty.bytes_for(n_elements) else {
        return Err(HookLensError::input(format!(
            "{n_elements} elements are not a whole number of {ty} blocks of {}",
            ty.block_size()
        )));
    };
    if data.len() != expected_bytes {
        return Err(HookLensError::input(format!(
            "{n_elements} elements of {ty} take {expected_bytes} bytes, but {} were given",
            data.len()
        )));
    }
    if out.len() != n_elements {
        return Err(HookLensError::input(format!(
            "output buffer holds {} values, but {n_elements} are being dequantised",
            out.len()
        )));
    }
    kernel(data, out);
    Ok(())
}

/// Reads the little-endian half float at `bytes[at..at + 2]`.
fn read_f16(bytes: &[u8], at: usize) -> f32 {
    f16::from_bits(u16::from_le_bytes([bytes[at], bytes[at + 1]])).to_f32()
}

/// F32: little-endian floats.
fn dequant_f32(src: &[u8], dst: &mut [f32]) {
    for (x, b) in dst.iter_mut().zip(src.chunks_exact(4)) {
        *x = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    }
}

/// F16: little-endian IEEE half floats.
fn dequant_f16(src: &[u8], dst: &mut [f32]) {
    for (x, b) in dst.iter_mut().zip(src.chunks_exact(2)) {
        *x = f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32();
    }
}

/// BF16: little-endian bfloat16, the top half of an f32.
fn dequant_bf16(src: &[u8], dst: &mut [f32]) {
    for (x, b) in dst.iter_mut().zip(src.chunks_exact(2)) {
        *x = bf16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32();
    }
}

/// Applies a one-block kernel to every block of a quantised tensor.
fn per_block(ty: GgmlType, src: &[u8], dst: &mut [f32], block: fn(&[u8], &mut [f32])) {
    let (elements, bytes) = ty.layout();
    for (s, d) in src.chunks_exact(bytes).zip(dst.chunks_exact_mut(elements)) {
        block(s, d);
    }
}

/// Q8_0 tensor.
fn dequant_q8_0(src: &[u8], dst: &mut [f32]) {
    per_block(GgmlType::Q8_0, src, dst, block_q8_0);
}

/// Q4_0 tensor.
fn dequant_q4_0(src: &[u8], dst: &mut [f32]) {
    per_block(GgmlType::Q4_0, src, dst, block_q4_0);
}

/// Q4_1 tensor.
fn dequant_q4_1(src: &[u8], dst: &mut [f32]) {
    per_block(GgmlType::Q4_1, src, dst, block_q4_1);
}

/// Q4_K tensor.
fn dequant_q4_k(src: &[u8], dst: &mut [f32]) {
    per_block(GgmlType::Q4_K, src, dst, block_q4_k);
}

/// Q6_K tensor.
fn dequant_q6_k(src: &[u8], dst: &mut [f32]) {
    per_block(GgmlType::Q6_K, src, dst, block_q6_k);
}

/// One Q8_0 block: `d`, then 32 signed bytes.
fn block_q8_0(src: &[u8], dst: &mut [f32]) {
    let d = read_f16(src, 0);
    for (x, &q) in dst.iter_mut().zip(&src[2..34]) {
        *x = (q as i8) as f32 * d;
    }
}

/// One Q4_0 block: `d`, then 16 bytes whose low nibbles are elements 0..16 and high nibbles
/// elements 16..32, each offset by 8.
fn block_q4_0(src: &[u8], dst: &mut [f32]) {
    let d = read_f16(src, 0);
    let (lo, hi) = dst.split_at_mut(16);
    for (j, &q) in src[2..18].iter().enumerate() {
        lo[j] = d * ((q & 0x0F) as i32 - 8) as f32;
        hi[j] = d * ((q >> 4) as i32 - 8) as f32;
    }
}

/// One Q4_1 block: `d`, `m`, then nibbles as in Q4_0 without the offset.
fn block_q4_1(src: &[u8], dst: &mut [f32]) {
    let d = read_f16(src, 0);
    let m = read_f16(src, 2);
    let (lo, hi) = dst.split_at_mut(16);
    for (j, &q) in src[4..20].iter().enumerate() {
        lo[j] = d * (q & 0x0F) as f32 + m;
        hi[j] = d * (q >> 4) as f32 + m;
    }
}

/// The 6-bit (scale, min) of sub-block `j` (0..8) from the 12 packed bytes of a Q4_K block:
/// bytes 0..4 hold scales 0..4 in their low 6 bits, bytes 4..8 mins 0..4; scales and mins 4..8
/// take their low 4 bits from bytes 8..12 and their high 2 bits from the top bits of bytes 0..8.
fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        let scale = (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4);
        let min = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
        (scale, min)
    }
}

/// One Q4_K super-block: `d`, `dmin`, 12 scale bytes, 128 nibble bytes. Each 32-byte chunk of
/// nibbles holds two sub-blocks of 32 elements: low nibbles first, then high nibbles.
fn block_q4_k(src: &[u8], dst: &mut [f32]) {
    let d = read_f16(src, 0);
    let dmin = read_f16(src, 2);
    let scales = &src[4..16];
    let qs = &src[16..144];
    for chunk in 0..4 {
        let q = &qs[chunk * 32..chunk * 32 + 32];
        for half in 0..2 {
            let sub = chunk * 2 + half;
            let (sc, mn) = scale_min_k4(sub, scales);
            let scale = d * sc as f32;
            let min = dmin * mn as f32;
            let shift = 4 * half;
            let out = &mut dst[sub * 32..sub * 32 + 32];
            for (x, &byte) in out.iter_mut().zip(q) {
                *x = scale * ((byte >> shift) & 0x0F) as f32 - min;
            }
        }
    }
}

/// One Q6_K super-block: `ql` (128 bytes), `qh` (64 bytes), 16 signed scales, `d`.
///
/// Each half of 128 elements uses 64 bytes of `ql` and 32 of `qh`. Within a half, element
/// `32 * g + l` (g in 0..4, l in 0..32) takes its low 4 bits from `ql[l + 32 * (g % 2)]` (low
/// nibble for g < 2, high nibble otherwise) and its high 2 bits from bits `2g..2g+2` of `qh[l]`;
/// the value is `d * scale[element / 16] * (q - 32)`.
fn block_q6_k(src: &[u8], dst: &mut [f32]) {
    let ql_all = &src[0..128];
    let qh_all = &src[128..192];
    let scales = &src[192..208];
    let d = read_f16(src, 208);
    for half in 0..2 {
        let ql = &ql_all[half * 64..half * 64 + 64];
        let qh = &qh_all[half * 32..half * 32 + 32];
        for g in 0..4 {
            for l in 0..32 {
                let low = if g < 2 {
                    ql[l + 32 * (g % 2)] & 0x0F
                } else {
                    ql[l + 32 * (g % 2)] >> 4
                };
                let high = (qh[l] >> (2 * g)) & 0x03;
                let q = (low | (high << 4)) as i32 - 32;
                let e = half * 128 + g * 32 + l;
                let scale = d * (scales[e / 16] as i8) as f32;
                dst[e] = scale * q as f32;
            }
        }
    }
}
