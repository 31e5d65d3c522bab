//! The [`Backend`] methods of [`CudaBackend`]: each one launch (or a cuBLAS call) on the
//! device; only `with_host_mut`, `download` and the uploads copy between host and device.

use cudarc::driver::{CudaSlice, LaunchConfig, PushKernelArg};

use super::backend::{CudaBackend, Dims};
use super::buffers::{DevBuf, DevKeyMask, DevMatrix, DevRotary, DevRows};
use crate::backend::{Backend, Epilogue, HeadDims, HostMatrix, HostOrder, KvSource, NormParams};
use crate::error::{HookLensError, Result};
use crate::hooks::intervention::{Op, ResolvedIntervention};
use crate::layout::{RealSpan, RowLayout};

/// An `i32` kernel argument from a size.
fn i(v: usize) -> i32 {
    v as i32
}

fn dims(d: HeadDims, seq_len: usize) -> Dims {
    Dims {
        n_heads: i(d.n_heads),
        n_kv: i(d.n_kv_heads),
        d_head: i(d.d_head),
        seq_len: i(seq_len),
    }
}

/// Launches `kernel` over `n` work items with `cfg`, pushing `args` in the kernel's order;
/// nothing when `n` is 0 or the pass already failed.
macro_rules! launch {
    ($self:ident, $kernel:expr, $n:expr, $cfg:expr, [$($arg:expr),* $(,)?]) => {
        if let Some(mut builder) = $self.builder($kernel, $n) {
            $( builder.arg($arg); )*
            $self.go($kernel, builder, $cfg);
        }
    };
}

/// The attention kernels' key bounds: the mask's `lo`, `hi` and 1, or, unmasked, any two
/// device arrays (the kernels do not read them) and 0. `None` when an upload failed.
fn key_bounds<'m>(
    rows: &'m DevRows,
    mask: Option<&'m DevKeyMask>,
) -> Option<(&'m CudaSlice<i32>, &'m CudaSlice<i32>, i32)> {
    match mask {
        Some(m) => Some((m.lo.as_ref()?, m.hi.as_ref()?, 1)),
        None => {
            let any = rows.row_seq.as_ref()?;
            Some((any, any, 0))
        }
    }
}

impl CudaBackend {
    /// One thread per element.
    fn elems(n: usize) -> LaunchConfig {
        LaunchConfig {
            grid_dim: ((n as u32).div_ceil(super::backend::THREADS).max(1), 1, 1),
            block_dim: (super::backend::THREADS, 1, 1),
            shared_mem_bytes: 0,
        }
    }

    /// One block per row of `d` values.
    fn per_row(rows: usize) -> LaunchConfig {
        LaunchConfig {
            grid_dim: (rows.max(1) as u32, 1, 1),
            block_dim: (super::backend::THREADS, 1, 1),
            shared_mem_bytes: 0,
        }
    }

    /// One block per (row, head), `shared` bytes of shared memory.
    fn per_row_head(rows: usize, heads: usize, shared: usize) -> LaunchConfig {
        LaunchConfig {
            grid_dim: (rows.max(1) as u32, heads as u32, 1),
            block_dim: (128, 1, 1),
            shared_mem_bytes: shared as u32,
        }
    }

    fn norm_kernel(
        &self,
        kernel: &str,
        x: &DevBuf,
        out: &mut DevBuf,
        scale: &mut DevBuf,
        p: &NormParams<'_, Self>,
    ) {
        let rows = scale.len;
        let (Some(x), Some(mut o), Some(mut s)) = (x.view(), out.view_mut(), scale.view_mut())
        else {
            return;
        };
        let (d, eps, center) = (i(p.d), p.eps, i(p.layer_norm as usize));
        let w = p.w.view();
        let b =
            p.b.and_then(DevBuf::view)
                .or_else(|| Some(self.dummy.slice(..)));
        let has_b = i(p.b.is_some() as usize);
        let (Some(w), Some(b)) = (w, b) else { return };
        if kernel == "norm_fused" {
            let cfg = Self::per_row(rows);
            launch!(
                self,
                kernel,
                rows,
                cfg,
                [&x, &mut o, &mut s, &w, &b, &has_b, &d, &eps, &center]
            );
        } else {
            launch!(
                self,
                kernel,
                rows,
                Self::per_row(rows),
                [&x, &mut o, &mut s, &d, &eps, &center]
            );
        }
    }
}

