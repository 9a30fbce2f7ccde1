"""Plain per-document attention in one process: what ContextParallel.attention computes, for
tests and single-process reference runs. Autograd-aware, any dtype (float64 for checks)."""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch

from fcp_torch.model import Mask


def document_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                       lengths: Sequence[int], masks: Optional[Sequence[Mask]] = None,
                       return_lse: bool = False):
    """Global q [total, q_heads, d], k and v [total, kv_heads, d] (documents concatenated in
    order): each document's queries attend to its own keys under its mask (causal by default),
    softmax scale 1/sqrt(d), grouped-query heads (q head h reads kv head h // (q_heads/kv_heads)).
    Returns o [total, q_heads, d] (and lse [total, q_heads] if return_lse)."""
    group = q.shape[1] // k.shape[1]
    scale = 1.0 / math.sqrt(q.shape[2])
    outputs, lses, begin = [], [], 0
    for index, n in enumerate(lengths):
        mask = masks[index] if masks is not None else Mask.causal()
        qd = q[begin:begin + n]
        kd = k[begin:begin + n].repeat_interleave(group, dim=1)
        vd = v[begin:begin + n].repeat_interleave(group, dim=1)
        scores = torch.einsum("ihd,jhd->hij", qd, kd) * scale
        i = torch.arange(n, device=q.device)
        allowed = mask.allowed(i[:, None], i[None, :]).to(q.device)
        scores = scores.masked_fill(~allowed, float("-inf"))
        outputs.append(torch.einsum("hij,jhd->ihd", torch.softmax(scores, dim=-1), vd))
        lses.append(torch.logsumexp(scores, dim=-1).transpose(0, 1))
        begin += n
    o = torch.cat(outputs)
    return (o, torch.cat(lses)) if return_lse else o
