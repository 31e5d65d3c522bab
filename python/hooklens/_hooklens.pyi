"""Type stubs of the native module (the API of docs/python.md)."""

import os
from typing import Any, Callable, Dict, Iterator, List, Literal, Optional, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt
from typing_extensions import TypedDict, Unpack, final

from hooklens._factored import FactoredMatrix

# A hook point: a full name ("blocks.3.attn.hook_z", or a TL 4.x alias such as
# "blocks.3.attn.o.hook_in"), a compact short form ("z3") or a TL short-form tuple
# (("z", 3), ("pattern", 0, "attn"), ("scale",)).
_HookName = Union[str, Tuple[str], Tuple[str, int], Tuple[str, int, str]]
# Text, a list of texts (shorter ones padded, as to_tokens), or integer ids [pos] / [batch, pos]; a float
# array [batch, pos, d_model] is a residual stream (with start_at_layer).
_ModelInput = Union[str, Sequence[str], npt.ArrayLike]
# fn(activation, hook): edit the view in place and return None (or the view), or return an
# array of the activation's shape to replace it.
_HookFn = Callable[["np.ndarray", "HookPoint"], Optional[npt.ArrayLike]]
_ReturnType = Optional[Literal["logits", "loss", "both"]]
_Token = Union[str, int]

class _PassKwargs(TypedDict, total=False):
    """The keywords every pass takes (forward, run_with_hooks, run_with_cache)."""

    attention_mask: Optional[npt.ArrayLike]  # [batch, pos]: 1 real, 0 pad (one run of 1s per row, one side)
    loss_per_token: bool  # a loss per token [batch, pos - 1] instead of the mean (pads skipped)
    padding_side: Optional[Literal["left", "right"]]  # where a text list's pads go; default "right"
    prepend_bos: bool  # for text input; default True
    start_at_layer: Optional[int]  # the input is then a residual stream [batch, pos, d_model]
    stop_at_layer: Optional[int]  # return the residual entering this block
    tokens: Optional[_ModelInput]  # the loss's targets for a residual-stream input

class HookLensError(Exception): ...
class UnknownHookError(HookLensError): ...
class HookShapeError(HookLensError): ...
class TokenError(HookLensError): ...
class ModelLoadError(HookLensError): ...
class UnsupportedError(HookLensError): ...
class CacheFileError(HookLensError): ...
class InputError(HookLensError): ...

def set_num_threads(n: int) -> None:
    """The engine's CPU threads (at least 1; all cores by default)."""

@final
class HooksContext:
    """What `model.hooks(...)` returns: a context manager adding its hooks to the model."""
    def __enter__(self) -> "HookedTransformer": ...
    def __exit__(self, *args: object) -> bool: ...

class HookPoint:
    """A hook point; the second argument of every hook function."""

    @property
    def name(self) -> str: ...
    def layer(self) -> Optional[int]:
        """The block index, None outside the blocks."""
    @property
    def attention_mask(self) -> Optional[np.ndarray]:
        """In a hook of a padded pass: int64 [batch, pos], 1 real, 0 pad; else None."""

@final
class Config:
    """model.cfg: TransformerLens' config field names."""

    n_layers: int
    n_heads: int
    n_key_value_heads: int
    d_model: int
    d_head: int
    d_mlp: int
    d_vocab: int
    n_ctx: int
    normalization_type: Literal["LN", "RMS"]
    eps: float
    positional_embedding_type: Literal["standard", "rotary"]
    rotary_base: Optional[float]
    act_fn: Literal["gelu_new", "silu"]
    gated_mlp: bool
    original_architecture: str
    device: str

@final
class ActivationCache:
    """Cached activations (numpy arrays, batch first) in firing order."""

    def __getitem__(self, key: _HookName, /) -> np.ndarray: ...
    def __contains__(self, key: _HookName, /) -> bool: ...
    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[str]: ...
    def keys(self) -> List[str]: ...
    def values(self) -> List[np.ndarray]: ...
    def items(self) -> List[Tuple[str, np.ndarray]]: ...
    @property
    def cache_dict(self) -> Dict[str, np.ndarray]: ...
    @property
    def tokens(self) -> Optional[np.ndarray]:
        """int64 [batch, pos] of the pass or file; None when unknown."""
    @property
    def prompts(self) -> List[str]: ...
    def save(self, path: Union[str, "os.PathLike[str]"]) -> None:
        """Safetensors with the tokens, prompts and model (read back with model.load_cache)."""

