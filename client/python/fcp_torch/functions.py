"""The autograd functions of fcp_torch: attention (fcp_forward / fcp_backward) and undispatch
(fcp_gather_rows / fcp_scatter_add_rows). ContextParallel checks every argument before these run;
they only move pointers across."""

from __future__ import annotations

import weakref

import torch


class Context:
    """An fcp_context (what backward needs from one forward: the K/V rows received from peers),
    freed by its backward (the library runs backward once per context), when the autograd graph
    that holds it goes away, or by ContextParallel.close()."""

    def __init__(self, cp, handle: int):
        self._handle = handle
        self._finalizer = weakref.finalize(self, cp._lib.fcp_context_free, handle)
        cp._contexts.add(self)

    @property
    def handle(self) -> int:
        if not self._finalizer.alive:
            raise RuntimeError("attention backward: its forward's context is gone (a second "
                               "backward through the same graph, or ContextParallel closed)")
        return self._handle

    def free(self) -> None:
        self._finalizer()


class Attention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, cp, plan):
        o, lse, context = cp._forward(q, k, v, plan)
        ctx.save_for_backward(q, k, v, o)
        ctx.lse, ctx.context, ctx.cp = lse, context, cp
        return o

    @staticmethod
    def backward(ctx, grad_o):
        q, k, v, _ = ctx.saved_tensors  # checks that none was modified in place
        dq, dk, dv = ctx.cp._backward(ctx.context, grad_o.contiguous(), q, k, v)
        ctx.context.free()
        return dq, dk, dv, None, None


class Undispatch(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, cp, plan):
        ctx.cp, ctx.plan, ctx.local_shape = cp, plan, x.shape
        return cp._gather_rows(x, plan)

    @staticmethod
    def backward(ctx, grad):
        return ctx.cp._scatter_add_rows(grad.contiguous(), ctx.plan, ctx.local_shape), None, None
