//! The `python_zero_head` case: a Python hook through the hooklens package, timed by a
//! Python process on the same model file, tokens and threads (`python_case.py`).

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};

use super::cases::zeroed_head;
use crate::error::{HookLensError, Result};
use crate::{Model, TokenBatch};

/// The script the Python process runs.
const SCRIPT: &str = include_str!("python_case.py");

/// What the Python process measured: seconds per timed run, and its version.
pub(crate) struct PythonTimes {
    /// Seconds of each timed run.
    pub times_s: Vec<f64>,
    /// The interpreter's version.
    pub python: String,
}

/// Why the Python case cannot run here, or `None` when it can: the model must be a file the
/// package can load, on the CPU, and `python` must import hooklens.
pub(crate) fn unavailable(model: &Model, python: &Path) -> Option<String> {
    if model.device() != crate::Device::Cpu {
        return Some("the Python package runs on the CPU only".into());
    }
    if !model.source().exists() {
        return Some(format!(
            "the Python package loads model files; `{}` is not one",
            model.source().display()
        ));
    }
    let probe = python_command(python)
        .args(["-c", "import hooklens, numpy"])
        .output();
    match probe {
        Ok(out) if out.status.success() => None,
        Ok(_) => Some(format!(
            "`{}` cannot import hooklens (install it: pip install ./python)",
            python.display()
        )),
        Err(e) => Some(format!("cannot run `{}`: {e}", python.display())),
    }
}

/// Runs the case in a Python process: one warm-up and `reps` timed runs.
pub(crate) fn run(
    model: &Model,
    python: &Path,
    tokens: &TokenBatch,
    reps: usize,
) -> Result<PythonTimes> {
    let (layer, head) = zeroed_head(model);
    let rows: Vec<Vec<u32>> = (0..tokens.batch())
        .map(|b| tokens.row(b).to_vec())
        .collect();
    let source = std::fs::canonicalize(model.source())
        .map_err(|e| HookLensError::input(format!("{}: {e}", model.source().display())))?;
    let args = json!({
        "model": source, "threads": crate::backend::cpu::threads::num_threads(),
        "tokens": rows, "layer": layer, "head": head, "reps": reps,
    });
    let out = python_command(python)
        .args(["-c", SCRIPT, &args.to_string()])
        .output()
        .map_err(|e| HookLensError::input(format!("cannot run `{}`: {e}", python.display())))?;
    if !out.status.success() {
        return Err(HookLensError::input(format!(
            "the Python case failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    parse_times(&String::from_utf8_lossy(&out.stdout))
}

/// `python` started in the temporary directory: `-c` puts the working directory first on
/// the module path, and a checkout's `python/` folder there would shadow the installed
/// package.
/// A relative path with a folder in it is taken from this process's directory.
fn python_command(python: &Path) -> Command {
    let in_a_folder = python.components().count() > 1;
    let program = match std::path::absolute(python) {
        Ok(absolute) if in_a_folder => absolute,
        _ => python.to_path_buf(),
    };
    let mut command = Command::new(program);
    command.current_dir(std::env::temp_dir());
    command
}

/// The JSON line the script prints.
fn parse_times(stdout: &str) -> Result<PythonTimes> {
    let bad = || HookLensError::input(format!("the Python case printed `{}`", stdout.trim()));
    let value: Value = serde_json::from_str(stdout.trim()).map_err(|_| bad())?;
    let times_s = (value["times_s"].as_array().ok_or_else(bad)?.iter())
        .map(|t| t.as_f64().ok_or_else(bad))
        .collect::<Result<Vec<f64>>>()?;
    let python = value["python"].as_str().ok_or_else(bad)?.to_string();
    if times_s.is_empty() {
        return Err(bad());
    }
    Ok(PythonTimes { times_s, python })
}
