//! Unit tests of the pieces: layouts, block sizes, splits and edge shapes. The awkward-size
//! sweep against the reference kernels is in `tests/gemm.rs`.

use super::pack_a::pack_a;
use super::*;

/// Deterministic values in ±[0.25, 1]: never 0, so a dropped or doubled term always shows.
fn random(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let u = (s >> 40) as f32 / (1u64 << 24) as f32; // [0, 1)
            let v = 0.25 + 0.75 * u;
            if s & 1 == 0 {
                v
            } else {
                -v
            }
        })
        .collect()
}

/// f64 `x @ w + bias`. x: `[m, k]`   w: `[k, n]`   out: `[m, n]`
fn reference(x: &[f32], w: &[f32], bias: Option<&[f32]>, m: usize, k: usize, n: usize) -> Vec<f64> {
    let mut out = vec![0.0f64; m * n];
    for i in 0..m {
        let row = &mut out[i * n..(i + 1) * n];
        if let Some(b) = bias {
            for (o, &b) in row.iter_mut().zip(b) {
                *o = b as f64;
            }
        }
        for kk in 0..k {
            let a = x[i * k + kk] as f64;
            for (o, &wv) in row.iter_mut().zip(&w[kk * n..(kk + 1) * n]) {
                *o += a * wv as f64;
            }
        }
    }
    out
}

/// See `tests/gemm.rs` for why: a few f32 roundings per term of a k-long sum of terms <= 1.
fn check(got: &[f32], want: &[f64], k: usize, what: &str) {
    let tol = 2.0 * f32::EPSILON as f64 * (k as f64 + 1.0);
    for (i, (&g, &r)) in got.iter().zip(want).enumerate() {
        assert!(
            (g as f64 - r).abs() <= tol,
            "{what}: element {i}: got {g}, want {r} (tol {tol})"
        );
    }
}

#[test]
fn packed_layout_round_trips() {
    for &(k, n) in &[(1, 1), (3, 15), (5, 16), (7, 17), (2, 33), (0, 5), (4, 0)] {
        let w = random(k * n, 7); // [k, n]
        let a = PackedMatrix::from_k_by_n(&w, k, n);
        let wt = crate::model::weights::transpose(&w, k, n); // [n, k]
        let b = PackedMatrix::from_n_by_k(&wt, n, k);
        assert_eq!((a.k(), a.n(), b.k(), b.n()), (k, n, k, n));
        assert_eq!(a.to_k_by_n(), w);
        assert_eq!(b.to_k_by_n(), w);
        assert_eq!(a.packed_bytes(), n.div_ceil(NR) * k.max(1) * NR * 4);
        // Padding columns of the last panel are zero.
        for p in 0..a.panels() {
            let slab = a.panel_rows(p, 0, k);
            for (idx, &v) in slab.iter().enumerate() {
                if p * NR + idx % NR >= n {
                    assert_eq!(v, 0.0);
                }
            }
        }
    }
}

#[test]
fn columns_and_a_mapped_copy_read_the_packed_values() {
    for &(k, n) in &[(1, 1), (3, 15), (5, 16), (7, 17), (6, 35)] {
        let w = random(k * n, 11); // [k, n]
        let a = PackedMatrix::from_k_by_n(&w, k, n);
        let mut col = vec![0.0; k];
        for j in 0..n {
            a.column_into(j, &mut col);
            let want: Vec<f32> = (0..k).map(|kk| w[kk * n + j]).collect();
            assert_eq!(col, want, "column {j} of [{k}, {n}]");
        }
        // The same bytes behind a file mapping, at an aligned offset, read the same.
        let path =
            std::env::temp_dir().join(format!("hooklens-packed-{}-{k}-{n}", std::process::id()));
        let mut bytes = vec![0u8; 128];
        bytes.extend_from_slice(a.as_bytes());
        std::fs::write(&path, &bytes).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        // SAFETY: the test's own temporary file, not modified while mapped.
        let map = std::sync::Arc::new(
            unsafe { crate::backend::cpu::mapped::MappedFile::map(&file) }.unwrap(),
        );
        let mapped = PackedMatrix::from_mapped(map.clone(), 128, k, n).unwrap();
        assert_eq!(mapped.to_k_by_n(), w);
        assert!(
            PackedMatrix::from_mapped(map.clone(), 129, k, n).is_none(),
            "misaligned"
        );
        assert!(
            PackedMatrix::from_mapped(map, 192, k, n).is_none(),
            "past the end"
        );
        let _ = std::fs::remove_file(&path);
    }
}

