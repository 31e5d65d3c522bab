//! A second backend for tests: the CPU kernels behind the trait, with every buffer's length
//! checked against the shapes the trait documents and every kernel call counted. It plugs
//! into the forward pass and the sweep engine unchanged, which is what shows that the pass
//! is written once over [`Backend`] (and it catches a pass that sizes a buffer wrong).

use std::sync::atomic::{AtomicUsize, Ordering};

use super::cpu::gemm::PackedMatrix;
use super::cpu::rotary::RotaryTables;
use super::{Backend, CpuBackend, Epilogue, HeadDims, HostMatrix, KvSource, NormParams};
use crate::error::Result;
use crate::hooks::intervention::ResolvedIntervention;
use crate::layout::{RealSpan, RowLayout};

/// The CPU backend with shape checks and a call counter.
#[derive(Debug, Default)]
pub struct CheckingBackend {
    cpu: CpuBackend,
    kernels: AtomicUsize,
}

impl Clone for CheckingBackend {
    fn clone(&self) -> Self {
        CheckingBackend::default()
    }
}

impl CheckingBackend {
    /// Kernel calls so far.
    pub fn kernel_calls(&self) -> usize {
        self.kernels.load(Ordering::Relaxed)
    }

    fn count(&self) {
        self.kernels.fetch_add(1, Ordering::Relaxed);
    }
}

/// `[rows, n_heads, d_head]` values of the query-side rows.
fn head_len(rows: &RowLayout, dims: HeadDims) -> usize {
    rows.rows() * dims.n_heads * dims.d_head
}

/// `[batch, seq, n_kv_heads, d_head]` values of keys or values at every position.
fn kv_len(rows: &RowLayout, dims: HeadDims) -> usize {
    rows.batch() * rows.seq_len * dims.n_kv_heads * dims.d_head
}

/// A mask has one span per sequence, each inside the sequence.
fn check_mask(mask: Option<&Vec<RealSpan>>, rows: &RowLayout, what: &str) {
    if let Some(mask) = mask {
        assert_eq!(mask.len(), rows.batch(), "{what}: mask spans");
        assert!(
            mask.iter().all(|s| s.end() <= rows.seq_len),
            "{what}: a span past the sequence"
        );
    }
}

impl Backend for CheckingBackend {
    const EMBEDS_FROM_UNEMBED: bool = true;
    const HOST_BUFFERS: bool = true;
    type Buf = Vec<f32>;
    type Matrix = PackedMatrix;
    type Rows = RowLayout;
    type Rotary = (RotaryTables, usize);
    type KeyMask = Vec<RealSpan>;

