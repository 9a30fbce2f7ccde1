"""What the planner needs to know about the model (Model) and each document's mask (Mask)."""

from __future__ import annotations

import ctypes
import dataclasses

import torch

import fcp_capi as _capi

_TORCH_DTYPES = {"BF16": torch.bfloat16, "FP16": torch.float16, "FP32": torch.float32}


@dataclasses.dataclass(frozen=True)
class Model:
    """The model being trained.

    The attention fields are fcp_client.Model's (num_q_heads, num_kv_heads, head_dim, dtype:
    "BF16", "FP16", "FP32" or the torch dtype); hidden_size, ffn_hidden_size and mlp ("gated" or
    "plain") describe the rest of a layer for whole-step planning (0 = the default model's,
    Llama-3-8B's); they are sent with every plan request (fcp_model, c_api.h), so the planner
    prices the linear layers of this model, not the default's.
    """

    num_q_heads: int = 32
    num_kv_heads: int = 8
    head_dim: int = 128
    dtype: object = "BF16"
    hidden_size: int = 0
    ffn_hidden_size: int = 0
    mlp: str = "gated"

    def __post_init__(self):
        for name in ("num_q_heads", "num_kv_heads", "head_dim"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"Model.{name}: must be an int >= 1, got {value!r}")
        if self.num_q_heads % self.num_kv_heads:
            raise ValueError(f"Model.num_kv_heads: {self.num_kv_heads} does not divide "
                             f"num_q_heads {self.num_q_heads}")
        for name in ("hidden_size", "ffn_hidden_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"Model.{name}: must be an int >= 0, got {value!r}")
        if self.mlp not in ("gated", "plain"):
            raise ValueError(f"Model.mlp: 'gated' or 'plain', got {self.mlp!r}")
        dtype = self.dtype
        if isinstance(dtype, torch.dtype):
            names = {v: k for k, v in _TORCH_DTYPES.items()}
            if dtype not in names:
                raise TypeError(f"Model.dtype: {dtype} is not bfloat16, float16 or float32")
            dtype = names[dtype]
        if not isinstance(dtype, str) or dtype.upper() not in _TORCH_DTYPES:
            raise TypeError(f"Model.dtype: 'BF16', 'FP16', 'FP32' or a torch dtype, got {dtype!r}")
        object.__setattr__(self, "dtype", dtype.upper())

    def _struct(self, lib) -> _capi.ModelStruct:
        """The fcp_model of this model (the rest from fcp_model_init: the defaults)."""
        struct = _capi.ModelStruct()
        lib.fcp_model_init(ctypes.byref(struct))
        struct.hidden_size, struct.ffn_hidden_size = self.hidden_size, self.ffn_hidden_size
        struct.mlp = _capi.MLP_CODES[self.mlp]
        return struct

    @property
    def torch_dtype(self) -> torch.dtype:
        return _TORCH_DTYPES[self.dtype]

    @property
    def dtype_code(self) -> int:
        return _capi.DTYPE_CODES[self.dtype]


@dataclasses.dataclass(frozen=True)
class Mask:
    """Which pairs of one document attend (i, j: positions in the document, query i, key j):
    causal (j <= i), full, sliding_window(w) (0 <= i - j < w), prefix_lm(p) (j < p or j <= i)."""

    kind: str = "causal"
    window: int = 0
    prefix: int = 0

    @staticmethod
    def causal() -> "Mask":
        return Mask("causal")

    @staticmethod
    def full() -> "Mask":
        return Mask("full")

    @staticmethod
    def sliding_window(window: int) -> "Mask":
        if not isinstance(window, int) or isinstance(window, bool) or window < 1:
            raise ValueError(f"window: must be an int >= 1, got {window!r}")
        return Mask("sliding_window", window=window)

    @staticmethod
    def prefix_lm(prefix: int) -> "Mask":
        if not isinstance(prefix, int) or isinstance(prefix, bool) or prefix < 0:
            raise ValueError(f"prefix: must be an int >= 0, got {prefix!r}")
        return Mask("prefix_lm", prefix=prefix)

    def allowed(self, i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
        """Boolean: may query position i attend to key position j (broadcasting)."""
        if self.kind == "full":
            return torch.ones(torch.broadcast_shapes(i.shape, j.shape), dtype=torch.bool)
        if self.kind == "sliding_window":
            return (j <= i) & (i - j < self.window)
        if self.kind == "prefix_lm":
            return (j < self.prefix) | (j <= i)
        return j <= i

    def _struct(self) -> _capi.MaskStruct:
        return _capi.MaskStruct(_capi.MASK_CODES[self.kind], self.window, self.prefix)
