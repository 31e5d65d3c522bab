//! The C ABI called from Rust, checked against the Rust library on the same inputs (itself
//! tested against TransformerLens): logits against `Model::forward`, a C hook zeroing a head
//! against the built-in zero intervention, the cache against `run_with_cache`, sweeps against
//! the sweep functions; and every misuse path gives its status and message.

mod common;

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::Path;
use std::ptr::{null, null_mut};

use hooklens::ffi::*;
use hooklens::hooks::intervention::{Intervention, Op};
use hooklens::sweep::{ablation_sweep, AblationMethod, AblationTarget, Metric, SweepOptions};
use hooklens::{Input, Model, NamesFilter, RunOptions, Tensor, TokenBatch};

const OK: c_int = hl_status::HL_OK as c_int;

fn status(s: hl_status) -> c_int {
    s as c_int
}

fn last_error() -> String {
    // SAFETY: hl_last_error returns a NUL-terminated string owned by the library.
    unsafe { CStr::from_ptr(hl_last_error()) }
        .to_string_lossy()
        .into_owned()
}

/// A model loaded through the C ABI, freed on drop.
struct CModel(*mut hl_model);

impl CModel {
    fn load(path: &Path) -> CModel {
        let path = CString::new(path.to_str().unwrap()).unwrap();
        let mut model = null_mut();
        // SAFETY: valid strings and out-pointer.
        let s = unsafe { hl_model_load(path.as_ptr(), c"cpu".as_ptr(), &mut model) };
        assert_eq!(s, OK, "{}", last_error());
        CModel(model)
    }
}

impl Drop for CModel {
    fn drop(&mut self) {
        // SAFETY: the model came from hl_model_load and is freed once.
        unsafe { hl_model_free(self.0) };
    }
}

fn gpt2_tiny() -> std::path::PathBuf {
    common::fixtures().join("gpt2_tiny")
}

/// The fixture's tokens [2, 9] and the Rust model.
fn tokens_and_model(dir: &Path) -> (TokenBatch, Model) {
    let reference = common::load_reference(dir);
    (reference.tokens, Model::load(dir).unwrap())
}

fn c_logits(model: &CModel, tokens: &TokenBatch, d_vocab: usize) -> Vec<f32> {
    let (ids, batch, seq) = (tokens.ids().as_ptr(), tokens.batch(), tokens.seq());
    // SAFETY: the tokens and the buffer have the sizes passed.
    let run = |out, len| unsafe { hl_run_logits(model.0, ids, batch, seq, out, len) };
    logits_from(tokens, d_vocab, run).unwrap_or_else(|s| panic!("status {s}: {}", last_error()))
}

/// The logits `run(buffer, its length)` writes into a buffer `[batch, seq, d_vocab]` for
/// `tokens`, or the status it returns.
fn logits_from(
    tokens: &TokenBatch,
    d_vocab: usize,
    run: impl FnOnce(*mut f32, usize) -> c_int,
) -> Result<Vec<f32>, c_int> {
    let mut logits = vec![f32::NAN; tokens.ids().len() * d_vocab]; // [batch, seq, d_vocab]
    match run(logits.as_mut_ptr(), logits.len()) {
        OK => Ok(logits),
        s => Err(s),
    }
}

#[test]
fn logits_equal_the_library_forward_on_both_architectures() {
    for name in ["gpt2_tiny", "llama_gqa"] {
        let dir = common::fixtures().join(name);
        let (tokens, model) = tokens_and_model(&dir);
        let want = model.forward(&tokens, &RunOptions::default()).unwrap();
        let got = c_logits(&CModel::load(&dir), &tokens, model.config().d_vocab);
        assert_eq!(got, want.logits.unwrap().data, "{name}");
    }
}