#[test]
fn pack_a_layout() {
    let (m, k) = (8, 5);
    let x: Vec<f32> = (0..m * k).map(|v| v as f32 + 1.0).collect(); // [m, k]
    const MR: usize = 6;
    let mut buf = vec![f32::NAN; 7 * 3]; // [kc = 3, 6] then [kc = 3, 1]
    let blk = super::pack_a::ABlock {
        i0: 1,
        mc: 7,
        p0: 2,
        kc: 3,
    };
    pack_a(&x, k, blk, Kernel::Portable.checked(), &mut buf);
    for p in 0..3 {
        for r in 0..MR {
            assert_eq!(
                buf[p * MR + r],
                x[(1 + r) * k + 2 + p],
                "full panel {p} {r}"
            );
        }
        assert_eq!(buf[3 * MR + p], x[7 * k + 2 + p], "one-row panel {p}");
    }
}

/// Every kernel's packing equals the plain one, on blocks with partial panels and column
/// counts around the 16-wide transposes.
#[test]
fn pack_a_kernels_match_plain() {
    let (m, k) = (47, 61);
    let x = random(m * k, 11); // [m, k]
    for kernel in [Kernel::Avx512, Kernel::Avx2Fma, Kernel::Portable] {
        let checked = kernel.checked();
        let mr = checked.kernel().mr();
        for (i0, mc, p0, kc) in [
            (0, 47, 0, 61),
            (3, 29, 5, 16),
            (14, 15, 1, 17),
            (2, 1, 7, 33),
            (5, 13, 0, 1),
        ] {
            let blk = super::pack_a::ABlock { i0, mc, p0, kc };
            let mut want = vec![f32::NAN; mc * kc];
            super::pack_a::pack_a_plain(&x, k, blk, mr, &mut want);
            let mut got = vec![f32::NAN; mc * kc + 3];
            pack_a(&x, k, blk, checked, &mut got);
            assert_eq!(&got[..mc * kc], &want[..], "{kernel:?} {blk:?}");
            assert!(
                got[mc * kc..].iter().all(|v| v.is_nan()),
                "{kernel:?} wrote past the block"
            );
        }
    }
}

/// The AVX-512 packing has one code path per panel height (a compile-time row count): each
/// height from 1 to 16, at column counts below, at and past one 16-wide transpose, equals the
/// plain packing and writes nothing past the block.
#[cfg(target_arch = "x86_64")]
#[test]
fn avx512_packing_every_panel_height() {
    if !Kernel::Avx512.is_available() {
        return; // nothing to compare on this CPU; the plain packing is tested above
    }
    let (m, k) = (40, 53);
    let x = random(m * k, 12); // [m, k]
    for mr in [14, 16] {
        for mc in 1..=2 * mr {
            for (p0, kc) in [(0, 1), (3, 16), (1, 37), (0, 53)] {
                let blk = super::pack_a::ABlock { i0: 2, mc, p0, kc };
                let mut want = vec![f32::NAN; mc * kc];
                super::pack_a::pack_a_plain(&x, k, blk, mr, &mut want);
                let mut got = vec![f32::NAN; mc * kc + 17];
                // SAFETY: AVX-512F is available (checked above); the block lies inside x
                // (rows 2..2 + mc <= 34 of 40, columns p0 + kc <= 53) and `got` holds mc * kc.
                unsafe { super::pack_avx512::pack(&x, k, blk, mr, &mut got) };
                assert_eq!(&got[..mc * kc], &want[..], "mr {mr} {blk:?}");
                assert!(
                    got[mc * kc..].iter().all(|v| v.is_nan()),
                    "mr {mr} {blk:?}: overrun"
                );
            }
        }
    }
}

#[test]
#[should_panic(expected = "expected k * n")]
fn packing_checks_its_shape() {
    PackedMatrix::from_k_by_n(&[1.0; 5], 2, 3);
}

#[test]
#[should_panic(expected = "gemm: x has")]
fn gemm_checks_x() {
    let w = PackedMatrix::from_k_by_n(&[1.0; 6], 2, 3);
    gemm(&[1.0; 3], 2, &w, None, &mut [0.0; 6]);
}

#[test]
#[should_panic(expected = "gemm: out has")]
fn gemm_checks_out() {
    let w = PackedMatrix::from_k_by_n(&[1.0; 6], 2, 3);
    gemm(&[1.0; 4], 2, &w, None, &mut [0.0; 5]);
}

