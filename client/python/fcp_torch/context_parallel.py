"""ContextParallel: one rank's handle on fcp inside a PyTorch trainer.

    cp = fcp_torch.ContextParallel(rank, world_size, rendezvous=store, coordinator="HOST:PORT",
                                   model=fcp_torch.Model(num_q_heads=8, num_kv_heads=2,
                                                         head_dim=64, dtype="FP32"))
    plan = cp.plan(lengths, masks=None, step=step)   # the same on every rank of the step
    x_local = cp.dispatch(x, plan)                   # this rank's rows, in the executor's order
    pos = cp.positions(plan)                         # each local token's position (for RoPE)
    o = cp.attention(q, k, v, plan)                  # autograd: fcp_forward / fcp_backward
    y = cp.undispatch(o, plan)                       # every rank's rows in global order
    cp.close()

Every argument is checked before anything reaches the library or the other ranks: a wrong type
raises TypeError, a wrong shape, device, layout or plan raises ValueError, each naming the
argument. The library's own errors (a peer that died, a timeout) raise FcpError.
"""

from __future__ import annotations

import ctypes
import weakref
from typing import Optional, Sequence

import torch

import fcp_capi as _capi
from fcp_torch.functions import Attention, Context, Undispatch
from fcp_torch.model import Mask, Model
from fcp_torch.plan import Plan
from fcp_torch.store import StoreAdapter

_GRAD_DTYPES = {torch.bfloat16: 0, torch.float16: 1, torch.float32: 2}  # fcp_dtype codes
_STATS = ("forward_seconds", "backward_seconds", "attention_seconds", "comm_wait_seconds",
          "bytes_sent", "bytes_received", "tiles")


def _int(name: str, value, low: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name}: must be an int >= {low}, got {value!r}")
    return value


def _bytes(value: Optional[str]) -> Optional[bytes]:
    return None if value is None else value.encode()


def _mask_key(masks) -> Optional[tuple]:
    """What a prefetched batch's masks are compared by (Mask is a frozen dataclass)."""
    return None if masks is None else tuple(masks)


def _device(device) -> torch.device:
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device: 'cpu' or 'cuda[:N]', got {device!r}") from None
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device: 'cpu' or 'cuda[:N]', got {device}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device: {device}, but torch sees no CUDA device")
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return device


