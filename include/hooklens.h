/*
 * hooklens: a GPT-style inference engine with every TransformerLens hook point as a
 * callback slot, as a C library (libhooklens.so / libhooklens.a).
 *
 * Conventions (docs/c-abi.md has the long form):
 * - Handles (hl_model, hl_cache) are opaque and owned by the caller, who frees each with its
 *   _free function; freeing NULL does nothing. Pointers the library hands out (cache data,
 *   names, hl_last_error) stay valid as long as each function says.
 * - Every int-returning function gives 0 (HL_OK) on success and a nonzero hl_status on
 *   failure, with a message in hl_last_error() (thread-local). Nothing unwinds into C.
 * - Thread safety: a model may be used from several threads at once (each call is a pass of
 *   its own); a cache is read-only and may be read from several threads; hook callbacks run
 *   on the thread that started the pass.
 */

#ifndef HOOKLENS_H
#define HOOKLENS_H

/* Generated from src/ffi/ by cbindgen; do not edit. tests/c_header.rs fails when it is stale: HOOKLENS_BLESS=1 cargo test --release --test c_header rewrites it. */

#include <stddef.h>
#include <stdint.h>

// The status every `int`-returning function gives: 0 on success, one of the others on
// failure (the message is in `hl_last_error()`). A hook callback's own nonzero return is
// passed back unchanged instead, so callbacks should use values outside this list (e.g. 100
// and up) to tell their aborts apart.
typedef enum hl_status {
  // Success.
  HL_OK = 0,
  // A pointer that must not be NULL was NULL.
  HL_ERR_NULL = 1,
  // A bad argument: a zero or overflowing size, text that is not UTF-8, ...
  HL_ERR_ARGUMENT = 2,
  // An output buffer is too small; the size needed is reported (through `n_out`, or in the
  // message).
  HL_ERR_BUFFER_TOO_SMALL = 3,
  // A file could not be read or written.
  HL_ERR_IO = 4,
  // A model file is malformed, truncated, or does not fit its configuration.
  HL_ERR_MODEL_FILE = 5,
  // Something this version does not support (a CUDA device, an architecture, a dtype).
  HL_ERR_UNSUPPORTED = 6,
  // A hook name or regex names no hook point; the message lists the nearest names.
  HL_ERR_UNKNOWN_HOOK = 7,
  // Invalid input: a token id out of range, a sequence longer than the context, a bad
  // sweep option, a tokenizer failure, ...
  HL_ERR_INPUT = 8,
  // A hook or intervention tried an edit the engine refuses (a shape change).
  HL_ERR_HOOK = 9,
  // A JSON request that does not parse or does not fit the schema (an unknown key, a
  // missing or mistyped value).
  HL_ERR_JSON = 10,
  // A bug in hooklens: a panic caught at the boundary.
  HL_ERR_PANIC = 11,
} hl_status;

// Cached activations of one pass (opaque). Made by `hl_run_with_cache`, freed by
// `hl_cache_free`; read-only, so several threads may read one cache at once.
typedef struct hl_cache hl_cache;

// A loaded model (opaque). Made by `hl_model_load`, freed by `hl_model_free`.
typedef struct hl_model hl_model;

// A hook callback: called at each matching hook point with its TransformerLens name, the
// engine's own buffer for the activation (`ndim` axes of sizes `shape[0..ndim]`, batch
// first, row-major, writable in place: edits change the rest of the pass), and the `user`
// pointer given with it. `name`, `data` and `shape` are valid only during the call. Return 0
// to go on; a nonzero value aborts the pass and the run returns that value. It is called on
// the thread that started the run.
typedef int (*hl_hook_fn)(const char *name, float *data, const int64_t *shape, int ndim, void *user);

