//! The CPU as a [`Backend`]: buffers are `Vec<f32>`, matrices are packed GEMM panels, and
//! every method is one call into the SIMD kernels of this module (a host view is the buffer
//! itself, so a hook edits the engine's memory with no copy).

use super::activation::{add_inplace, gelu_new_inplace, silu_mul_inplace};
use super::arena_vec::zeroed;
use super::attention::{attention_fused, attention_scores, attention_values, softmax_rows};
use super::gemm::{self, gemm_then, PackedMatrix};
use super::heads;
use super::norm::{affine, divide_by_scale, norm_fused, norm_scale};
use super::rotary::RotaryTables;
use crate::backend::{Backend, Epilogue, HeadDims, HostMatrix, HostOrder, KvSource, NormParams};
use crate::copies;
use crate::error::Result;
use crate::hooks::intervention::ResolvedIntervention;
use crate::layout::{RealSpan, RowLayout};

/// The CPU backend (stateless: threads come from the process-wide budget).
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuBackend;

impl Backend for CpuBackend {
    const EMBEDS_FROM_UNEMBED: bool = true;
    const HOST_BUFFERS: bool = true;
    type Buf = Vec<f32>;
    type Matrix = PackedMatrix;
    type Rows = RowLayout;
    type KeyMask = Vec<RealSpan>;
    type Rotary = RotaryTables;

