//! The key mask of padded passes in the CPU attention kernels: a padded sequence gives, at
//! its real rows, what the same tokens give unpadded (the unmasked kernels on the real rows
//! alone), through the three kernels and through the fused one (portable, AVX2 or AVX-512,
//! one thread or several); rows of left-pad queries get zeros.

use super::attention::{attention_fused, attention_scores, attention_values, softmax_rows};
use super::threads::set_num_threads;
use crate::backend::HeadDims;
use crate::layout::{RealSpan, RowLayout};

const DIMS: HeadDims = HeadDims {
    n_heads: 4,
    n_kv_heads: 2,
    d_head: 24,
};

/// z of the three kernels or of the fused one. q: `[rows, 4, 24]`   k, v: `[b, p, 2, 24]`
fn z_of(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    layout: &RowLayout,
    mask: Option<&[RealSpan]>,
) -> (Vec<f32>, Vec<f32>) {
    let (p, rows) = (layout.seq_len, layout.rows());
    let width = DIMS.n_heads * DIMS.d_head;
    let mut scores = vec![f32::NAN; rows * DIMS.n_heads * p];
    attention_scores(q, k, &mut scores, layout, mask, DIMS);
    softmax_rows(&mut scores, p);
    let mut three = vec![f32::NAN; rows * width];
    attention_values(&scores, v, &mut three, layout, DIMS);
    let mut fused = vec![f32::NAN; rows * width];
    attention_fused(q, k, v, &mut fused, layout, mask, DIMS);
    (three, fused)
}

/// Rows `span` of sequence `s` of a `[b, p, w]` buffer.
fn rows_of(x: &[f32], s: usize, p: usize, w: usize, span: RealSpan) -> Vec<f32> {
    x[(s * p + span.start) * w..(s * p + span.end()) * w].to_vec()
}

#[test]
fn masked_rows_equal_the_unpadded_sequence_and_pad_queries_are_zero() {
    let mut g = crate::sweep::noise::Gaussian::new(5);
    let p = 70;
    let layout = RowLayout::full(3, p);
    // Left padding, right padding, and no pads.
    let spans = [
        RealSpan { start: 33, len: 37 },
        RealSpan { start: 0, len: 41 },
        RealSpan { start: 0, len: 70 },
    ];
    let (qw, kw) = (DIMS.n_heads * DIMS.d_head, DIMS.n_kv_heads * DIMS.d_head);
    let mut rnd = |n: usize| -> Vec<f32> { (0..n).map(|_| g.sample()).collect() };
    let (q, k, v) = (rnd(3 * p * qw), rnd(3 * p * kw), rnd(3 * p * kw));
    for threads in [1, 3] {
        set_num_threads(threads);
        let (three, fused) = z_of(&q, &k, &v, &layout, Some(&spans));
        for (s, &span) in spans.iter().enumerate() {
            let alone = RowLayout::full(1, span.len);
            let (qs, ks, vs) = (
                rows_of(&q, s, p, qw, span),
                rows_of(&k, s, p, kw, span),
                rows_of(&v, s, p, kw, span),
            );
            let (want, _) = z_of(&qs, &ks, &vs, &alone, None);
            for z in [&three, &fused] {
                let got = rows_of(z, s, p, qw, span);
                let d = got
                    .iter()
                    .zip(&want)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f32::max);
                assert!(d < 1e-5, "threads {threads}, sequence {s}: {d}");
                let before = &z[s * p * qw..(s * p + span.start) * qw];
                assert!(
                    before.iter().all(|&x| x == 0.0),
                    "pad queries of sequence {s}"
                );
            }
        }
    }
    set_num_threads(0);
}
