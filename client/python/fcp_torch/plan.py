"""Plan: one step's plan as this rank sees it (its tokens in local order, their positions)."""

from __future__ import annotations

import ctypes
import weakref
from typing import Dict, List, Optional, Sequence

import torch

import fcp_capi as _capi
from fcp_torch.model import Mask


def rank_tokens(handle: int, rank: int):
    """(global indices, positions) of `rank`'s tokens in local order, as int64 CPU tensors."""
    count = ctypes.c_int64()
    _capi.call("fcp_plan_rank_tokens", handle, rank, None, None, 0, ctypes.byref(count))
    index = torch.empty(count.value, dtype=torch.int64)
    position = torch.empty(count.value, dtype=torch.int64)
    as_ptr = lambda t: ctypes.cast(t.data_ptr(), ctypes.POINTER(ctypes.c_int64))  # noqa: E731
    _capi.call("fcp_plan_rank_tokens", handle, rank, as_ptr(index), as_ptr(position),
               count.value, ctypes.byref(count))
    if count.value != index.numel():
        raise RuntimeError(f"fcp_plan_rank_tokens: {count.value} rows, then {index.numel()}")
    return index, position


class Plan:
    """Made by ContextParallel.plan; pass it to dispatch/positions/attention/undispatch.

    Attributes: id, strategy, step, world_size, rank, lengths, masks, total_tokens (the batch),
    num_tokens (this rank's), global_index and position (int64 CPU tensors, local order),
    predicted_ms (forward + backward of one attention layer, as the planner's cost model sees
    it), cache_hit, source ("coordinator", "local_fallback", "local").
    """

    _SOURCES = {0: "coordinator", 1: "local_fallback", 2: "local"}

    def __init__(self, handle: int, owner, step: int, world_size: int, rank: int,
                 lengths: List[int], masks: Optional[Sequence[Mask]]):
        lib = _capi.library()
        self._handle = handle
        self._finalizer = weakref.finalize(self, lib.fcp_plan_free, handle)
        self._owner = weakref.ref(owner)
        self.step = step
        self.world_size = world_size
        self.rank = rank
        self.lengths = list(lengths)
        self.masks = list(masks) if masks is not None else None
        self.total_tokens = sum(self.lengths)
        self.id = lib.fcp_plan_id(handle).decode()
        self.strategy = lib.fcp_plan_strategy(handle).decode()
        self.cache_hit = bool(lib.fcp_plan_cache_hit(handle))
        self.source = self._SOURCES.get(lib.fcp_plan_source_of(handle), "unknown")
        self.predicted_ms = lib.fcp_plan_predicted_step_ms(handle)
        self.global_index, self.position = rank_tokens(handle, rank)
        self.num_tokens = self.global_index.numel()
        self._on_device: Dict[torch.device, tuple] = {}

    @property
    def handle(self) -> int:
        if not self._finalizer.alive:
            raise ValueError("plan: already freed")
        return self._handle

    def owned_by(self, owner) -> bool:
        return self._owner() is owner

    def indices_on(self, device: torch.device):
        """(global_index, position) on `device` (cached)."""
        if device not in self._on_device:
            self._on_device[device] = (self.global_index.to(device), self.position.to(device))
        return self._on_device[device]

    def free(self) -> None:
        self._finalizer()

    def __repr__(self) -> str:
        return (f"Plan(id={self.id!r}, strategy={self.strategy!r}, step={self.step}, "
                f"rank={self.rank}/{self.world_size}, tokens={self.num_tokens}/"
                f"{self.total_tokens}, source={self.source!r})")
