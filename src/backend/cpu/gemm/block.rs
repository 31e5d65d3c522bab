//! The blocked loop nest (BLIS order) over one thread's share of the output: `NC` columns of
//! packed `W` at a time, then `KC` steps of `k`, then `MC` rows of `x` packed on the fly, then
//! `NR`-wide panels and `MR`-row micro-panels, one micro-kernel call per `MR x NR` tile.

use std::cell::RefCell;
use std::ops::Range;
use std::sync::OnceLock;

use super::super::caches::CacheSizes;
use super::kernel::{CheckedKernel, Finish, Kernel, Tile};
use super::pack_a::{pack_a, ABlock};
use super::packed::PackedMatrix;
use super::{Epilogue, NR};

/// Cache block sizes. [`Blocking::for_kernel`] gives each kernel's block sizes as tuned on a
/// reference machine ([`Blocking::tuned`]), scaled to the cache sizes of the machine it runs
/// on ([`Blocking::for_caches`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Blocking {
    /// Rows of `x` packed at a time (rounded up to a multiple of the kernel's tile height): the
    /// packed `[MC, KC]` block of `x` should sit in L2.
    pub mc: usize,
    /// Steps of `k` per block. Each output tile is loaded and stored once per block, so longer
    /// is better while the `[MC, KC]` block of `x` and a tile's `[KC, 32]` slab of `W` stay in
    /// L2.
    pub kc: usize,
    /// Columns of `W` per outer block (rounded up to a whole number of tiles): the `[KC, NC]`
    /// block of `W` that all `MC` row blocks reuse should sit in L2/L3.
    pub nc: usize,
    /// Up to this many rows the whole of `k` is one block and `x` is packed once for all
    /// threads: small batches stream each weight panel once, front to back, with the
    /// accumulators in registers throughout.
    pub skinny_m: usize,
    /// Shares of at least `MC` rows whose `k` fits one `KC` block: `Some(nc)` packs the rows
    /// of `x` once, takes `W` in blocks of `nc` columns that stay in L2, and runs each `x`
    /// micro-panel (in L1) across the whole block before the next one. `None`: the loop
    /// above, `NC` columns at a time with the `W` panels outermost.
    pub nc_packed_once: Option<usize>,
    /// A thread's share of rows is computed in pieces of at most this many rows (rounded up
    /// to the tile height), so that a piece's packed x and its output stay in L2 however few
    /// threads split a large product (one thread alone would otherwise pack all of x, 7 MB
    /// at 2304 x 768, and stream it back from L3 for every W block).
    pub share_rows: usize,
    /// `Some(deep)`: products with `k > 2 * kc` (deeper than two `KC` blocks) take `k` in
    /// equal blocks of at most `deep` steps, with the rows per block scaled down by the same
    /// factor so that the packed block of `x` keeps its size; each output tile is then loaded
    /// and stored fewer times.
    pub deep_kc: Option<usize>,
}

/// The caches of the machine the AVX-512 blocking was tuned on (an Intel Xeon, see
/// `docs/bench-gemm.md`).
pub const AVX512_REFERENCE: CacheSizes = CacheSizes {
    l1d: 48 << 10,
    l2: 2 << 20,
    l3: 105 << 20,
};

/// The caches of the machine the AVX2 blocking was tuned on (an AMD EPYC, Zen 3).
pub const AVX2_REFERENCE: CacheSizes = CacheSizes {
    l1d: 32 << 10,
    l2: 512 << 10,
    l3: 32 << 20,
};

impl Blocking {
    /// The block sizes for `kernel` on this machine: [`Blocking::tuned`] scaled to the
    /// caches [`CacheSizes::get`] reads.
    pub fn for_kernel(kernel: Kernel) -> Self {
        static SCALED: [OnceLock<Blocking>; 3] = [const { OnceLock::new() }; 3];
        let slot = Kernel::ALL.iter().position(|&k| k == kernel).unwrap_or(0);
        *SCALED[slot].get_or_init(|| {
            let (tuned, reference) = Self::tuned(kernel);
            tuned.for_caches(reference, CacheSizes::get(), kernel.mr())
        })
    }

