//! Which micro-kernel runs: detection, the force-portable switch, and dispatch of one tile.

use std::sync::atomic::{AtomicU8, Ordering};

use super::NR;

/// A micro-kernel family. Each computes an `mr() x (panels_per_tile() * 16)` tile of the output
/// from packed `x` micro-panels and packed `W` panels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// AVX-512F intrinsics, 14 x 32 tile (x86_64 CPUs that report `avx512f`).
    Avx512,
    /// AVX2 + FMA intrinsics, 6 x 16 tile (x86_64 CPUs that report `avx2` and `fma`).
    Avx2Fma,
    /// Plain Rust, 6 x 16 tile, compiled on every target; the compiler vectorises it for the
    /// baseline ISA.
    Portable,
}

/// The kernel choice: 0 not decided yet, 1 the best available, else `2 + forced kernel`
/// (2 portable, 3 AVX2, 4 AVX-512).
static MODE: AtomicU8 = AtomicU8::new(0);

/// Forces (`true`) or stops forcing (`false`) the portable kernel for [`Kernel::best`], and so for
/// [`super::gemm`]. Overrides the `HOOKLENS_KERNEL` and `HOOKLENS_FORCE_PORTABLE` environment
/// variables. Same as [`Kernel::force`] with `Some(Kernel::Portable)` or `None`.
pub fn set_force_portable(force: bool) {
    Kernel::force(force.then_some(Kernel::Portable));
}

/// The environment variable that forces a kernel path: `avx512`, `avx2`, `portable` or `auto`.
pub const KERNEL_ENV: &str = "HOOKLENS_KERNEL";

impl Kernel {
    /// Every kernel family, fastest first.
    pub const ALL: [Kernel; 3] = [Kernel::Avx512, Kernel::Avx2Fma, Kernel::Portable];

    /// The name `HOOKLENS_KERNEL` takes for this kernel.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Avx512 => "avx512",
            Kernel::Avx2Fma => "avx2",
            Kernel::Portable => "portable",
        }
    }

    /// Parses a `HOOKLENS_KERNEL` value: a kernel name, or `auto` / empty for `None` (the best
    /// available). A name the CPU cannot run is an error naming the ones it can.
    pub fn parse_choice(value: &str) -> Result<Option<Kernel>, String> {
        let value = value.trim().to_ascii_lowercase();
        if value.is_empty() || value == "auto" {
            return Ok(None);
        }
        let available = || {
            let names: Vec<_> = Kernel::ALL
                .iter()
                .filter(|k| k.is_available())
                .map(|k| k.name())
                .collect();
            names.join(", ")
        };
        let kernel = Kernel::ALL
            .into_iter()
            .find(|k| k.name() == value || (value == "avx2fma" && *k == Kernel::Avx2Fma))
            .ok_or_else(|| {
                format!(
                    "{KERNEL_ENV}={value}: unknown kernel (expected auto, avx512, avx2 or \
                     portable; this CPU runs {})",
                    available()
                )
            })?;
        if !kernel.is_available() {
            return Err(format!(
                "{KERNEL_ENV}={value}: this CPU cannot run the {value} kernel (it runs {})",
                available()
            ));
        }
        Ok(Some(kernel))
    }

    /// The kernel the environment asks for: `HOOKLENS_KERNEL` if set, else
    /// `HOOKLENS_FORCE_PORTABLE=1` (the older switch), else `None` (the best available).
    pub fn from_env() -> Result<Option<Kernel>, String> {
        if let Ok(value) = std::env::var(KERNEL_ENV) {
            return Kernel::parse_choice(&value);
        }
        let portable =
            std::env::var("HOOKLENS_FORCE_PORTABLE").is_ok_and(|v| !v.is_empty() && v != "0");
        Ok(portable.then_some(Kernel::Portable))
    }

    /// Forces `Some(kernel)` (falling back as [`Kernel::best`] says if the CPU lacks it) or,
    /// with `None`, the best available, for every later [`Kernel::best`]; overrides the
    /// environment.
    pub fn force(kernel: Option<Kernel>) {
        MODE.store(Self::mode_of(kernel), Ordering::Relaxed);
    }

    fn mode_of(kernel: Option<Kernel>) -> u8 {
        match kernel {
            None => 1,
            Some(Kernel::Portable) => 2,
            Some(Kernel::Avx2Fma) => 3,
            Some(Kernel::Avx512) => 4,
        }
    }

    /// The kernel [`super::gemm`] and the vectorised loops use: the one forced by
    /// [`Kernel::force`], else by `HOOKLENS_KERNEL` (read once, at the first call; an invalid
    /// value is reported on stderr once and ignored, see [`Kernel::from_env`]), else the
    /// fastest this CPU runs (AVX-512, else AVX2 + FMA, else portable). A forced kernel the
    /// CPU lacks falls back to the best one it has below it.
    pub fn best() -> Kernel {
        let mode = match MODE.load(Ordering::Relaxed) {
            0 => {
                let mode = Self::mode_of(Kernel::from_env().unwrap_or_else(|message| {
                    eprintln!("hooklens: {message}; using the best available kernel");
                    None
                }));
                // Keep a value Kernel::force stored meanwhile.
                let _ = MODE.compare_exchange(0, mode, Ordering::Relaxed, Ordering::Relaxed);
                MODE.load(Ordering::Relaxed)
            }
            m => m,
        };
        let ceiling = match mode {
            2 => Kernel::Portable,
            3 => Kernel::Avx2Fma,
            _ => Kernel::Avx512,
        };
        ceiling.checked().0
    }

    /// Whether this CPU can run the kernel.
    pub fn is_available(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => is_x86_feature_detected!("avx512f"),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2Fma => is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
            #[cfg(not(target_arch = "x86_64"))]
            Kernel::Avx512 | Kernel::Avx2Fma => false,
            Kernel::Portable => true,
        }
    }

    /// Rows of the register tile: the height of the packed micro-panels of `x`.
    pub fn mr(self) -> usize {
        match self {
            Kernel::Avx512 => 14,
            Kernel::Avx2Fma | Kernel::Portable => 6,
        }
    }

    /// 16-column panels of packed `W` per register tile.
    pub fn panels_per_tile(self) -> usize {
        match self {
            Kernel::Avx512 => 2,
            Kernel::Avx2Fma | Kernel::Portable => 1,
        }
    }

    /// This kernel if the CPU runs it, else the best one it does.
    pub(super) fn checked(self) -> CheckedKernel {
        let kernel = if self.is_available() {
            self
        } else if self == Kernel::Avx512 && Kernel::Avx2Fma.is_available() {
            Kernel::Avx2Fma
        } else {
            Kernel::Portable
        };
        CheckedKernel(kernel)
    }
}

