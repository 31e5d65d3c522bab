//! `HOOKLENS_KERNEL` forces a kernel path (for tests, benchmarks and tuning on a machine that
//! has a faster one): parsing, the choice it makes, and the command line's error for a bad
//! value. The variable is read once per process, so the choices are checked in child
//! processes.

mod common;

use hooklens::backend::cpu::gemm::Kernel;

#[test]
fn names_parse_and_unknown_or_unavailable_ones_are_errors() {
    assert_eq!(Kernel::parse_choice("auto"), Ok(None));
    assert_eq!(Kernel::parse_choice(""), Ok(None));
    assert_eq!(Kernel::parse_choice("Portable"), Ok(Some(Kernel::Portable)));
    for kernel in Kernel::ALL {
        let parsed = Kernel::parse_choice(kernel.name());
        if kernel.is_available() {
            assert_eq!(parsed, Ok(Some(kernel)));
        } else {
            let message = parsed.unwrap_err();
            assert!(message.contains("cannot run"), "{message}");
        }
    }
    let message = Kernel::parse_choice("sse9").unwrap_err();
    assert!(
        message.contains("unknown kernel") && message.contains("portable"),
        "{message}"
    );
}

/// In a child process started with `HOOKLENS_KERNEL=<name>`: the forced kernel is the one
/// `Kernel::best` returns.
#[test]
fn the_variable_forces_each_available_kernel() {
    if let Ok(name) = std::env::var("HOOKLENS_KERNEL_TEST_CHILD") {
        let want = Kernel::ALL.into_iter().find(|k| k.name() == name).unwrap();
        assert_eq!(Kernel::best(), want);
        return;
    }
    for kernel in Kernel::ALL.into_iter().filter(|k| k.is_available()) {
        let child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "the_variable_forces_each_available_kernel",
                "--test-threads=1",
            ])
            .env("HOOKLENS_KERNEL_TEST_CHILD", kernel.name())
            .env("HOOKLENS_KERNEL", kernel.name())
            .env_remove("HOOKLENS_FORCE_PORTABLE")
            .output()
            .unwrap();
        assert!(
            child.status.success(),
            "{}: {}\n{}",
            kernel.name(),
            String::from_utf8_lossy(&child.stdout),
            String::from_utf8_lossy(&child.stderr)
        );
    }
}

#[test]
fn the_command_line_rejects_a_bad_value_before_loading() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hooklens"))
        .args(["--model", "/nonexistent/model.gguf", "hooks"])
        .env("HOOKLENS_KERNEL", "avx9000")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("HOOKLENS_KERNEL=avx9000: unknown kernel")
            && !stderr.contains("nonexistent"),
        "{stderr}"
    );
}

#[test]
fn verbose_names_the_path_and_the_load_split() {
    let dir = common::fixtures().join("llama_gqa");
    let (ok, _, stderr) = common::hooklens(&["--model", dir.to_str().unwrap(), "-v", "hooks"]);
    assert!(ok, "{stderr}");
    assert!(stderr.contains("kernel path: "), "{stderr}");
    for part in ["open ", "read + dequantize ", "pack ", "tokenizer "] {
        assert!(stderr.contains(part), "no `{part}` in: {stderr}");
    }
}