    /// The block sizes measured best for `kernel`, with the caches of the machine they were
    /// measured on.
    pub fn tuned(kernel: Kernel) -> (Self, CacheSizes) {
        match kernel {
            Kernel::Avx512 => (
                Self {
                    mc: 140,
                    kc: 768,
                    nc: 3072,
                    skinny_m: 28,
                    nc_packed_once: Some(384),
                    share_rows: 294,
                    // GPT-2's MLP down (k = 3072) as 2 x 1536 steps with 70-row blocks of x:
                    // 3-4.5 % faster than 4 x 768 at 2304 x 3072 x 768 with one and two
                    // threads (interleaved, 5-6 rounds). Not for k <= 1536: 1536 then fits
                    // one block and that shape was 0-4 % slower in the SmolLM2 forward pass.
                    deep_kc: Some(1536),
                },
                AVX512_REFERENCE,
            ),
            Kernel::Avx2Fma | Kernel::Portable => (
                Self {
                    mc: 144,
                    // All of k in one block up to 3072 steps (GPT-2's MLP down): each output
                    // tile is then loaded and stored once. Against 512 (k = 576 as 512 + 64,
                    // 768 as 512 + 256) on Zen 3, calls alternated in one process
                    // (`examples/gemm_blocking_ab.rs`), median time ratio: 0.92-0.94 at
                    // k = 576 and 768, 0.93 at k = 3072, 0.96 at k = 1536 (1 and 2 threads),
                    // though the x block then outgrows L2; 72 or 288 rows were no better.
                    kc: 3072,
                    nc: 3072,
                    skinny_m: 24,
                    nc_packed_once: None,
                    share_rows: 288,
                    deep_kc: None,
                },
                AVX2_REFERENCE,
            ),
        }
    }

    /// These block sizes, tuned on a machine with caches `reference`, for one with caches
    /// `caches`: the k depth grows and shrinks with L1d (a `[kc, 16]` panel of W is read from
    /// L1 by every micro-panel of x), the rows of a packed x block with L2 per step of k (the
    /// `[mc, kc]` block of x stays in L2), and a thread's piece of rows with them. Rows stay
    /// multiples of the kernel's tile height `mr`; the same caches give the same sizes back.
    pub fn for_caches(self, reference: CacheSizes, caches: CacheSizes, mr: usize) -> Self {
        if caches == reference {
            return self;
        }
        let scale = |v: usize, num: usize, den: usize| {
            ((v as u128 * num as u128) / den.max(1) as u128) as usize
        };
        let kc = scale(self.kc, caches.l1d, reference.l1d)
            .next_multiple_of(16)
            .clamp(64, 4096);
        // mc * kc scales with L2.
        let rows = |v: usize| {
            scale(scale(v, caches.l2, reference.l2), self.kc, kc)
                .clamp(mr, 4096)
                .next_multiple_of(mr)
        };
        Self {
            mc: rows(self.mc),
            kc,
            share_rows: rows(self.share_rows),
            deep_kc: self
                .deep_kc
                .map(|deep| scale(deep, kc, self.kc).next_multiple_of(16)),
            ..self
        }
    }

    /// The depth of the k blocks and the rows of x packed per block for a product with `k`
    /// steps that packs x block by block (see [`Blocking::deep_kc`]).
    pub(super) fn k_blocks(&self, k: usize) -> (usize, usize) {
        let kc = self.kc.max(1);
        match self.deep_kc {
            Some(deep) if k > 2 * kc && deep > kc => {
                // Blocks of equal depth (3072 as 2 x 1536, 2000 as 2 x 1000).
                let depth = k.div_ceil(k.div_ceil(deep));
                (depth, self.mc * kc / depth)
            }
            // Blocks of equal depth otherwise too (4096 as 2 x 2048, not 3072 + 1024).
            _ => (k.div_ceil(k.div_ceil(kc)), self.mc),
        }
    }
}

thread_local! {
    /// The caller's packing of all of a skinny `x` (see [`Problem::packed_x`]).
    pub(super) static PACK_X: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    /// The buffer blocks of `x` are packed into, kept per thread so that neither chunks nor
    /// repeated products on the calling thread pay for allocating (and faulting in) it again.
    /// It grows to the largest `MC x KC` block used (430 KiB with the AVX-512 defaults).
    static PACK_A: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// A raw output pointer that threads writing disjoint tiles may share.
#[derive(Clone, Copy)]
pub(super) struct OutPtr(pub *mut f32);
// SAFETY: every thread given an OutPtr writes only the tiles of its own (rows, panels) share of
// the output, and the scope that spawns the threads holds the unique borrow of the buffer until
// they all finish.
unsafe impl Send for OutPtr {}
// SAFETY: as for Send: shared only between threads that write disjoint tiles.
unsafe impl Sync for OutPtr {}

/// Everything a thread needs to compute its share of `out = x @ W + bias`.
pub(super) struct Problem<'a> {
    /// `[m, k]`
    pub x: &'a [f32],
    /// Packed `[k, n]`.
    pub w: &'a PackedMatrix,
    /// `[n]`
    pub bias: Option<&'a [f32]>,
    /// All of `x` packed once by the caller, in `pack_a`'s layout with `kc = k`, when the
    /// product is skinny (`m <= skinny_m`): then every chunk uses it instead of packing again.
    /// micro-panels `[k, rows]` for rows `0..m`
    pub packed_x: Option<&'a [f32]>,
    /// Start of `out`. `[m, n]`
    pub out: OutPtr,
    /// What the product does with its output (checked by the caller: a gate holds `m * n`).
    pub epilogue: Epilogue<'a>,
}

