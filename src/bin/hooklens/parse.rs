//! Value parsers for options whose out-of-range values would otherwise be silent no-ops.

/// A whole number of at least 1 (`--max-rows`, `--window`, `--samples`, `--threads`, ...).
pub fn positive_count(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("`{text}` is not a whole number")),
    }
}

/// A finite number greater than 0 (`--noise`).
pub fn positive_finite(text: &str) -> Result<f32, String> {
    match text.trim().parse::<f32>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        Ok(v) => Err(format!("must be a finite number greater than 0, not {v}")),
        Err(_) => Err(format!("`{text}` is not a number")),
    }
}

/// `$HOOKLENS_THREADS` when set: a whole number of at least 1, else an error naming it.
pub fn threads_from_env() -> Result<Option<usize>, String> {
    match std::env::var("HOOKLENS_THREADS") {
        Ok(v) => positive_count(&v)
            .map(Some)
            .map_err(|e| format!("HOOKLENS_THREADS={v}: {e}")),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err("HOOKLENS_THREADS is not valid text".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_must_be_positive() {
        assert_eq!(positive_count("3"), Ok(3));
        assert!(positive_count("0").unwrap_err().contains("at least 1"));
        assert!(positive_count("-1")
            .unwrap_err()
            .contains("not a whole number"));
        assert!(positive_count("x").is_err());
    }

    #[test]
    fn noise_must_be_finite_and_positive() {
        assert_eq!(positive_finite("3.0"), Ok(3.0));
        for bad in ["nan", "NaN", "inf", "-inf", "0", "-2", "1e39"] {
            assert!(positive_finite(bad).is_err(), "{bad}");
        }
        assert!(positive_finite("three")
            .unwrap_err()
            .contains("not a number"));
    }
}