/// A kernel known to run on this CPU: only [`Kernel::checked`] makes one.
#[derive(Clone, Copy, Debug)]
pub(super) struct CheckedKernel(Kernel);

/// Where one output tile goes and how it starts.
pub(super) struct Tile {
    /// Top-left element of the tile in the output; rows are `ldc` apart.
    pub c: *mut f32,
    /// Row stride of the output (its `n`).
    pub ldc: usize,
    /// Valid rows, 1..=mr.
    pub rows: usize,
    /// Valid columns, 1..=panels_per_tile * NR; more than NR only when `b1` is given.
    pub cols: usize,
    /// Add the tile's current contents to the sum (`c += ...`) instead of overwriting them:
    /// on every k block after the first, and on the first one when the product accumulates
    /// into its output (a fused residual add).
    pub add_c: bool,
    /// Bias for the tile's columns (`cols` values), given on the first k block only. `[cols]`
    pub bias: Option<*const f32>,
    /// What to apply to the stored tile: an activation on the last k block, else nothing.
    pub finish: Finish,
}

/// An elementwise function a micro-kernel applies to its tile right after storing it on the
/// last k block, while the tile is still in L1 (the fused activation of [`super::Epilogue`]).
#[derive(Clone, Copy, Debug)]
pub(super) enum Finish {
    /// Leave the tile as stored.
    Nothing,
    /// `c = gelu_new(c)`.
    GeluNew,
    /// `c = silu(g) * c`, `g` pointing at the tile's top-left value in a gate matrix with the
    /// output's row stride (`ldc`).
    SiluGate(*const f32),
}