#[test]
fn dims_and_tokens_equal_the_library() {
    let (_, model) = tokens_and_model(&gpt2_tiny());
    let c = CModel::load(&gpt2_tiny());
    let mut d = [0i64; 4];
    // SAFETY: four writable i64s.
    let s = unsafe { hl_model_dims(c.0, &mut d[0], &mut d[1], &mut d[2], &mut d[3]) };
    assert_eq!(s, OK);
    let cfg = model.config();
    assert_eq!(
        d,
        [cfg.n_layers, cfg.n_heads, cfg.d_model, cfg.d_vocab].map(|v| v as i64)
    );

    let text = c"The tower is in";
    let want = model.to_tokens("The tower is in", true).unwrap();
    let mut n = 0usize;
    // SAFETY: capacity 0 with a NULL buffer asks for the size.
    let s = unsafe { hl_tokenize(c.0, text.as_ptr(), 1, null_mut(), 0, &mut n) };
    assert_eq!(s, status(hl_status::HL_ERR_BUFFER_TOO_SMALL));
    assert_eq!(
        n,
        want.ids().len(),
        "the size is reported even when too small"
    );
    let mut ids = vec![0u32; n];
    // SAFETY: the buffer holds n ids.
    let s = unsafe { hl_tokenize(c.0, text.as_ptr(), 1, ids.as_mut_ptr(), n, &mut n) };
    assert_eq!(s, OK);
    assert_eq!(ids, want.ids());
}

/// Which head the C hook zeroes, and how often it ran.
struct ZeroHead {
    head: usize,
    calls: usize,
    names: Vec<String>,
}

/// A C-ABI hook that zeroes one head of `hook_z` ([batch, pos, heads, d_head]) in place.
unsafe extern "C" fn zero_head(
    name: *const c_char,
    data: *mut f32,
    shape: *const i64,
    ndim: c_int,
    user: *mut c_void,
) -> c_int {
    // SAFETY: the engine passes a NUL-terminated name, ndim sizes and the activation's
    // values; `user` is the ZeroHead given to hl_run_with_hook.
    let (state, shape, name) = unsafe {
        (
            &mut *user.cast::<ZeroHead>(),
            std::slice::from_raw_parts(shape, ndim as usize),
            CStr::from_ptr(name),
        )
    };
    state.calls += 1;
    state.names.push(name.to_string_lossy().into_owned());
    let dims: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
    let (rows, heads, d_head) = (dims[0] * dims[1], dims[2], dims[3]);
    // SAFETY: the buffer holds the product of the shape's sizes.
    let values = unsafe { std::slice::from_raw_parts_mut(data, rows * heads * d_head) };
    for row in values.chunks_exact_mut(heads * d_head) {
        row[state.head * d_head..(state.head + 1) * d_head].fill(0.0);
    }
    0
}

fn run_hook(
    c: &CModel,
    tokens: &TokenBatch,
    selector: &CStr,
    f: hl_hook_fn,
    user: *mut c_void,
    logits: &mut [f32],
) -> c_int {
    // SAFETY: the tokens and buffer sizes are the ones passed; `user` fits `f`.
    unsafe {
        hl_run_with_hook(
            c.0,
            tokens.ids().as_ptr(),
            tokens.batch(),
            tokens.seq(),
            selector.as_ptr(),
            f,
            user,
            logits.as_mut_ptr(),
            logits.len(),
        )
    }
}

#[test]
fn a_c_hook_zeroing_a_head_equals_the_built_in_zero_intervention() {
    for name in ["gpt2_tiny", "llama_gqa"] {
        let dir = common::fixtures().join(name);
        let (tokens, model) = tokens_and_model(&dir);
        let c = CModel::load(&dir);
        let v = model.config().d_vocab;
        let mut state = ZeroHead {
            head: 1,
            calls: 0,
            names: Vec::new(),
        };
        let mut got = vec![f32::NAN; tokens.ids().len() * v];
        let user = (&mut state as *mut ZeroHead).cast();
        let s = run_hook(
            &c,
            &tokens,
            c"blocks.1.attn.hook_z",
            Some(zero_head),
            user,
            &mut got,
        );
        assert_eq!(s, OK, "{}", last_error());
        assert_eq!(state.names, ["blocks.1.attn.hook_z"]);
        let zero = Intervention::new("blocks.1.attn.hook_z", Op::Zero).at_heads(vec![1]);
        let rows: Vec<_> = (0..tokens.batch()).map(|b| (b, zero.clone())).collect();
        let opts = RunOptions::default();
        let (want, _) = model
            .run_with_interventions(Input::Tokens(&tokens), None, None, &rows, &opts)
            .unwrap();
        let want = want.logits.unwrap().data;
        let max_diff = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(max_diff <= 1e-5, "{name}: {max_diff}");
        let clean = c_logits(&c, &tokens, v);
        let moved = clean
            .iter()
            .zip(&got)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(
            moved > 1e-3,
            "{name}: zeroing a head must change the logits ({moved})"
        );
    }
}

