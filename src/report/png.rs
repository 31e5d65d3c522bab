//! A minimal PNG encoder for 8-bit RGB images: per-row filter choice (None/Sub/Up), zlib with
//! one fixed-Huffman deflate block whose only matches are byte runs (distance 1). Heatmaps are
//! large flat areas, so after filtering they are mostly zero runs and compress well.

/// Encodes `rgb` (row-major, 3 bytes per pixel, `width * height * 3` bytes) as a PNG file.
pub(crate) fn encode_rgb(width: u32, height: u32, rgb: &[u8]) -> Vec<u8> {
    let stride = width as usize * 3;
    debug_assert_eq!(rgb.len(), stride * height as usize);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit, truecolour, deflate, adaptive, no interlace
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &zlib(&filter_rows(rgb, stride)));
    chunk(&mut out, b"IEND", &[]);
    out
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// Prefixes each row with the filter (0 None, 1 Sub, 2 Up) whose output has the smallest sum of
/// absolute signed bytes, the usual PNG heuristic.
fn filter_rows(rgb: &[u8], stride: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(rgb.len() + rgb.len() / stride.max(1));
    let zero = vec![0u8; stride];
    let mut cand = [vec![0u8; stride], vec![0u8; stride], vec![0u8; stride]];
    for (r, row) in rgb.chunks_exact(stride).enumerate() {
        let prev = if r == 0 {
            &zero[..]
        } else {
            &rgb[(r - 1) * stride..r * stride]
        };
        for i in 0..stride {
            let left = if i >= 3 { row[i - 3] } else { 0 };
            cand[0][i] = row[i];
            cand[1][i] = row[i].wrapping_sub(left);
            cand[2][i] = row[i].wrapping_sub(prev[i]);
        }
        let cost = |c: &Vec<u8>| {
            c.iter()
                .map(|&b| (b as i8).unsigned_abs() as u64)
                .sum::<u64>()
        };
        let best = (0..3).min_by_key(|&f| cost(&cand[f])).unwrap_or(0);
        out.push(best as u8);
        out.extend_from_slice(&cand[best]);
    }
    out
}

/// CRC-32 (ISO 3309 / PNG), reflected polynomial 0xEDB88320.
pub(crate) fn crc32(data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut n = 0;
        while n < 256 {
            let mut c = n as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
                k += 1;
            }
            table[n] = c;
            n += 1;
        }
        table
    };
    !data.iter().fold(!0u32, |c, &b| {
        TABLE[((c ^ b as u32) & 0xFF) as usize] ^ (c >> 8)
    })
}

/// Adler-32 checksum (RFC 1950).
pub(crate) fn adler32(data: &[u8]) -> u32 {
    const MOD: u32 = 65521;
    let (mut a, mut b) = (1u32, 0u32);
    // 5552 is the largest block for which `b` cannot overflow before the reduction.
    for block in data.chunks(5552) {
        for &x in block {
            a += x as u32;
            b += a;
        }
        a %= MOD;
        b %= MOD;
    }
    (b << 16) | a
}

/// zlib stream (RFC 1950) around one fixed-Huffman deflate block (RFC 1951).
fn zlib(data: &[u8]) -> Vec<u8> {
    let mut w = BitWriter {
        out: vec![0x78, 0x01],
        acc: 0,
        n: 0,
    };
    w.bits(1, 1); // BFINAL
    w.bits(1, 2); // BTYPE = 01, fixed Huffman
    let mut i = 0;
    while i < data.len() {
        let run = if i == 0 {
            0
        } else {
            let b = data[i - 1];
            data[i..].iter().take(258).take_while(|&&x| x == b).count()
        };
        if run >= 3 {
            w.length(run);
            w.huffman(0, 5); // distance code 0 = distance 1, no extra bits
            i += run;
        } else {
            w.literal(data[i] as u32);
            i += 1;
        }
    }
    w.literal(256); // end of block
    let mut out = w.finish();
    out.extend_from_slice(&adler32(data).to_be_bytes());
    out
}

/// Base lengths of length codes 257..=285 (RFC 1951, 3.2.5).
const LEN_BASE: [u16; 29] = [
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131,
    163, 195, 227, 258,
];
/// Extra bits of length codes 257..=285.
const LEN_EXTRA: [u8; 29] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];

struct BitWriter {
    out: Vec<u8>,
    acc: u64,
    n: u32,
}

