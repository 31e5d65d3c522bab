//! Every misuse of the C ABI gives a nonzero status and a message, never a crash: NULL
//! pointers, bad sizes, too-small buffers, unknown hook names (with suggestions), bad JSON,
//! unknown keys, bad devices and files; freeing NULL does nothing.

mod common;

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::ptr::{null, null_mut};

use hooklens::ffi::*;

fn last_error() -> String {
    // SAFETY: hl_last_error returns a NUL-terminated string owned by the library.
    unsafe { CStr::from_ptr(hl_last_error()) }
        .to_string_lossy()
        .into_owned()
}

/// Asserts the status and that the message contains `needle`.
fn expect(got: c_int, want: hl_status, needle: &str) {
    assert_eq!(got, want as c_int, "message: {}", last_error());
    assert!(
        last_error().contains(needle),
        "`{}` lacks `{needle}`",
        last_error()
    );
}

fn load(path: &CStr) -> *mut hl_model {
    let mut model = null_mut();
    // SAFETY: valid strings and out-pointer.
    let s = unsafe { hl_model_load(path.as_ptr(), null(), &mut model) };
    assert_eq!(s, 0, "{}", last_error());
    model
}

fn tiny() -> *mut hl_model {
    let dir = common::fixtures().join("gpt2_tiny");
    load(&CString::new(dir.to_str().unwrap()).unwrap())
}

unsafe extern "C" fn noop(
    _: *const c_char,
    _: *mut f32,
    _: *const i64,
    _: c_int,
    _: *mut c_void,
) -> c_int {
    0
}

#[test]
fn loading_fails_with_a_status_and_a_null_model() {
    let mut model = std::ptr::dangling_mut::<hl_model>(); // not NULL, so the reset is visible
    let dir = CString::new(common::fixtures().join("gpt2_tiny").to_str().unwrap()).unwrap();
    // SAFETY: valid strings and out-pointers throughout.
    unsafe {
        // No CUDA driver (every CI machine): the error names what is missing.
        if !hooklens::backend::cuda::missing_libraries(&["driver"]).is_empty() {
            expect(
                hl_model_load(dir.as_ptr(), c"cuda:0".as_ptr(), &mut model),
                hl_status::HL_ERR_UNSUPPORTED,
                "CUDA is not usable here: missing libcuda.so",
            );
            assert!(model.is_null());
        }
        expect(
            hl_model_load(dir.as_ptr(), c"tpu".as_ptr(), &mut model),
            hl_status::HL_ERR_INPUT,
            "unknown device",
        );
        expect(
            hl_model_load(c"/no/such/model.gguf".as_ptr(), null(), &mut model),
            hl_status::HL_ERR_INPUT,
            "not a known model",
        );
        let manifest = common::fixtures().join("manifest.json");
        let manifest = CString::new(manifest.to_str().unwrap()).unwrap();
        expect(
            hl_model_load(manifest.as_ptr(), null(), &mut model),
            hl_status::HL_ERR_INPUT,
            "expected an HF checkpoint",
        );
        let gguf = std::env::temp_dir().join(format!("hl-misuse-{}.gguf", std::process::id()));
        std::fs::write(&gguf, b"GGUF\x03\0\0\0truncated").unwrap();
        let gguf_c = CString::new(gguf.to_str().unwrap()).unwrap();
        let s = hl_model_load(gguf_c.as_ptr(), null(), &mut model);
        std::fs::remove_file(&gguf).unwrap();
        assert_eq!(s, hl_status::HL_ERR_MODEL_FILE as c_int, "{}", last_error());
        expect(
            hl_model_load(dir.as_ptr(), null(), null_mut()),
            hl_status::HL_ERR_NULL,
            "out is NULL",
        );
        let bad_utf8 = [0xffu8, 0xfe, 0];
        expect(
            hl_model_load(bad_utf8.as_ptr().cast(), null(), &mut model),
            hl_status::HL_ERR_ARGUMENT,
            "not valid UTF-8",
        );
    }
}

#[test]
fn freeing_null_does_nothing() {
    // SAFETY: NULL is allowed everywhere here.
    unsafe {
        hl_model_free(null_mut());
        hl_cache_free(null_mut());
        hl_string_free(null_mut());
        assert_eq!(hl_cache_count(null()), 0);
        assert!(hl_cache_name(null(), 0).is_null());
    }
}

