//! The C example (`examples/c/hooklens_demo.c`) compiled with gcc `-Wall -Wextra -Werror`
//! against the built `libhooklens.so`, run, and its numbers compared with the Rust library's
//! on the same model and prompt; the same program under valgrind (no leaks, no invalid
//! reads); and the Python ctypes example (`examples/c/hooklens_ctypes.py`) against the C one.
//! Each part is skipped, saying why, only when its tool (gcc, valgrind, python3 with numpy)
//! is missing.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use hooklens::analysis::top_next_tokens;
use hooklens::hooks::intervention::{Intervention, Op};
use hooklens::sweep::{ablation_sweep, AblationMethod, AblationTarget, Metric, SweepOptions};
use hooklens::{Input, Model, NamesFilter, RunOptions};

const PROMPT: &str = "The tower is in";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The directory with `libhooklens.so`: the profile directory above this test's `deps/`.
/// `cargo test` builds the library only as an rlib, so the shared library is built (or found
/// up to date) here, once per test binary, with the same cargo (it holds no lock while tests
/// run).
fn lib_dir() -> PathBuf {
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
    BUILT.get_or_init(|| {
        let Ok(cargo) = std::env::var("CARGO") else {
            return; // not run by cargo: the library must have been built already
        };
        let release = dir.file_name().is_some_and(|n| n == "release");
        let mut build = Command::new(cargo);
        build.args(["build", "--lib"]).current_dir(root());
        if release {
            build.arg("--release");
        }
        let out = build.output().expect("cargo runs");
        assert!(
            out.status.success(),
            "building libhooklens.so failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
    assert!(
        dir.join("libhooklens.so").exists(),
        "no libhooklens.so in {}",
        dir.display()
    );
    dir
}

fn has_tool(name: &str, arg: &str) -> bool {
    Command::new(name)
        .arg(arg)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Compiles a C file against the built library into the temporary directory, or `None`
/// when gcc is missing.
fn compile(source: &Path, name: &str) -> Option<PathBuf> {
    if !has_tool("gcc", "--version") {
        eprintln!("skipped: gcc is not installed");
        return None;
    }
    let out_dir = std::env::temp_dir().join(format!("hooklens-c-{}", std::process::id()));
    std::fs::create_dir_all(&out_dir).unwrap();
    let exe = out_dir.join(name);
    let lib = lib_dir();
    let out = Command::new("gcc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-I"])
        .arg(root().join("include"))
        .arg(source)
        .arg("-L")
        .arg(&lib)
        .arg("-lhooklens")
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .arg("-o")
        .arg(&exe)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "gcc failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(exe)
}

/// The demo compiled once for every test here, or `None` when gcc is missing.
fn demo() -> Option<&'static Path> {
    static DEMO: OnceLock<Option<PathBuf>> = OnceLock::new();
    DEMO.get_or_init(|| compile(&root().join("examples/c/hooklens_demo.c"), "hooklens_demo"))
        .as_deref()
}

/// The output's `key values...` lines.
fn parse_lines(out: &Output) -> HashMap<String, String> {
    assert!(
        out.status.success(),
        "failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn numbers<T: std::str::FromStr>(text: &str) -> Vec<T> {
    text.split_whitespace()
        .map(|v| v.parse().ok().unwrap())
        .collect()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Checks the demo's printed numbers against the Rust library on the same model.
fn check_against_rust(lines: &HashMap<String, String>, model: &Model) {
    let cfg = model.config();
    let dims: Vec<usize> = numbers(&lines["dims"]);
    assert_eq!(dims, [cfg.n_layers, cfg.n_heads, cfg.d_model, cfg.d_vocab]);
    let tokens = model.to_tokens(PROMPT, true).unwrap();
    assert_eq!(numbers::<u32>(&lines["tokens"]), tokens.ids());
    let (v, seq) = (cfg.d_vocab, tokens.seq());
    let last = |l: &[f32]| l[(seq - 1) * v..].to_vec();

    let clean = model
        .forward(&tokens, &RunOptions::default())
        .unwrap()
        .logits
        .unwrap();
    assert!(max_diff(&numbers(&lines["clean_last"]), &last(&clean.data)) <= 1e-6);
    let zero = Intervention::new("blocks.0.attn.hook_z", Op::Zero).at_heads(vec![1]);
    let (ablated, _) = model
        .run_with_interventions(
            Input::Tokens(&tokens),
            None,
            None,
            &[(0, zero)],
            &RunOptions::default(),
        )
        .unwrap();
    let c_ablated: Vec<f32> = numbers(&lines["ablated_last"]);
    assert!(max_diff(&c_ablated, &last(&ablated.logits.unwrap().data)) <= 1e-5);
    assert!(
        max_diff(&c_ablated, &last(&clean.data)) > 1e-3,
        "the ablation changed nothing"
    );
    assert_eq!(lines["hook_calls"], "1");

    let (_, cache) = model
        .run_with_cache(&tokens, &NamesFilter::All, &RunOptions::default())
        .unwrap();
    let pattern = cache.get("blocks.0.attn.hook_pattern").unwrap();
    assert_eq!(numbers::<usize>(&lines["pattern_shape"]), pattern.shape);
    assert!(max_diff(&numbers(&lines["pattern"]), &pattern.data) <= 1e-6);

    let target = top_next_tokens(model, tokens.row(0), 1).unwrap()[0];
    let metric = Metric::LogProb { target };
    let spec = ablation_sweep(
        model,
        tokens.row(0),
        AblationTarget::Heads,
        &AblationMethod::Zero,
    )
    .unwrap();
    let want = spec
        .run(model, &metric, false, &SweepOptions::default())
        .unwrap();
    let doc: serde_json::Value = serde_json::from_str(&lines["sweep"]).unwrap();
    assert_eq!(doc["metric"]["target"], target);
    let got: Vec<f64> = doc["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["value"].as_f64().unwrap())
        .collect();
    let want: Vec<f64> = want.results.iter().map(|r| r.value).collect();
    assert_eq!(got.len(), cfg.n_layers * cfg.n_heads);
    assert!(
        got.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-9),
        "{got:?} vs {want:?}"
    );
}

fn run_demo(exe: &Path, model: &Path) -> Output {
    Command::new(exe).arg(model).arg(PROMPT).output().unwrap()
}

#[test]
fn the_c_example_matches_the_rust_library_on_a_fixture() {
    let Some(exe) = demo() else { return };
    let dir = common::fixtures().join("gpt2_tiny");
    let lines = parse_lines(&run_demo(exe, &dir));
    assert_eq!(lines["version"], env!("CARGO_PKG_VERSION"));
    check_against_rust(&lines, &Model::load(&dir).unwrap());
}

#[test]
fn the_c_example_matches_the_rust_library_on_the_default_model() {
    let Some(exe) = demo() else { return };
    let path = hooklens::model::known::resolve_model_arg(None).expect("scripts/fetch-model");
    let out = Command::new(exe)
        .arg("smollm2-135m")
        .arg(PROMPT)
        .output()
        .unwrap();
    check_against_rust(&parse_lines(&out), &Model::load(&path).unwrap());
}

#[test]
fn the_readme_c_example_compiles_and_runs() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let section = &readme[readme.find("## C library").expect("a C library section")..];
    let code = section
        .split("```c\n")
        .nth(1)
        .and_then(|c| c.split("```").next())
        .unwrap();
    let source = std::env::temp_dir().join(format!("hooklens-readme-{}.c", std::process::id()));
    std::fs::write(&source, code).unwrap();
    let Some(exe) = compile(&source, "readme_example") else {
        return;
    };
    let out = Command::new(exe).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        doc["results"].as_array().unwrap().len(),
        30 * 9,
        "every SmolLM2 head"
    );
}

#[test]
fn valgrind_finds_no_leak_and_no_invalid_access_in_the_c_example() {
    let Some(exe) = demo() else { return };
    if !has_tool("valgrind", "--version") {
        eprintln!("skipped: valgrind is not installed (Debian package valgrind)");
        return;
    }
    let dir = common::fixtures().join("gpt2_tiny");
    let out = Command::new("valgrind")
        .args([
            "--error-exitcode=99",
            "--leak-check=full",
            "--errors-for-leak-kinds=definite",
        ])
        .args(["--show-leak-kinds=definite", "-q"])
        .arg(exe)
        .arg(&dir)
        .arg(PROMPT)
        .env("HOOKLENS_THREADS", "2")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "valgrind reports errors:\n{stderr}"
    );
    assert!(!stderr.contains("Invalid"), "{stderr}");
    assert!(
        parse_lines(&out).contains_key("sweep"),
        "the program ran to the end"
    );
}

#[test]
fn the_python_ctypes_example_agrees_with_the_c_one() {
    let Some(exe) = demo() else { return };
    let numpy = Command::new("python3")
        .args(["-c", "import numpy"])
        .output();
    if !numpy.is_ok_and(|o| o.status.success()) {
        eprintln!("skipped: python3 with numpy is not installed");
        return;
    }
    let dir = common::fixtures().join("gpt2_tiny");
    let c = parse_lines(&run_demo(exe, &dir));
    let py = Command::new("python3")
        .arg(root().join("examples/c/hooklens_ctypes.py"))
        .arg(&dir)
        .arg(PROMPT)
        .env("HOOKLENS_LIB", lib_dir().join("libhooklens.so"))
        .output()
        .unwrap();
    let py = parse_lines(&py);
    for key in ["dims", "tokens", "hook_calls", "pattern_shape"] {
        assert_eq!(py[key], c[key], "{key}");
    }
    for key in ["clean_last", "ablated_last", "pattern"] {
        assert!(
            max_diff(&numbers(&py[key]), &numbers(&c[key])) <= 1e-6,
            "{key}"
        );
    }
    let results =
        |doc: &str| serde_json::from_str::<serde_json::Value>(doc).unwrap()["results"].clone();
    assert_eq!(results(&py["sweep"]), results(&c["sweep"]));
}
