"""fcp_torch: context-parallel attention planned by fcp, inside a PyTorch trainer.

    import fcp_torch
    cp = fcp_torch.ContextParallel(rank, world_size, rendezvous=store, coordinator="HOST:PORT",
                                   model=fcp_torch.Model(num_q_heads=8, num_kv_heads=2,
                                                         head_dim=64, dtype="FP32"))
    plan = cp.plan(lengths, masks=None, step=step)
    x_local = cp.dispatch(x, plan)
    pos = cp.positions(plan)
    o = cp.attention(q, k, v, plan)
    y = cp.undispatch(o, plan)
    cp.close()

Over libfcp.so (fcp/c_api.h) through ctypes: no torch headers or compiler. The library is found
through FCP_LIBRARY, next to this package, or in the source tree's build/client/.
"""

from fcp_capi import FcpError
from fcp_torch.context_parallel import ContextParallel
from fcp_torch.model import Mask, Model
from fcp_torch.plan import Plan

__all__ = ["ContextParallel", "FcpError", "Mask", "Model", "Plan"]
