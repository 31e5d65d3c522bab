//! Causal attention in three kernels, one per TL hook: scores, pattern (softmax), z.

use super::activation::{exp_fast, max_of, sum_of};
use super::simd::{level, multiversion, Level};
use super::threads::{num_threads, reserve_workers};
use crate::layout::{RealSpan, RowLayout};

pub use crate::backend::HeadDims;

/// Scaled, causally masked scores for packed query rows. For each sequence `s` of `layout`
/// with rows at positions `t_i`: `scores[s][h, i, j] = q[row_i, h]·k[s, j, kv(h)] / sqrt(d_head)`
/// for `j <= t_i`, `-inf` otherwise; with a `mask`, also `-inf` for `j` outside the span
/// `mask[s]` (pad keys). Units of (sequence, kv head) run on the threads the budget allows.
/// q: // [rows, n_heads, d_head]   k: // [batch, seq_len, n_kv_heads, d_head]
/// scores: per sequence a block // [n_heads, n_rows_s, seq_len]  (full layout: [b, h, p, p])
pub fn attention_scores(
    q: &[f32],
    k: &[f32],
    scores: &mut [f32],
    layout: &RowLayout,
    mask: Option<&[RealSpan]>,
    dims: HeadDims,
) {
    let p = layout.seq_len;
    let group = dims.n_heads / dims.n_kv_heads;
    // One part per (sequence, kv head): the scores of its group of heads, contiguous.
    let mut parts = Vec::new();
    let mut rest = &mut scores[..];
    for (s, rows) in layout.seqs.iter().enumerate() {
        let n = rows.positions.len();
        for kv in 0..dims.n_kv_heads {
            let (mine, tail) = std::mem::take(&mut rest).split_at_mut(group * n * p);
            rest = tail;
            parts.push((s, kv, mine));
        }
    }
    let work = layout.rows() * dims.n_heads * p * dims.d_head;
    let workers = reserve_workers(if work < 1 << 18 { 1 } else { num_threads() });
    workers.run_parts(parts, |(s, kv, out)| {
        KEYS_T.with_borrow_mut(|kt| scores_of_group(q, k, (s, kv), out, layout, dims, kt));
        if let Some(span) = mask.map(|m| m[s]) {
            mask_pad_keys(out, p, span);
        }
    });
}

/// Sets the scores of keys outside `span` to `-inf`. scores: `[.., seq_len]`
fn mask_pad_keys(scores: &mut [f32], seq_len: usize, span: RealSpan) {
    for row in scores.chunks_exact_mut(seq_len) {
        row[..span.start].fill(f32::NEG_INFINITY);
        row[span.end().min(seq_len)..].fill(f32::NEG_INFINITY);
    }
}