impl BitWriter {
    /// Appends `count` bits of `value`, least significant first (deflate's bit order for data).
    fn bits(&mut self, value: u32, count: u32) {
        self.acc |= (value as u64) << self.n;
        self.n += count;
        while self.n >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.n -= 8;
        }
    }

    /// Appends a Huffman code, which deflate stores most significant bit first.
    fn huffman(&mut self, code: u32, len: u32) {
        let reversed = code.reverse_bits() >> (32 - len);
        self.bits(reversed, len);
    }

    /// Appends a literal/length symbol (0..=287) in the fixed code.
    fn literal(&mut self, sym: u32) {
        match sym {
            0..=143 => self.huffman(0x30 + sym, 8),
            144..=255 => self.huffman(0x190 + sym - 144, 9),
            256..=279 => self.huffman(sym - 256, 7),
            _ => self.huffman(0xC0 + sym - 280, 8),
        }
    }

    /// Appends a match length (3..=258): its symbol and extra bits.
    fn length(&mut self, len: usize) {
        let code = LEN_BASE
            .iter()
            .rposition(|&b| b as usize <= len)
            .unwrap_or(0);
        self.literal(257 + code as u32);
        self.bits(
            (len - LEN_BASE[code] as usize) as u32,
            LEN_EXTRA[code] as u32,
        );
    }

    fn finish(mut self) -> Vec<u8> {
        if self.n > 0 {
            self.out.push(self.acc as u8);
        }
        self.out
    }
}

/// Test-only decoder: enough of PNG and inflate to check what [`encode_rgb`] writes.
#[cfg(test)]
pub(crate) mod decode {
    use super::{adler32, crc32, LEN_BASE, LEN_EXTRA};