#[test]
fn a_regex_selector_fires_at_every_matching_point_in_order() {
    let (tokens, model) = tokens_and_model(&gpt2_tiny());
    let c = CModel::load(&gpt2_tiny());
    let mut state = ZeroHead {
        head: 0,
        calls: 0,
        names: Vec::new(),
    };
    let mut logits = vec![0.0; tokens.ids().len() * model.config().d_vocab];
    let user = (&mut state as *mut ZeroHead).cast();
    let s = run_hook(
        &c,
        &tokens,
        c"attn\\.hook_z$",
        Some(zero_head),
        user,
        &mut logits,
    );
    assert_eq!(s, OK, "{}", last_error());
    assert_eq!(
        state.names,
        ["blocks.0.attn.hook_z", "blocks.1.attn.hook_z"]
    );
    // A short form names one point.
    let mut state = ZeroHead {
        head: 0,
        calls: 0,
        names: Vec::new(),
    };
    let user = (&mut state as *mut ZeroHead).cast();
    assert_eq!(
        run_hook(&c, &tokens, c"z0", Some(zero_head), user, &mut logits),
        OK
    );
    assert_eq!(state.names, ["blocks.0.attn.hook_z"]);
}

/// Counts its calls in `*user` and aborts the pass with 123 on the first.
unsafe extern "C" fn abort_hook(
    _name: *const c_char,
    _data: *mut f32,
    _shape: *const i64,
    _ndim: c_int,
    user: *mut c_void,
) -> c_int {
    // SAFETY: `user` is the usize counter given to hl_run_with_hook.
    unsafe { *user.cast::<usize>() += 1 };
    123
}

#[test]
fn a_nonzero_callback_return_aborts_the_pass_with_that_status() {
    let (tokens, model) = tokens_and_model(&gpt2_tiny());
    let c = CModel::load(&gpt2_tiny());
    let mut calls = 0usize;
    let mut logits = vec![f32::NAN; tokens.ids().len() * model.config().d_vocab];
    let user = (&mut calls as *mut usize).cast();
    let s = run_hook(
        &c,
        &tokens,
        c"hook_resid_pre",
        Some(abort_hook),
        user,
        &mut logits,
    );
    assert_eq!(s, 123);
    assert_eq!(calls, 1, "the pass stops at the first abort");
    assert!(
        last_error().contains("blocks.0.hook_resid_pre"),
        "{}",
        last_error()
    );
    assert!(logits.iter().all(|v| v.is_nan()), "no logits are written");
}

/// A cache made through the C ABI, freed on drop.
struct CCache(*mut hl_cache);

impl Drop for CCache {
    fn drop(&mut self) {
        // SAFETY: from hl_run_with_cache, freed once.
        unsafe { hl_cache_free(self.0) };
    }
}

fn c_cache(c: &CModel, tokens: &TokenBatch, regex: Option<&CStr>) -> Result<CCache, c_int> {
    let mut cache = null_mut();
    let regex = regex.map_or(null(), CStr::as_ptr);
    // SAFETY: tokens of the sizes passed, a valid out-pointer.
    let s = unsafe {
        hl_run_with_cache(
            c.0,
            tokens.ids().as_ptr(),
            tokens.batch(),
            tokens.seq(),
            regex,
            &mut cache,
        )
    };
    if s == OK {
        Ok(CCache(cache))
    } else {
        assert!(cache.is_null());
        Err(s)
    }
}

/// `(data, shape)` of a cached name, or the status.
fn cache_get(cache: &CCache, name: &CStr) -> Result<(Vec<f32>, Vec<usize>), c_int> {
    let (mut data, mut shape, mut ndim) = (null(), null(), 0);
    // SAFETY: valid out-pointers.
    let s = unsafe { hl_cache_get(cache.0, name.as_ptr(), &mut data, &mut shape, &mut ndim) };
    if s != OK {
        return Err(s);
    }
    // SAFETY: the cache owns `ndim` sizes and their product of values until it is freed.
    let shape: Vec<usize> = unsafe { std::slice::from_raw_parts(shape, ndim as usize) }
        .iter()
        .map(|&d| d as usize)
        .collect();
    let n = shape.iter().product();
    // SAFETY: as above.
    Ok((
        unsafe { std::slice::from_raw_parts(data, n) }.to_vec(),
        shape,
    ))
}