#[test]
fn runs_reject_null_pointers_bad_sizes_and_small_buffers() {
    let m = tiny();
    let tokens = [449u32, 5, 6, 7];
    let mut logits = vec![0.0f32; 4 * 450];
    let len = logits.len();
    let out = logits.as_mut_ptr();
    // SAFETY: every pointer is valid or NULL, and sizes never exceed the buffers.
    unsafe {
        expect(
            hl_run_logits(null(), tokens.as_ptr(), 1, 4, out, len),
            hl_status::HL_ERR_NULL,
            "model is NULL",
        );
        expect(
            hl_run_logits(m, null(), 1, 4, out, len),
            hl_status::HL_ERR_NULL,
            "tokens is NULL",
        );
        expect(
            hl_run_logits(m, tokens.as_ptr(), 0, 4, out, len),
            hl_status::HL_ERR_ARGUMENT,
            "at least 1",
        );
        expect(
            hl_run_logits(m, tokens.as_ptr(), usize::MAX, 2, out, len),
            hl_status::HL_ERR_ARGUMENT,
            "fit in memory",
        );
        expect(
            hl_run_logits(m, tokens.as_ptr(), 1, 4, out, len - 1),
            hl_status::HL_ERR_BUFFER_TOO_SMALL,
            "1800 are needed",
        );
        expect(
            hl_run_logits(m, tokens.as_ptr(), 1, 4, null_mut(), len),
            hl_status::HL_ERR_NULL,
            "logits_out is NULL",
        );
        let out_of_vocab = [449u32, 450];
        expect(
            hl_run_logits(m, out_of_vocab.as_ptr(), 1, 2, out, len),
            hl_status::HL_ERR_INPUT,
            "outside the vocabulary",
        );
        let long = [5u32; 33]; // n_ctx is 32
        let mut big = vec![0.0f32; 33 * 450];
        expect(
            hl_run_logits(m, long.as_ptr(), 1, 33, big.as_mut_ptr(), big.len()),
            hl_status::HL_ERR_INPUT,
            "longer than the model's context",
        );
        let mut n = 0;
        expect(
            hl_tokenize(m, null(), 1, null_mut(), 0, &mut n),
            hl_status::HL_ERR_NULL,
            "text is NULL",
        );
        expect(
            hl_tokenize(m, c"abc".as_ptr(), 0, null_mut(), 0, null_mut()),
            hl_status::HL_ERR_NULL,
            "n_out is NULL",
        );
        expect(
            hl_tokenize(m, c"abc".as_ptr(), 0, null_mut(), 8, &mut n),
            hl_status::HL_ERR_NULL,
            "ids_out is NULL",
        );
        hl_model_free(m);
    }
}

#[test]
fn unknown_hook_names_and_regexes_give_suggestions() {
    let m = tiny();
    let tokens = [449u32, 5, 6, 7];
    let mut logits = vec![0.0f32; 4 * 450];
    let (len, out) = (logits.len(), logits.as_mut_ptr());
    let run = |selector: *const c_char, f: hl_hook_fn| {
        // SAFETY: valid pointers and sizes.
        unsafe { hl_run_with_hook(m, tokens.as_ptr(), 1, 4, selector, f, null_mut(), out, len) }
    };
    expect(
        run(c"blocks.0.attn.hook_zz".as_ptr(), Some(noop)),
        hl_status::HL_ERR_UNKNOWN_HOOK,
        "did you mean blocks.0.attn.hook_z",
    );
    expect(
        run(c"blocks.9.hook_resid_pre".as_ptr(), Some(noop)),
        hl_status::HL_ERR_UNKNOWN_HOOK,
        "",
    );
    expect(
        run(c"([".as_ptr(), Some(noop)),
        hl_status::HL_ERR_UNKNOWN_HOOK,
        "did you mean",
    );
    expect(
        run(null(), Some(noop)),
        hl_status::HL_ERR_NULL,
        "selector is NULL",
    );
    expect(
        run(c"z0".as_ptr(), None),
        hl_status::HL_ERR_NULL,
        "fn is NULL",
    );
    let mut cache = null_mut();
    // SAFETY: valid pointers and sizes.
    unsafe {
        let s = hl_run_with_cache(
            m,
            tokens.as_ptr(),
            1,
            4,
            c"hook_nothing_like_this".as_ptr(),
            &mut cache,
        );
        expect(s, hl_status::HL_ERR_UNKNOWN_HOOK, "did you mean");
        assert!(cache.is_null());
        expect(
            hl_run_with_cache(m, tokens.as_ptr(), 1, 4, c"([".as_ptr(), &mut cache),
            hl_status::HL_ERR_INPUT,
            "bad names regex",
        );
        expect(
            hl_run_with_cache(m, tokens.as_ptr(), 1, 4, null(), null_mut()),
            hl_status::HL_ERR_NULL,
            "out is NULL",
        );
        assert_eq!(
            hl_run_with_cache(m, tokens.as_ptr(), 1, 4, c"hook_z".as_ptr(), &mut cache),
            0
        );
        let (mut data, mut shape, mut ndim) = (null(), null(), 0);
        expect(
            hl_cache_get(cache, null(), &mut data, &mut shape, &mut ndim),
            hl_status::HL_ERR_NULL,
            "name is NULL",
        );
        expect(
            hl_cache_get(cache, c"z0".as_ptr(), null_mut(), &mut shape, &mut ndim),
            hl_status::HL_ERR_NULL,
            "data is NULL",
        );
        expect(
            hl_cache_get(null(), c"z0".as_ptr(), &mut data, &mut shape, &mut ndim),
            hl_status::HL_ERR_NULL,
            "cache is NULL",
        );
        hl_cache_free(cache);
        hl_model_free(m);
    }
}

