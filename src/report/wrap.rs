//! Line breaking for heatmap titles: words are packed greedily into lines of a given width,
//! so a long title wraps instead of running to the edge of the image.

/// Splits `text` at spaces into lines of at most `max_chars` characters; a word longer than
/// that stands on a line of its own. Empty text gives no lines.
pub(crate) fn wrap_words(text: &str, max_chars: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let fits =
            line.is_empty() || line.chars().count() + 1 + word.chars().count() <= max_chars.max(1);
        if !fits {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_pack_into_lines_of_the_width() {
        assert_eq!(wrap_words("a bb ccc dddd", 6), ["a bb", "ccc", "dddd"]);
        assert_eq!(wrap_words("short", 40), ["short"]);
        assert_eq!(
            wrap_words("averyverylongword x", 5),
            ["averyverylongword", "x"]
        );
        assert!(wrap_words("", 10).is_empty());
        assert!(wrap_words("a b c d e f", 3).iter().all(|l| l.len() <= 3));
    }
}