#[test]
#[should_panic(expected = "gemm: bias has")]
fn gemm_checks_bias() {
    let w = PackedMatrix::from_k_by_n(&[1.0; 6], 2, 3);
    gemm(&[1.0; 4], 2, &w, Some(&[0.0; 2]), &mut [0.0; 6]);
}

#[test]
fn empty_shapes() {
    // k == 0: only the bias.
    let w = PackedMatrix::from_k_by_n(&[], 0, 3);
    let mut out = [f32::NAN; 6];
    gemm(&[], 2, &w, Some(&[1.0, 2.0, 3.0]), &mut out);
    assert_eq!(out, [1.0, 2.0, 3.0, 1.0, 2.0, 3.0]);
    gemm(&[], 2, &w, None, &mut out);
    assert_eq!(out, [0.0; 6]);
    // m == 0 and n == 0 do nothing.
    let w = PackedMatrix::from_k_by_n(&[1.0; 6], 2, 3);
    gemm(&[], 0, &w, None, &mut []);
    let w = PackedMatrix::from_k_by_n(&[], 4, 0);
    gemm(&[1.0; 8], 2, &w, Some(&[]), &mut []);
    // A longer out keeps its tail.
    let w = PackedMatrix::from_k_by_n(&[1.0; 2], 1, 2);
    let mut out = [7.0; 3];
    gemm(&[2.0], 1, &w, None, &mut out);
    assert_eq!(out, [2.0, 2.0, 7.0]);
}

/// The kernels' own block sizes and odd ones: many k blocks (the accumulate path, bias on the
/// first block only), deep k blocks, several row and column blocks, packing once per thread or
/// not.
fn odd_blockings() -> [Blocking; 7] {
    [
        Blocking::for_kernel(Kernel::Avx512),
        Blocking::for_kernel(Kernel::Avx2Fma),
        Blocking {
            mc: 1,
            kc: 1,
            nc: 1,
            skinny_m: 0,
            nc_packed_once: Some(1),
            share_rows: 1,
            deep_kc: Some(3),
        },
        Blocking {
            mc: 7,
            kc: 3,
            nc: 17,
            skinny_m: 0,
            nc_packed_once: None,
            share_rows: 12,
            deep_kc: None,
        },
        Blocking {
            mc: 12,
            kc: 16,
            nc: 48,
            skinny_m: 5,
            nc_packed_once: Some(40),
            share_rows: 20,
            deep_kc: Some(64),
        },
        Blocking {
            mc: 1000,
            kc: 1000,
            nc: 10000,
            skinny_m: 1000,
            nc_packed_once: None,
            share_rows: 1000,
            deep_kc: None,
        },
        Blocking {
            mc: 14,
            kc: 1000,
            nc: 16,
            skinny_m: 0,
            nc_packed_once: Some(33),
            share_rows: 28,
            deep_kc: None,
        },
    ]
}

/// Deep products take equal k blocks of at most `deep_kc` steps, with the x block's rows cut
/// by the same factor; others keep `kc` and `mc` (sizes worked out by hand).
#[test]
fn deep_products_take_longer_k_blocks() {
    let avx512 = Blocking::tuned(Kernel::Avx512).0; // mc 140, kc 768, deep 1536
    assert_eq!(avx512.k_blocks(3072), (1536, 70)); // GPT-2's MLP down
    assert_eq!(avx512.k_blocks(2000), (1000, 107)); // 140 * 768 / 1000, rounded down
    assert_eq!(avx512.k_blocks(1536), (768, 140)); // two KC blocks: unchanged
    assert_eq!(avx512.k_blocks(576), (576, 140)); // one block
    assert_eq!(avx512.k_blocks(5000), (1250, 86)); // 4 x 1250
    let no_deeper = Blocking {
        deep_kc: Some(700), // not deeper than kc: ignored
        ..avx512
    };
    assert_eq!(no_deeper.k_blocks(3072), (768, 140));
    let avx2 = Blocking::tuned(Kernel::Avx2Fma).0; // mc 144, kc 3072, no deep blocks
    assert_eq!(avx2.k_blocks(3072), (3072, 144));
    assert_eq!(avx2.k_blocks(576), (576, 144));
    assert_eq!(avx2.k_blocks(4096), (2048, 144)); // equal blocks, rows unchanged
    assert_eq!(avx2.k_blocks(7000), (2334, 144)); // 3 blocks: 2334 + 2334 + 2332
}