#[test]
fn bad_requests_are_errors_naming_the_problem() {
    let m = tiny();
    let call = |request: &str| {
        let request = CString::new(request).unwrap();
        let mut response = std::ptr::dangling_mut::<c_char>();
        // SAFETY: valid pointers.
        let s = unsafe { hl_sweep_json(m, request.as_ptr(), &mut response) };
        assert!(response.is_null(), "no response on failure");
        s
    };
    expect(
        call("{\"kind\": \"ablate\""),
        hl_status::HL_ERR_JSON,
        "not JSON",
    );
    expect(call("[]"), hl_status::HL_ERR_JSON, "a JSON object");
    expect(
        call("{\"tokens\": [1]}"),
        hl_status::HL_ERR_JSON,
        "no \"kind\"",
    );
    expect(
        call("{\"kind\": \"sweep\"}"),
        hl_status::HL_ERR_JSON,
        "unknown kind `sweep`",
    );
    expect(
        call(r#"{"kind": "ablate", "tokens": [449, 5], "json": "out.json"}"#),
        hl_status::HL_ERR_JSON,
        "unknown key `json`",
    );
    expect(
        call(r#"{"kind": "ablate", "tokens": "449,5"}"#),
        hl_status::HL_ERR_JSON,
        "kind `ablate`",
    );
    expect(
        call(r#"{"kind": "ablate", "tokens": [449, 5], "method": "median"}"#),
        hl_status::HL_ERR_JSON,
        "median",
    );
    expect(
        call(r#"{"kind": "ablate"}"#),
        hl_status::HL_ERR_INPUT,
        "prompt",
    );
    expect(
        call(r#"{"kind": "ablate", "tokens": [449, 5000]}"#),
        hl_status::HL_ERR_INPUT,
        "outside the vocabulary",
    );
    expect(
        call(r#"{"kind": "ablate", "tokens": [449, 5], "target_id": 9999}"#),
        hl_status::HL_ERR_INPUT,
        "outside the vocabulary",
    );
    expect(
        call(r#"{"kind": "ablate", "tokens": [449, 5], "max_rows": 0}"#),
        hl_status::HL_ERR_INPUT,
        "at least 1",
    );
    expect(
        call(r#"{"kind": "ablate", "tokens": [449, 5], "metric": "logit_diff"}"#),
        hl_status::HL_ERR_INPUT,
        "against",
    );
    expect(
        call(r#"{"kind": "patch", "clean_tokens": [449, 5], "corrupted_tokens": [449]}"#),
        hl_status::HL_ERR_INPUT,
        "same length",
    );
    expect(
        call(r#"{"kind": "trace", "tokens": [449, 5], "subject_positions": [1], "noise": -1}"#),
        hl_status::HL_ERR_INPUT,
        "noise",
    );
    expect(
        call(
            r#"{"kind": "intervene", "tokens": [449, 5], "interventions": [{"hook": "z7", "op": {"kind": "zero"}}]}"#,
        ),
        hl_status::HL_ERR_INPUT,
        "layer 7 is out of range",
    );
    let mut response = null_mut();
    // SAFETY: NULL arguments are reported, not read.
    unsafe {
        expect(
            hl_sweep_json(m, null(), &mut response),
            hl_status::HL_ERR_NULL,
            "request_json is NULL",
        );
        expect(
            hl_sweep_json(m, c"{}".as_ptr(), null_mut()),
            hl_status::HL_ERR_NULL,
            "response_json is NULL",
        );
        expect(
            hl_sweep_json(null(), c"{}".as_ptr(), &mut response),
            hl_status::HL_ERR_NULL,
            "model is NULL",
        );
        hl_model_free(m);
    }
}
