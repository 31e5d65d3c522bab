//! Every CUDA kernel compiles through NVRTC, on machines without a GPU. NVRTC 13.0 comes from
//! the `nvidia-cuda-nvrtc` wheel (`.ci/run` installs it and puts its lib directory on
//! `LD_LIBRARY_PATH`). Where the library cannot be loaded the test says so and passes, unless
//! `HOOKLENS_REQUIRE_NVRTC=1` (CI sets it), which makes the absence a failure.
#![cfg(feature = "cuda")]

use hooklens::backend::cuda::{compile, compile_all, missing_libraries, KERNEL_FILES};

fn nvrtc_available() -> bool {
    let missing = missing_libraries(&["nvrtc"]);
    if missing.is_empty() {
        return true;
    }
    let required = std::env::var("HOOKLENS_REQUIRE_NVRTC").is_ok_and(|v| v == "1");
    assert!(
        !required,
        "HOOKLENS_REQUIRE_NVRTC=1 but NVRTC is missing: {missing:?}"
    );
    eprintln!("NVRTC is not installed here ({missing:?}): kernel compilation not checked");
    false
}

#[test]
fn every_kernel_file_compiles_for_hopper() {
    if !nvrtc_available() {
        return;
    }
    let ptx = compile_all("sm_90").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ptx.len(), KERNEL_FILES.len());
    // scripts/gpu-bundle.sh keeps the PTX for GPU machines (HOOKLENS_PTX_DIR reads it).
    if let Some(dir) = std::env::var_os("HOOKLENS_WRITE_PTX") {
        std::fs::create_dir_all(&dir).unwrap();
        for (name, p) in &ptx {
            let path = std::path::Path::new(&dir).join(format!("{name}.ptx"));
            std::fs::write(path, p.to_src()).unwrap();
        }
    }
    for ((name, src), (compiled, p)) in KERNEL_FILES.iter().zip(&ptx) {
        assert_eq!(name, compiled);
        let text = p.to_src();
        // Every `extern "C" __global__` kernel of the file is in its PTX as an entry.
        for line in src.lines().filter(|l| l.contains("__global__ void")) {
            let kernel = line
                .split("void ")
                .nth(1)
                .and_then(|r| r.split('(').next())
                .unwrap();
            assert!(
                text.contains(&format!(".entry {kernel}(")),
                "{name}.cu: no entry {kernel}"
            );
        }
    }
}

#[test]
fn a_kernel_that_does_not_compile_is_an_error_with_the_log() {
    if !nvrtc_available() {
        return;
    }
    let err = compile(
        "broken",
        "extern \"C\" __global__ void f() { int x = ; }",
        "sm_90",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("broken.cu"), "{err}");
}