/// Computes rows `rows` x panels `panels` of the output, in pieces of at most
/// [`Blocking::share_rows`] rows (unless all of x is packed already).
///
/// # Safety
/// `p.out` must be valid for `m * n` values (`m` >= `rows.end`), `x` must hold `rows.end * k`
/// values, and no other thread may touch the output tiles of this share during the call.
pub(super) unsafe fn compute(
    p: &Problem,
    rows: Range<usize>,
    panels: Range<usize>,
    kernel: CheckedKernel,
    blk: &Blocking,
) {
    let mr = kernel.kernel().mr();
    let pieces = rows.len().div_ceil(blk.share_rows.max(mr));
    if pieces <= 1 || p.packed_x.is_some() {
        // SAFETY: the caller's contract, passed through.
        return unsafe { compute_piece(p, rows, panels, kernel, blk) };
    }
    // Pieces of about equal height, starting (as `rows` does) at multiples of mr.
    let height = rows.len().div_ceil(pieces).next_multiple_of(mr);
    for start in rows.clone().step_by(height) {
        let piece = start..(start + height).min(rows.end);
        // SAFETY: the piece lies inside `rows`: the caller's contract covers it.
        unsafe { compute_piece(p, piece, panels.clone(), kernel, blk) };
    }
}

/// [`compute`] for one piece of a share.
///
/// # Safety
/// As [`compute`].
unsafe fn compute_piece(
    p: &Problem,
    rows: Range<usize>,
    panels: Range<usize>,
    kernel: CheckedKernel,
    blk: &Blocking,
) {
    let k = p.w.k();
    if rows.is_empty() || panels.is_empty() || k == 0 {
        return;
    }
    let mr = kernel.kernel().mr();
    let step = kernel.kernel().panels_per_tile();
    let (kc_max, mc) = match p.packed_x {
        Some(_) => (k, blk.mc),
        None => blk.k_blocks(k),
    };
    let mc_max = mc
        .max(1)
        .next_multiple_of(mr)
        .min(rows.len().next_multiple_of(mr));
    // With all of k in one block and at least MC rows (and a blocking that asks for it), this
    // share of x is packed once here, and tiles run row micro-panel by row micro-panel over
    // L2-sized W blocks (measured 3-8 % faster at M = 2304 for N >= 1536 and the unembedding).
    let packed_once = match blk.nc_packed_once {
        Some(nc) if p.packed_x.is_none() && kc_max == k && rows.len() >= mc => Some(nc),
        _ => None,
    };
    let nc_panels = packed_once
        .unwrap_or(blk.nc)
        .div_ceil(NR)
        .next_multiple_of(step);
    let blocks = (mc_max, kc_max, nc_panels);
    PACK_A.with_borrow_mut(|abuf| {
        let want = if packed_once.is_some() {
            rows.len() * k
        } else {
            mc_max * kc_max
        };
        if p.packed_x.is_none() && abuf.len() < want {
            abuf.resize(want, 0.0);
        }
        if packed_once.is_some() {
            let all = ABlock {
                i0: rows.start,
                mc: rows.len(),
                p0: 0,
                kc: k,
            };
            pack_a(p.x, k, all, kernel, abuf);
            let local = Problem {
                packed_x: Some(&abuf[..rows.len() * k]),
                ..*p
            };
            let order = Order {
                packed_from: rows.start,
                rows_outer: true,
            };
            // SAFETY: the caller's contract, passed through; `local` holds the rows of this
            // share packed from rows.start, as `order` says.
            unsafe { compute_with(&local, (rows, panels), kernel, blocks, order, &mut []) }
        } else {
            let order = Order {
                packed_from: 0,
                rows_outer: false,
            };
            // SAFETY: the caller's contract, passed through.
            unsafe { compute_with(p, (rows, panels), kernel, blocks, order, abuf) }
        }
    });
}