/// Applies `tile.finish` to the stored tile. Inlined into each micro-kernel, so the loop is
/// vectorised for the kernel's instruction set.
///
/// # Safety
/// As [`CheckedKernel::run`]; a `Finish::SiluGate` pointer must be readable for the tile's
/// `rows x cols` values at row stride `ldc`.
#[inline(always)]
pub(super) unsafe fn finish_tile(tile: &Tile) {
    use super::super::activation::{gelu_new, silu};
    for r in 0..tile.rows {
        // SAFETY: row r < tile.rows of the tile, columns 0..tile.cols, is valid and ours by
        // the function contract.
        let c = unsafe { std::slice::from_raw_parts_mut(tile.c.add(r * tile.ldc), tile.cols) };
        match tile.finish {
            Finish::Nothing => return,
            Finish::GeluNew => c.iter_mut().for_each(|v| *v = gelu_new(*v)),
            Finish::SiluGate(gate) => {
                // SAFETY: the contract makes the gate's tile readable like the output's.
                let g = unsafe { std::slice::from_raw_parts(gate.add(r * tile.ldc), tile.cols) };
                for (v, &g) in c.iter_mut().zip(g) {
                    *v *= silu(g);
                }
            }
        }
    }
}

impl CheckedKernel {
    /// The kernel.
    pub(super) fn kernel(self) -> Kernel {
        self.0
    }

    /// Computes `tile (=|+=) a @ [b0 b1] (+ bias)` for one tile.
    /// a: `[kc, tile.rows]`
    /// b0: `[kc, NR]`   b1: `[kc, NR]` or empty when `tile.cols <= NR`
    ///
    /// # Safety
    /// `tile.c` must point at a `tile.rows x tile.cols` block (row stride `tile.ldc`) that is
    /// valid for reads and writes and that no other thread touches during the call, and
    /// `tile.bias`, if any, at `tile.cols` readable values, and `tile.finish` as
    /// [`finish_tile`] requires.
    pub(super) unsafe fn run(self, kc: usize, a: &[f32], b0: &[f32], b1: &[f32], tile: &Tile) {
        let mr = self.0.mr();
        assert!(a.len() >= kc * tile.rows && b0.len() >= kc * NR);
        assert!((1..=mr).contains(&tile.rows) && tile.cols >= 1);
        assert!(tile.cols <= NR || (tile.cols <= 2 * NR && b1.len() >= kc * NR));
        match self.0 {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: a CheckedKernel holds Avx512 only after is_available() saw AVX-512F; the
            // slice lengths are asserted above; the tile contract is the caller's.
            Kernel::Avx512 => unsafe { super::avx512::run(kc, a, b0, b1, tile) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: a CheckedKernel holds Avx2Fma only after is_available() saw AVX2 and FMA;
            // the slice lengths are asserted above; the tile contract is the caller's.
            Kernel::Avx2Fma => unsafe { super::avx2::run(kc, a, b0, tile) },
            #[cfg(not(target_arch = "x86_64"))]
            Kernel::Avx512 | Kernel::Avx2Fma => {
                unreachable!("checked() keeps only the portable kernel off x86_64")
            }
            // SAFETY: the tile contract is the caller's, passed through.
            Kernel::Portable => unsafe { super::portable::run(kc, a, b0, tile) },
        }
    }
}

/// Writes an accumulated `rows x NR` block into the tile, keeping its first `cols` columns:
/// `c = (acc + bias) (+ c)`, the bias if given, the old `c` if `tile.add_c`. Used by the AVX2
/// kernel for edge tiles and by the portable kernel for all tiles.
///
/// # Safety
/// As [`CheckedKernel::run`], with `tile.cols <= NR`.
pub(super) unsafe fn store_tile(acc: &[[f32; NR]], tile: &Tile) {
    debug_assert!(tile.cols <= NR);
    for (r, row) in acc.iter().enumerate().take(tile.rows) {
        // SAFETY: row r < tile.rows of the tile, columns 0..tile.cols, are valid and ours by
        // the function contract.
        let c = unsafe { std::slice::from_raw_parts_mut(tile.c.add(r * tile.ldc), tile.cols) };
        let bias = tile.bias.map(|bias| {
            // SAFETY: the contract gives `tile.cols` readable bias values.
            unsafe { std::slice::from_raw_parts(bias, tile.cols) }
        });
        for (j, (o, &v)) in c.iter_mut().zip(row).enumerate() {
            let v = match bias {
                Some(b) => v + b[j],
                None => v,
            };
            *o = if tile.add_c { *o + v } else { v };
        }
    }
}