impl Backend for CudaBackend {
    const EMBEDS_FROM_UNEMBED: bool = false;
    type Buf = DevBuf;
    type Matrix = DevMatrix;
    type Rows = DevRows;
    type KeyMask = DevKeyMask;
    type Rotary = DevRotary;

    fn name(&self) -> &'static str {
        "cuda"
    }

    fn check(&self) -> Result<()> {
        if let Err(e) = self.stream.synchronize() {
            self.fail(format!("CUDA stream: {e:?}"));
        }
        let error = self.error.lock().unwrap_or_else(|p| p.into_inner()).take();
        match error {
            None => Ok(()),
            Some(what) => Err(HookLensError::Unsupported {
                what: format!("CUDA backend: {what}"),
            }),
        }
    }

    fn zeros(&self, len: usize) -> DevBuf {
        let mut b = DevBuf::default();
        self.resize_zeroed(&mut b, len);
        b
    }

    fn len(&self, buf: &DevBuf) -> usize {
        buf.len
    }

    fn resize_zeroed(&self, buf: &mut DevBuf, len: usize) {
        buf.len = len;
        if len == 0 || self.failed() {
            return;
        }
        let fits = buf.data.as_ref().is_some_and(|d| d.len() >= len);
        if !fits {
            buf.data = self
                .stream
                .alloc_zeros::<f32>(len)
                .map_err(|e| self.fail(format!("allocating {len} values: {e:?}")))
                .ok();
            return;
        }
        if let Some(mut v) = buf.view_mut() {
            if let Err(e) = self.stream.memset_zeros(&mut v) {
                self.fail(format!("zeroing: {e:?}"));
            }
        }
    }

    fn set_len_keeping(&self, buf: &mut DevBuf, len: usize) {
        let old = buf.len;
        let allocated = buf.data.as_ref().map_or(0, |d| d.len());
        if len > allocated {
            self.fail(format!(
                "growing a buffer of {allocated} values to {len}: past its allocation"
            ));
            return;
        }
        buf.len = len;
        if len <= old || self.failed() {
            return;
        }
        if let Some(mut tail) = buf.data.as_mut().map(|d| d.slice_mut(old..len)) {
            if let Err(e) = self.stream.memset_zeros(&mut tail) {
                self.fail(format!("zeroing: {e:?}"));
            }
        }
    }

    fn upload(&self, host: &[f32]) -> DevBuf {
        DevBuf {
            data: self.to_device(host),
            len: host.len(),
        }
    }

    fn download(&self, buf: &DevBuf) -> Vec<f32> {
        let Some(v) = buf.view() else {
            return Vec::new();
        };
        self.count(buf.len);
        self.stream.clone_dtoh(&v).unwrap_or_else(|e| {
            self.fail(format!("copy to the host: {e:?}"));
            vec![0.0; buf.len]
        })
    }

    fn take_host(&self, buf: DevBuf) -> Vec<f32> {
        self.download(&buf)
    }

    fn upload_into(&self, host: &[f32], dst: &mut DevBuf) {
        if host.len() != dst.len {
            return self.fail("upload_into: lengths differ");
        }
        let Some(mut v) = dst.view_mut() else { return };
        self.count(host.len());
        if let Err(e) = self.stream.memcpy_htod(host, &mut v) {
            self.fail(format!("copy to the device: {e:?}"));
        }
    }

    fn with_host_mut<R>(&self, buf: &mut DevBuf, f: impl FnOnce(&mut [f32]) -> R) -> R {
        let mut host = self.download(buf);
        let before = host.clone();
        let out = f(&mut host);
        if host != before {
            self.upload_into(&host, buf);
        }
        out
    }

    fn append(&self, buf: &mut DevBuf, host: &[f32]) {
        let mut all = self.download(buf);
        all.extend_from_slice(host);
        *buf = self.upload(&all);
    }

    fn gather_rows(&self, src: &DevBuf, rows: &[usize], width: usize) -> DevBuf {
        let mut out = self.zeros(rows.len() * width);
        let idx: Vec<i32> = rows.iter().map(|&r| i(r)).collect();
        let (Some(s), Some(ix)) = (src.view(), self.to_device(&idx)) else {
            return out;
        };
        let (n, w) = (i(rows.len()), i(width));
        if let Some(mut o) = out.view_mut() {
            launch!(
                self,
                "gather_rows",
                rows.len() * width,
                Self::elems(rows.len() * width),
                [&mut o, &s, &ix, &n, &w]
            );
        }
        out
    }

    fn matrix(&self, host: HostMatrix<'_>) -> DevMatrix {
        let (k, n) = (host.k, host.n);
        let data = match host.order {
            HostOrder::KByN => self.to_device(host.data),
            HostOrder::NByK => self.to_device(&crate::model::weights::transpose(host.data, n, k)),
        };
        DevMatrix { data, k, n }
    }

    fn matrix_shape(&self, m: &DevMatrix) -> (usize, usize) {
        (m.k, m.n)
    }

    fn vector(&self, host: Vec<f32>) -> DevBuf {
        self.upload(&host)
    }

    fn rows(&self, layout: &RowLayout) -> DevRows {
        let mut seq = Vec::new();
        let mut pos = Vec::new();
        let mut idx = Vec::new();
        for (s, r) in layout.seqs.iter().enumerate() {
            for (j, &t) in r.positions.iter().enumerate() {
                seq.push(i(s));
                pos.push(i(t));
                idx.push(i(j));
            }
        }
        let off: Vec<i32> = layout.seqs.iter().map(|s| i(s.offset)).collect();
        let count: Vec<i32> = layout.seqs.iter().map(|s| i(s.positions.len())).collect();
        let partial: Vec<i32> = (layout.seqs.iter())
            .map(|s| i((s.positions.len() < layout.seq_len) as usize))
            .collect();
        DevRows {
            row_seq: self.to_device(&seq),
            row_pos: self.to_device(&pos),
            row_idx: self.to_device(&idx),
            seq_off: self.to_device(&off),
            seq_n: self.to_device(&count),
            partial: self.to_device(&partial),
            rows: layout.rows(),
            batch: layout.batch(),
            seq_len: layout.seq_len,
        }
    }

    fn key_mask(&self, spans: &[RealSpan]) -> DevKeyMask {
        let lo: Vec<i32> = spans.iter().map(|s| i(s.start)).collect();
        let hi: Vec<i32> = spans.iter().map(|s| i(s.end())).collect();
        DevKeyMask {
            lo: self.to_device(&lo),
            hi: self.to_device(&hi),
        }
    }

    fn rotary_tables(&self, seq: usize, d_head: usize, theta: f32) -> DevRotary {
        let cpu = crate::backend::cpu::rotary::RotaryTables::new(seq, d_head, theta);
        let (cos, sin) = cpu.tables();
        DevRotary {
            cos: self.to_device(cos),
            sin: self.to_device(sin),
            half: d_head / 2,
        }
    }

    fn embed(&self, w_e: &DevBuf, ids: &[u32], d: usize, out: &mut DevBuf) {
        let (Some(w), Some(ix)) = (w_e.view(), self.to_device(ids)) else {
            return;
        };
        let Some(mut o) = out.view_mut() else { return };
        let (rows, d32) = (i(ids.len()), i(d));
        launch!(
            self,
            "embed",
            ids.len() * d,
            Self::elems(ids.len() * d),
            [&mut o, &w, &ix, &rows, &d32]
        );
    }

    fn embed_from_unembed(&self, _unembed: &DevMatrix, _ids: &[u32], _out: &mut DevBuf) {
        // EMBEDS_FROM_UNEMBED is false: loaders give this backend the table itself.
        self.fail("embed_from_unembed: the CUDA backend keeps its own embedding table");
    }

    fn embed_positions(&self, w_pos: &DevBuf, positions: &[usize], d: usize, out: &mut DevBuf) {
        let p: Vec<i32> = positions.iter().map(|&t| i(t)).collect();
        let (Some(w), Some(px)) = (w_pos.view(), self.to_device(&p)) else {
            return;
        };
        let Some(mut o) = out.view_mut() else { return };
        let (rows, d32) = (i(positions.len()), i(d));
        launch!(
            self,
            "embed_positions",
            positions.len() * d,
            Self::elems(positions.len() * d),
            [&mut o, &w, &px, &rows, &d32]
        );
    }

    fn norm_fused(
        &self,
        x: &DevBuf,
        out: &mut DevBuf,
        scale: &mut DevBuf,
        p: &NormParams<'_, Self>,
    ) {
        self.norm_kernel("norm_fused", x, out, scale, p);
    }

    fn norm_scale(
        &self,
        x: &DevBuf,
        out: &mut DevBuf,
        scale: &mut DevBuf,
        p: &NormParams<'_, Self>,
    ) {
        self.norm_kernel("norm_scale", x, out, scale, p);
    }

    fn divide_by_scale(&self, out: &mut DevBuf, scale: &DevBuf, d: usize) {
        let n = out.len;
        let (Some(mut o), Some(s)) = (out.view_mut(), scale.view()) else {
            return;
        };
        let (rows, d32) = (i(n / d.max(1)), i(d));
        launch!(
            self,
            "divide_by_scale",
            n,
            Self::elems(n),
            [&mut o, &s, &rows, &d32]
        );
    }

    fn affine(&self, out: &mut DevBuf, w: &DevBuf, b: Option<&DevBuf>, d: usize) {
        let n = out.len;
        let (Some(mut o), Some(wv)) = (out.view_mut(), w.view()) else {
            return;
        };
        let bv = b
            .and_then(DevBuf::view)
            .unwrap_or_else(|| self.dummy.slice(..));
        let (has_b, rows, d32) = (i(b.is_some() as usize), i(n / d.max(1)), i(d));
        launch!(
            self,
            "affine",
            n,
            Self::elems(n),
            [&mut o, &wv, &bv, &has_b, &rows, &d32]
        );
    }

    fn linear(
        &self,
        x: &DevBuf,
        rows: usize,
        w: &DevMatrix,
        bias: Option<&DevBuf>,
        then: Epilogue<'_, Self>,
        out: &mut DevBuf,
    ) {
        let beta = if matches!(then, Epilogue::AddInto) {
            1.0
        } else {
            0.0
        };
        self.sgemm(x, rows, w, beta, out);
        let (kind, gate) = match then {
            Epilogue::Store | Epilogue::AddInto => (0, None),
            Epilogue::GeluNew => (1, None),
            Epilogue::SiluGateMul(g) => (2, Some(g)),
        };
        if kind == 0 && bias.is_none() {
            return;
        }
        let n = rows * w.n;
        let Some(mut o) = out.view_mut() else { return };
        let bv = bias
            .and_then(DevBuf::view)
            .unwrap_or_else(|| self.dummy.slice(..));
        let gv = gate
            .and_then(DevBuf::view)
            .unwrap_or_else(|| self.dummy.slice(..));
        let (has_b, kind, r, c) = (i(bias.is_some() as usize), i(kind), i(rows), i(w.n));
        launch!(
            self,
            "epilogue",
            n,
            Self::elems(n),
            [&mut o, &bv, &has_b, &gv, &kind, &r, &c]
        );
    }

    fn rotary(&self, tables: &DevRotary, x: &mut DevBuf, positions: &[usize], heads: usize) {
        let p: Vec<i32> = positions.iter().map(|&t| i(t)).collect();
        let (Some(c), Some(s), Some(px)) =
            (tables.cos.as_ref(), tables.sin.as_ref(), self.to_device(&p))
        else {
            return;
        };
        let Some(mut xv) = x.view_mut() else { return };
        let (rows, h, half) = (i(positions.len()), i(heads), i(tables.half));
        launch!(
            self,
            "rotary",
            positions.len() * heads * tables.half,
            Self::elems(positions.len() * heads * tables.half),
            [&mut xv, c, s, &px, &rows, &h, &half]
        );
    }

    fn attention_scores(
        &self,
        q: &DevBuf,
        k: &DevBuf,
        scores: &mut DevBuf,
        rows: &DevRows,
        mask: Option<&DevKeyMask>,
        d: HeadDims,
    ) {
        let (Some(qv), Some(kv), Some(mut sv)) = (q.view(), k.view(), scores.view_mut()) else {
            return;
        };
        let Some((lo, hi, masked)) = key_bounds(rows, mask) else {
            return;
        };
        let (Some(rs), Some(rp), Some(ri), Some(so), Some(sn)) = (
            &rows.row_seq,
            &rows.row_pos,
            &rows.row_idx,
            &rows.seq_off,
            &rows.seq_n,
        ) else {
            return;
        };
        let m = dims(d, rows.seq_len);
        launch!(
            self,
            "attention_scores",
            rows.rows,
            Self::per_row_head(rows.rows, d.n_heads, 0),
            [&qv, &kv, &mut sv, rs, rp, ri, so, sn, lo, hi, &masked, &m]
        );
    }

    fn softmax_rows(&self, x: &mut DevBuf, len: usize) {
        let n = x.len / len.max(1);
        let Some(mut xv) = x.view_mut() else { return };
        let l = i(len);
        launch!(self, "softmax_rows", n, Self::per_row(n), [&mut xv, &l]);
    }

    fn attention_values(
        &self,
        pattern: &DevBuf,
        v: &DevBuf,
        z: &mut DevBuf,
        rows: &DevRows,
        d: HeadDims,
    ) {
        let (Some(pv), Some(vv), Some(mut zv)) = (pattern.view(), v.view(), z.view_mut()) else {
            return;
        };
        let (Some(rs), Some(ri), Some(so), Some(sn)) =
            (&rows.row_seq, &rows.row_idx, &rows.seq_off, &rows.seq_n)
        else {
            return;
        };
        let m = dims(d, rows.seq_len);
        launch!(
            self,
            "attention_values",
            rows.rows,
            Self::per_row_head(rows.rows, d.n_heads, 0),
            [&pv, &vv, &mut zv, rs, ri, so, sn, &m]
        );
    }

    fn attention_fused(
        &self,
        q: &DevBuf,
        k: &DevBuf,
        v: &DevBuf,
        z: &mut DevBuf,
        rows: &DevRows,
        mask: Option<&DevKeyMask>,
        d: HeadDims,
    ) {
        let (Some(qv), Some(kv), Some(vv), Some(mut zv)) =
            (q.view(), k.view(), v.view(), z.view_mut())
        else {
            return;
        };
        let Some((lo, hi, masked)) = key_bounds(rows, mask) else {
            return;
        };
        let (Some(rs), Some(rp)) = (&rows.row_seq, &rows.row_pos) else {
            return;
        };
        let m = dims(d, rows.seq_len);
        let cfg = Self::per_row_head(rows.rows, d.n_heads, 4 * rows.seq_len);
        launch!(
            self,
            "attention_fused",
            rows.rows,
            cfg,
            [&qv, &kv, &vv, &mut zv, rs, rp, lo, hi, &masked, &m]
        );
    }

    fn assemble_kv(
        &self,
        full: &mut DevBuf,
        computed: &DevBuf,
        layout: &RowLayout,
        width: usize,
        prefix: Option<KvSource<'_, Self>>,
    ) -> Result<()> {
        let rows = self.rows(layout);
        let block = layout.seq_len * width;
        if let Some(p) = &prefix {
            let seq_of: Vec<i32> = p.seq_of.iter().map(|&s| i(s)).collect();
            let (Some(c), Some(so), Some(part)) = (
                p.cache.view(),
                self.to_device(&seq_of),
                rows.partial.as_ref(),
            ) else {
                return Ok(());
            };
            let Some(mut f) = full.view_mut() else {
                return Ok(());
            };
            let (batch, blk) = (i(layout.batch()), block as i64);
            launch!(
                self,
                "copy_prefix",
                layout.batch() * block,
                Self::elems(layout.batch() * block),
                [&mut f, &c, &so, part, &batch, &blk]
            );
        } else if layout
            .seqs
            .iter()
            .any(|s| s.positions.len() < layout.seq_len)
        {
            return Err(HookLensError::input(
                "a partial pass needs the base run's keys and values",
            ));
        }
        self.scatter_kv_rows(full, computed, layout, width);
        Ok(())
    }

    fn scatter_kv_rows(
        &self,
        full: &mut DevBuf,
        computed: &DevBuf,
        layout: &RowLayout,
        width: usize,
    ) {
        let rows = self.rows(layout);
        let (Some(cv), Some(rs), Some(rp)) = (computed.view(), &rows.row_seq, &rows.row_pos) else {
            return;
        };
        let Some(mut f) = full.view_mut() else {
            return;
        };
        let (n, s, w) = (i(rows.rows), i(layout.seq_len), i(width));
        launch!(
            self,
            "scatter_rows",
            rows.rows * width,
            Self::elems(rows.rows * width),
            [&mut f, &cv, rs, rp, &n, &s, &w]
        );
    }

    fn add(&self, acc: &mut DevBuf, x: &DevBuf) {
        let n = acc.len as i64;
        let (Some(mut av), Some(xv)) = (acc.view_mut(), x.view()) else {
            return;
        };
        launch!(
            self,
            "add_inplace",
            n as usize,
            Self::elems(n as usize),
            [&mut av, &xv, &n]
        );
    }

    fn gelu_new(&self, x: &mut DevBuf) {
        let n = x.len as i64;
        let Some(mut xv) = x.view_mut() else { return };
        launch!(
            self,
            "gelu_new_inplace",
            n as usize,
            Self::elems(n as usize),
            [&mut xv, &n]
        );
    }

    fn silu_mul(&self, gate: &DevBuf, linear: &mut DevBuf) {
        let n = linear.len as i64;
        let (Some(gv), Some(mut lv)) = (gate.view(), linear.view_mut()) else {
            return;
        };
        launch!(
            self,
            "silu_mul",
            n as usize,
            Self::elems(n as usize),
            [&gv, &mut lv, &n]
        );
    }

    fn per_head_result(
        &self,
        z: &DevBuf,
        w_o: &DevMatrix,
        rows: usize,
        d: HeadDims,
        result: &mut DevBuf,
    ) {
        let mut masked = self.zeros(z.len);
        let mut part = self.zeros(rows * w_o.n);
        let (r, h_n, dh, dm) = (i(rows), i(d.n_heads), i(d.d_head), i(w_o.n));
        for h in 0..d.n_heads {
            let hh = i(h);
            if let (Some(mut mv), Some(zv)) = (masked.view_mut(), z.view()) {
                launch!(
                    self,
                    "mask_head",
                    z.len,
                    Self::elems(z.len),
                    [&mut mv, &zv, &r, &h_n, &dh, &hh]
                );
            }
            self.sgemm(&masked, rows, w_o, 0.0, &mut part);
            if let (Some(mut rv), Some(pv)) = (result.view_mut(), part.view()) {
                launch!(
                    self,
                    "put_head",
                    rows * w_o.n,
                    Self::elems(rows * w_o.n),
                    [&mut rv, &pv, &r, &h_n, &dm, &hh]
                );
            }
        }
    }

    fn sum_heads(
        &self,
        result: &DevBuf,
        b_o: Option<&DevBuf>,
        n_heads: usize,
        d: usize,
        out: &mut DevBuf,
    ) {
        let n = out.len;
        let (Some(rv), Some(mut ov)) = (result.view(), out.view_mut()) else {
            return;
        };
        let bv = b_o
            .and_then(DevBuf::view)
            .unwrap_or_else(|| self.dummy.slice(..));
        let (has_b, rows, h, d32) = (i(b_o.is_some() as usize), i(n / d.max(1)), i(n_heads), i(d));
        launch!(
            self,
            "sum_heads",
            n,
            Self::elems(n),
            [&mut ov, &rv, &bv, &has_b, &rows, &h, &d32]
        );
    }

    fn repeat_per_head(&self, x: &DevBuf, heads: usize, d: usize) -> DevBuf {
        let mut out = self.zeros(x.len * heads);
        if let (Some(xv), Some(mut ov)) = (x.view(), out.view_mut()) {
            let (rows, h, d32) = (i(x.len / d.max(1)), i(heads), i(d));
            launch!(
                self,
                "repeat_per_head",
                x.len * heads,
                Self::elems(x.len * heads),
                [&mut ov, &xv, &rows, &h, &d32]
            );
        }
        out
    }

    fn own_head_columns(&self, product: &DevBuf, heads: usize, d_head: usize, out: &mut DevBuf) {
        let n = out.len;
        let (Some(pv), Some(mut ov)) = (product.view(), out.view_mut()) else {
            return;
        };
        let (rows, h, dh) = (i(n / (heads * d_head).max(1)), i(heads), i(d_head));
        launch!(
            self,
            "own_head_columns",
            n,
            Self::elems(n),
            [&mut ov, &pv, &rows, &h, &dh]
        );
    }

    fn intervene(
        &self,
        iv: &ResolvedIntervention,
        data: &mut DevBuf,
        layout: &RowLayout,
        seq: usize,
    ) {
        let (mut dst, mut src) = (Vec::new(), Vec::new());
        let mut width = 0;
        iv.for_each_slice(layout, seq, |range, source| {
            dst.push(range.start as i64);
            src.push(source as i64);
            width = range.len();
        });
        let segs = dst.len();
        let (op, factor, host): (i32, f32, &[f32]) = match &iv.op {
            Op::Zero => (0, 0.0, &[]),
            Op::Scale { factor } => (1, *factor, &[]),
            Op::Add { vector } => (2, 0.0, vector),
            Op::Set { values } => (3, 0.0, &values.data),
        };
        let (Some(dv), Some(sv)) = (self.to_device(&dst), self.to_device(&src)) else {
            return;
        };
        let extra = self.to_device(host);
        let Some(mut x) = data.view_mut() else { return };
        let any = extra.as_ref().unwrap_or(&self.dummy).slice(..);
        let (w, n, o) = (i(width), i(segs), op);
        launch!(
            self,
            "apply_segments",
            segs * width,
            Self::elems(segs * width),
            [&mut x, &dv, &sv, &w, &n, &o, &factor, &any, &any]
        );
    }
}