#ifdef __cplusplus
extern "C" {
#endif // __cplusplus

// The message of the last failed call on this thread, or "" when none has failed. The string
// belongs to the library: it stays valid until the next failing call on the same thread; do
// not free it. A successful call leaves it as it was.
const char *hl_last_error(void);

// The library's version ("0.1.0"), a static string: never freed, valid for the whole run.
const char *hl_version(void);

// Sets the number of CPU threads later passes use, a budget shared by passes that run at
// once (1 runs single-threaded; 0 restores the default: `$HOOKLENS_THREADS`, else every
// core). Affects the whole process; may be called from any thread.
void hl_set_threads(size_t n);

// Frees a string the library returned (`hl_sweep_json`'s response). NULL does nothing.
//
// # Safety
// `s` is NULL or a string from this library not freed yet; it is invalid afterwards.
void hl_string_free(char *s);

// Loads a model: an HF checkpoint directory, a `.gguf` file, a known model name
// (`"smollm2-135m"`, looked up in `$HOOKLENS_HOME`), or NULL for the default model. `device`
// is `"cpu"`, `"auto"` (the CPU until the CUDA backend is verified on a GPU) or NULL (auto);
// `"cuda"` / `"cuda:N"` select the experimental CUDA backend and fail with
// `HL_ERR_UNSUPPORTED`, naming what is missing, where CUDA is not usable. On success
// `*out` is a new model the caller owns and frees with `hl_model_free`; on failure `*out` is
// set to NULL.
//
// # Safety
// `path_or_name` and `device` are NULL or NUL-terminated strings; `out` points to writable
// memory for a pointer.
int hl_model_load(const char *path_or_name, const char *device, struct hl_model **out);

// Frees a model. NULL does nothing. Every call using the model must have returned, and the
// caches made from it stay valid (they own their data).
//
// # Safety
// `model` is NULL or a model from `hl_model_load` not freed yet; it is invalid afterwards.
void hl_model_free(struct hl_model *model);

// The model's layer count, attention heads per layer, residual width and vocabulary size.
// Each out-pointer may be NULL when that value is not wanted.
//
// # Safety
// `model` is NULL or a live model; each out-pointer is NULL or writable.
int hl_model_dims(const struct hl_model *model,
                  int64_t *n_layers,
                  int64_t *n_heads,
                  int64_t *d_model,
                  int64_t *d_vocab);

// Tokenizes `text` (TransformerLens' `to_tokens`: BOS first when `prepend_bos` is nonzero).
// `*n_out` is set to the number of ids even when `capacity` is too small, in which case
// nothing is written and the call fails with `HL_ERR_BUFFER_TOO_SMALL` (so a call with
// capacity 0 and `ids_out` NULL asks for the size).
//
// # Safety
// `model` is NULL or a live model; `text` is NULL or a NUL-terminated string; `ids_out` is
// NULL or has room for `capacity` ids; `n_out` is writable.
int hl_tokenize(const struct hl_model *model,
                const char *text,
                int prepend_bos,
                uint32_t *ids_out,
                size_t capacity,
                size_t *n_out);

// Runs `tokens` (`batch` rows of `seq` ids, row-major) and writes the logits at every
// position to `logits_out`, `[batch, seq, d_vocab]` row-major. `logits_len` is the buffer's
// length in floats; one shorter than `batch * seq * d_vocab` fails with
// `HL_ERR_BUFFER_TOO_SMALL` before any work (the message gives the size needed). Safe to
// call from several threads at once on one model.
//
// # Safety
// `model` is NULL or a live model; `tokens` is NULL or holds `batch * seq` ids;
// `logits_out` is NULL or has room for `logits_len` floats.
int hl_run_logits(const struct hl_model *model,
                  const uint32_t *tokens,
                  size_t batch,
                  size_t seq,
                  float *logits_out,
                  size_t logits_len);

// As `hl_run_logits`, for a padded batch: `attention_mask` holds TransformerLens'
// attention mask, `batch * seq` bytes row-major (`[batch, seq]`): 1 at a real position,
// 0 at a pad. Pads are never attended to, positions count from each row's first real token
// and a left-pad query's attention pattern is all zeros, as TL's `forward(tokens,
// attention_mask=mask)`; the logits at real positions are those of each row run alone. Pads
// may hold any id of the vocabulary. Each row's 1s must be one run, and every padded row
// padded on one side (all rows' pads first, or all rows' pads last); another mask (a gap,
// pads on both sides, a row without 1s, a value other than 0 and 1) fails with
// `HL_ERR_INPUT`. A mask of 1s only is `hl_run_logits`.
//
// # Safety
// As `hl_run_logits`; `attention_mask` is NULL or holds `batch * seq` bytes.
int hl_run_logits_padded(const struct hl_model *model,
                         const uint32_t *tokens,
                         size_t batch,
                         size_t seq,
                         const uint8_t *attention_mask,
                         float *logits_out,
                         size_t logits_len);

// As `hl_run_logits`, with `fn` called at every hook point `selector` names: a full
// TransformerLens name (`"blocks.0.attn.hook_z"`, a TL 4.x alias, or a short form such as
// `"z0"`), else a regex matched against every hook name, opt-in points included (`"hook_z$"`
// matches each layer's `attn.hook_z`). A selector naming no point fails with
// `HL_ERR_UNKNOWN_HOOK` and the nearest names in the message. `fn` gets the engine's own
// buffer (see `hl_hook_fn`) and is called on this thread, in firing order; a nonzero return
// stops the pass and is returned as it is (the message names the hook point). `logits_out`
// is written only when the pass completes.
//
// # Safety
// As `hl_run_logits`; `selector` is NULL or a NUL-terminated string; `fn` is NULL or a
// function following `hl_hook_fn`'s contract; `user` is passed to it untouched.
int hl_run_with_hook(const struct hl_model *model,
                     const uint32_t *tokens,
                     size_t batch,
                     size_t seq,
                     const char *selector,
                     hl_hook_fn fn,
                     void *user,
                     float *logits_out,
                     size_t logits_len);

// Runs `tokens` (`batch` rows of `seq` ids) and caches the activations of every default
// hook point (`names_regex` NULL), or of every hook point, opt-in ones included, whose name
// or TL 4.x alias `names_regex` matches (a regex matching none fails with
// `HL_ERR_UNKNOWN_HOOK`, naming the nearest names). No logits are computed. On success
// `*out` is a new cache the caller owns and frees with `hl_cache_free`; on failure it is
// NULL.
//
// # Safety
// `model` is NULL or a live model; `tokens` is NULL or holds `batch * seq` ids;
// `names_regex` is NULL or a NUL-terminated string; `out` is writable.
int hl_run_with_cache(const struct hl_model *model,
                      const uint32_t *tokens,
                      size_t batch,
                      size_t seq,
                      const char *names_regex,
                      struct hl_cache **out);

// The activation cached at `name` (a full TL name, a TL 4.x alias or a short form such as
// `"z0"`): `*data` points to its values, row-major, batch first, with `*ndim` axes of sizes
// `(*shape)[0..*ndim]`. Both pointers belong to the cache and stay valid until
// `hl_cache_free`; do not write through them. A name that is not a hook point fails with
// `HL_ERR_UNKNOWN_HOOK`; a valid one that was not cached with `HL_ERR_INPUT`.
//
// # Safety
// `cache` is NULL or a live cache; `name` is NULL or a NUL-terminated string; `data`,
// `shape` and `ndim` are writable.
int hl_cache_get(const struct hl_cache *cache,
                 const char *name,
                 const float **data,
                 const int64_t **shape,
                 int *ndim);

// The number of activations in the cache (0 for NULL).
//
// # Safety
// `cache` is NULL or a live cache.
size_t hl_cache_count(const struct hl_cache *cache);

// The TL name of the `index`-th cached activation, in firing order (a string owned by the
// cache, valid until `hl_cache_free`), or NULL when `cache` is NULL or `index` is out of
// range.
//
// # Safety
// `cache` is NULL or a live cache.
const char *hl_cache_name(const struct hl_cache *cache, size_t index);

// Frees a cache and every pointer `hl_cache_get` / `hl_cache_name` gave out of it. NULL does
// nothing.
//
// # Safety
// `cache` is NULL or a cache from `hl_run_with_cache` not freed yet; it is invalid
// afterwards.
void hl_cache_free(struct hl_cache *cache);

// Runs a sweep or an intervention described by `request_json` and sets `*response_json` to
// the result document, a string the caller frees with `hl_string_free` (NULL on failure).
//
// The request is one JSON object: `"kind"` and the command line's options as snake_case
// keys. Keys shared by the kinds: the prompt, `"prompt"` (text; BOS first unless
// `"no_bos": true`) or `"tokens"` (ids, used as given); the metric, `"metric"` (`"logprob"`,
// `"prob"`, `"logit_diff"`, `"loss"`, `"kl"`; default logit_diff when `against` is given,
// else logprob, prob for trace), `"target"` (text that is one token) or `"target_id"`
// (default: the model's top prediction), `"against"` / `"against_id"`; the engine,
// `"naive"` (one forward per variant) and `"max_rows"` (default 4096).
// - `"ablate"`: `"method"` (`"zero"`, `"mean"`, `"resample"`), `"what"` (`"heads"`,
//   `"attn"`, `"mlp"`), `"reference"` (a file of prompts, one a line) and/or
//   `"reference_tokens"` (lists of ids) for mean, `"resample_prompt"` or
//   `"resample_tokens"` for resample.
// - `"patch"`: `"clean"` / `"clean_tokens"`, `"corrupted"` / `"corrupted_tokens"`,
//   `"no_bos"`, `"site"` (`"resid_pre"`, `"resid_mid"`, `"attn_out"`, `"mlp_out"`, `"z"`,
//   `"z_by_pos"`); no `"prompt"` / `"tokens"`.
// - `"trace"`: `"subject"` (text in the prompt) or `"subject_positions"`, `"trace_kind"`
//   (`"resid"`, `"mlp"`, `"attn"`: the command line's `--kind`), `"window"`, `"samples"`,
//   `"noise"`, `"seed"`.
// - `"intervene"`: `"interventions"`, a list of `{"hook", "positions"?, "heads"?, "op":
//   {"kind": "zero" | "scale" (+ "factor") | "add" (+ "vector") | "set" (+ "values":
//   {"data", "shape"})}}` applied to the one prompt, and `"top"` (default 10).
//
// A sweep answers with the `--json` document: `{"model", "tokens", "metric", "clean",
// "corrupted"?, "corrupted_tokens"?, "str_tokens"?, "results": [{"layer", "head"?, "pos"?,
// "value", "delta" | "recovery"}], "stats"}`. An intervention answers `{"model", "tokens",
// "metric", "interventions", "clean", "value", "delta", "top": [{"token_id", "token",
// "prob", "logit"}]}`. An unknown key, kind or value fails with `HL_ERR_JSON` naming it.
// Safe to call from several threads at once on one model.
//
// # Safety
// `model` is NULL or a live model; `request_json` is NULL or a NUL-terminated string;
// `response_json` is writable.
int hl_sweep_json(const struct hl_model *model, const char *request_json, char **response_json);

#ifdef __cplusplus
}  // extern "C"
#endif  // __cplusplus

#endif  /* HOOKLENS_H */