    fn name(&self) -> &'static str {
        "cpu"
    }

    fn zeros(&self, len: usize) -> Vec<f32> {
        vec![0.0; len]
    }

    fn len(&self, buf: &Vec<f32>) -> usize {
        buf.len()
    }

    fn resize_zeroed(&self, buf: &mut Vec<f32>, len: usize) {
        zeroed(buf, len);
    }

    fn grow_zeroed(&self, buf: &mut Vec<f32>, len: usize) {
        if len >= buf.len() {
            buf.resize(len, 0.0); // zeroes only the new values
        } else {
            zeroed(buf, len);
        }
    }

    fn set_len_keeping(&self, buf: &mut Vec<f32>, len: usize) {
        buf.resize(len, 0.0); // within the capacity: no reallocation
    }

    fn upload(&self, host: &[f32]) -> Vec<f32> {
        copies::record(std::mem::size_of_val(host));
        host.to_vec()
    }

    fn download(&self, buf: &Vec<f32>) -> Vec<f32> {
        copies::record(std::mem::size_of_val(buf.as_slice()));
        buf.clone()
    }

    fn download_cow<'b>(&self, buf: &'b Vec<f32>) -> std::borrow::Cow<'b, [f32]> {
        std::borrow::Cow::Borrowed(buf)
    }

    fn take_host(&self, buf: Vec<f32>) -> Vec<f32> {
        buf
    }

    fn upload_into(&self, host: &[f32], dst: &mut Vec<f32>) {
        copies::record(std::mem::size_of_val(host));
        dst.copy_from_slice(host);
    }

    #[inline]
    fn with_host_mut<R>(&self, buf: &mut Vec<f32>, f: impl FnOnce(&mut [f32]) -> R) -> R {
        f(buf)
    }

    fn host_slice_mut<'b>(&self, buf: &'b mut Vec<f32>) -> Option<&'b mut [f32]> {
        Some(buf)
    }

    fn append(&self, buf: &mut Vec<f32>, host: &[f32]) {
        copies::record(std::mem::size_of_val(host));
        buf.extend_from_slice(host);
    }

    fn gather_rows(&self, src: &Vec<f32>, rows: &[usize], width: usize) -> Vec<f32> {
        heads::gather_rows(src, rows, width)
    }

    fn matrix(&self, host: HostMatrix<'_>) -> PackedMatrix {
        match host.order {
            HostOrder::KByN => PackedMatrix::from_k_by_n(host.data, host.k, host.n),
            HostOrder::NByK => PackedMatrix::from_n_by_k(host.data, host.n, host.k),
        }
    }

    fn matrix_shape(&self, m: &PackedMatrix) -> (usize, usize) {
        (m.k(), m.n())
    }

    fn vector(&self, host: Vec<f32>) -> Vec<f32> {
        host
    }

    fn rows(&self, layout: &RowLayout) -> RowLayout {
        layout.clone()
    }

    fn key_mask(&self, spans: &[RealSpan]) -> Vec<RealSpan> {
        spans.to_vec()
    }

    fn rotary_tables(&self, seq: usize, d_head: usize, theta: f32) -> RotaryTables {
        RotaryTables::new(seq, d_head, theta)
    }

    fn embed(&self, w_e: &Vec<f32>, ids: &[u32], d: usize, out: &mut Vec<f32>) {
        for (row, &id) in out.chunks_exact_mut(d).zip(ids) {
            let id = id as usize;
            row.copy_from_slice(&w_e[id * d..(id + 1) * d]);
        }
    }

    fn embed_from_unembed(&self, unembed: &PackedMatrix, ids: &[u32], out: &mut Vec<f32>) {
        for (row, &id) in out.chunks_exact_mut(unembed.k()).zip(ids) {
            unembed.column_into(id as usize, row);
        }
    }

    fn embed_positions(&self, w_pos: &Vec<f32>, positions: &[usize], d: usize, out: &mut Vec<f32>) {
        for (row, &t) in out.chunks_exact_mut(d).zip(positions) {
            row.copy_from_slice(&w_pos[t * d..(t + 1) * d]);
        }
    }

    fn norm_fused(
        &self,
        x: &Vec<f32>,
        out: &mut Vec<f32>,
        scale: &mut Vec<f32>,
        p: &NormParams<'_, Self>,
    ) {
        let wb = (p.w.as_slice(), p.b.map(Vec::as_slice));
        norm_fused(x, out, scale, wb, p.d, p.eps, p.layer_norm);
    }

    fn norm_scale(
        &self,
        x: &Vec<f32>,
        out: &mut Vec<f32>,
        scale: &mut Vec<f32>,
        p: &NormParams<'_, Self>,
    ) {
        norm_scale(x, out, scale, p.d, p.eps, p.layer_norm);
    }

    fn divide_by_scale(&self, out: &mut Vec<f32>, scale: &Vec<f32>, d: usize) {
        divide_by_scale(out, scale, d);
    }

    fn affine(&self, out: &mut Vec<f32>, w: &Vec<f32>, b: Option<&Vec<f32>>, d: usize) {
        affine(out, w, b.map(Vec::as_slice), d);
    }

    #[inline]
    fn linear(
        &self,
        x: &Vec<f32>,
        rows: usize,
        w: &PackedMatrix,
        bias: Option<&Vec<f32>>,
        then: Epilogue<'_, Self>,
        out: &mut Vec<f32>,
    ) {
        let then = match then {
            Epilogue::Store => gemm::Epilogue::Store,
            Epilogue::AddInto => gemm::Epilogue::AddInto,
            Epilogue::GeluNew => gemm::Epilogue::GeluNew,
            Epilogue::SiluGateMul(gate) => gemm::Epilogue::SiluGateMul(gate),
        };
        gemm_then(x, rows, w, bias.map(Vec::as_slice), then, out);
    }

    fn rotary(&self, tables: &RotaryTables, x: &mut Vec<f32>, positions: &[usize], heads: usize) {
        tables.apply(x, positions, heads);
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
        attention_scores(q, k, scores, rows, mask.map(Vec::as_slice), dims);
    }

    fn softmax_rows(&self, x: &mut Vec<f32>, len: usize) {
        softmax_rows(x, len);
    }

    fn attention_values(
        &self,
        pattern: &Vec<f32>,
        v: &Vec<f32>,
        z: &mut Vec<f32>,
        rows: &RowLayout,
        dims: HeadDims,
    ) {
        attention_values(pattern, v, z, rows, dims);
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
        attention_fused(q, k, v, z, rows, mask.map(Vec::as_slice), dims);
    }

    fn assemble_kv(
        &self,
        full: &mut Vec<f32>,
        computed: &Vec<f32>,
        layout: &RowLayout,
        width: usize,
        prefix: Option<KvSource<'_, Self>>,
    ) -> Result<()> {
        let block = layout.seq_len * width;
        let base = |s: usize| {
            prefix.as_ref().map(|p| {
                let c = p.seq_of[s];
                &p.cache[c * block..(c + 1) * block]
            })
        };
        heads::assemble_kv(full, computed, layout, width, base)
    }

    fn scatter_kv_rows(
        &self,
        full: &mut Vec<f32>,
        computed: &Vec<f32>,
        layout: &RowLayout,
        width: usize,
    ) {
        heads::scatter_rows(full, computed, layout, width);
    }

    fn add(&self, acc: &mut Vec<f32>, x: &Vec<f32>) {
        add_inplace(acc, x);
    }

    fn gelu_new(&self, x: &mut Vec<f32>) {
        gelu_new_inplace(x);
    }

    fn silu_mul(&self, gate: &Vec<f32>, linear: &mut Vec<f32>) {
        silu_mul_inplace(gate, linear);
    }

    fn per_head_result(
        &self,
        z: &Vec<f32>,
        w_o: &PackedMatrix,
        rows: usize,
        dims: HeadDims,
        result: &mut Vec<f32>,
    ) {
        heads::per_head_result(z, w_o, rows, dims, result);
    }

    fn sum_heads(
        &self,
        result: &Vec<f32>,
        b_o: Option<&Vec<f32>>,
        n_heads: usize,
        d: usize,
        out: &mut Vec<f32>,
    ) {
        heads::sum_heads(result, b_o.map(Vec::as_slice), n_heads, d, out);
    }

    fn repeat_per_head(&self, x: &Vec<f32>, heads: usize, d: usize) -> Vec<f32> {
        heads::repeat_per_head(x, heads, d)
    }

    fn own_head_columns(
        &self,
        product: &Vec<f32>,
        heads: usize,
        d_head: usize,
        out: &mut Vec<f32>,
    ) {
        heads::own_head_columns(product, heads, d_head, out);
    }

    fn intervene(
        &self,
        iv: &ResolvedIntervention,
        data: &mut Vec<f32>,
        layout: &RowLayout,
        seq: usize,
    ) {
        iv.apply(data, layout, seq);
    }
}