@final
class HookedTransformer:
    """A model on the hooklens engine with TransformerLens' HookedTransformer API."""

    @staticmethod
    def load(
        model: Optional[str] = None,
        device: str = "cpu",
        *,
        fold_ln: bool = False,
        center_writing_weights: bool = False,
        center_unembed: bool = False,
        fold_value_biases: bool = False,
    ) -> "HookedTransformer":
        """An HF checkpoint directory, a .gguf file or a known name ("smollm2-135m");
        None loads the default model. device: "cpu", "auto" or "cuda". The keywords are TL's
        weight processing, off by default (TL's from_pretrained turns all four on)."""
    @staticmethod
    def from_pretrained(
        model_name: str,
        device: str = "cpu",
        *,
        fold_ln: bool = False,
        center_writing_weights: bool = False,
        center_unembed: bool = False,
        fold_value_biases: bool = False,
    ) -> "HookedTransformer": ...
    @staticmethod
    def from_pretrained_no_processing(model_name: str, device: str = "cpu") -> "HookedTransformer": ...
    def tl_weight(self, name: str) -> np.ndarray:
        """A float32 weight under a TL name ("W_Q", "blocks.0.attn.OV", "ln_final.w", ...)."""
    @property
    def W_E(self) -> np.ndarray: ...  # [d_vocab, d_model]
    @property
    def W_pos(self) -> np.ndarray: ...  # [n_ctx, d_model]; AttributeError if rotary
    @property
    def W_U(self) -> np.ndarray: ...  # [d_model, d_vocab]
    @property
    def b_U(self) -> np.ndarray: ...  # [d_vocab]
    @property
    def W_Q(self) -> np.ndarray: ...  # [n_layers, n_heads, d_model, d_head]
    @property
    def W_K(self) -> np.ndarray: ...  # [n_layers, n_heads, d_model, d_head]
    @property
    def W_V(self) -> np.ndarray: ...  # [n_layers, n_heads, d_model, d_head]
    @property
    def W_O(self) -> np.ndarray: ...  # [n_layers, n_heads, d_head, d_model]
    @property
    def b_Q(self) -> np.ndarray: ...  # [n_layers, n_heads, d_head]
    @property
    def b_K(self) -> np.ndarray: ...  # [n_layers, n_heads, d_head]
    @property
    def b_V(self) -> np.ndarray: ...  # [n_layers, n_heads, d_head]
    @property
    def b_O(self) -> np.ndarray: ...  # [n_layers, d_model]
    @property
    def W_in(self) -> np.ndarray: ...  # [n_layers, d_model, d_mlp]
    @property
    def W_gate(self) -> np.ndarray: ...  # [n_layers, d_model, d_mlp]; AttributeError if ungated
    @property
    def W_out(self) -> np.ndarray: ...  # [n_layers, d_mlp, d_model]
    @property
    def b_in(self) -> np.ndarray: ...  # [n_layers, d_mlp]
    @property
    def b_out(self) -> np.ndarray: ...  # [n_layers, d_model]
    @property
    def OV(self) -> "FactoredMatrix":
        """FactoredMatrix(W_V, W_O): [n_layers, n_heads, d_model, d_model] through d_head."""
    @property
    def QK(self) -> "FactoredMatrix":
        """FactoredMatrix(W_Q, W_K.swapaxes(-2, -1)): [n_layers, n_heads, d_model, d_model]."""
    def generate(
        self,
        input: Union[str, npt.ArrayLike],
        max_new_tokens: int = 10,
        *,
        temperature: float = 0.0,
        top_k: Optional[int] = None,
        top_p: Optional[float] = None,
        seed: Optional[int] = None,
        do_sample: Optional[bool] = None,
        stop_at_eos: bool = True,
        stop: Optional[str] = None,
        use_past_kv_cache: bool = True,
        prepend_bos: bool = True,
        return_type: Literal["input", "str", "tokens"] = "input",
        verbose: bool = False,
    ) -> Union[str, np.ndarray]:
        """Text for a text input (or "str"), else int64 tokens [1, pos + new]."""
    def load_cache(self, path: Union[str, "os.PathLike[str]"]) -> ActivationCache: ...
    @property
    def cfg(self) -> Config: ...
    @property
    def source(self) -> str: ...
    @property
    def hook_dict(self) -> Dict[str, HookPoint]:
        """Every hook point in firing order, opt-in points included."""
    def hook_aliases(self, name: str) -> List[str]: ...
    def to_tokens(
        self,
        input: Union[str, Sequence[str]],
        prepend_bos: bool = True,
        padding_side: Optional[Literal["left", "right"]] = None,
    ) -> np.ndarray:
        """int64 ids [batch, pos]; shorter texts padded with the model's pad id (EOS, else BOS,
        else 0) on padding_side (default "right")."""
    def to_str_tokens(self, input: _ModelInput, prepend_bos: bool = True) -> Union[List[str], List[List[str]]]: ...
    def to_string(self, ids: npt.ArrayLike) -> Union[str, List[str]]: ...
    def to_single_token(self, text: str) -> int: ...
    def forward(
        self,
        input: _ModelInput,
        return_type: _ReturnType = "logits",
        **kwargs: Unpack[_PassKwargs],
    ) -> Any:
        """logits [batch, pos, d_vocab] (float32), loss (float; [batch, pos - 1] per token),
        (logits, loss) for "both", None, or the residual [batch, pos, d_model] with
        stop_at_layer."""
    __call__ = forward
    def run_with_hooks(
        self,
        input: _ModelInput,
        fwd_hooks: Optional[Sequence[Tuple[Union[_HookName, Callable[[str], bool]], _HookFn]]] = None,
        bwd_hooks: None = None,
        return_type: _ReturnType = "logits",
        *,
        reset_hooks_end: bool = True,
        **kwargs: Unpack[_PassKwargs],
    ) -> Any: ...
    def add_hook(
        self,
        name: Union[_HookName, Callable[[str], bool]],
        hook: _HookFn,
        dir: Literal["fwd"] = "fwd",
        is_permanent: bool = False,
    ) -> None:
        """Runs `hook` in every later pass and in generate until reset_hooks()."""
    def reset_hooks(self, clear_contexts: bool = True, including_permanent: bool = False) -> None: ...
    def hooks(
        self,
        fwd_hooks: Optional[Sequence[Tuple[Union[_HookName, Callable[[str], bool]], _HookFn]]] = None,
        bwd_hooks: None = None,
        reset_hooks_end: bool = True,
        clear_contexts: bool = False,
    ) -> HooksContext:
        """`with model.hooks(fwd_hooks=[...]):` the hooks run in every pass inside the block."""
    def run_with_cache(
        self,
        input: _ModelInput,
        names_filter: Union[None, _HookName, List[_HookName], Callable[[str], bool]] = None,
        return_type: _ReturnType = "logits",
        **kwargs: Unpack[_PassKwargs],
    ) -> Tuple[Any, ActivationCache]: ...
    def ablate_heads(
        self,
        input: _ModelInput,
        target: Optional[_Token] = None,
        metric: str = "logprob",
        against: Optional[_Token] = None,
        *,
        method: Literal["zero", "mean", "resample"] = "zero",
        what: Literal["heads", "attn", "mlp"] = "heads",
        reference: Optional[_ModelInput] = None,
        prepend_bos: bool = True,
        naive: bool = False,
    ) -> Tuple[np.ndarray, Dict[str, Any]]:
        """(delta grid [n_layers, n_heads] or [n_layers], report dict)."""
    def patch(
        self,
        clean: _ModelInput,
        corrupted: _ModelInput,
        target: Optional[_Token] = None,
        against: Optional[_Token] = None,
        metric: Optional[str] = None,
        *,
        site: str = "resid_pre",
        prepend_bos: bool = True,
        naive: bool = False,
    ) -> Tuple[np.ndarray, Dict[str, Any]]:
        """(recovery grid [n_layers, pos] / [n_layers, n_heads] / [n_layers, n_heads, pos], report)."""
    def trace(
        self,
        input: _ModelInput,
        subject: Union[str, Sequence[int]],
        target: Optional[_Token] = None,
        metric: str = "prob",
        *,
        kind: Literal["resid", "mlp", "attn"] = "resid",
        window: int = 10,
        samples: int = 5,
        noise: float = 3.0,
        seed: int = 0,
        prepend_bos: bool = True,
        naive: bool = False,
    ) -> Tuple[np.ndarray, Dict[str, Any]]:
        """(recovery grid [n_layers, pos], report dict)."""
