"""libfcp.so through ctypes: the structs and functions of fcp/c_api.h and fcp/c_exec_api.h that
fcp_torch uses, with no dependency beyond the standard library (tests/test_client.py uses the
structs too).

The library is found through FCP_LIBRARY (a path to libfcp.so), else next to fcp_torch (in its
folder or beside it), else in the source tree's build/client/. Every call goes through `call`,
which raises FcpError with the library's status code and message (which names the offending
argument).
"""

from __future__ import annotations

import ctypes
import os
import threading

_STATUS_NAMES = {
    0: "OK", 1: "CANCELLED", 2: "UNKNOWN", 3: "INVALID_ARGUMENT", 4: "DEADLINE_EXCEEDED",
    5: "NOT_FOUND", 6: "ALREADY_EXISTS", 7: "PERMISSION_DENIED", 8: "RESOURCE_EXHAUSTED",
    9: "FAILED_PRECONDITION", 10: "ABORTED", 11: "OUT_OF_RANGE", 12: "UNIMPLEMENTED",
    13: "INTERNAL", 14: "UNAVAILABLE", 15: "DATA_LOSS", 16: "UNAUTHENTICATED",
}

DTYPE_CODES = {"BF16": 0, "FP16": 1, "FP32": 2}  # fcp_dtype
MASK_CODES = {"causal": 0, "full": 1, "sliding_window": 2, "prefix_lm": 3}  # fcp_mask_kind
MLP_CODES = {"": 0, "gated": 1, "plain": 2}  # fcp_mlp_kind ("" = the preset's / default)


class FcpError(RuntimeError):
    """A libfcp call that failed: `code` (an absl status code), `status` (its name), `message`."""

    def __init__(self, function: str, code: int, message: str):
        self.function = function
        self.code = code
        self.status = _STATUS_NAMES.get(code, str(code))
        self.message = message
        super().__init__(f"{function}: {self.status}: {message}")


class Error(ctypes.Structure):
    _fields_ = [("code", ctypes.c_int), ("message", ctypes.c_char * 1024)]


class ClientOptions(ctypes.Structure):
    _fields_ = [("target", ctypes.c_char_p), ("deadline_seconds", ctypes.c_double),
                ("max_attempts", ctypes.c_int), ("local_fallback", ctypes.c_int),
                ("default_strategy", ctypes.c_char_p)]


class Batch(ctypes.Structure):
    _fields_ = [("job_id", ctypes.c_char_p), ("step", ctypes.c_int64),
                ("document_lengths", ctypes.POINTER(ctypes.c_int64)),
                ("num_documents", ctypes.c_size_t), ("num_q_heads", ctypes.c_int32),
                ("num_kv_heads", ctypes.c_int32), ("head_dim", ctypes.c_int32),
                ("num_workers", ctypes.c_int32), ("workers_per_node", ctypes.c_int32),
                ("strategy", ctypes.c_char_p), ("ranks", ctypes.POINTER(ctypes.c_int32)),
                ("num_ranks", ctypes.c_size_t)]


class ModelStruct(ctypes.Structure):
    """fcp_model (c_api.h): the model around attention; initialise with fcp_model_init."""
    _fields_ = [("preset", ctypes.c_char_p), ("hidden_size", ctypes.c_int32),
                ("ffn_hidden_size", ctypes.c_int32), ("mlp", ctypes.c_int32),
                ("num_layers", ctypes.c_int32), ("linear_flops_per_token", ctypes.c_double),
                ("objective", ctypes.c_int32), ("token_slack", ctypes.c_double),
                ("activation_memory_bytes", ctypes.c_int64)]


class ClientStats(ctypes.Structure):
    _fields_ = [(name, ctypes.c_int64) for name in
                ("requests", "rpcs", "retries", "fallbacks", "errors", "prefetches",
                 "prefetch_hits")]


class MaskStruct(ctypes.Structure):
    _fields_ = [("kind", ctypes.c_int32), ("window", ctypes.c_int64), ("prefix", ctypes.c_int64)]


STORE_SET = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p,
                             ctypes.c_size_t)
STORE_GET = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p,
                             ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t), ctypes.c_double)


class Store(ctypes.Structure):
    _fields_ = [("context", ctypes.c_void_p), ("set", STORE_SET), ("get", STORE_GET)]


class ExecutorOptions(ctypes.Structure):
    _fields_ = [("rank", ctypes.c_int32), ("world_size", ctypes.c_int32),
                ("transport", ctypes.c_char_p), ("store", ctypes.POINTER(Store)),
                ("rendezvous", ctypes.c_char_p), ("job_id", ctypes.c_char_p),
                ("device", ctypes.c_char_p), ("cuda_device", ctypes.c_int32),
                ("interface_address", ctypes.c_char_p), ("timeout_seconds", ctypes.c_double),
                ("threads", ctypes.c_int32), ("metrics_port", ctypes.c_int32),
                ("job_token", ctypes.c_char_p)]


class AttentionShape(ctypes.Structure):
    _fields_ = [("num_q_heads", ctypes.c_int32), ("num_kv_heads", ctypes.c_int32),
                ("head_dim", ctypes.c_int32), ("dtype", ctypes.c_int32)]


class ExecStats(ctypes.Structure):
    _fields_ = [("forward_seconds", ctypes.c_double), ("backward_seconds", ctypes.c_double),
                ("attention_seconds", ctypes.c_double), ("comm_wait_seconds", ctypes.c_double),
                ("bytes_sent", ctypes.c_int64), ("bytes_received", ctypes.c_int64),
                ("tiles", ctypes.c_int64)]