    fn name(&self) -> &'static str {
        "checking"
    }

    fn zeros(&self, len: usize) -> Vec<f32> {
        self.cpu.zeros(len)
    }

    fn len(&self, buf: &Vec<f32>) -> usize {
        buf.len()
    }

    fn resize_zeroed(&self, buf: &mut Vec<f32>, len: usize) {
        self.cpu.resize_zeroed(buf, len);
    }

    fn set_len_keeping(&self, buf: &mut Vec<f32>, len: usize) {
        assert!(
            len <= buf.capacity(),
            "set_len_keeping: past the allocation"
        );
        let allocation = buf.as_ptr();
        self.cpu.set_len_keeping(buf, len);
        assert_eq!(buf.as_ptr(), allocation, "set_len_keeping: reallocated");
    }

    fn upload(&self, host: &[f32]) -> Vec<f32> {
        self.cpu.upload(host)
    }

    fn download(&self, buf: &Vec<f32>) -> Vec<f32> {
        self.cpu.download(buf)
    }

    fn take_host(&self, buf: Vec<f32>) -> Vec<f32> {
        buf
    }

    fn upload_into(&self, host: &[f32], dst: &mut Vec<f32>) {
        assert_eq!(host.len(), dst.len(), "upload_into: lengths differ");
        self.cpu.upload_into(host, dst);
    }

    fn with_host_mut<R>(&self, buf: &mut Vec<f32>, f: impl FnOnce(&mut [f32]) -> R) -> R {
        self.cpu.with_host_mut(buf, f)
    }

    fn host_slice_mut<'b>(&self, buf: &'b mut Vec<f32>) -> Option<&'b mut [f32]> {
        self.cpu.host_slice_mut(buf)
    }

    fn append(&self, buf: &mut Vec<f32>, host: &[f32]) {
        self.cpu.append(buf, host);
    }

    fn gather_rows(&self, src: &Vec<f32>, rows: &[usize], width: usize) -> Vec<f32> {
        assert!(
            rows.iter().all(|&r| (r + 1) * width <= src.len()),
            "gather_rows: row out of range"
        );
        self.cpu.gather_rows(src, rows, width)
    }

    fn matrix(&self, host: HostMatrix<'_>) -> PackedMatrix {
        assert_eq!(
            host.data.len(),
            host.k * host.n,
            "matrix: data is not [k, n]"
        );
        self.cpu.matrix(host)
    }

    fn matrix_shape(&self, m: &PackedMatrix) -> (usize, usize) {
        self.cpu.matrix_shape(m)
    }

    fn vector(&self, host: Vec<f32>) -> Vec<f32> {
        host
    }

    fn rows(&self, layout: &RowLayout) -> RowLayout {
        layout.clone()
    }

    fn key_mask(&self, spans: &[RealSpan]) -> Vec<RealSpan> {
        assert!(spans.iter().all(|s| s.len > 0), "key_mask: an empty span");
        spans.to_vec()
    }

    fn rotary_tables(&self, seq: usize, d_head: usize, theta: f32) -> (RotaryTables, usize) {
        (self.cpu.rotary_tables(seq, d_head, theta), d_head)
    }

    fn embed(&self, w_e: &Vec<f32>, ids: &[u32], d: usize, out: &mut Vec<f32>) {
        self.count();
        assert_eq!(out.len(), ids.len() * d, "embed: out is not [rows, d]");
        assert!(
            ids.iter().all(|&i| (i as usize + 1) * d <= w_e.len()),
            "embed: id out of range"
        );
        self.cpu.embed(w_e, ids, d, out);
    }

    fn embed_from_unembed(&self, unembed: &PackedMatrix, ids: &[u32], out: &mut Vec<f32>) {
        self.count();
        assert_eq!(
            out.len(),
            ids.len() * unembed.k(),
            "embed_from_unembed: out is not [rows, d]"
        );
        assert!(
            ids.iter().all(|&i| (i as usize) < unembed.n()),
            "embed_from_unembed: id out of range"
        );
        self.cpu.embed_from_unembed(unembed, ids, out);
    }

    fn embed_positions(&self, w_pos: &Vec<f32>, positions: &[usize], d: usize, out: &mut Vec<f32>) {
        self.count();
        assert_eq!(
            out.len(),
            positions.len() * d,
            "embed_positions: out is not [rows, d]"
        );
        assert!(
            positions.iter().all(|&t| (t + 1) * d <= w_pos.len()),
            "position out of range"
        );
        self.cpu.embed_positions(w_pos, positions, d, out);
    }

    fn norm_fused(
        &self,
        x: &Vec<f32>,
        out: &mut Vec<f32>,
        scale: &mut Vec<f32>,
        p: &NormParams<'_, Self>,
    ) {
        self.count();
        check_norm(x, out, scale, p);
        let params = cpu_norm(p);
        self.cpu.norm_fused(x, out, scale, &params);
    }

    fn norm_scale(
        &self,
        x: &Vec<f32>,
        out: &mut Vec<f32>,
        scale: &mut Vec<f32>,
        p: &NormParams<'_, Self>,
    ) {
        self.count();
        check_norm(x, out, scale, p);
        self.cpu.norm_scale(x, out, scale, &cpu_norm(p));
    }

    fn divide_by_scale(&self, out: &mut Vec<f32>, scale: &Vec<f32>, d: usize) {
        self.count();
        assert_eq!(
            out.len(),
            scale.len() * d,
            "divide_by_scale: out is not [rows, d]"
        );
        self.cpu.divide_by_scale(out, scale, d);
    }

    fn affine(&self, out: &mut Vec<f32>, w: &Vec<f32>, b: Option<&Vec<f32>>, d: usize) {
        self.count();
        assert!(
            w.len() == d && out.len().is_multiple_of(d),
            "affine: shapes"
        );
        self.cpu.affine(out, w, b, d);
    }

    fn linear(
        &self,
        x: &Vec<f32>,
        rows: usize,
        w: &PackedMatrix,
        bias: Option<&Vec<f32>>,
        then: Epilogue<'_, Self>,
        out: &mut Vec<f32>,
    ) {
        self.count();
        let (k, n) = (w.k(), w.n());
        assert_eq!(x.len(), rows * k, "linear: x is not [rows, k]");
        assert_eq!(out.len(), rows * n, "linear: out is not [rows, n]");
        assert!(bias.is_none_or(|b| b.len() == n), "linear: bias is not [n]");
        let then = match then {
            Epilogue::Store => Epilogue::Store,
            Epilogue::AddInto => Epilogue::AddInto,
            Epilogue::GeluNew => Epilogue::GeluNew,
            Epilogue::SiluGateMul(gate) => {
                assert_eq!(gate.len(), out.len(), "linear: the gate is not [rows, n]");
                Epilogue::SiluGateMul(gate)
            }
        };
        self.cpu.linear(x, rows, w, bias, then, out);
    }

    fn rotary(
        &self,
        (tables, d_head): &(RotaryTables, usize),
        x: &mut Vec<f32>,
        positions: &[usize],
        heads: usize,
    ) {
        self.count();
        assert_eq!(
            x.len(),
            positions.len() * heads * d_head,
            "rotary: x is not [rows, heads, d_head]"
        );
        self.cpu.rotary(tables, x, positions, heads);
    }

    fn attention_scores(
        &self,
        q: &Vec<f32>,
        k: &Vec<f32>,
        scores: &mut Vec<f32>,
        rows: &RowLayout,
        mask: Option<&Vec<RealSpan>>,
        dims: HeadDims,
    ) {
        self.count();
        check_mask(mask, rows, "attention_scores");
        assert_eq!(q.len(), head_len(rows, dims), "attention_scores: q");
        assert_eq!(k.len(), kv_len(rows, dims), "attention_scores: k");
        assert_eq!(
            scores.len(),
            rows.rows() * dims.n_heads * rows.seq_len,
            "attention_scores: scores"
        );
        self.cpu.attention_scores(q, k, scores, rows, mask, dims);
    }

    fn softmax_rows(&self, x: &mut Vec<f32>, len: usize) {
        self.count();
        assert!(
            x.len().is_multiple_of(len.max(1)),
            "softmax_rows: not whole rows"
        );
        self.cpu.softmax_rows(x, len);
    }

    fn attention_values(
        &self,
        pattern: &Vec<f32>,
        v: &Vec<f32>,
        z: &mut Vec<f32>,
        rows: &RowLayout,
        dims: HeadDims,
    ) {
        self.count();
        assert_eq!(
            pattern.len(),
            rows.rows() * dims.n_heads * rows.seq_len,
            "attention_values: pattern"
        );
        assert_eq!(v.len(), kv_len(rows, dims), "attention_values: v");
        assert_eq!(z.len(), head_len(rows, dims), "attention_values: z");
        self.cpu.attention_values(pattern, v, z, rows, dims);
    }

    fn attention_fused(
        &self,
        q: &Vec<f32>,
        k: &Vec<f32>,
        v: &Vec<f32>,
        z: &mut Vec<f32>,
        rows: &RowLayout,
        mask: Option<&Vec<RealSpan>>,
        dims: HeadDims,
    ) {
        self.count();
        check_mask(mask, rows, "attention_fused");
        assert_eq!(q.len(), head_len(rows, dims), "attention_fused: q");
        assert_eq!(k.len(), kv_len(rows, dims), "attention_fused: k");
        assert_eq!(v.len(), kv_len(rows, dims), "attention_fused: v");
        assert_eq!(z.len(), head_len(rows, dims), "attention_fused: z");
        self.cpu.attention_fused(q, k, v, z, rows, mask, dims);
    }

    fn assemble_kv(
        &self,
        full: &mut Vec<f32>,
        computed: &Vec<f32>,
        layout: &RowLayout,
        width: usize,
        prefix: Option<KvSource<'_, Self>>,
    ) -> Result<()> {
        self.count();
        assert_eq!(
            full.len(),
            layout.batch() * layout.seq_len * width,
            "assemble_kv: full"
        );
        assert_eq!(
            computed.len(),
            layout.rows() * width,
            "assemble_kv: computed rows"
        );
        let prefix = prefix.map(|p| {
            let block = layout.seq_len * width;
            assert_eq!(
                p.seq_of.len(),
                layout.batch(),
                "assemble_kv: one base per sequence"
            );
            assert!(
                p.seq_of.iter().all(|&c| (c + 1) * block <= p.cache.len()),
                "assemble_kv: base"
            );
            KvSource {
                cache: p.cache,
                seq_of: p.seq_of,
            }
        });
        self.cpu.assemble_kv(full, computed, layout, width, prefix)
    }

    fn scatter_kv_rows(
        &self,
        full: &mut Vec<f32>,
        computed: &Vec<f32>,
        layout: &RowLayout,
        width: usize,
    ) {
        self.count();
        let full_len = layout.batch() * layout.seq_len * width;
        assert_eq!(full.len(), full_len, "scatter_kv_rows: full");
        let rows_len = layout.rows() * width;
        assert_eq!(computed.len(), rows_len, "scatter_kv_rows: computed rows");
        self.cpu.scatter_kv_rows(full, computed, layout, width);
    }

    fn add(&self, acc: &mut Vec<f32>, x: &Vec<f32>) {
        self.count();
        assert_eq!(acc.len(), x.len(), "add: lengths differ");
        self.cpu.add(acc, x);
    }

    fn gelu_new(&self, x: &mut Vec<f32>) {
        self.count();
        self.cpu.gelu_new(x);
    }

    fn silu_mul(&self, gate: &Vec<f32>, linear: &mut Vec<f32>) {
        self.count();
        assert_eq!(gate.len(), linear.len(), "silu_mul: lengths differ");
        self.cpu.silu_mul(gate, linear);
    }

    fn per_head_result(
        &self,
        z: &Vec<f32>,
        w_o: &PackedMatrix,
        rows: usize,
        dims: HeadDims,
        result: &mut Vec<f32>,
    ) {
        self.count();
        assert_eq!(
            z.len(),
            rows * dims.n_heads * dims.d_head,
            "per_head_result: z"
        );
        assert_eq!(
            result.len(),
            rows * dims.n_heads * w_o.n(),
            "per_head_result: result"
        );
        self.cpu.per_head_result(z, w_o, rows, dims, result);
    }

    fn sum_heads(
        &self,
        result: &Vec<f32>,
        b_o: Option<&Vec<f32>>,
        n_heads: usize,
        d: usize,
        out: &mut Vec<f32>,
    ) {
        self.count();
        assert_eq!(
            result.len(),
            out.len() * n_heads,
            "sum_heads: result is not [rows, heads, d]"
        );
        self.cpu.sum_heads(result, b_o, n_heads, d, out);
    }

    fn repeat_per_head(&self, x: &Vec<f32>, heads: usize, d: usize) -> Vec<f32> {
        self.count();
        assert!(x.len().is_multiple_of(d), "repeat_per_head: not whole rows");
        self.cpu.repeat_per_head(x, heads, d)
    }

    fn own_head_columns(
        &self,
        product: &Vec<f32>,
        heads: usize,
        d_head: usize,
        out: &mut Vec<f32>,
    ) {
        self.count();
        assert_eq!(
            product.len(),
            out.len() * heads,
            "own_head_columns: product"
        );
        self.cpu.own_head_columns(product, heads, d_head, out);
    }

    fn intervene(
        &self,
        iv: &ResolvedIntervention,
        data: &mut Vec<f32>,
        layout: &RowLayout,
        seq: usize,
    ) {
        self.count();
        assert!(seq < layout.batch(), "intervene: sequence out of range");
        self.cpu.intervene(iv, data, layout, seq);
    }
}

fn check_norm(x: &[f32], out: &[f32], scale: &[f32], p: &NormParams<'_, CheckingBackend>) {
    assert_eq!(x.len(), out.len(), "norm: x and out differ");
    assert_eq!(x.len(), scale.len() * p.d, "norm: scale is not [rows]");
    assert_eq!(p.w.len(), p.d, "norm: weight is not [d]");
    assert!(p.b.is_none_or(|b| b.len() == p.d), "norm: bias is not [d]");
}

/// The same parameters for the CPU backend (the buffer types are the same).
fn cpu_norm<'a>(p: &NormParams<'a, CheckingBackend>) -> NormParams<'a, CpuBackend> {
    NormParams {
        w: p.w,
        b: p.b,
        d: p.d,
        eps: p.eps,
        layer_norm: p.layer_norm,
    }
}
