//! The CPU's data cache sizes, read once at run time, so cache blocking fits the machine it
//! runs on rather than the one it was tuned on.
//!
//! On Linux the sizes come from `/sys/devices/system/cpu/cpu0/cache/index*/` (`level`,
//! `type`, `size`); elsewhere, or where that is unreadable, from [`CacheSizes::FALLBACK`].
//! `HOOKLENS_CACHES=L1D,L2[,L3]` (bytes, or with a `K` / `M` suffix) overrides them, for
//! tuning and for tests of the blocking rules.

use std::sync::OnceLock;

/// Per-core data cache sizes in bytes (the last level as the whole chip has it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheSizes {
    /// Level-1 data cache of one core.
    pub l1d: usize,
    /// Level-2 cache of one core.
    pub l2: usize,
    /// Last-level cache (shared).
    pub l3: usize,
}

impl CacheSizes {
    /// Used when the sizes cannot be read: 32 KiB / 512 KiB / 8 MiB, small enough for any
    /// current x86 core.
    pub const FALLBACK: CacheSizes = CacheSizes {
        l1d: 32 << 10,
        l2: 512 << 10,
        l3: 8 << 20,
    };

    /// The sizes of this machine (read once).
    pub fn get() -> CacheSizes {
        static SIZES: OnceLock<CacheSizes> = OnceLock::new();
        *SIZES.get_or_init(|| {
            std::env::var("HOOKLENS_CACHES")
                .ok()
                .and_then(|v| parse_override(&v))
                .or_else(read_sysfs)
                .unwrap_or(CacheSizes::FALLBACK)
        })
    }
}

/// Parses `"L1D,L2[,L3]"` with optional `K` / `M` suffixes; `None` if malformed.
fn parse_override(value: &str) -> Option<CacheSizes> {
    let sizes: Vec<usize> = value
        .split(',')
        .map(parse_size)
        .collect::<Option<Vec<_>>>()?;
    match sizes[..] {
        [l1d, l2] => Some(CacheSizes {
            l1d,
            l2,
            l3: CacheSizes::FALLBACK.l3.max(l2),
        }),
        [l1d, l2, l3] => Some(CacheSizes { l1d, l2, l3 }),
        _ => None,
    }
    .filter(|c| c.l1d >= 4 << 10 && c.l2 >= c.l1d)
}

/// `"32K"` -> 32768, `"2M"` -> 2097152, `"4096"` -> 4096; `None` if not a size.
fn parse_size(text: &str) -> Option<usize> {
    let text = text.trim();
    let (digits, unit) = match text.char_indices().last()? {
        (i, 'K' | 'k') => (&text[..i], 1 << 10),
        (i, 'M' | 'm') => (&text[..i], 1 << 20),
        _ => (text, 1),
    };
    digits.trim().parse::<usize>().ok()?.checked_mul(unit)
}

/// The sizes from Linux's sysfs cache description of cpu0, if every level is there.
fn read_sysfs() -> Option<CacheSizes> {
    let dir = std::path::Path::new("/sys/devices/system/cpu/cpu0/cache");
    let (mut l1d, mut l2, mut l3) = (None, None, None);
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let read = |name: &str| std::fs::read_to_string(entry.path().join(name)).ok();
        let (Some(level), Some(kind), Some(size)) = (read("level"), read("type"), read("size"))
        else {
            continue;
        };
        let size = parse_size(&size);
        match (level.trim(), kind.trim()) {
            ("1", "Data" | "Unified") => l1d = size,
            ("2", "Data" | "Unified") => l2 = size,
            ("3", "Data" | "Unified") => l3 = size,
            _ => {}
        }
    }
    let (l1d, l2) = (l1d?, l2?);
    (l1d >= 4 << 10 && l2 >= l1d).then_some(CacheSizes {
        l1d,
        l2,
        l3: l3.unwrap_or(l2),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_and_without_units() {
        assert_eq!(parse_size("32K\n"), Some(32768));
        assert_eq!(parse_size("2M"), Some(2 << 20));
        assert_eq!(parse_size(" 4096 "), Some(4096));
        assert_eq!(parse_size("K"), None);
        assert_eq!(parse_size("12Q"), None);
        let c = parse_override("48K,2M,105M").unwrap();
        assert_eq!((c.l1d, c.l2, c.l3), (48 << 10, 2 << 20, 105 << 20));
        assert_eq!(parse_override("32K,512K").unwrap().l2, 512 << 10);
        assert_eq!(parse_override("32K"), None);
        assert_eq!(
            parse_override("1M,32K"),
            None,
            "an L2 smaller than L1 is rejected"
        );
    }

    #[test]
    fn this_machine_reports_plausible_sizes() {
        let c = CacheSizes::get();
        assert!(c.l1d >= 4 << 10 && c.l1d <= 1 << 20, "{c:?}");
        assert!(c.l2 >= c.l1d && c.l3 >= 1, "{c:?}");
    }
}
