//! The fuzz targets: each takes arbitrary bytes, feeds them to one of hooklens' parsers or
//! loaders, and must return (a typed error is fine) without panicking, hanging or allocating
//! without bound. Each returns whether the input was accepted, which the corpus replay test
//! checks for the seeds. The AFL++ harnesses in `fuzz_targets/` call these.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use hooklens::hooks::Intervention;
use hooklens::model::gguf::{tokenizer_from_gguf, GgufFile};
use hooklens::model::input::parse_token_list;
use hooklens::{HookSelector, Input, Model, RunOptions, TokenBatch};

/// A target: its name (the corpus directory) and its function.
pub type Target = (&'static str, fn(&[u8]) -> bool);

/// Every target, by name.
pub const TARGETS: &[Target] = &[
    ("gguf", gguf),
    ("gguf_tokenizer", gguf_tokenizer),
    ("safetensors_dir", safetensors_dir),
    ("intervention", intervention),
    ("tokens", tokens),
    ("selector", selector),
];

/// A scratch directory of this thread (in memory where `/dev/shm` exists), made once.
fn scratch_dir() -> PathBuf {
    thread_local! {
        static DIR: PathBuf = {
            let shm = Path::new("/dev/shm");
            let base = if shm.is_dir() {
                shm.to_path_buf()
            } else {
                std::env::temp_dir()
            };
            let thread = format!("{:?}", std::thread::current().id());
            let id: String = thread.chars().filter(char::is_ascii_digit).collect();
            let dir = base.join(format!("hooklens-fuzz-{}-{id}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("scratch directory");
            dir
        };
    }
    DIR.with(PathBuf::clone)
}

/// Files written for one input, removed when dropped.
struct Scratch {
    dir: PathBuf,
    files: Vec<PathBuf>,
}

impl Scratch {
    fn new() -> Self {
        Scratch {
            dir: scratch_dir(),
            files: Vec::new(),
        }
    }

    /// Writes `data` to the file `name` and returns its path.
    fn file(&mut self, name: &str, data: &[u8]) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, data).expect("scratch file");
        self.files.push(path.clone());
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        for f in &self.files {
            let _ = std::fs::remove_file(f);
        }
    }
}

/// The fixture models the interventions and names are checked against (GPT-2 and Llama
/// shaped: their hook sets differ).
fn fixture_models() -> &'static [Model] {
    static MODELS: OnceLock<Vec<Model>> = OnceLock::new();
    MODELS.get_or_init(|| {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
        ["gpt2_tiny", "llama_gqa"]
            .iter()
            .map(|m| Model::load(&fixtures.join(m)).expect("fixture model"))
            .collect()
    })
}

/// A GGUF file: header, metadata, tensor table, every tensor dequantized, and the file
/// loaded as a model (config from metadata, weights, tokenizer).
pub fn gguf(data: &[u8]) -> bool {
    let mut scratch = Scratch::new();
    let path = scratch.file("model.gguf", data);
    let Ok(file) = GgufFile::open(&path) else {
        return false;
    };
    for (_, value) in file.metadata_entries() {
        let _ = (value.type_name(), value.as_integer(), value.as_float());
    }
    let _ = file.architecture();
    for info in file.tensors() {
        let _ = file.tensor_f32(&info.name);
    }
    drop(file);
    let _ = Model::load(&path);
    true
}

/// The byte-level BPE tokenizer in a GGUF file's `tokenizer.ggml.*` metadata: built, then
/// used to encode a few texts and decode every id.
pub fn gguf_tokenizer(data: &[u8]) -> bool {
    let mut scratch = Scratch::new();
    let path = scratch.file("tokenizer.gguf", data);
    let Ok(file) = GgufFile::open(&path) else {
        return false;
    };
    let Ok(tokenizer) = tokenizer_from_gguf(&file) else {
        return false;
    };
    for text in [
        "Hello world",
        " The Eiffel Tower\n\n",
        "é€ 123 <|endoftext|>",
        "",
    ] {
        if let Ok(ids) = tokenizer.encode(text) {
            let _ = tokenizer.decode(&ids);
        }
    }
    let n = file
        .get_str_array("tokenizer.ggml.tokens")
        .map_or(0, <[String]>::len);
    for id in 0..n.min(512) as u32 {
        let _ = tokenizer.decode(&[id]);
    }
    true
}

/// An HF checkpoint directory. Input: a little-endian u16 length, that many bytes of
/// `config.json`, and the rest as `model.safetensors`. A model that loads runs one forward.
pub fn safetensors_dir(data: &[u8]) -> bool {
    let mut scratch = Scratch::new();
    let (config, weights) = match data {
        [a, b, rest @ ..] => {
            let n = usize::from(u16::from_le_bytes([*a, *b])).min(rest.len());
            rest.split_at(n)
        }
        _ => (data, &[][..]),
    };
    scratch.file("config.json", config);
    scratch.file("model.safetensors", weights);
    let Ok(model) = Model::load(&scratch.dir) else {
        return false;
    };
    let vocab = model.config().d_vocab as u32;
    let ids: Vec<u32> = (0..2.min(model.config().n_ctx) as u32)
        .map(|i| i % vocab.max(1))
        .collect();
    if let Ok(batch) = TokenBatch::single(ids) {
        let _ = model.forward(&batch, &RunOptions::default());
    }
    true
}

/// Intervention JSON (one object or a list), resolved against and run on the fixture models
/// with a 4-token prompt.
pub fn intervention(data: &[u8]) -> bool {
    let parsed: Vec<Intervention> = match serde_json::from_slice::<Vec<Intervention>>(data) {
        Ok(list) => list,
        Err(_) => match serde_json::from_slice::<Intervention>(data) {
            Ok(one) => vec![one],
            Err(_) => return false,
        },
    };
    let batch = TokenBatch::single(vec![1, 2, 3, 4]).expect("tokens");
    let mut ran = false;
    for model in fixture_models() {
        let pairs: Vec<(usize, Intervention)> = parsed.iter().map(|iv| (0, iv.clone())).collect();
        let resolved = parsed
            .iter()
            .all(|iv| iv.resolve(model.config(), 4).is_ok());
        let out = model.run_with_interventions(
            Input::Tokens(&batch),
            None,
            None,
            &pairs,
            &RunOptions::default(),
        );
        ran |= resolved && out.is_ok();
    }
    ran
}

/// The `--tokens` list syntax, checked against a model.
pub fn tokens(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    let Ok(ids) = parse_token_list(text) else {
        return false;
    };
    let Ok(batch) = TokenBatch::single(ids) else {
        return false;
    };
    fixture_models()
        .iter()
        .any(|m| batch.validate(m.config()).is_ok())
}

/// The longest selector the `selector` target tries, in bytes (hook names are under 40).
pub const MAX_NAME_BYTES: usize = 64;

/// Hook selectors: full names, short and compact forms (`z0`, `pattern1attn`, `k1`), resolved
/// on one of the fixture models (GPT-2 for even lengths, Llama for odd). Longer inputs are
/// cut off: the nearest-name suggestions for an unknown name cost about 5 us per byte of
/// the name (docs/robustness.md), which would make this target a thousand times slower.
/// (`--names` regexes are left to the regex crate's own fuzzing.)
pub fn selector(data: &[u8]) -> bool {
    if data.len() > MAX_NAME_BYTES {
        return false;
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    let cfg = fixture_models()[data.len() % 2].config();
    HookSelector::from(text).resolve(cfg).is_ok()
}