#[test]
fn the_cache_equals_run_with_cache() {
    let (tokens, model) = tokens_and_model(&gpt2_tiny());
    let c = CModel::load(&gpt2_tiny());
    let (_, want) = model
        .run_with_cache(&tokens, &NamesFilter::All, &RunOptions::default())
        .unwrap();
    let cache = c_cache(&c, &tokens, None).unwrap();
    // SAFETY: a live cache.
    assert_eq!(unsafe { hl_cache_count(cache.0) }, want.len());
    for (i, name) in want.names().iter().enumerate() {
        // SAFETY: a live cache, an index in range: a NUL-terminated name.
        let c_name = unsafe { CStr::from_ptr(hl_cache_name(cache.0, i)) };
        assert_eq!(c_name.to_str().unwrap(), name);
        let (data, shape) = cache_get(&cache, c_name).unwrap();
        let t = want.get(name.as_str()).unwrap();
        assert_eq!((&data, &shape), (&t.data, &t.shape), "{name}");
    }
    // SAFETY: an index out of range gives NULL.
    assert!(unsafe { hl_cache_name(cache.0, want.len()) }.is_null());
    let (_, shape) = cache_get(&cache, c"blocks.0.attn.hook_pattern").unwrap();
    assert_eq!(shape, [2, 3, 9, 9]);
    // A short form and a TL 4.x alias find the same entries.
    assert_eq!(
        cache_get(&cache, c"z1"),
        cache_get(&cache, c"blocks.1.attn.hook_z")
    );
    // A regex of an opt-in point caches only what it matches.
    let only = c_cache(&c, &tokens, Some(c"hook_pattern$")).unwrap();
    // SAFETY: a live cache.
    assert_eq!(unsafe { hl_cache_count(only.0) }, 2);
    assert_eq!(
        cache_get(&only, c"blocks.0.hook_resid_pre"),
        Err(status(hl_status::HL_ERR_INPUT))
    );
    assert!(last_error().contains("was not cached"), "{}", last_error());
    assert_eq!(
        cache_get(&only, c"blocks.0.attn.hook_zz"),
        Err(status(hl_status::HL_ERR_UNKNOWN_HOOK))
    );
}

fn sweep_json(c: &CModel, request: &str) -> Result<serde_json::Value, c_int> {
    let request = CString::new(request).unwrap();
    let mut response = null_mut();
    // SAFETY: a valid request string and out-pointer.
    let s = unsafe { hl_sweep_json(c.0, request.as_ptr(), &mut response) };
    if s != OK {
        assert!(response.is_null());
        return Err(s);
    }
    // SAFETY: a NUL-terminated string from the library, freed once below.
    let text = unsafe { CStr::from_ptr(response) }
        .to_str()
        .unwrap()
        .to_owned();
    // SAFETY: as above.
    unsafe { hl_string_free(response) };
    Ok(serde_json::from_str(&text).unwrap())
}