/// The tuned sizes come back unchanged on the machine they were tuned on, and scale with the
/// caches elsewhere (sizes worked out by hand).
#[test]
fn blocking_follows_the_cache_sizes() {
    use super::block::{AVX2_REFERENCE, AVX512_REFERENCE};
    use crate::backend::cpu::caches::CacheSizes;
    let (avx2, zen3) = Blocking::tuned(Kernel::Avx2Fma);
    assert_eq!(avx2.for_caches(zen3, zen3, 6), avx2);
    // The AVX2 kernel forced on the Xeon: L1d 1.5x (kc 3072 -> 4608, capped at 4096), L2 4x
    // per kc step (mc 144 * 4 * 3072 / 4096 = 432, share 288 * 4 * 3072 / 4096 = 864).
    let on_xeon = avx2.for_caches(zen3, AVX512_REFERENCE, 6);
    assert_eq!(
        (on_xeon.kc, on_xeon.mc, on_xeon.share_rows),
        (4096, 432, 864)
    );
    assert_eq!((on_xeon.nc, on_xeon.skinny_m), (avx2.nc, avx2.skinny_m));
    let (avx512, xeon) = Blocking::tuned(Kernel::Avx512);
    assert_eq!(avx512.for_caches(xeon, xeon, 14), avx512);
    // AVX-512 on a core with Zen 3's caches: kc 768 * 32/48 = 512; mc 140 / 4 * 768/512 =
    // 52.5 -> 52 -> 56 (a multiple of 14); deep 1536 * 512/768 = 1024.
    let small = avx512.for_caches(xeon, AVX2_REFERENCE, 14);
    assert_eq!((small.kc, small.mc, small.deep_kc), (512, 56, Some(1024)));
    assert_eq!(small.mc % 14, 0);
    // A tiny L1 keeps kc at 64 at least, and rows at one tile at least.
    let tiny = CacheSizes {
        l1d: 512,
        l2: 8 << 10,
        l3: 1 << 20,
    };
    let t = avx2.for_caches(zen3, tiny, 6);
    assert!(t.kc == 64 && t.mc >= 6 && t.mc % 6 == 0, "{t:?}");
}

/// Tiny and odd block sizes force many k blocks (the accumulate path and bias on the first
/// block only), several row and column blocks, and every split, for both kernels.
#[test]
fn every_blocking_and_split_agrees() {
    let blockings = odd_blockings();
    for &(m, k, n) in &[
        (1, 1, 1),
        (5, 17, 33),
        (13, 40, 47),
        (31, 29, 70),
        (29, 9, 100),
    ] {
        let x = random(m * k, 1);
        let w = random(k * n, 2);
        let b = random(n, 3);
        let packed = PackedMatrix::from_k_by_n(&w, k, n);
        for bias in [None, Some(&b[..])] {
            let want = reference(&x, &w, bias, m, k, n);
            for kernel in [Kernel::Avx512, Kernel::Avx2Fma, Kernel::Portable] {
                for blocking in blockings {
                    for split in [Split::Auto, Split::Rows, Split::Columns] {
                        for threads in [1, 2, 3] {
                            let opts = GemmOptions {
                                kernel,
                                threads,
                                split,
                                blocking: Some(blocking),
                                parallel_min_work: 0,
                            };
                            let mut got = vec![f32::NAN; m * n];
                            gemm_with(&x, m, &packed, bias, &mut got, &opts);
                            let what = format!("{m}x{k}x{n} {opts:?} bias {}", bias.is_some());
                            check(&got, &want, k, &what);
                        }
                    }
                }
            }
        }
    }
}

/// f64 GPT-2 GELU (tanh form) and SiLU: the formulas, not the kernels' f32 code.
fn gelu_f64(y: f64) -> f64 {
    0.5 * y * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (y + 0.044715 * y.powi(3))).tanh())
}

fn silu_f64(g: f64) -> f64 {
    g / (1.0 + (-g).exp())
}