    /// Decodes an 8-bit RGB PNG into (width, height, rgb), checking every CRC and the Adler-32.
    pub(crate) fn decode_rgb(png: &[u8]) -> (u32, u32, Vec<u8>) {
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "signature");
        let (mut pos, mut idat, mut ihdr) = (8, Vec::new(), None);
        loop {
            let len = u32::from_be_bytes(png[pos..pos + 4].try_into().unwrap()) as usize;
            let kind = &png[pos + 4..pos + 8];
            let data = &png[pos + 8..pos + 8 + len];
            let crc = u32::from_be_bytes(png[pos + 8 + len..pos + 12 + len].try_into().unwrap());
            assert_eq!(crc, crc32(&png[pos + 4..pos + 8 + len]), "chunk CRC");
            pos += 12 + len;
            match kind {
                b"IHDR" => ihdr = Some(data.to_vec()),
                b"IDAT" => idat.extend_from_slice(data),
                b"IEND" => break,
                _ => {}
            }
        }
        assert_eq!(pos, png.len(), "bytes after IEND");
        let ihdr = ihdr.expect("IHDR chunk");
        let w = u32::from_be_bytes(ihdr[0..4].try_into().unwrap());
        let h = u32::from_be_bytes(ihdr[4..8].try_into().unwrap());
        assert_eq!(&ihdr[8..], &[8, 2, 0, 0, 0], "8-bit RGB, no interlace");
        let raw = zlib_decompress(&idat);
        (w, h, unfilter(&raw, w as usize * 3, h as usize))
    }

    /// Inflates a zlib stream (stored and fixed-Huffman blocks) and checks its Adler-32.
    pub(crate) fn zlib_decompress(z: &[u8]) -> Vec<u8> {
        assert_eq!(
            (z[0] as u32 * 256 + z[1] as u32) % 31,
            0,
            "zlib header check"
        );
        assert_eq!(z[0] & 0x0F, 8, "deflate");
        let mut r = BitReader {
            data: &z[2..],
            pos: 0,
        };
        let mut out = Vec::new();
        loop {
            let last = r.bits(1) == 1;
            match r.bits(2) {
                0 => {
                    r.pos = r.pos.div_ceil(8) * 8;
                    let len = r.bits(16) as usize;
                    assert_eq!(r.bits(16) as usize, !len & 0xFFFF, "NLEN");
                    let at = r.pos / 8;
                    out.extend_from_slice(&r.data[at..at + len]);
                    r.pos += len * 8;
                }
                1 => inflate_fixed(&mut r, &mut out),
                t => panic!("unsupported block type {t}"),
            }
            if last {
                break;
            }
        }
        let at = r.pos.div_ceil(8);
        let adler = u32::from_be_bytes(r.data[at..at + 4].try_into().unwrap());
        assert_eq!(adler, adler32(&out), "Adler-32");
        out
    }

    fn inflate_fixed(r: &mut BitReader, out: &mut Vec<u8>) {
        const DIST_BASE: [usize; 30] = [
            1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025,
            1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
        ];
        loop {
            let mut code = r.code(7);
            let sym = if code <= 0x17 {
                256 + code
            } else {
                code = code << 1 | r.bits(1);
                match code {
                    0x30..=0xBF => code - 0x30,
                    0xC0..=0xC7 => 280 + code - 0xC0,
                    _ => 144 + (code << 1 | r.bits(1)) - 0x190,
                }
            };
            match sym {
                0..=255 => out.push(sym as u8),
                256 => return,
                _ => {
                    let i = sym as usize - 257;
                    let len = LEN_BASE[i] as usize + r.bits(LEN_EXTRA[i] as u32) as usize;
                    let d = r.code(5) as usize;
                    let extra = if d < 4 { 0 } else { d / 2 - 1 };
                    let dist = DIST_BASE[d] + r.bits(extra as u32) as usize;
                    for _ in 0..len {
                        out.push(out[out.len() - dist]);
                    }
                }
            }
        }
    }

    struct BitReader<'a> {
        data: &'a [u8],
        pos: usize,
    }

    impl BitReader<'_> {
        /// `n` bits, least significant first.
        fn bits(&mut self, n: u32) -> u32 {
            (0..n).fold(0, |v, k| v | self.bit() << k)
        }
        /// A Huffman code of `n` bits, most significant first.
        fn code(&mut self, n: u32) -> u32 {
            (0..n).fold(0, |v, _| v << 1 | self.bit())
        }
        fn bit(&mut self) -> u32 {
            let b = (self.data[self.pos / 8] >> (self.pos % 8)) & 1;
            self.pos += 1;
            b as u32
        }
    }

    /// Reverses PNG filters 0..=2 (the ones the encoder uses).
    fn unfilter(raw: &[u8], stride: usize, height: usize) -> Vec<u8> {
        assert_eq!(raw.len(), (stride + 1) * height, "filtered data length");
        let mut out = vec![0u8; stride * height];
        for r in 0..height {
            let line = &raw[r * (stride + 1)..(r + 1) * (stride + 1)];
            for i in 0..stride {
                let left = if i >= 3 { out[r * stride + i - 3] } else { 0 };
                let up = if r > 0 { out[(r - 1) * stride + i] } else { 0 };
                out[r * stride + i] = match line[0] {
                    0 => line[1 + i],
                    1 => line[1 + i].wrapping_add(left),
                    2 => line[1 + i].wrapping_add(up),
                    f => panic!("unexpected filter {f}"),
                };
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::decode::{decode_rgb, zlib_decompress};
    use super::*;

    #[test]
    fn checksums_match_known_values() {
        assert_eq!(crc32(b""), 0);
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b"IEND"), 0xAE42_6082);
        assert_eq!(adler32(b""), 1);
        assert_eq!(adler32(b"Wikipedia"), 0x11E6_0398);
        // Long input exercises the modular reduction: 1 MB of 0xFF, value from zlib.adler32.
        assert_eq!(adler32(&vec![0xFF; 1 << 20]), 0x8E88_EF11);
    }

    #[test]
    fn test_inflater_reads_real_zlib_output() {
        // zlib.compress(b"hello hello hello hello!", 9) from CPython's zlib.
        let z = [
            0x78, 0xda, 0xcb, 0x48, 0xcd, 0xc9, 0xc9, 0x57, 0xc8, 0x40, 0x27, 0x15, 0x01, 0x70,
            0xd5, 0x08, 0xd2,
        ];
        assert_eq!(zlib_decompress(&z), b"hello hello hello hello!");
    }

    #[test]
    fn deflate_round_trips() {
        let mut data: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
        data.extend(std::iter::repeat_n(9u8, 1000)); // one long run: 258-byte matches
        data.extend([1, 1, 1, 2, 2, 3, 255, 255, 255, 255, 144, 143, 0, 0, 0, 0]);
        for len in [0, 1, 2, 3, 4, 100, data.len()] {
            assert_eq!(zlib_decompress(&zlib(&data[..len])), &data[..len]);
        }
        // Runs compress: 1000 equal bytes take a handful of bytes.
        assert!(zlib(&[7u8; 1000]).len() < 40);
    }

    #[test]
    fn png_round_trips() {
        let (w, h) = (7u32, 5u32);
        let rgb: Vec<u8> = (0..w * h * 3).map(|i| (i * 37 % 256) as u8).collect();
        let png = encode_rgb(w, h, &rgb);
        assert_eq!(decode_rgb(&png), (w, h, rgb));
        let flat = vec![200u8; 300 * 200 * 3];
        let png = encode_rgb(300, 200, &flat);
        assert!(
            png.len() < 2000,
            "flat image should compress, got {} bytes",
            png.len()
        );
        assert_eq!(decode_rgb(&png), (300, 200, flat));
    }
}