#[test]
fn an_ablation_request_equals_the_library_sweep_and_an_intervention_its_cell() {
    let (tokens, model) = tokens_and_model(&gpt2_tiny());
    let c = CModel::load(&gpt2_tiny());
    let prompt = tokens.row(0);
    let metric = Metric::LogProb { target: 7 };
    let spec =
        ablation_sweep(&model, prompt, AblationTarget::Heads, &AblationMethod::Zero).unwrap();
    let want = spec
        .run(&model, &metric, false, &SweepOptions::default())
        .unwrap();
    let request = serde_json::json!({"kind": "ablate", "tokens": prompt, "target_id": 7,
                                     "method": "zero", "metric": "logprob"});
    let doc = sweep_json(&c, &request.to_string()).unwrap();
    assert_eq!(
        doc["metric"],
        serde_json::json!({"kind": "log_prob", "target": 7})
    );
    assert_eq!(doc["clean"].as_f64().unwrap(), want.clean);
    let results = doc["results"].as_array().unwrap();
    assert_eq!(results.len(), want.results.len());
    for (got, row) in results.iter().zip(&want.results) {
        assert_eq!(got["layer"].as_u64().unwrap() as usize, row.layer);
        assert_eq!(got["head"].as_u64().map(|h| h as usize), row.head);
        assert_eq!(got["value"].as_f64().unwrap(), row.value);
    }
    // One cell again as an intervention: a plain pass instead of the batched engine.
    let cell = &want.results[4]; // layer 1, head 1
    let request = serde_json::json!({"kind": "intervene", "tokens": prompt, "target_id": 7,
        "interventions": [{"hook": "blocks.1.attn.hook_z", "heads": [1], "op": {"kind": "zero"}}]});
    let doc = sweep_json(&c, &request.to_string()).unwrap();
    assert_eq!((cell.layer, cell.head), (1, Some(1)));
    assert!(
        (doc["value"].as_f64().unwrap() - cell.value).abs() < 1e-5,
        "{doc}"
    );
    assert!((doc["delta"].as_f64().unwrap() - cell.delta.unwrap()).abs() < 1e-5);
    assert_eq!(doc["top"].as_array().unwrap().len(), 10);
}

#[test]
fn patch_and_trace_requests_give_the_cli_documents() {
    let (tokens, _) = tokens_and_model(&gpt2_tiny());
    let c = CModel::load(&gpt2_tiny());
    let clean = tokens.row(0);
    let mut corrupted = clean.to_vec();
    corrupted[3] = (corrupted[3] + 1) % 450; // the prompts differ at position 3 only
    let request = serde_json::json!({"kind": "patch", "clean_tokens": clean,
        "corrupted_tokens": corrupted, "target_id": 1, "against_id": 2, "site": "resid_pre"});
    let doc = sweep_json(&c, &request.to_string()).unwrap();
    assert_eq!(doc["metric"]["kind"], "logit_diff");
    let results = doc["results"].as_array().unwrap(); // layer-major, then position
    assert_eq!(results.len(), 2 * clean.len());
    let recovery = |i: usize| results[i]["recovery"].as_f64().unwrap();
    // Layer 0's resid_pre at the one differing position is the whole difference: recovery 1;
    // before it the prompts agree, so patching there changes nothing: recovery 0.
    assert!((recovery(3) - 1.0).abs() < 1e-4, "{}", results[3]);
    assert!((0..3).all(|i| recovery(i).abs() < 1e-9), "{results:?}");
    assert_eq!(doc["corrupted_tokens"], serde_json::json!(corrupted));
    let request = serde_json::json!({"kind": "trace", "tokens": clean, "subject_positions": [1, 2],
        "samples": 2, "target_id": 3});
    let doc = sweep_json(&c, &request.to_string()).unwrap();
    assert_eq!(
        doc["metric"],
        serde_json::json!({"kind": "prob", "target": 3})
    );
    assert_eq!(doc["stats"]["variants"], 2 * 2 * clean.len());
}

#[test]
fn a_model_serves_several_threads_at_once() {
    let (tokens, model) = tokens_and_model(&gpt2_tiny());
    let want = model
        .forward(&tokens, &RunOptions::default())
        .unwrap()
        .logits
        .unwrap()
        .data;
    let c = CModel::load(&gpt2_tiny());
    let shared: &hl_model = unsafe { &*c.0 }; // SAFETY: live until `c` drops, after the scope.
    std::thread::scope(|scope| {
        let runs: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    let mut logits = vec![0.0f32; want.len()];
                    // SAFETY: the sizes passed are the buffers'.
                    let s = unsafe {
                        hl_run_logits(
                            shared,
                            tokens.ids().as_ptr(),
                            2,
                            9,
                            logits.as_mut_ptr(),
                            logits.len(),
                        )
                    };
                    (s, logits)
                })
            })
            .collect();
        for run in runs {
            let (s, logits) = run.join().unwrap();
            assert_eq!(s, OK);
            assert_eq!(logits, want);
        }
    });
}