/// Every epilogue against the f64 formula applied to the f64 product, with each kernel,
/// blockings that split k (the activation must wait for the last k block, the residual add
/// happen once) and both splits over threads.
#[test]
fn every_epilogue_agrees() {
    let all = odd_blockings();
    let blockings = [all[0], all[2], all[3], all[4], all[6]];
    for &(m, k, n) in &[(1, 1, 1), (5, 17, 33), (31, 29, 70), (29, 9, 100)] {
        let x = random(m * k, 4);
        let w = random(k * n, 5);
        let b = random(n, 6);
        let gate: Vec<f32> = random(m * n, 7).iter().map(|g| 4.0 * g).collect(); // ±[1, 4]
        let resid = random(m * n, 8);
        let packed = PackedMatrix::from_k_by_n(&w, k, n);
        let y = reference(&x, &w, Some(&b), m, k, n);
        // The product's own rounding, then 2e-6 relative for the activation's f32 evaluation
        // (its exp is within two ulps; |gelu'| <= 1.13 and |silu(g)| <= |g| <= 4 scale the
        // product's error at most 4-fold).
        let tol_y = 2.0 * f32::EPSILON as f64 * (k as f64 + 1.0);
        let cases: [(&str, Epilogue<'_>, Vec<f64>, f64); 4] = [
            ("store", Epilogue::Store, y.clone(), tol_y),
            (
                "add",
                Epilogue::AddInto,
                y.iter().zip(&resid).map(|(y, &r)| y + r as f64).collect(),
                tol_y + f32::EPSILON as f64,
            ),
            (
                "gelu",
                Epilogue::GeluNew,
                y.iter().map(|&y| gelu_f64(y)).collect(),
                1.2 * tol_y + 2e-6,
            ),
            (
                "silu-gate",
                Epilogue::SiluGateMul(&gate),
                y.iter()
                    .zip(&gate)
                    .map(|(y, &g)| silu_f64(g as f64) * y)
                    .collect(),
                4.0 * tol_y + 2e-6,
            ),
        ];
        for (name, then, want, tol) in &cases {
            for kernel in [Kernel::Avx512, Kernel::Avx2Fma, Kernel::Portable] {
                for blocking in blockings {
                    for split in [Split::Rows, Split::Columns] {
                        for threads in [1, 2] {
                            let opts = GemmOptions {
                                kernel,
                                threads,
                                split,
                                blocking: Some(blocking),
                                parallel_min_work: 0,
                            };
                            let mut got = match then {
                                Epilogue::AddInto => resid.clone(),
                                _ => vec![f32::NAN; m * n],
                            };
                            gemm_then_with(&x, m, &packed, Some(&b), *then, &mut got, &opts);
                            for (i, (&g, &r)) in got.iter().zip(want).enumerate() {
                                let scale = r.abs().max(1.0);
                                assert!(
                                    (g as f64 - r).abs() <= tol * scale,
                                    "{name} {m}x{k}x{n} {opts:?}: element {i}: got {g}, want {r}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn empty_product_applies_the_epilogue() {
    let w = PackedMatrix::from_k_by_n(&[], 0, 2);
    let bias = [1.0, -2.0];
    let mut out = [10.0, 20.0, 30.0, 40.0];
    gemm_then(&[], 2, &w, Some(&bias), Epilogue::AddInto, &mut out);
    assert_eq!(out, [11.0, 18.0, 31.0, 38.0]);
    gemm_then(&[], 2, &w, Some(&bias), Epilogue::GeluNew, &mut out);
    for (o, &b) in out.iter().zip(bias.iter().cycle()) {
        assert!((*o as f64 - gelu_f64(b as f64)).abs() < 1e-6);
    }
    let gate = [1.0, 2.0, 3.0, 4.0];
    gemm_then(
        &[],
        2,
        &w,
        Some(&bias),
        Epilogue::SiluGateMul(&gate),
        &mut out,
    );
    for ((o, &b), &g) in out.iter().zip(bias.iter().cycle()).zip(&gate) {
        assert!((*o as f64 - silu_f64(g as f64) * b as f64).abs() < 1e-6);
    }
}

#[test]
#[should_panic(expected = "gate has 3 values")]
fn gemm_checks_gate() {
    let w = PackedMatrix::from_k_by_n(&[1.0; 4], 2, 2);
    let mut out = [0.0; 4];
    gemm_then(
        &[1.0; 4],
        2,
        &w,
        None,
        Epilogue::SiluGateMul(&[1.0; 3]),
        &mut out,
    );
}

#[test]
fn kernel_choice() {
    assert!(Kernel::Portable.is_available());
    #[cfg(target_arch = "x86_64")]
    assert_eq!(
        Kernel::Avx2Fma.is_available(),
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
    );
    // An unavailable kernel falls back instead of faulting.
    let w = PackedMatrix::from_k_by_n(&[2.0; 4], 2, 2);
    let mut out = [0.0; 2];
    let opts = GemmOptions {
        kernel: Kernel::Avx2Fma,
        ..GemmOptions::default()
    };
    gemm_with(&[1.0, 1.0], 1, &w, None, &mut out, &opts);
    assert_eq!(out, [4.0, 4.0]);
}