thread_local! {
    /// Transposed keys for [`attention_scores`], kept per thread so that the parts (one per
    /// sequence and kv head) do not each allocate. `[d_head, padded keys]`
    static KEYS_T: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// [`attention_scores`] for the heads of kv head `kv` in sequence `s`.
/// out: `[group, n_rows_s, seq_len]`
fn scores_of_group(
    q: &[f32],
    k: &[f32],
    (s, kv): (usize, usize),
    out: &mut [f32],
    layout: &RowLayout,
    dims: HeadDims,
    kt: &mut Vec<f32>,
) {
    let HeadDims {
        n_heads,
        n_kv_heads,
        d_head,
    } = dims;
    let p = layout.seq_len;
    let group = n_heads / n_kv_heads;
    let scale = 1.0 / (d_head as f32).sqrt();
    let kv_width = n_kv_heads * d_head;
    let rows = &layout.seqs[s];
    let n = rows.positions.len();
    let Some(&t_max) = rows.positions.iter().max() else {
        return;
    };
    let keys = t_max + 1;
    let k_seq = &k[s * p * kv_width..][..keys * kv_width]; // [keys, n_kv, d_head]
    transpose_keys(k_seq, kv, dims, keys, kt);
    let q_row = |i: usize, h: usize| &q[((rows.offset + i) * n_heads + h) * d_head..][..d_head];
    for g in 0..group {
        let h = kv * group + g;
        let head_out = &mut out[g * n * p..][..n * p]; // [n_rows_s, seq_len]
        let mut quads = head_out.chunks_exact_mut(4 * p);
        // Four query rows at a time share each load of the keys.
        for (quad, block) in (&mut quads).enumerate() {
            let i = 4 * quad;
            let t = &rows.positions[i..i + 4];
            let visible = t.iter().max().map_or(0, |&m| m + 1);
            let q4 = [
                q_row(i, h),
                q_row(i + 1, h),
                q_row(i + 2, h),
                q_row(i + 3, h),
            ];
            score_rows4(q4, kt, (keys, visible), scale, block);
            for (row, &t) in block.chunks_exact_mut(p).zip(t) {
                row[t + 1..].fill(f32::NEG_INFINITY);
            }
        }
        let done = n - n % 4;
        for (r, row) in quads.into_remainder().chunks_exact_mut(p).enumerate() {
            let t = rows.positions[done + r];
            let (visible, masked) = row.split_at_mut(t + 1);
            score_row(q_row(done + r, h), kt, keys, scale, visible);
            masked.fill(f32::NEG_INFINITY);
        }
    }
}

multiversion! {
    /// [`scores_from_transposed`] for four query rows at once: `out` holds the four rows
    /// (`[4, seq_len]`), each filled at keys `0..visible` (`visible <= keys`).
    fn score_rows4(
        q4: [&[f32]; 4],
        kt: &[f32],
        keys_visible: (usize, usize),
        scale: f32,
        out: &mut [f32],
    ) {
        scores4_from_transposed(q4, kt, keys_visible, scale, out);
    }
}

/// The body of [`score_rows4`]: per block of sixteen keys, four rows of sums kept in
/// registers over `d` (the four rows are the independent chains; each key load feeds four
/// multiply-adds).
#[inline(always)]
fn scores4_from_transposed(
    q4: [&[f32]; 4],
    kt: &[f32],
    (keys, visible): (usize, usize),
    scale: f32,
    out: &mut [f32],
) {
    let padded = padded_keys(keys);
    let p = out.len() / 4;
    let d_head = q4[0].len();
    for b in 0..visible.div_ceil(KEY_BLOCK) {
        let mut acc = [[0.0f32; KEY_BLOCK]; 4];
        for d in 0..d_head {
            let col: &[f32; KEY_BLOCK] = kt[d * padded + b * KEY_BLOCK..][..KEY_BLOCK]
                .try_into()
                .expect("a slice of KEY_BLOCK values");
            for (acc_row, q) in acc.iter_mut().zip(q4) {
                let qd = q[d];
                for l in 0..KEY_BLOCK {
                    acc_row[l] += qd * col[l];
                }
            }
        }
        let width = KEY_BLOCK.min(visible - b * KEY_BLOCK);
        for (r, acc_row) in acc.iter().enumerate() {
            let dst = &mut out[r * p + b * KEY_BLOCK..][..width];
            for (o, &a) in dst.iter_mut().zip(acc_row) {
                *o = scale * a;
            }
        }
    }
}

multiversion! {
    /// `out[j] = scale * q·k_j` for the first `out.len()` keys of `kt` (see
    /// [`scores_from_transposed`]), compiled per vector level.
    fn score_row(q_row: &[f32], kt: &[f32], keys: usize, scale: f32, out: &mut [f32]) {
        scores_from_transposed(q_row, kt, keys, scale, out);
    }
}

/// Softmax of every row of length `len`, in place, rows split across the threads the budget
/// allows. A row with no finite entry, or with a NaN, becomes all zeros (torch's softmax makes
/// such a row NaN, and TL turns NaN into 0).
pub fn softmax_rows(x: &mut [f32], len: usize) {
    let len = len.max(1);
    let rows = x.len() / len;
    let workers = reserve_workers(if x.len() < 1 << 16 { 1 } else { num_threads() });
    let per_part = rows.div_ceil(workers.threads()).max(1) * len;
    let parts: Vec<&mut [f32]> = x.chunks_mut(per_part).collect();
    workers.run_parts(parts, |part| softmax_all(part, len));
}

multiversion! {
    /// [`softmax_rows`], compiled per vector level.
    fn softmax_all(x: &mut [f32], len: usize) {
        for row in x.chunks_exact_mut(len) {
            // Keys after the last finite score (the causal mask's -inf, unless a hook wrote
            // there) get weight exactly 0: the softmax runs over the keys before them.
            let (scored, masked) = row.split_at_mut(scored_keys(row));
            masked.fill(0.0);
            softmax_in_place(scored);
        }
    }
}

/// `z[row_i, h] = Σ_j pattern[s][h, i, j] v[s, j, kv(h)]` over every key position (the
/// pattern is zero above the diagonal unless a hook made it otherwise). Ranges of rows of
/// each sequence run on the threads the budget allows.
/// pattern: as `attention_scores`   v: // [batch, seq_len, n_kv_heads, d_head]
/// z: // [rows, n_heads, d_head]
pub fn attention_values(
    pattern: &[f32],
    v: &[f32],
    z: &mut [f32],
    layout: &RowLayout,
    dims: HeadDims,
) {
    let width = dims.n_heads * dims.d_head;
    let work = layout.rows() * width * layout.seq_len;
    let workers = reserve_workers(if work < 1 << 18 { 1 } else { num_threads() });
    // Parts: (sequence, first row in it, z of its rows), a few per thread per sequence,
    // starting at multiples of four rows: the rows go through the four-row kernel in the
    // same groups however many threads there are, so z has the same bits.
    let mut parts = Vec::new();
    let mut rest = &mut z[..layout.rows() * width];
    for (s, rows) in layout.seqs.iter().enumerate() {
        let n = rows.positions.len();
        let step = n.div_ceil(2 * workers.threads()).next_multiple_of(4);
        for i0 in (0..n).step_by(step) {
            let count = step.min(n - i0);
            let (mine, tail) = std::mem::take(&mut rest).split_at_mut(count * width);
            rest = tail;
            parts.push((s, i0, mine));
        }
    }
    workers.run_parts(parts, |(s, i0, z_part)| {
        values_of_rows(pattern, v, (s, i0), z_part, layout, dims);
    });
}

/// [`attention_values`] for rows `i0 .. i0 + z_part.len() / width` of sequence `s`.
/// z_part: `[count, n_heads, d_head]`
fn values_of_rows(
    pattern: &[f32],
    v: &[f32],
    (s, i0): (usize, usize),
    z_part: &mut [f32],
    layout: &RowLayout,
    dims: HeadDims,
) {
    let HeadDims {
        n_heads,
        n_kv_heads,
        d_head,
    } = dims;
    let p = layout.seq_len;
    let group = n_heads / n_kv_heads;
    let kv_width = n_kv_heads * d_head;
    let rows = &layout.seqs[s];
    let n = rows.positions.len();
    let block = rows.offset * n_heads * p;
    let v_seq = &v[s * p * kv_width..][..p * kv_width]; // [p, n_kv, d_head]
    let width = n_heads * d_head;
    let count = z_part.len() / width;
    let mut four = vec![0.0f32; 4 * d_head]; // [4, d_head]
    for h in 0..n_heads {
        let offset = (h / group) * d_head;
        let p_row = |r: usize| &pattern[block + (h * n + i0 + r) * p..][..p];
        // Four query rows at a time share each load of the values.
        let quads = count / 4;
        for quad in 0..quads {
            let r = 4 * quad;
            let w4 = [p_row(r), p_row(r + 1), p_row(r + 2), p_row(r + 3)];
            let t4 = &rows.positions[i0 + r..i0 + r + 4];
            let causal = t4.iter().max().map_or(0, |&t| t + 1);
            let used = w4.iter().map(|w| used_keys(w, causal)).max().unwrap_or(0);
            let w4 = w4.map(|w| &w[..used]);
            mix_rows4(w4, v_seq, (offset, kv_width), &mut four);
            for (k, z_row) in four.chunks_exact(d_head).enumerate() {
                z_part[(r + k) * width + h * d_head..][..d_head].copy_from_slice(z_row);
            }
        }
        for r in 4 * quads..count {
            let z_row = &mut z_part[r * width + h * d_head..][..d_head];
            mix_row(p_row(r), v_seq, (offset, kv_width), z_row);
        }
    }
}

/// Keys up to the last nonzero weight: the later ones add nothing (above the diagonal,
/// unless a hook wrote there). `causal`: the keys the row sees without a hook's edit; the
/// weights after them are checked in one pass without branches first (the usual case).
fn used_keys(w: &[f32], causal: usize) -> usize {
    let causal = causal.min(w.len());
    let beyond = w[causal..].iter().fold(false, |any, &x| any | (x != 0.0));
    let last = if beyond { w } else { &w[..causal] };
    last.iter().rposition(|&x| x != 0.0).map_or(0, |j| j + 1)
}

multiversion! {
    /// [`mix_values`] for four rows of weights of one head at once (all of one length):
    /// `out[r] = Σ_j w4[r][j] v[j, head]`. out: `[4, d_head]`
    fn mix_rows4(w4: [&[f32]; 4], v_seq: &[f32], values: (usize, usize), out: &mut [f32]) {
        mix4_values(w4, v_seq, values, out);
    }
}

/// The body of [`mix_rows4`]: per block of sixteen dimensions, the four rows' sums kept in
/// registers over the keys (each load of values feeds four multiply-adds); dimensions past
/// the last multiple of sixteen one at a time.
#[inline(always)]
fn mix4_values(
    w4: [&[f32]; 4],
    v_seq: &[f32],
    (offset, kv_width): (usize, usize),
    out: &mut [f32],
) {
    const BLOCK: usize = 16;
    let d_head = out.len() / 4;
    let keys = w4[0].len();
    for b in 0..d_head / BLOCK {
        let d0 = offset + b * BLOCK;
        let mut acc = [[0.0f32; BLOCK]; 4];
        for j in 0..keys {
            let v: &[f32; BLOCK] = v_seq[j * kv_width + d0..][..BLOCK]
                .try_into()
                .expect("a slice of BLOCK values");
            for (acc_row, w) in acc.iter_mut().zip(w4) {
                let wj = w[j];
                for l in 0..BLOCK {
                    acc_row[l] += wj * v[l];
                }
            }
        }
        for (r, acc_row) in acc.iter().enumerate() {
            out[r * d_head + b * BLOCK..][..BLOCK].copy_from_slice(acc_row);
        }
    }
    for d in d_head - d_head % BLOCK..d_head {
        for (r, w) in w4.iter().enumerate() {
            let sum = (0..keys).map(|j| w[j] * v_seq[j * kv_width + offset + d]);
            out[r * d_head + d] = sum.fold(0.0, |a, x| a + x);
        }
    }
}

multiversion! {
    /// `z_row = Σ_j w[j] v[j, head]` over every key up to the last nonzero weight; values:
    /// (offset of the head, kv_width).
    fn mix_row(w: &[f32], v_seq: &[f32], values: (usize, usize), z_row: &mut [f32]) {
        let (offset, kv_width) = values;
        mix_values(&w[..used_keys(w, w.len())], v_seq, offset, kv_width, z_row);
    }
}

/// Scores, causal softmax and mixing fused per query row, for when neither
/// `hook_attn_scores` nor `hook_pattern` is watched: no scores buffer is written. Rows are
/// split across threads in contiguous ranges of about equal work. With a `mask`, a row attends
/// only the keys of its sequence's span (the kernels see the keys from the span's start on),
/// and a row with no real key at or before it gets `z = 0`.
/// q: // [rows, n_heads, d_head]   k, v: // [batch, seq_len, n_kv_heads, d_head]
/// z: // [rows, n_heads, d_head]
pub fn attention_fused(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    z: &mut [f32],
    layout: &RowLayout,
    mask: Option<&[RealSpan]>,
    dims: HeadDims,
) {
    let width = dims.n_heads * dims.d_head;
    let rows = key_rows(layout, mask);
    attention_fused_rows(q, k, v, z, &rows, layout.seq_len, dims);
    if let Some(mask) = mask {
        zero_rows_without_keys(z, layout, mask, width);
    }
}

/// For every packed row: (the first key row in k / v it reads, its last key relative to that).
/// Unmasked: (s * seq_len, t). Masked: the keys start at the span's start and end at its end;
/// a row with no real key reads one key and [`zero_rows_without_keys`] clears it afterwards.
fn key_rows(layout: &RowLayout, mask: Option<&[RealSpan]>) -> Vec<(usize, usize)> {
    let p = layout.seq_len;
    let mut rows = Vec::with_capacity(layout.rows());
    for (s, seq) in layout.seqs.iter().enumerate() {
        let span = mask.map(|m| m[s]);
        let base = s * p + span.map_or(0, |sp| sp.start);
        for &t in &seq.positions {
            let last = span.map_or(Some(t), |sp| sp.last_key(t));
            rows.push((base, last.unwrap_or(0)));
        }
    }
    rows
}

/// `z = 0` at rows whose query sees no real key (pads before a left-padded span).
/// z: `[rows, width]`
fn zero_rows_without_keys(z: &mut [f32], layout: &RowLayout, mask: &[RealSpan], width: usize) {
    for (seq, span) in layout.seqs.iter().zip(mask) {
        for (i, &t) in seq.positions.iter().enumerate() {
            if span.last_key(t).is_none() {
                z[(seq.offset + i) * width..][..width].fill(0.0);
            }
        }
    }
}

/// [`attention_fused`] over `rows` (see [`key_rows`]), threaded.
fn attention_fused_rows(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    z: &mut [f32],
    rows: &[(usize, usize)],
    seq_len: usize,
    dims: HeadDims,
) {
    let width = dims.n_heads * dims.d_head;
    let work: usize = rows.iter().map(|&(_, t)| t + 1).sum();
    let wanted = if work * width < 1 << 16 {
        1
    } else {
        num_threads().min(rows.len())
    };
    let workers = reserve_workers(wanted);
    let threads = workers.threads();
    if threads == 1 {
        attention_rows(q, k, v, z, rows, 0, seq_len, dims);
        return;
    }
    // Contiguous row ranges with about work / threads each.
    let mut bounds = vec![0];
    let mut acc = 0;
    for (i, &(_, t)) in rows.iter().enumerate() {
        acc += t + 1;
        if acc * threads >= work * bounds.len() && bounds.len() < threads {
            bounds.push(i + 1);
        }
    }
    bounds.push(rows.len());
    bounds.dedup();
    let mut parts = Vec::with_capacity(bounds.len());
    let mut rest = &mut *z;
    for pair in bounds.windows(2) {
        let (lo, hi) = (pair[0], pair[1]);
        let (mine, tail) = rest.split_at_mut((hi - lo) * width);
        rest = tail;
        parts.push((lo, hi, mine));
    }
    workers.run_parts(parts, |(lo, hi, mine)| {
        attention_rows(q, k, v, mine, &rows[lo..hi], lo, seq_len, dims)
    });
}

/// The fused kernel for packed rows `first..first + rows.len()`, writing `z` for them only.
/// `rows[i]` is (first key row in k / v, last key relative to it); rows of one sequence are
/// contiguous; for each of them and each kv head the keys are
/// transposed once into `kt`, so that scores for a query row are vector multiply-adds along
/// the key positions.
#[allow(clippy::too_many_arguments)]
fn attention_rows(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    z: &mut [f32],
    rows: &[(usize, usize)],
    first: usize,
    seq_len: usize,
    dims: HeadDims,
) {
    let HeadDims {
        n_heads,
        n_kv_heads,
        d_head,
    } = dims;
    let group = n_heads / n_kv_heads;
    let scale = 1.0 / (d_head as f32).sqrt();
    let kv_width = n_kv_heads * d_head;
    let mut scores = vec![0.0f32; seq_len]; // [keys]
    let mut kt = Vec::new(); // [d_head, padded keys]

    // The query vectors that read one kv head of one sequence: (row, head, position).
    let mut vectors: Vec<(usize, usize, usize)> = Vec::new();
    #[cfg(target_arch = "x86_64")]
    let (avx512, avx2) = (level() == Level::Avx512, level() == Level::Avx2);
    #[cfg(target_arch = "x86_64")]
    let mut scratch = Avx2Scratch::new(if avx2 { d_head } else { 0 });
    #[cfg(target_arch = "x86_64")]
    let mut scratch512 = Avx512Scratch::new(if avx512 { d_head } else { 0 }, seq_len);
    let mut i0 = 0;
    while i0 < rows.len() {
        let s = rows[i0].0;
        let i1 = i0 + rows[i0..].iter().take_while(|r| r.0 == s).count();
        let keys = rows[i0..i1].iter().map(|r| r.1).max().unwrap_or(0) + 1;
        let k_seq = &k[s * kv_width..][..keys * kv_width]; // [keys, n_kv, d_head]
        let v_seq = &v[s * kv_width..][..keys * kv_width]; // [keys, n_kv, d_head]
        for kv in 0..n_kv_heads {
            let values = (v_seq, kv * d_head, kv_width);
            // Row-major, so that neighbouring vectors have about the same number of keys.
            vectors.clear();
            vectors.extend(
                (i0..i1)
                    .flat_map(|i| (kv * group..(kv + 1) * group).map(move |h| (i, h, rows[i].1))),
            );
            #[cfg(target_arch = "x86_64")]
            if avx2 {
                avx2_vectors(
                    &vectors,
                    (q, first),
                    (k_seq, keys),
                    values,
                    dims,
                    &mut scratch,
                    z,
                );
                continue;
            }
            transpose_keys(k_seq, kv, dims, keys, &mut kt);
            #[cfg(target_arch = "x86_64")]
            if avx512 {
                let kt = (&kt[..], padded_keys(keys));
                avx512_vectors(&vectors, (q, first), kt, values, dims, &mut scratch512, z);
                continue;
            }
            for &(i, h, t) in &vectors {
                let q_row = &q[((first + i) * n_heads + h) * d_head..][..d_head];
                let z_row = &mut z[(i * n_heads + h) * d_head..][..d_head];
                attend_one(q_row, &kt, keys, scale, &mut scores[..=t], values, z_row);
            }
        }
        i0 = i1;
    }
}

/// Buffers of the AVX-512 kernel: a block of query vectors, their outputs and their scores.
#[cfg(target_arch = "x86_64")]
struct Avx512Scratch {
    /// `[QUERY_BLOCK, d_head]`
    q: Vec<f32>,
    /// `[QUERY_BLOCK, d_head]`
    z: Vec<f32>,
    /// `[QUERY_BLOCK, padded keys]`
    scores: Vec<f32>,
}

#[cfg(target_arch = "x86_64")]
impl Avx512Scratch {
    /// Buffers for heads of `d_head` values and up to `seq_len` keys (`d_head` 0: none, for
    /// other kernels).
    fn new(d_head: usize, seq_len: usize) -> Self {
        use super::attention_avx512::QUERY_BLOCK;
        let n = if d_head == 0 { 0 } else { QUERY_BLOCK };
        Avx512Scratch {
            q: vec![0.0; n * d_head],
            z: vec![0.0; n * d_head],
            scores: vec![0.0; n * padded_keys(seq_len)],
        }
    }
}

/// The query vectors of one kv head of one sequence through the AVX-512 kernel,
/// `QUERY_BLOCK` at a time; a last block short of `QUERY_BLOCK` vectors repeats its last
/// vector and drops the copies' outputs. Every vector thus takes the same arithmetic
/// wherever a thread's share of the rows begins, so z does not depend on the thread count.
/// vectors: (packed row, head, position)   q: (`[rows, n_heads, d_head]`, first row)
/// kt: (`[d_head, padded]` transposed keys, padded)   z: `[rows, n_heads, d_head]`
#[cfg(target_arch = "x86_64")]
fn avx512_vectors(
    vectors: &[(usize, usize, usize)],
    (q, first): (&[f32], usize),
    kt: (&[f32], usize),
    values: (&[f32], usize, usize),
    dims: HeadDims,
    scratch: &mut Avx512Scratch,
    z: &mut [f32],
) {
    use super::attention_avx512::{attend_block, QUERY_BLOCK};
    let (n_heads, d_head) = (dims.n_heads, dims.d_head);
    let scale = 1.0 / (d_head as f32).sqrt();
    for chunk in vectors.chunks(QUERY_BLOCK) {
        let block: [(usize, usize, usize); QUERY_BLOCK] =
            std::array::from_fn(|r| chunk[r.min(chunk.len() - 1)]);
        let last = gather_block(&block, q, (first, n_heads, d_head), &mut scratch.q);
        // SAFETY: level() is Avx512 only where the CPU reports avx512f; the blocks are
        // [QUERY_BLOCK, d_head], kt is [d_head, padded] with every t below the keys it
        // holds and padded <= padded_keys(seq_len), so scratch.scores holds
        // QUERY_BLOCK * padded values; the values hold max t + 1 rows.
        unsafe {
            attend_block(
                &scratch.q,
                &last,
                kt,
                scale,
                &mut scratch.scores,
                values,
                &mut scratch.z,
            )
        };
        scatter_block(chunk, &scratch.z, (n_heads, d_head), z);
    }
}

/// Buffers of the AVX2 kernel: a group of query vectors, their outputs and the blocked keys.
#[cfg(target_arch = "x86_64")]
struct Avx2Scratch {
    /// `[TILES * QUERY_BLOCK, d_head]`
    q: Vec<f32>,
    /// `[TILES * QUERY_BLOCK, d_head]`
    z: Vec<f32>,
    /// `[key blocks, d_head, 16]`
    keys: Vec<f32>,
}

#[cfg(target_arch = "x86_64")]
impl Avx2Scratch {
    /// Buffers for heads of `d_head` values (0: none, for other kernels).
    fn new(d_head: usize) -> Self {
        use super::attention_avx2::{QUERY_BLOCK, TILES};
        let n = TILES * QUERY_BLOCK * d_head;
        Avx2Scratch {
            q: vec![0.0; n],
            z: vec![0.0; n],
            keys: Vec::new(),
        }
    }
}

/// The query vectors of one kv head of one sequence through the AVX2 kernel, in groups of up
/// to `TILES` tiles; a last tile short of `QUERY_BLOCK` vectors repeats its last vector and
/// drops the copies' outputs.
/// vectors: (packed row, head, position)   q: (`[rows, n_heads, d_head]`, first row)
/// keys: (`[keys, n_kv, d_head]` of the sequence, keys)   z: `[rows, n_heads, d_head]`
#[cfg(target_arch = "x86_64")]
fn avx2_vectors(
    vectors: &[(usize, usize, usize)],
    (q, first): (&[f32], usize),
    (k_seq, keys): (&[f32], usize),
    values: (&[f32], usize, usize),
    dims: HeadDims,
    scratch: &mut Avx2Scratch,
    z: &mut [f32],
) {
    use super::attention_avx2::{attend_tiles, block_keys, QUERY_BLOCK, TILES};
    let (d_head, kv_width) = (dims.d_head, values.2);
    let scale = 1.0 / (d_head as f32).sqrt();
    block_keys(k_seq, (values.1, kv_width, d_head), keys, &mut scratch.keys);
    for group in vectors.chunks(TILES * QUERY_BLOCK) {
        let padded = group.len().next_multiple_of(QUERY_BLOCK);
        let mut last = [0; TILES * QUERY_BLOCK];
        for r in 0..padded {
            let (i, h, t) = group[r.min(group.len() - 1)];
            let q_row = &q[((first + i) * dims.n_heads + h) * d_head..][..d_head];
            scratch.q[r * d_head..][..d_head].copy_from_slice(q_row);
            last[r] = t;
        }
        let n = padded * d_head;
        // SAFETY: level() is Avx2 only where the CPU reports avx2 and fma; the group is at
        // most TILES tiles, the blocked keys cover every t < keys, and the values hold keys
        // rows.
        unsafe {
            attend_tiles(
                &scratch.q[..n],
                &last[..padded],
                &scratch.keys,
                scale,
                values,
                &mut scratch.z[..n],
            )
        };
        scatter_block(group, &scratch.z[..n], (dims.n_heads, d_head), z);
    }
}

/// Copies the query vectors of `block` (`(packed row, head, position)`, rows counted from
/// `first`) into `q_block` and returns their positions.
/// q: `[rows, n_heads, d_head]`   q_block: `[N, d_head]`
fn gather_block<const N: usize>(
    block: &[(usize, usize, usize)],
    q: &[f32],
    (first, n_heads, d_head): (usize, usize, usize),
    q_block: &mut [f32],
) -> [usize; N] {
    let mut last = [0; N];
    for (r, &(i, h, t)) in block.iter().enumerate() {
        let q_row = &q[((first + i) * n_heads + h) * d_head..][..d_head];
        q_block[r * d_head..][..d_head].copy_from_slice(q_row);
        last[r] = t;
    }
    last
}

/// Writes the outputs of `block`'s query vectors from `z_block` into their places in `z`.
/// z_block: `[block.len(), d_head]`   z: `[rows, n_heads, d_head]`
fn scatter_block(
    block: &[(usize, usize, usize)],
    z_block: &[f32],
    (n_heads, d_head): (usize, usize),
    z: &mut [f32],
) {
    for (r, &(i, h, _)) in block.iter().enumerate() {
        z[(i * n_heads + h) * d_head..][..d_head].copy_from_slice(&z_block[r * d_head..][..d_head]);
    }
}

multiversion! {
    /// One query row of one head: scores against the transposed keys, softmax, values.
    /// values: (`[keys, kv_width]` values of the sequence, offset of the head, kv_width)
    fn attend_one(
        q_row: &[f32],
        kt: &[f32],
        keys: usize,
        scale: f32,
        scores: &mut [f32],
        values: (&[f32], usize, usize),
        z_row: &mut [f32],
    ) {
        scores_from_transposed(q_row, kt, keys, scale, scores);
        softmax_in_place(scores);
        mix_values(scores, values.0, values.1, values.2, z_row);
    }
}

/// Width of the key blocks [`scores_from_transposed`] computes at once (one AVX-512 vector).
const KEY_BLOCK: usize = 16;

/// Keys `0..keys` of kv head `kv`, transposed, each row padded with zeros to `padded_keys(keys)`:
/// `kt[d * padded + j] = k[j, kv, d]`.
/// k_seq: // [keys, n_kv_heads, d_head]   kt: // [d_head, padded]
fn transpose_keys(k_seq: &[f32], kv: usize, dims: HeadDims, keys: usize, kt: &mut Vec<f32>) {
    let d_head = dims.d_head;
    let kv_width = dims.n_kv_heads * d_head;
    let padded = padded_keys(keys);
    kt.clear();
    kt.resize(d_head * padded, 0.0);
    for j in 0..keys {
        let k_row = &k_seq[j * kv_width + kv * d_head..][..d_head];
        for (d, &x) in k_row.iter().enumerate() {
            kt[d * padded + j] = x;
        }
    }
}

/// Row length of transposed keys: `keys` rounded up to whole key blocks.
fn padded_keys(keys: usize) -> usize {
    keys.next_multiple_of(KEY_BLOCK)
}

/// `out[j] = scale * q·k_j` for the first `out.len()` keys of `kt` (`[d_head, padded_keys]`,
/// see [`transpose_keys`]): sixteen keys at a time, with four partial sums over `d` so the
/// multiply-adds do not wait on each other.
#[inline(always)]
fn scores_from_transposed(q_row: &[f32], kt: &[f32], keys: usize, scale: f32, out: &mut [f32]) {
    let padded = padded_keys(keys);
    let d_head = q_row.len();
    for (b, out_block) in out.chunks_mut(KEY_BLOCK).enumerate() {
        let col = |d: usize| &kt[d * padded + b * KEY_BLOCK..][..KEY_BLOCK];
        let mut acc = [[0.0f32; KEY_BLOCK]; 4];
        let mut d = 0;
        while d + 4 <= d_head {
            for (part, acc_part) in acc.iter_mut().enumerate() {
                let (qd, k) = (q_row[d + part], col(d + part));
                for (a, &kv) in acc_part.iter_mut().zip(k) {
                    *a += qd * kv;
                }
            }
            d += 4;
        }
        while d < d_head {
            let (qd, k) = (q_row[d], col(d));
            for (a, &kv) in acc[0].iter_mut().zip(k) {
                *a += qd * kv;
            }
            d += 1;
        }
        for (l, o) in out_block.iter_mut().enumerate() {
            *o = scale * ((acc[0][l] + acc[1][l]) + (acc[2][l] + acc[3][l]));
        }
    }
}

/// Softmax of one row, in place. A row with no finite entry, or whose sum is not finite (a
/// NaN or +inf in it), becomes all zeros (torch makes such a row NaN; TL turns NaN into 0).
#[inline(always)]
pub(super) fn softmax_in_place(row: &mut [f32]) {
    let max = max_of(row);
    if max == f32::NEG_INFINITY {
        row.fill(0.0);
        return;
    }
    for x in row.iter_mut() {
        *x = exp_fast(*x - max);
    }
    let sum = sum_of(row);
    if !sum.is_finite() {
        row.fill(0.0);
        return;
    }
    let inv = 1.0 / sum;
    for x in row.iter_mut() {
        *x *= inv;
    }
}

/// The keys up to the last score that is not `-inf` (16 at a time from the end, without
/// branches inside a block, then one at a time).
#[inline(always)]
fn scored_keys(row: &[f32]) -> usize {
    let mut end = row.len();
    while end >= 16 {
        let block = &row[end - 16..end];
        let all_masked = block
            .iter()
            .fold(true, |m, &v| m & (v == f32::NEG_INFINITY));
        if !all_masked {
            break;
        }
        end -= 16;
    }
    while end > 0 && row[end - 1] == f32::NEG_INFINITY {
        end -= 1;
    }
    end
}

/// `z_row = Σ_j w[j] v[j, head]`: sixteen dimensions at a time, with four partial sums over
/// `j` so the multiply-adds do not wait on each other (dimensions past the last multiple of
/// sixteen one key at a time).
/// v_seq: // [keys, kv_width], the head's values at `offset .. offset + d_head` of each row.
#[inline(always)]
fn mix_values(w: &[f32], v_seq: &[f32], offset: usize, kv_width: usize, z_row: &mut [f32]) {
    const BLOCK: usize = 16;
    let d_head = z_row.len();
    let mut blocks = z_row.chunks_exact_mut(BLOCK);
    for (b, z_block) in (&mut blocks).enumerate() {
        let d0 = offset + b * BLOCK;
        let v_part = |j: usize| -> &[f32; BLOCK] {
            v_seq[j * kv_width + d0..][..BLOCK]
                .try_into()
                .expect("a slice of BLOCK values")
        };
        let mut acc = [[0.0f32; BLOCK]; 4];
        let mut j = 0;
        while j + 4 <= w.len() {
            for (part, acc_part) in acc.iter_mut().enumerate() {
                let (wj, v) = (w[j + part], v_part(j + part));
                for l in 0..BLOCK {
                    acc_part[l] += wj * v[l];
                }
            }
            j += 4;
        }
        while j < w.len() {
            let (wj, v) = (w[j], v_part(j));
            for l in 0..BLOCK {
                acc[0][l] += wj * v[l];
            }
            j += 1;
        }
        for (l, z) in z_block.iter_mut().enumerate() {
            *z = (acc[0][l] + acc[1][l]) + (acc[2][l] + acc[3][l]);
        }
    }
    let tail = blocks.into_remainder();
    let d0 = offset + d_head - tail.len();
    tail.fill(0.0);
    for (j, &wj) in w.iter().enumerate() {
        let v = &v_seq[j * kv_width + d0..][..tail.len()];
        for (z, &vv) in tail.iter_mut().zip(v) {
            *z += wj * vv;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_of_hand_row_and_masked_row() {
        let mut x = [
            0.0f32,
            2f32.ln(),
            f32::NEG_INFINITY,
            f32::NEG_INFINITY,
            f32::NEG_INFINITY,
            f32::NEG_INFINITY,
        ];
        softmax_rows(&mut x, 3);
        assert!((x[0] - 1.0 / 3.0).abs() < 1e-6 && (x[1] - 2.0 / 3.0).abs() < 1e-6 && x[2] == 0.0);
        assert_eq!(&x[3..], &[0.0, 0.0, 0.0]);
        // A NaN (say, from a hook's edit) zeroes its row, as TL's softmax-then-where does.
        let mut y = [1.0f32, f32::NAN, 0.5, 0.0, 1.0, 2.0];
        softmax_rows(&mut y, 3);
        assert_eq!(&y[..3], &[0.0, 0.0, 0.0]);
        assert!((y[3..].iter().sum::<f32>() - 1.0).abs() < 1e-6 && y[5] > y[4]);
    }

    /// Softmax in f64 over every entry (exp(-inf) = 0), zeros for a row with no finite
    /// entry or a non-finite sum: the definition the kernel must meet.
    fn softmax_f64(row: &[f32]) -> Vec<f32> {
        let max = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
        let e: Vec<f64> = row.iter().map(|&v| (v as f64 - max).exp()).collect();
        let sum: f64 = e.iter().sum();
        if max == f64::NEG_INFINITY || !sum.is_finite() || row.iter().any(|v| v.is_nan()) {
            return vec![0.0; row.len()];
        }
        e.iter().map(|v| (v / sum) as f32).collect()
    }

    #[test]
    fn softmax_rows_of_awkward_lengths_and_masks_equal_the_f64_definition() {
        let ninf = f32::NEG_INFINITY;
        let mut seed = 11u32;
        let mut next = || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 8) as f32 / (1u32 << 24) as f32 * 8.0 - 4.0
        };
        for len in [1usize, 5, 16, 17, 33, 70] {
            for finite in [0, 1, len / 2, len.saturating_sub(1), len] {
                let mut row: Vec<f32> = (0..len)
                    .map(|j| if j < finite { next() } else { ninf })
                    .collect();
                let mut cases = vec![row.clone()];
                if len > 3 {
                    row[len - 1] = 0.5; // a hook's edit after the masked keys counts
                    cases.push(row.clone());
                    row[1] = f32::NAN;
                    cases.push(row.clone());
                    row[1] = f32::INFINITY;
                    cases.push(row);
                }
                for case in cases {
                    let want = softmax_f64(&case);
                    let mut got = case.clone();
                    softmax_rows(&mut got, len);
                    for (j, (g, w)) in got.iter().zip(&want).enumerate() {
                        assert!(
                            (g - w).abs() < 1e-6,
                            "len {len} {case:?} key {j}: {g} vs {w}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn gqa_heads_share_kv_and_mask_is_causal() {
        // 1 batch, 2 positions, 2 query heads sharing 1 kv head, d_head 2.
        let dims = HeadDims {
            n_heads: 2,
            n_kv_heads: 1,
            d_head: 2,
        };
        let layout = RowLayout::full(1, 2);
        let q = [1.0, 0.0, 0.0, 1.0, 2.0, 0.0, 0.0, 2.0]; // [p, h, d]
        let k = [1.0, 1.0, 3.0, -1.0]; // [p, kv, d]
        let mut s = [0.0f32; 8];
        attention_scores(&q, &k, &mut s, &layout, None, dims);
        let r = 1.0 / 2f32.sqrt();
        // head 0: q0=(1,0): s00 = 1*r; q1=(2,0): s10 = 2r, s11 = 6r
        assert!((s[0] - r).abs() < 1e-6 && s[1] == f32::NEG_INFINITY);
        assert!((s[2] - 2.0 * r).abs() < 1e-6 && (s[3] - 6.0 * r).abs() < 1e-6);
        // head 1: q0=(0,1): s00 = r; q1=(0,2): s10 = 2r, s11 = -2r
        assert!((s[4] - r).abs() < 1e-6 && (s[7] + 2.0 * r).abs() < 1e-6);
        let pattern = [1.0, 0.0, 0.25, 0.75, 1.0, 0.0, 0.5, 0.5];
        let v = [1.0, 2.0, 3.0, 4.0];
        let mut z = [0.0f32; 8];
        attention_values(&pattern, &v, &mut z, &layout, dims);
        assert_eq!(z, [1.0, 2.0, 1.0, 2.0, 2.5, 3.5, 2.0, 3.0]);
    }

    #[test]
    fn fused_equals_three_kernels_on_packed_suffix_rows() {
        let mut g = crate::sweep::noise::Gaussian::new(11);
        let dims = HeadDims {
            n_heads: 6,
            n_kv_heads: 2,
            d_head: 5,
        };
        for threads in [1, 3] {
            crate::backend::cpu::threads::set_num_threads(threads);
            for layout in [
                RowLayout::full(2, 7),
                RowLayout::suffixes(13, &[0, 4, 12, 9]),
                RowLayout::suffixes(40, &[0, 0, 0]),
            ] {
                let (p, b, rows) = (layout.seq_len, layout.batch(), layout.rows());
                let mut rnd = |n: usize| -> Vec<f32> { (0..n).map(|_| g.sample()).collect() };
                let q = rnd(rows * 30);
                let k = rnd(b * p * 10);
                let v = rnd(b * p * 10);
                let mut scores = vec![0.0; rows * 6 * p];
                attention_scores(&q, &k, &mut scores, &layout, None, dims);
                softmax_rows(&mut scores, p);
                let mut z1 = vec![0.0; rows * 30];
                attention_values(&scores, &v, &mut z1, &layout, dims);
                let mut z2 = vec![f32::NAN; rows * 30];
                attention_fused(&q, &k, &v, &mut z2, &layout, None, dims);
                for (a, c) in z1.iter().zip(&z2) {
                    assert!((a - c).abs() < 1e-5, "{a} vs {c}");
                }
            }
        }
        crate::backend::cpu::threads::set_num_threads(0);
    }

    /// The three kernels on work large enough to be split across threads, against attention
    /// written out in f64 for every (row, head): scores, causal softmax, values.
    #[test]
    fn threaded_and_fused_kernels_equal_plain_attention_in_f64() {
        let mut g = crate::sweep::noise::Gaussian::new(23);
        let dims = HeadDims {
            n_heads: 4,
            n_kv_heads: 2,
            d_head: 33,
        };
        let layout = RowLayout::suffixes(301, &[0, 120, 300]);
        let (p, b, rows) = (layout.seq_len, layout.batch(), layout.rows());
        let mut rnd = |n: usize| -> Vec<f32> { (0..n).map(|_| g.sample()).collect() };
        let (q, k, v) = (rnd(rows * 4 * 33), rnd(b * p * 2 * 33), rnd(b * p * 2 * 33));
        crate::backend::cpu::threads::set_num_threads(2);
        let mut pattern = vec![f32::NAN; rows * 4 * p];
        attention_scores(&q, &k, &mut pattern, &layout, None, dims);
        softmax_rows(&mut pattern, p);
        let mut z = vec![f32::NAN; rows * 4 * 33];
        attention_values(&pattern, &v, &mut z, &layout, dims);
        // The fused kernel (flash-style on AVX2) over the same long rows, split as well.
        let mut fused = vec![f32::NAN; rows * 4 * 33];
        attention_fused(&q, &k, &v, &mut fused, &layout, None, dims);
        crate::backend::cpu::threads::set_num_threads(0);
        let at = |x: &[f32], s: usize, j: usize, kv: usize, d: usize| {
            x[((s * p + j) * 2 + kv) * 33 + d] as f64
        };
        for (s, seq) in layout.seqs.iter().enumerate() {
            let n = seq.positions.len();
            for (i, &t) in seq.positions.iter().enumerate() {
                for h in 0..4 {
                    let kv = h / 2;
                    let qv = |d: usize| q[((seq.offset + i) * 4 + h) * 33 + d] as f64;
                    let sc: Vec<f64> = (0..=t)
                        .map(|j| {
                            (0..33).map(|d| qv(d) * at(&k, s, j, kv, d)).sum::<f64>() / 33f64.sqrt()
                        })
                        .collect();
                    let max = sc.iter().cloned().fold(f64::MIN, f64::max);
                    let sum: f64 = sc.iter().map(|x| (x - max).exp()).sum();
                    let w: Vec<f64> = sc.iter().map(|x| (x - max).exp() / sum).collect();
                    let row = &pattern[seq.offset * 4 * p + (h * n + i) * p..][..p];
                    for (j, &pj) in row.iter().enumerate() {
                        let want = if j <= t { w[j] } else { 0.0 };
                        assert!(
                            (pj as f64 - want).abs() < 1e-5,
                            "pattern s{s} i{i} h{h} j{j}"
                        );
                    }
                    for d in 0..33 {
                        let want: f64 = (0..=t).map(|j| w[j] * at(&v, s, j, kv, d)).sum();
                        let got = z[((seq.offset + i) * 4 + h) * 33 + d] as f64;
                        assert!(
                            (got - want).abs() < 1e-4,
                            "z s{s} i{i} h{h} d{d}: {got} vs {want}"
                        );
                    }
                }
            }
        }
    }

    /// The fused path (blocks of query vectors where the CPU has AVX-512, one vector at a
    /// time otherwise and for the remainder) against the three kernels at head widths around
    /// the 16- and 32-lane blocks and key counts around the 32-key blocks.
    #[test]
    fn values_use_every_weight_a_hook_wrote_even_above_the_diagonal() {
        let mut g = crate::sweep::noise::Gaussian::new(5);
        let dims = HeadDims {
            n_heads: 3,
            n_kv_heads: 1,
            d_head: 21,
        };
        let layout = RowLayout::full(2, 7);
        let (p, rows) = (layout.seq_len, layout.rows());
        let v: Vec<f32> = (0..2 * p * 21).map(|_| g.sample()).collect();
        // Any weights: zeros in the middle, nonzero past the diagonal, a zero row.
        let mut pattern: Vec<f32> = (0..rows * 3 * p).map(|_| g.sample()).collect();
        for (r, row) in pattern.chunks_exact_mut(p).enumerate() {
            row[r % p] = 0.0;
            if r % 5 == 0 {
                row.fill(0.0);
            }
        }
        let mut z = vec![f32::NAN; rows * 3 * 21];
        attention_values(&pattern, &v, &mut z, &layout, dims);
        for s in 0..2 {
            for i in 0..p {
                for h in 0..3 {
                    let w = &pattern[s * 3 * p * p + (h * p + i) * p..][..p];
                    for d in 0..21 {
                        let want: f64 = (0..p)
                            .map(|j| w[j] as f64 * v[(s * p + j) * 21 + d] as f64)
                            .sum();
                        let got = z[((s * p + i) * 3 + h) * 21 + d] as f64;
                        assert!(
                            (got - want).abs() < 1e-5,
                            "s{s} i{i} h{h} d{d}: {got} vs {want}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn fused_equals_three_kernels_at_awkward_sizes() {
        let mut g = crate::sweep::noise::Gaussian::new(5);
        for (n_heads, n_kv_heads, d_head) in [(4, 4, 37), (9, 3, 64), (2, 1, 16), (3, 3, 33)] {
            let dims = HeadDims {
                n_heads,
                n_kv_heads,
                d_head,
            };
            for layout in [
                RowLayout::full(1, 1),
                RowLayout::full(2, 17),
                RowLayout::full(1, 33),
                RowLayout::suffixes(70, &[0, 31, 69, 50]),
            ] {
                let (p, b, rows) = (layout.seq_len, layout.batch(), layout.rows());
                let (qw, kvw) = (n_heads * d_head, n_kv_heads * d_head);
                let mut rnd = |n: usize| -> Vec<f32> { (0..n).map(|_| g.sample()).collect() };
                let q = rnd(rows * qw);
                let k = rnd(b * p * kvw);
                let v = rnd(b * p * kvw);
                let mut scores = vec![0.0; rows * n_heads * p];
                attention_scores(&q, &k, &mut scores, &layout, None, dims);
                softmax_rows(&mut scores, p);
                let mut z1 = vec![0.0; rows * qw];
                attention_values(&scores, &v, &mut z1, &layout, dims);
                let mut z2 = vec![f32::NAN; rows * qw];
                attention_fused(&q, &k, &v, &mut z2, &layout, None, dims);
                for (i, (a, c)) in z1.iter().zip(&z2).enumerate() {
                    assert!((a - c).abs() < 1e-5, "{dims:?} {p}: z[{i}]: {a} vs {c}");
                }
            }
        }
    }
}
