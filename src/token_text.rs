//! Tokens as a person reads them: `" Paris"`, `"\n"`, and byte tokens as `<0x18>` (as HF
//! transformers shows them) instead of Rust's `"\u{18}"` or a lone `"�"`.

/// Shows a token's text quoted, with `\n`, `\t`, `\r`, `\\` and `\"` escaped and every other
/// control character as `<0xNN>`. A token made only of such bytes is shown bare (`<0x18>`).
pub fn show_text(text: &str) -> String {
    show_pieces(text.chars().map(Piece::Char))
}

/// Shows a token from its raw bytes: printable UTF-8 as text, each byte of an incomplete or
/// invalid UTF-8 sequence as `<0xNN>`.
pub fn show_bytes(bytes: &[u8]) -> String {
    let mut pieces = Vec::new();
    for chunk in bytes.utf8_chunks() {
        pieces.extend(chunk.valid().chars().map(Piece::Char));
        pieces.extend(chunk.invalid().iter().map(|&b| Piece::Byte(b)));
    }
    show_pieces(pieces.into_iter())
}

/// A character of a token, or a byte that is not (part of) one.
#[derive(Clone, Copy)]
enum Piece {
    Char(char),
    Byte(u8),
}

fn show_pieces(pieces: impl Iterator<Item = Piece>) -> String {
    let mut body = String::new();
    let mut only_bytes = true;
    for piece in pieces {
        match piece {
            Piece::Byte(b) => body.push_str(&format!("<0x{b:02X}>")),
            Piece::Char(c) if c.is_control() && !matches!(c, '\n' | '\t' | '\r') => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    body.push_str(&format!("<0x{b:02X}>"));
                }
            }
            Piece::Char(c) => {
                only_bytes = false;
                match c {
                    '\n' => body.push_str("\\n"),
                    '\t' => body.push_str("\\t"),
                    '\r' => body.push_str("\\r"),
                    '\\' => body.push_str("\\\\"),
                    '"' => body.push_str("\\\""),
                    c => body.push(c),
                }
            }
        }
    }
    if only_bytes && !body.is_empty() {
        body
    } else {
        format!("\"{body}\"")
    }
}

/// The bytes behind a byte-level BPE token string (GPT-2's `bytes_to_unicode` alphabet:
/// printable Latin-1 stands for itself, the other 68 bytes for U+0100..U+0143). `None` when
/// a character is outside that alphabet.
pub fn byte_level_bytes(token: &str) -> Option<Vec<u8>> {
    let stands_for_itself =
        |b: u32| (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
    let shifted: Vec<u8> = (0u32..=255)
        .filter(|&b| !stands_for_itself(b))
        .map(|b| b as u8)
        .collect();
    token
        .chars()
        .map(|c| {
            let code = c as u32;
            if stands_for_itself(code) {
                Some(code as u8)
            } else {
                code.checked_sub(256)
                    .and_then(|i| shifted.get(i as usize).copied())
            }
        })
        .collect()
}

/// A sentencepiece byte-fallback token `<0xNN>`, as its byte.
pub fn byte_fallback(token: &str) -> Option<u8> {
    let hex = token.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_tokens_are_quoted_with_readable_escapes() {
        assert_eq!(show_text(" Paris"), "\" Paris\"");
        assert_eq!(show_text("\n\n"), "\"\\n\\n\"");
        assert_eq!(show_text("a\"b\\"), "\"a\\\"b\\\\\"");
        assert_eq!(show_text("é"), "\"é\"");
        assert_eq!(show_text(""), "\"\"");
    }

    #[test]
    fn control_bytes_show_as_hex_like_hf() {
        assert_eq!(show_text("\u{18}"), "<0x18>");
        assert_eq!(show_text("\u{0}\u{7f}"), "<0x00><0x7F>");
        assert_eq!(show_text("a\u{1b}"), "\"a<0x1B>\"");
        assert_eq!(show_text("\u{85}"), "<0xC2><0x85>");
    }

    #[test]
    fn partial_utf8_shows_its_bytes() {
        assert_eq!(show_bytes(&[0xE2]), "<0xE2>");
        assert_eq!(show_bytes(b" \xE2\x80"), "\" <0xE2><0x80>\"");
        assert_eq!(show_bytes("€".as_bytes()), "\"€\"");
    }

    #[test]
    fn byte_level_alphabet_inverts_gpt2s() {
        assert_eq!(byte_level_bytes("Ġ"), Some(vec![b' ']));
        assert_eq!(byte_level_bytes("Ċ"), Some(vec![b'\n']));
        assert_eq!(byte_level_bytes("Ā"), Some(vec![0]));
        assert_eq!(byte_level_bytes("âĢ"), Some(vec![0xE2, 0x80]));
        assert_eq!(byte_level_bytes("Paris"), Some(b"Paris".to_vec()));
        assert_eq!(byte_level_bytes("ż"), None);
        assert_eq!(byte_fallback("<0x18>"), Some(0x18));
        assert_eq!(byte_fallback("<0x1>"), None);
        assert_eq!(byte_fallback("Paris"), None);
    }
}
