//! The command line under rough use: a closed stdout, bad output paths, values that used to be
//! silent no-ops, and the wording of errors.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{fixtures, hooklens, temp_dir};

fn model(name: &str) -> String {
    fixtures().join(name).to_str().unwrap().to_string()
}

fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hooklens"));
    cmd.env("HOOKLENS_THREADS", "1");
    cmd
}

/// Runs hooklens with stdout a pipe whose reader is gone before it starts: every write to
/// stdout fails with a broken pipe. Returns (exit code, stderr).
fn run_with_closed_stdout(args: &[&str]) -> (Option<i32>, String) {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = bin()
        .args(args)
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs hooklens, reads one line of its stdout, then closes the pipe, like `| head -1`.
fn run_reading_one_line(args: &[&str]) -> (Option<i32>, String, String) {
    let mut child = bin()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        first,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn parse_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn sweep_outputs(dir: &Path, tag: &str) -> (PathBuf, PathBuf, PathBuf) {
    (
        dir.join(format!("{tag}.json")),
        dir.join(format!("{tag}.csv")),
        dir.join(format!("{tag}.svg")),
    )
}

fn check_sweep_files(json: &Path, csv: &Path, svg: &Path, rows: usize) {
    assert_eq!(parse_json(json)["results"].as_array().unwrap().len(), rows);
    assert_eq!(
        std::fs::read_to_string(csv).unwrap().lines().count(),
        rows + 1
    );
    let text = std::fs::read_to_string(svg).unwrap();
    assert!(text.contains("<svg") && text.trim_end().ends_with("</svg>"));
}

/// Names in `dir`, sorted.
fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn a_closed_stdout_still_writes_every_file_and_exits_0() {
    let dir = temp_dir("closed-stdout");
    let (gpt2, llama) = (model("gpt2_small4"), model("llama_gqa"));
    let (j, c, h) = sweep_outputs(&dir, "ablate");
    let files = |j: &Path, c: &Path, h: &Path| -> Vec<String> {
        let s = |p: &Path| p.to_str().unwrap().to_string();
        ["--json", &s(j), "--csv", &s(c), "--heatmap", &s(h)]
            .map(String::from)
            .to_vec()
    };
    let mut ablate = vec![
        "--model",
        &gpt2,
        "ablate",
        "--prompt",
        "The quick brown fox",
    ];
    ablate.extend(["--target-id", "7"]);
    let ablate_files = files(&j, &c, &h);
    let args: Vec<&str> = ablate
        .iter()
        .copied()
        .chain(ablate_files.iter().map(String::as_str))
        .collect();
    let (code, stderr) = run_with_closed_stdout(&args);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    check_sweep_files(&j, &c, &h, 12);

    let (j, c, h) = sweep_outputs(&dir, "patch");
    let patch_files = files(&j, &c, &h);
    let mut args = vec!["--model", &llama, "patch", "--clean-tokens", "1,2,3,4,5,6"];
    args.extend(["--corrupted-tokens", "1,2,9,4,5,6", "--target-id", "7"]);
    args.extend(patch_files.iter().map(String::as_str));
    let (code, stderr) = run_with_closed_stdout(&args);
    assert_eq!(code, Some(0), "{stderr}");
    check_sweep_files(&j, &c, &h, 12);

    let (j, c, h) = sweep_outputs(&dir, "trace");
    let trace_files = files(&j, &c, &h);
    let mut args = vec!["--model", &llama, "trace", "--tokens", "1,2,3,4,5,6"];
    args.extend([
        "--subject-positions",
        "1,2",
        "--target-id",
        "7",
        "--samples",
        "2",
    ]);
    args.extend(trace_files.iter().map(String::as_str));
    let (code, stderr) = run_with_closed_stdout(&args);
    assert_eq!(code, Some(0), "{stderr}");
    check_sweep_files(&j, &c, &h, 12);

    let (cache, top) = (dir.join("acts.safetensors"), dir.join("top.json"));
    let (code, stderr) = run_with_closed_stdout(&[
        "--model",
        &gpt2,
        "run",
        "--tokens",
        "1,2,3",
        "--cache",
        cache.to_str().unwrap(),
        "--json",
        top.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    let bytes = std::fs::read(&cache).unwrap();
    assert!(!safetensors::SafeTensors::deserialize(&bytes)
        .unwrap()
        .is_empty());
    assert_eq!(parse_json(&top)["tokens"], serde_json::json!([1, 2, 3]));

    let (code, stderr) = run_with_closed_stdout(&["--model", &llama, "hooks"]);
    assert_eq!(code, Some(0), "{stderr}");
    let bench = dir.join("bench.json");
    let (code, stderr) = run_with_closed_stdout(&[
        "--model",
        &gpt2,
        "bench",
        "--shapes",
        "1x4",
        "--cases",
        "plain,read_all",
        "--reps",
        "1",
        "--json",
        bench.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(parse_json(&bench)["rows"].as_array().unwrap().len(), 2);
    // Nothing but the files (no temporary left behind).
    let mut want = vec!["acts.safetensors", "bench.json", "top.json"];
    for tag in ["ablate", "patch", "trace"] {
        for ext in ["csv", "json", "svg"] {
            want.push(Box::leak(format!("{tag}.{ext}").into_boxed_str()));
        }
    }
    want.sort();
    assert_eq!(entries(&dir), want);
}

#[test]
fn reading_one_line_and_closing_is_a_clean_exit() {
    let dir = temp_dir("head-1");
    let json = dir.join("out.json");
    let (code, first, stderr) = run_reading_one_line(&[
        "--model",
        &model("gpt2_small4"),
        "ablate",
        "--prompt",
        "The quick brown fox",
        "--target-id",
        "7",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(first.starts_with("zero ablation of heads"), "{first}");
    // stderr is a pipe, not a terminal: no progress bar drawn there.
    assert!(!stderr.contains('\r') && !stderr.contains("[#"), "{stderr}");
    assert_eq!(parse_json(&json)["results"].as_array().unwrap().len(), 12);
    let (code, first, stderr) = run_reading_one_line(&["--model", &model("llama_gqa"), "hooks"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(first.starts_with("hook_embed"), "{first}");
}

#[test]
fn output_paths_are_checked_before_the_model_is_loaded() {
    let dir = temp_dir("bad-outputs");
    std::fs::write(dir.join("file"), "x").unwrap();
    let gpt2 = model("gpt2_small4");
    let sweep = [
        "--model",
        &gpt2,
        "ablate",
        "--prompt",
        "a",
        "--target-id",
        "7",
    ];
    let missing = dir.join("no/such/dir/out.json");
    let under_file = dir.join("file/out.csv");
    let cases: Vec<(Vec<String>, Vec<&str>)> = vec![
        (
            vec!["--json".into(), missing.display().to_string()],
            vec!["cannot write", "out.json", "does not exist"],
        ),
        (
            vec!["--csv".into(), under_file.display().to_string()],
            vec!["cannot write", "out.csv", "is not a directory"],
        ),
        (
            vec![
                "--heatmap".into(),
                dir.join("grid.bmp").display().to_string(),
            ],
            vec!["grid.bmp", ".svg or .png"],
        ),
        (
            vec!["--json".into(), dir.display().to_string()],
            vec!["cannot write", "is a directory"],
        ),
    ];
    for (extra, wants) in cases {
        let args: Vec<&str> = sweep
            .iter()
            .copied()
            .chain(extra.iter().map(String::as_str))
            .collect();
        let (ok, stdout, stderr) = hooklens(&args);
        assert!(!ok, "{extra:?} should fail");
        for want in wants {
            assert!(stderr.contains(want), "{extra:?}: {stderr}");
        }
        assert!(!stderr.contains("cannot read"), "{stderr}");
        assert!(
            !stderr.contains("loaded "),
            "checked before loading: {stderr}"
        );
        assert!(stdout.is_empty(), "no sweep ran: {stdout}");
    }
    let cache = dir.join("gone/acts.safetensors");
    let (ok, _, stderr) = hooklens(&[
        "--model",
        &gpt2,
        "run",
        "--tokens",
        "1",
        "--cache",
        cache.to_str().unwrap(),
    ]);
    assert!(
        !ok && stderr.contains("cannot write") && stderr.contains("acts.safetensors"),
        "{stderr}"
    );
    assert!(!stderr.contains("loaded "), "{stderr}");
    assert_eq!(entries(&dir), ["file"]);
}

#[test]
fn names_matching_no_hook_is_an_error_with_the_nearest_names() {
    let dir = temp_dir("names");
    let cache = dir.join("acts.safetensors");
    let (ok, stdout, stderr) = hooklens(&[
        "--model",
        &model("gpt2_tiny"),
        "run",
        "--tokens",
        "1,2",
        "--cache",
        cache.to_str().unwrap(),
        "--names",
        "blocks.0.attn.hook_zz",
    ]);
    assert!(!ok, "{stdout}");
    assert!(stderr.contains("matches no hook point"), "{stderr}");
    assert!(stderr.contains("blocks.0.attn.hook_z"), "{stderr}");
    assert!(!cache.exists());
}

#[test]
fn values_that_were_silent_no_ops_are_rejected() {
    let tiny = model("gpt2_tiny");
    let trace = [
        "--model",
        &tiny,
        "trace",
        "--tokens",
        "1,2,3",
        "--subject-positions",
        "1",
    ];
    let ablate = [
        "--model",
        &tiny,
        "ablate",
        "--tokens",
        "1,2",
        "--target-id",
        "3",
    ];
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            [&trace[..], &["--noise", "nan"]].concat(),
            "finite number greater than 0",
        ),
        (
            [&trace[..], &["--noise", "inf"]].concat(),
            "finite number greater than 0",
        ),
        (
            [&trace[..], &["--noise", "0"]].concat(),
            "finite number greater than 0",
        ),
        (
            [&trace[..], &["--noise=-1"]].concat(),
            "finite number greater than 0",
        ),
        ([&trace[..], &["--window", "0"]].concat(), "at least 1"),
        ([&trace[..], &["--samples", "0"]].concat(), "at least 1"),
        ([&ablate[..], &["--max-rows", "0"]].concat(), "at least 1"),
        (
            vec!["--threads", "0", "--model", &tiny, "hooks"],
            "at least 1",
        ),
        (
            vec!["--model", &tiny, "run", "--tokens", "1", "--top", "0"],
            "at least 1",
        ),
    ];
    for (args, want) in cases {
        let (ok, stdout, stderr) = hooklens(&args);
        assert!(!ok, "{args:?} should fail: {stdout}");
        assert!(stderr.contains(want), "{args:?}: {stderr}");
        assert!(stdout.is_empty(), "{args:?}: {stdout}");
    }
    let out = bin()
        .args(["--model", &tiny, "hooks"])
        .env("HOOKLENS_THREADS", "0")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("HOOKLENS_THREADS=0"),
        "{stderr}"
    );
}

#[test]
fn byte_tokens_print_like_hf() {
    // In GPT-2's byte-level vocabulary id 212 is the byte 0x18 and id 160 the lone byte 0xE4.
    let (ok, stdout, stderr) = hooklens(&[
        "--model",
        &model("gpt2_tiny"),
        "run",
        "--tokens",
        "212,160,1",
    ]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("as text: [<0x18>, <0xE4>, \"\\\"\"]"),
        "{stdout}"
    );
    assert!(!stdout.contains("\\u{"), "{stdout}");
}

#[test]
fn the_default_model_note_appears_only_when_it_could_not_be_loaded() {
    let empty = temp_dir("no-home");
    let out = bin()
        .arg("hooks")
        .env("HOOKLENS_HOME", &empty)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("(no --model given: the default is"),
        "{stderr}"
    );
    // The default model loads; an unrelated error gets no note.
    let (ok, _, stderr) = hooklens(&["run", "--tokens", "1,x"]);
    assert!(!ok && stderr.contains("not a token id"), "{stderr}");
    assert!(!stderr.contains("no --model given"), "{stderr}");
    let (ok, _, stderr) = hooklens(&["--model", "/nonexistent/model", "hooks"]);
    assert!(!ok && !stderr.contains("no --model given"), "{stderr}");
}

#[test]
fn a_target_without_its_leading_space_gets_a_hint() {
    let prompt = "The Eiffel Tower is in the city of";
    let sweep = ["ablate", "--prompt", prompt, "--what", "mlp", "--show", "0"];
    let (ok, stdout, stderr) = hooklens(&[&sweep[..], &["--target", "Paris"]].concat());
    assert!(ok, "{stderr}");
    let hint: Vec<&str> = stderr.lines().filter(|l| l.starts_with("hint:")).collect();
    assert_eq!(hint.len(), 1, "{stderr}");
    assert!(
        hint[0].contains("--target \"Paris\"") && hint[0].contains("--target \" Paris\""),
        "{stderr}"
    );
    assert!(
        stdout.contains("log p(\"Paris\""),
        "the sweep still runs as asked: {stdout}"
    );
    let (ok, _, stderr) = hooklens(&[&sweep[..], &["--target", " Paris"]].concat());
    assert!(ok && !stderr.contains("hint:"), "{stderr}");
}

#[test]
fn devices_are_checked_and_missing_cuda_is_an_error_naming_what_is_missing() {
    // A model path that does not exist: the device error must come first.
    let (ok, _, stderr) = hooklens(&["--device", "gpu7", "--model", "/nonexistent", "hooks"]);
    assert!(!ok && stderr.contains("unknown device `gpu7`"), "{stderr}");
    let tiny = model("gpt2_tiny");
    let (ok, stdout, stderr) = hooklens(&["--device", "cpu", "--model", &tiny, "hooks"]);
    assert!(ok && stdout.contains("blocks.0.attn.hook_z"), "{stderr}");
    // Without the CUDA driver (every CI machine), cuda is an error that names it; on a GPU
    // machine the same command loads the model.
    let missing = hooklens::backend::cuda::missing_libraries(&["driver"]);
    let (ok, _, stderr) = hooklens(&["--device", "cuda", "--model", &tiny, "hooks"]);
    if missing.is_empty() {
        eprintln!("a CUDA driver is present: `--device cuda` checked by the GPU script");
    } else {
        assert!(!ok && stderr.contains("missing libcuda.so"), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}