/// How [`compute_with`] walks the tiles of one block.
#[derive(Clone, Copy)]
struct Order {
    /// The first row `Problem::packed_x` holds (its micro-panels start there).
    packed_from: usize,
    /// Row micro-panels outermost (each `x` micro-panel stays in L1 while the block's `W`
    /// panels stream past it from L2); else `W` panels outermost.
    rows_outer: bool,
}

/// [`compute`] with its block sizes and the packing buffer for blocks of `x`.
/// abuf: micro-panels `[kc, rows]`, see `pack_a` (at least `mc_max * kc_max` long)
///
/// # Safety
/// As [`compute`].
unsafe fn compute_with(
    p: &Problem,
    (rows, panels): (Range<usize>, Range<usize>),
    kernel: CheckedKernel,
    (mc_max, kc_max, nc_panels): (usize, usize, usize),
    order: Order,
    abuf: &mut [f32],
) {
    let (k, n) = (p.w.k(), p.w.n());
    let mr = kernel.kernel().mr();
    let step = kernel.kernel().panels_per_tile();
    // Only whole-k blocks can use a packing of all of x (the caller's, or compute's).
    let packed_x = p.packed_x.filter(|_| kc_max == k);
    // Row blocks of about equal height: a short last block would stream all of W for a few
    // rows only (e.g. 294 rows as 98 + 98 + 98, not 140 + 140 + 14).
    let blocks = rows.len().div_ceil(mc_max);
    let mc_even = rows.len().div_ceil(blocks).next_multiple_of(mr).min(mc_max);

    for jc in panels.clone().step_by(nc_panels) {
        let jc_end = (jc + nc_panels).min(panels.end);
        for pc in (0..k).step_by(kc_max) {
            let kc = kc_max.min(k - pc);
            for ic in rows.clone().step_by(mc_even) {
                let mc = mc_even.min(rows.end - ic);
                let ablock = ABlock {
                    i0: ic,
                    mc,
                    p0: pc,
                    kc,
                };
                if packed_x.is_none() {
                    pack_a(p.x, k, ablock, kernel, abuf);
                }
                let run_tile = |jp: usize, ir: usize| {
                    let b0 = p.w.panel_rows(jp, pc, kc); // [kc, NR]
                    let two = step == 2 && jp + 1 < jc_end;
                    let b1 = if two {
                        p.w.panel_rows(jp + 1, pc, kc)
                    } else {
                        &[]
                    }; // [kc, NR]
                    let j0 = jp * NR;
                    let tile = Tile {
                        // SAFETY: row ic + ir < m and column j0 < n, so the offset is inside
                        // `out` (function contract).
                        c: unsafe { p.out.0.add((ic + ir) * n + j0) },
                        ldc: n,
                        rows: mr.min(mc - ir),
                        cols: (step * NR).min(n - j0),
                        add_c: pc > 0 || matches!(p.epilogue, Epilogue::AddInto),
                        bias: p.bias.filter(|_| pc == 0).map(|b| b[j0..].as_ptr()),
                        finish: match p.epilogue {
                            _ if pc + kc < k => Finish::Nothing,
                            Epilogue::Store | Epilogue::AddInto => Finish::Nothing,
                            Epilogue::GeluNew => Finish::GeluNew,
                            Epilogue::SiluGateMul(gate) => {
                                Finish::SiluGate(gate[(ic + ir) * n + j0..].as_ptr())
                            }
                        },
                    };
                    // This micro-panel of packed x. // [kc, rows]
                    let a = match packed_x {
                        // Rows from order.packed_from fill whole micro-panels (chunks start
                        // at multiples of mr), each kc = k long.
                        Some(all) => {
                            let r = ic + ir - order.packed_from;
                            &all[r * k..(r + tile.rows) * k]
                        }
                        None => &abuf[ir * kc..(ir + tile.rows) * kc],
                    };
                    // SAFETY: the tile lies inside rows x panels of this share (its columns
                    // end at panel jc_end <= panels.end, or at n), which only this thread
                    // writes (contract); bias has n - j0 >= cols values.
                    unsafe { kernel.run(kc, a, b0, b1, &tile) };
                };
                if order.rows_outer {
                    for ir in (0..mc).step_by(mr) {
                        for jp in (jc..jc_end).step_by(step) {
                            run_tile(jp, ir);
                        }
                    }
                } else {
                    for jp in (jc..jc_end).step_by(step) {
                        for ir in (0..mc).step_by(mr) {
                            run_tile(jp, ir);
                        }
                    }
                }
            }
        }
    }
}