_P = ctypes.c_void_p
_PP = ctypes.POINTER(ctypes.c_void_p)
_E = ctypes.POINTER(Error)
_I64 = ctypes.c_int64
_PI64 = ctypes.POINTER(ctypes.c_int64)
# name: (restype, argtypes). Status-returning functions return c_int.
_SIGNATURES = {
    "fcp_client_options_init": (None, [ctypes.POINTER(ClientOptions)]),
    "fcp_batch_init": (None, [ctypes.POINTER(Batch)]),
    "fcp_client_new": (ctypes.c_int, [ctypes.POINTER(ClientOptions), _PP, _E]),
    # (options, tls: an fcp_tls_options* or None for plaintext, job_token, client, error)
    "fcp_client_new_auth": (ctypes.c_int, [ctypes.POINTER(ClientOptions), _P, ctypes.c_char_p,
                                           _PP, _E]),
    "fcp_client_free": (None, [_P]),
    "fcp_client_plan_masked": (ctypes.c_int, [_P, ctypes.POINTER(Batch),
                                              ctypes.POINTER(MaskStruct), _PP, _E]),
    "fcp_client_prefetch": (ctypes.c_int, [_P, ctypes.POINTER(Batch), _E]),
    "fcp_model_init": (None, [ctypes.POINTER(ModelStruct)]),
    "fcp_client_plan_masked_model": (ctypes.c_int, [_P, ctypes.POINTER(Batch),
                                                    ctypes.POINTER(MaskStruct),
                                                    ctypes.POINTER(ModelStruct), _PP, _E]),
    "fcp_client_prefetch_model": (ctypes.c_int, [_P, ctypes.POINTER(Batch),
                                                 ctypes.POINTER(ModelStruct), _E]),
    "fcp_client_prefetch_masked_model": (ctypes.c_int, [_P, ctypes.POINTER(Batch),
                                                        ctypes.POINTER(MaskStruct),
                                                        ctypes.POINTER(ModelStruct), _E]),
    "fcp_client_get": (ctypes.c_int, [_P, _I64, _PP, _E]),
    "fcp_client_get_stats": (None, [_P, ctypes.POINTER(ClientStats)]),
    "fcp_plan_free": (None, [_P]),
    "fcp_plan_id": (ctypes.c_char_p, [_P]),
    "fcp_plan_strategy": (ctypes.c_char_p, [_P]),
    "fcp_plan_cache_hit": (ctypes.c_int, [_P]),
    "fcp_plan_source_of": (ctypes.c_int, [_P]),
    "fcp_plan_predicted_step_ms": (ctypes.c_double, [_P]),
    "fcp_plan_rank_tokens": (ctypes.c_int, [_P, ctypes.c_int32, _PI64, _PI64, _I64, _PI64, _E]),
    "fcp_executor_options_init": (None, [ctypes.POINTER(ExecutorOptions)]),
    "fcp_executor_new": (ctypes.c_int, [ctypes.POINTER(ExecutorOptions), _PP, _E]),
    "fcp_executor_free": (None, [_P]),
    "fcp_forward": (ctypes.c_int, [_P, _P, _I64, ctypes.POINTER(AttentionShape), _I64, _P, _P,
                                   _P, _P, _P, _P, _PP, _E]),
    "fcp_backward": (ctypes.c_int, [_P, _P, _P, _P, _P, _P, _P, _E]),
    "fcp_context_free": (None, [_P]),
    "fcp_executor_last_stats": (None, [_P, ctypes.POINTER(ExecStats)]),
    "fcp_gather_rows": (ctypes.c_int, [_P, _P, _I64, _I64, _P, _P, _E]),
    "fcp_scatter_add_rows": (ctypes.c_int, [_P, _P, _I64, ctypes.c_int32, _I64, _P, _P, _E]),
}


def _candidates():
    env = os.environ.get("FCP_LIBRARY")
    if env:
        return [env]  # explicit: nothing else is tried
    here = os.path.dirname(os.path.abspath(__file__))  # client/python
    root = os.path.dirname(os.path.dirname(here))
    return [os.path.join(here, "fcp_torch", "libfcp.so"), os.path.join(here, "libfcp.so"),
            os.path.join(root, "build", "client", "libfcp.so")]


_lock = threading.Lock()
_lib = None


def library() -> ctypes.CDLL:
    """libfcp.so, loaded once; OSError saying where it was looked for."""
    global _lib
    with _lock:
        if _lib is not None:
            return _lib
        tried = _candidates()
        path = next((p for p in tried if os.path.isfile(p)), None)
        if path is None:
            raise OSError("libfcp.so not found (set FCP_LIBRARY to its path; looked at "
                          + ", ".join(tried) + ")")
        lib = ctypes.CDLL(path)
        for name, (restype, argtypes) in _SIGNATURES.items():
            try:
                function = getattr(lib, name)
            except AttributeError:
                raise OSError(f"{path} has no {name}: it predates the execution API "
                              "(rebuild libfcp.so from this tree)") from None
            function.restype = restype
            function.argtypes = argtypes
        lib.fcp_library_path = path
        _lib = lib
        return lib


def call(name: str, *args) -> None:
    """Calls status-returning `name` with args and an error struct; FcpError unless OK."""
    error = Error()
    code = getattr(library(), name)(*args, ctypes.byref(error))
    if code != 0:
        raise FcpError(name, code, error.message.decode(errors="replace"))