class ContextParallel:
    """Rank `rank` of `world_size` context-parallel ranks (see the module docstring).

    rendezvous: a torch.distributed Store (the trainer's own), "file:DIR" (a shared directory)
        or "coordinator:HOST:PORT"; None = "coordinator:" + coordinator, or nothing at W=1.
    coordinator: "HOST:PORT" of fcp-coordinator (plans from the service, local fallback when it
        cannot answer); None = plan locally (plans are deterministic, so every rank gets the same).
    transport: "gloo" or "nccl" (device "cuda"); None = "loopback" at world_size 1, else "gloo".
    metrics_port: the fcp_worker_* metrics on this port (Prometheus); None = none.
    timeout_s: a peer that does not answer fails the call after this long.
    job_token: for a coordinator started with --job-tokens (issue 28), a token of job_id, sent
        with its plan requests and its rendezvous ("coordinator:..."); None = $FCP_JOB_TOKEN if
        set, else none. A refused token raises FcpError (PERMISSION_DENIED or UNAUTHENTICATED,
        naming the job) from cp.plan: it never falls back to a local plan.
    """

    def __init__(self, rank: int, world_size: int, *, rendezvous=None,
                 coordinator: Optional[str] = None, strategy: str = "auto",
                 model: Model = Model(), device="cpu", transport: Optional[str] = None,
                 metrics_port: Optional[int] = None, job_id: str = "fcp_torch",
                 timeout_s: float = 300.0, threads: int = 0,
                 interface_address: Optional[str] = None, job_token: Optional[str] = None):
        self.world_size = _int("world_size", world_size, 1)
        self.rank = _int("rank", rank, 0)
        if rank >= world_size:
            raise ValueError(f"rank: {rank} is not below world_size {world_size}")
        if not isinstance(model, Model):
            raise TypeError(f"model: a fcp_torch.Model, got {type(model).__name__}")
        if not isinstance(strategy, str) or not strategy:
            raise ValueError(f"strategy: a strategy name such as 'auto', got {strategy!r}")
        if coordinator is not None and (not isinstance(coordinator, str) or ":" not in coordinator):
            raise ValueError(f"coordinator: 'HOST:PORT' or None, got {coordinator!r}")
        if metrics_port is not None:
            _int("metrics_port", metrics_port, 1)
        if not isinstance(job_id, str) or not job_id:
            raise ValueError(f"job_id: a non-empty string, got {job_id!r}")
        if not isinstance(timeout_s, (int, float)) or not timeout_s > 0:
            raise ValueError(f"timeout_s: must be > 0, got {timeout_s!r}")
        if job_token is not None and (not isinstance(job_token, str) or not job_token
                                      or not all("!" <= c <= "~" for c in job_token)):
            raise ValueError("job_token: a non-empty string of printable ASCII without spaces, "
                             "or None")  # the token itself is a secret: never in a message
        self.model, self.strategy, self.job_id = model, strategy, job_id
        self.device = _device(device)
        if transport is None:
            transport = "loopback" if world_size == 1 else "gloo"
        if transport not in ("loopback", "gloo", "nccl"):
            raise ValueError(f"transport: 'gloo', 'nccl' or 'loopback' (world_size 1), got "
                             f"{transport!r}")
        if transport == "nccl" and self.device.type != "cuda":
            raise ValueError("transport: 'nccl' needs device 'cuda'")
        store, rendezvous = self._rendezvous(rendezvous, coordinator)

        self._lib = _capi.library()
        self._contexts = weakref.WeakSet()
        self._step = None
        self._prefetched = {}  # step -> (lengths, _mask_key(masks))
        self._executor = self._client = None
        self.stats = dict.fromkeys(_STATS, 0)
        options = _capi.ExecutorOptions()
        self._lib.fcp_executor_options_init(ctypes.byref(options))
        options.rank, options.world_size = rank, world_size
        options.transport, options.rendezvous = _bytes(transport), _bytes(rendezvous)
        options.job_id, options.device = _bytes(job_id), _bytes(self.device.type)
        options.cuda_device = self.device.index or 0
        if interface_address is not None:
            options.interface_address = _bytes(interface_address)
        options.timeout_seconds, options.threads = float(timeout_s), threads
        options.metrics_port = metrics_port or 0
        options.job_token = _bytes(job_token)
        if store is not None:
            options.store = ctypes.pointer(store.struct)
        executor = ctypes.c_void_p()
        try:
            _capi.call("fcp_executor_new", ctypes.byref(options), ctypes.byref(executor))
        except _capi.FcpError as error:
            if store is not None and store.errors:
                error.args = (f"{error.args[0]} (store: {'; '.join(store.errors[-3:])})",)
            raise
        self._executor = executor.value
        self._store = store  # the callbacks stay alive as long as the executor

        client_options = _capi.ClientOptions()
        self._lib.fcp_client_options_init(ctypes.byref(client_options))
        client_options.target = _bytes(coordinator)
        client_options.local_fallback = 1
        client = ctypes.c_void_p()
        try:
            _capi.call("fcp_client_new_auth", ctypes.byref(client_options), None,
                       _bytes(job_token), ctypes.byref(client))
        except _capi.FcpError:
            self.close()
            raise
        self._client = client.value

    def _rendezvous(self, rendezvous, coordinator):
        """(StoreAdapter or None, rendezvous string or None)."""
        if rendezvous is None:
            if coordinator is not None:
                return None, "coordinator:" + coordinator
            if self.world_size > 1:
                raise ValueError("rendezvous: needed at world_size > 1 (a torch.distributed "
                                 "Store, 'file:DIR' or 'coordinator:HOST:PORT')")
            return None, None
        if isinstance(rendezvous, str):
            if not rendezvous.startswith(("file:", "coordinator:")):
                raise ValueError("rendezvous: a torch.distributed Store, 'file:DIR' or "
                                 f"'coordinator:HOST:PORT', got {rendezvous!r}")
            return None, rendezvous
        return StoreAdapter(rendezvous), None

    # ---- lifetime ----
    def close(self) -> None:
        """Frees every context still held, the executor and the planner client. Idempotent."""
        for context in list(self._contexts):
            context.free()
        if self._executor is not None:
            self._lib.fcp_executor_free(self._executor)
            self._executor = None
        if self._client is not None:
            self._lib.fcp_client_free(self._client)
            self._client = None

    def __enter__(self) -> "ContextParallel":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        if getattr(self, "_lib", None) is not None and getattr(self, "_contexts", None) is not None:
            self.close()

    def _live(self) -> None:
        if self._executor is None:
            raise RuntimeError("ContextParallel: already closed")

    # ---- planning and dispatch ----
    def _batch(self, lengths, masks, step):
        """(fcp_batch, fcp_mask array or None, the checked lengths) for this rank's slice."""
        if isinstance(lengths, torch.Tensor):
            lengths = lengths.tolist()
        if isinstance(lengths, (str, bytes)) or not hasattr(lengths, "__len__") or not lengths:
            raise ValueError(f"lengths: a non-empty sequence of ints, got {lengths!r}")
        lengths = [_int(f"lengths[{i}]", n, 1) for i, n in enumerate(lengths)]
        mask_array = None
        if masks is not None:
            if len(masks) != len(lengths):
                raise ValueError(f"masks: {len(masks)} masks for {len(lengths)} documents")
            for i, mask in enumerate(masks):
                if not isinstance(mask, Mask):
                    raise TypeError(f"masks[{i}]: a fcp_torch.Mask, got {type(mask).__name__}")
            mask_array = (_capi.MaskStruct * len(masks))(*(m._struct() for m in masks))
        _int("step", step, 0)
        batch = _capi.Batch()
        self._lib.fcp_batch_init(ctypes.byref(batch))
        batch.job_id, batch.step, batch.strategy = _bytes(self.job_id), step, _bytes(self.strategy)
        batch.document_lengths = (ctypes.c_int64 * len(lengths))(*lengths)
        batch.num_documents = len(lengths)
        batch.num_q_heads, batch.num_kv_heads = self.model.num_q_heads, self.model.num_kv_heads
        batch.head_dim, batch.num_workers = self.model.head_dim, self.world_size
        batch.ranks, batch.num_ranks = ctypes.pointer(ctypes.c_int32(self.rank)), 1
        return batch, mask_array, lengths

    def plan(self, lengths: Sequence[int], masks: Optional[Sequence[Mask]] = None,
             step: int = 0) -> Plan:
        """The plan of one step's batch (documents of `lengths` tokens, concatenated in this
        order into global token indices). Every rank must call it with the same arguments.
        Collects the plan `prefetch` started for this step when the batch is the same."""
        self._live()
        batch, mask_array, lengths = self._batch(lengths, masks, step)
        handle = ctypes.c_void_p()
        prefetched = self._prefetched.pop(step, None)
        if prefetched is not None:
            try:
                _capi.call("fcp_client_get", self._client, step, ctypes.byref(handle))
            except _capi.FcpError:
                handle.value = None  # planned again below
            if prefetched != (lengths, _mask_key(masks)):  # another batch: not this one's plan
                self._lib.fcp_plan_free(handle)
                handle.value = None
        if not handle.value:
            _capi.call("fcp_client_plan_masked_model", self._client, ctypes.byref(batch),
                       mask_array, ctypes.byref(self.model._struct(self._lib)),
                       ctypes.byref(handle))
        self._step = step
        return Plan(handle.value, self, step, self.world_size, self.rank, lengths, masks)

    def prefetch(self, lengths: Sequence[int], step: int,
                 masks: Optional[Sequence[Mask]] = None) -> None:
        """Starts planning a later step's batch (documents of `lengths` tokens, with `masks` as
        in plan(); None: all causal) in the background, from the coordinator, overlapping this
        step's work; plan(lengths, masks, step=step) with the same batch collects it."""
        self._live()
        batch, mask_array, lengths = self._batch(lengths, masks, step)
        if step in self._prefetched:
            raise ValueError(f"step: {step} is already prefetched")
        _capi.call("fcp_client_prefetch_masked_model", self._client, ctypes.byref(batch),
                   mask_array, ctypes.byref(self.model._struct(self._lib)))
        self._prefetched[step] = (lengths, _mask_key(masks))

    def planner_stats(self) -> dict:
        """The planner client's counters: requests, rpcs, retries, fallbacks, errors,
        prefetches, prefetch_hits."""
        self._live()
        stats = _capi.ClientStats()
        self._lib.fcp_client_get_stats(self._client, ctypes.byref(stats))
        return {name: getattr(stats, name) for name, _ in stats._fields_}

    def _check_plan(self, plan) -> None:
        self._live()
        if not isinstance(plan, Plan):
            raise TypeError(f"plan: a fcp_torch.Plan from cp.plan(), got {type(plan).__name__}")
        if plan.world_size != self.world_size:
            raise ValueError(f"plan: made for world_size {plan.world_size}, but this "
                             f"ContextParallel has world_size {self.world_size}")
        if not plan.owned_by(self):
            raise ValueError("plan: made by another ContextParallel")
        if plan.step != self._step:
            raise ValueError(f"plan: made for step {plan.step}, but the current step is "
                             f"{self._step} (the latest cp.plan call)")
        plan.handle  # noqa: B018 - raises if freed

    def dispatch(self, x: torch.Tensor, plan: Plan) -> torch.Tensor:
        """This rank's rows of the global [total_tokens, ...] tensor x, in local order
        (autograd-aware; on x's device)."""
        self._check_plan(plan)
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x: a torch.Tensor, got {type(x).__name__}")
        if x.dim() < 1 or x.shape[0] != plan.total_tokens:
            raise ValueError(f"x: shape {tuple(x.shape)}, but the plan's batch has "
                             f"{plan.total_tokens} tokens (dimension 0)")
        return x.index_select(0, plan.indices_on(x.device)[0])

    def positions(self, plan: Plan) -> torch.Tensor:
        """Each local token's position within its document (int64, on this rank's device)."""
        self._check_plan(plan)
        return plan.indices_on(self.device)[1]

    def global_indices(self, plan: Plan) -> torch.Tensor:
        """Each local token's global index (int64, on this rank's device)."""
        self._check_plan(plan)
        return plan.indices_on(self.device)[0]

    # ---- attention ----
    def _check_tensor(self, name: str, t, shape) -> None:
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name}: a torch.Tensor, got {type(t).__name__}")
        if t.dtype != self.model.torch_dtype:
            raise TypeError(f"{name}: dtype {t.dtype}, but the model's dtype is "
                            f"{self.model.torch_dtype}")
        if t.device != self.device:
            raise ValueError(f"{name}: on {t.device}, but this ContextParallel runs on "
                             f"{self.device}")
        if tuple(t.shape) != shape:
            raise ValueError(f"{name}: shape {tuple(t.shape)}, expected {shape} "
                             "[local tokens, heads, head_dim]")
        if not t.is_contiguous():
            raise ValueError(f"{name}: not contiguous (call .contiguous())")

    def attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                  plan: Plan) -> torch.Tensor:
        """Attention of this rank's queries over their documents' keys on every rank, under
        the documents' masks, scaled by 1/sqrt(head_dim). q: [local, q_heads, d], k and v:
        [local, kv_heads, d] (this rank's rows in dispatch order). Autograd-aware."""
        self._check_plan(plan)
        m, n = self.model, plan.num_tokens
        self._check_tensor("q", q, (n, m.num_q_heads, m.head_dim))
        self._check_tensor("k", k, (n, m.num_kv_heads, m.head_dim))
        self._check_tensor("v", v, (n, m.num_kv_heads, m.head_dim))
        if torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad):
            return Attention.apply(q, k, v, self, plan)
        return self._forward(q, k, v, plan, keep_context=False)[0]

    def _stream(self):
        if self.device.type != "cuda":
            return None
        return torch.cuda.current_stream(self.device).cuda_stream

    def _shape(self) -> _capi.AttentionShape:
        m = self.model
        return _capi.AttentionShape(m.num_q_heads, m.num_kv_heads, m.head_dim, m.dtype_code)

    def _add_stats(self) -> None:
        stats = _capi.ExecStats()
        self._lib.fcp_executor_last_stats(self._executor, ctypes.byref(stats))
        for name in _STATS:
            self.stats[name] += getattr(stats, name)

    def _forward(self, q, k, v, plan, keep_context=True):
        """(o, lse, Context or None): without keep_context (no backward will follow) the
        library keeps nothing."""
        self._live()
        o = torch.empty_like(q)
        lse = torch.empty((q.shape[0], q.shape[1]), dtype=torch.float32, device=q.device)
        handle = ctypes.c_void_p()
        _capi.call("fcp_forward", self._executor, plan.handle, plan.step,
                   ctypes.byref(self._shape()), plan.num_tokens, q.data_ptr(), k.data_ptr(),
                   v.data_ptr(), o.data_ptr(), lse.data_ptr(), self._stream(),
                   ctypes.byref(handle) if keep_context else None)
        self._add_stats()
        return o, lse, Context(self, handle.value) if keep_context else None

    def _backward(self, context, grad_o, q, k, v):
        self._live()
        if grad_o.dtype != q.dtype or grad_o.shape != q.shape:
            raise ValueError(f"grad of attention's output: {grad_o.dtype} {tuple(grad_o.shape)}, "
                             f"expected {q.dtype} {tuple(q.shape)}")
        dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
        _capi.call("fcp_backward", self._executor, context.handle, grad_o.data_ptr(),
                   dq.data_ptr(), dk.data_ptr(), dv.data_ptr(), self._stream())
        self._add_stats()
        return dq, dk, dv

    def reset_stats(self) -> dict:
        """The stats summed since the last reset (seconds, bytes, tiles), and zeroes them."""
        stats, self.stats = self.stats, dict.fromkeys(_STATS, 0)
        return stats

    # ---- undispatch ----
    def undispatch(self, x: torch.Tensor, plan: Plan) -> torch.Tensor:
        """The global [total_tokens, ...] tensor with every rank's rows of x in global order
        (a collective: every rank calls it). Its gradient sums every rank's gradient of the
        global tensor into each rank's rows."""
        self._check_plan(plan)
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x: a torch.Tensor, got {type(x).__name__}")
        if x.device != self.device:
            raise ValueError(f"x: on {x.device}, but this ContextParallel runs on {self.device}")
        if x.dim() < 1 or x.shape[0] != plan.num_tokens:
            raise ValueError(f"x: shape {tuple(x.shape)}, but this rank holds "
                             f"{plan.num_tokens} tokens of the plan (dimension 0)")
        if not x.is_contiguous():
            raise ValueError("x: not contiguous (call .contiguous())")
        if torch.is_grad_enabled() and x.requires_grad:
            if x.dtype not in _GRAD_DTYPES:
                raise TypeError(f"x: dtype {x.dtype} cannot carry gradients through undispatch "
                                "(bfloat16, float16 or float32)")
            return Undispatch.apply(x, self, plan)
        return self._gather_rows(x, plan)

    def _gather_rows(self, x, plan):
        self._live()
        out = torch.empty((plan.total_tokens, *x.shape[1:]), dtype=x.dtype, device=x.device)
        row_bytes = x[0].numel() * x.element_size() if x.dim() > 1 else x.element_size()
        _capi.call("fcp_gather_rows", self._executor, plan.handle, plan.step, row_bytes,
                   x.data_ptr(), out.data_ptr())
        return out

    def _scatter_add_rows(self, grad, plan, local_shape):
        self._live()
        if grad.shape[0] != plan.total_tokens or grad.dtype not in _GRAD_DTYPES:
            raise ValueError(f"grad of undispatch's output: {grad.dtype} {tuple(grad.shape)}")
        local = torch.empty(local_shape, dtype=grad.dtype, device=grad.device)
        row_elements = grad[0].numel() if grad.dim() > 1 else 1
        _capi.call("fcp_scatter_add_rows", self._executor, plan.handle, plan.step,
                   _GRAD_DTYPES[grad.dtype], row_elements, grad.data_ptr(), local.data_ptr())
        return local