/// `hl_run_logits_padded` on `tokens` with `mask` ([batch, seq] each): the logits, or the
/// status.
fn c_padded_logits(
    model: &CModel,
    tokens: &TokenBatch,
    mask: Option<&[u8]>,
    d_vocab: usize,
) -> Result<Vec<f32>, c_int> {
    let (ids, batch, seq) = (tokens.ids().as_ptr(), tokens.batch(), tokens.seq());
    let mask = mask.map_or(null(), <[u8]>::as_ptr);
    // SAFETY: the tokens, the mask and the buffer have the sizes passed.
    let run = |out, len| unsafe { hl_run_logits_padded(model.0, ids, batch, seq, mask, out, len) };
    logits_from(tokens, d_vocab, run)
}

/// The padding reference's prompts (stored as f32 ids), its pad id and the reference.
fn padding_prompts(name: &str) -> (Vec<Vec<u32>>, u32, common::Reference) {
    let file = common::fixtures()
        .join("padding")
        .join(format!("{name}.safetensors"));
    let reference = common::load_reference_file(&file);
    let ids = |i: usize| reference.tensor(&format!("prompt.{i}")).data.iter();
    let prompts = (0..3)
        .map(|i| ids(i).map(|&v| v as u32).collect())
        .collect();
    let pad = reference.tensor("pad_id").data[0] as u32;
    (prompts, pad, reference)
}

#[test]
fn padded_logits_equal_the_library_padded_run_and_tl() {
    use hooklens::PaddingSide;
    for name in ["gpt2_tiny", "llama_gqa"] {
        let dir = common::fixtures().join(name);
        let (model, c) = (Model::load(&dir).unwrap(), CModel::load(&dir));
        let (prompts, pad, reference) = padding_prompts(name);
        for (side, tag) in [(PaddingSide::Left, "left"), (PaddingSide::Right, "right")] {
            let tokens = TokenBatch::padded(&prompts, side, pad).unwrap();
            assert!(tokens.spans().is_some());
            let mask = tokens.attention_mask(); // [batch, seq]
            let got = c_padded_logits(&c, &tokens, Some(&mask), model.config().d_vocab)
                .unwrap_or_else(|s| panic!("{name} {tag}: status {s}: {}", last_error()));
            let want = model.forward(&tokens, &RunOptions::default()).unwrap();
            let want = want.logits.unwrap();
            assert_eq!(got, want.data, "{name} {tag}");
            let got = Tensor::new(got, want.shape.clone()).unwrap();
            let tl = reference.tensor(&format!("{tag}.logits"));
            let d = common::max_abs_diff(&got, tl);
            assert!(d <= 1e-4, "{name} {tag}: {d} from TL");
            // Unmasked, the pads are attended to: other logits.
            let plain = c_logits(&c, &tokens, model.config().d_vocab);
            assert!(common::max_abs_diff(&got, &Tensor::new(plain, want.shape).unwrap()) > 1e-3);
        }
    }
}

#[test]
fn a_mask_of_ones_is_the_plain_run_and_bad_masks_are_typed_errors() {
    let (tokens, model) = tokens_and_model(&gpt2_tiny());
    let c = CModel::load(&gpt2_tiny());
    let v = model.config().d_vocab;
    let ones = vec![1u8; tokens.ids().len()];
    let got = c_padded_logits(&c, &tokens, Some(&ones), v).unwrap();
    assert_eq!(got, c_logits(&c, &tokens, v));
    assert_eq!(
        c_padded_logits(&c, &tokens, None, v),
        Err(status(hl_status::HL_ERR_NULL))
    );
    assert!(
        last_error().contains("attention_mask is NULL"),
        "{}",
        last_error()
    );
    let seq = tokens.seq();
    let with_row1 = |row: Vec<u8>| [vec![1u8; seq], row].concat();
    let mut gap = vec![1u8; seq];
    gap[1] = 0;
    let mut both_sides = vec![1u8; seq];
    (both_sides[0], both_sides[seq - 1]) = (0, 0);
    let mut two = vec![1u8; seq];
    two[0] = 2;
    for (row, want) in [
        (gap, "pads between real positions"),
        (both_sides, "one side"),
        (vec![0u8; seq], "row 1 has no real"),
        (two, "holds 2"),
    ] {
        let got = c_padded_logits(&c, &tokens, Some(&with_row1(row)), v);
        assert_eq!(got, Err(status(hl_status::HL_ERR_INPUT)));
        assert!(last_error().contains(want), "{want}: {}", last_error());
    }
}
