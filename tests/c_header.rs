//! `include/hooklens.h` is generated from `src/ffi/` by cbindgen and checked in; this test
//! generates it again and fails when the two differ (run with `HOOKLENS_BLESS=1` to rewrite
//! it after changing the C ABI).

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn generate() -> String {
    let config = cbindgen::Config::from_file(root().join("include/cbindgen.toml"))
        .expect("include/cbindgen.toml");
    let mut builder = cbindgen::Builder::new().with_config(config);
    // cbindgen follows the `mod` declarations of src/ffi/mod.rs.
    builder = builder.with_src(root().join("src/ffi/mod.rs"));
    let mut text = Vec::new();
    builder
        .generate()
        .expect("cbindgen parses src/ffi")
        .write(&mut text);
    String::from_utf8(text).expect("the header is UTF-8")
}

#[test]
fn the_checked_in_header_is_current() {
    let path = root().join("include/hooklens.h");
    let fresh = generate();
    if std::env::var_os("HOOKLENS_BLESS").is_some() {
        std::fs::write(&path, &fresh).unwrap();
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    if checked_in != fresh {
        let line = checked_in
            .lines()
            .zip(fresh.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(checked_in.lines().count().min(fresh.lines().count()));
        panic!(
            "include/hooklens.h is stale (first difference at line {}); regenerate it with \
             HOOKLENS_BLESS=1 cargo test --release --test c_header",
            line + 1
        );
    }
    for name in [
        "hl_model_load",
        "hl_run_with_hook",
        "hl_sweep_json",
        "HL_ERR_PANIC",
    ] {
        assert!(fresh.contains(name), "the header lacks {name}");
    }
}
