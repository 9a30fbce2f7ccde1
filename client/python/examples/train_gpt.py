#!/usr/bin/env python3
"""A small GPT trained with fcp context parallelism: W ranks as processes, attention through
fcp_torch (fcp's gloo transport for K/V), weight gradients all-reduced with torch.distributed.

    PYTHONPATH=client/python python3 client/python/examples/train_gpt.py --world 4 --steps 20
    PYTHONPATH=client/python python3 client/python/examples/train_gpt.py --reference --steps 20

The data is real text that ships with Debian: the Python standard library's .py files, one
document per file, bytes as tokens (vocabulary 256), the files of at most --max-doc-len bytes taken
whole; a step's batch is drawn (seeded) until it holds --tokens-per-step tokens, the last document
trimmed. Documents keep their real, uneven lengths: nothing is padded.

Each rank computes the loss on its own tokens (inputs and targets dispatched by the plan); the
step's loss is the sum over ranks / the batch's target count, so every rank's backward yields its
share and the all-reduced (summed) weight gradients are the whole batch's. --reference runs the
same model in one process with plain per-document attention: the per-step losses and the final
weights must match. Plans come from fcp-coordinator: --coordinator HOST:PORT, or one is started
(FCP_COORDINATOR or build/service/fcp-coordinator); --coordinator local plans in each rank.
"""

from __future__ import annotations

import argparse
import datetime
import glob
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import fcp_torch  # noqa: E402
from fcp_torch.reference import document_attention  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__)))))


# ---- data ----
def corpus(directory: str, max_doc_len: int):
    """The .py files under `directory` of 2 to max_doc_len bytes, sorted."""
    files = sorted(f for f in glob.glob(os.path.join(directory, "**", "*.py"), recursive=True)
                   if os.path.isfile(f) and 2 <= os.path.getsize(f) <= max_doc_len)
    if not files:
        raise SystemExit(f"--data-dir {directory}: no .py file of 2 to {max_doc_len} bytes")
    return files


def draw_batch(files, seed: int, step: int, tokens: int):
    """(document lengths, the batch's bytes as one int64 tensor), the same on every rank."""
    rng = random.Random(seed * 1_000_003 + step)
    documents = []
    while tokens > 0:
        with open(rng.choice(files), "rb") as f:
            data = f.read(tokens)
        documents.append(data)
        tokens -= len(data)
    lengths = [len(d) for d in documents]
    return lengths, torch.tensor(list(b"".join(documents)), dtype=torch.int64)


def next_token_targets(tokens: torch.Tensor, lengths) -> torch.Tensor:
    """targets[t] = tokens[t + 1] within a document; -100 (ignored) on each document's last."""
    targets = torch.full_like(tokens, -100)
    begin = 0
    for n in lengths:
        targets[begin:begin + n - 1] = tokens[begin + 1:begin + n]
        begin += n
    return targets


# ---- model ----
def rope(x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Rotary embedding of x [tokens, heads, d] at each token's position in its document."""
    half = x.shape[-1] // 2
    inv_freq = 1.0 / (10000 ** (torch.arange(half, dtype=torch.float32,
                                              device=x.device) / half))
    angles = positions.to(torch.float32)[:, None] * inv_freq[None, :]
    cos, sin = angles.cos()[:, None, :].to(x.dtype), angles.sin()[:, None, :].to(x.dtype)
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


class Block(nn.Module):
    def __init__(self, model: fcp_torch.Model):
        super().__init__()
        d, hd = model.hidden_size, model.head_dim
        self.model = model
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.wq = nn.Linear(d, model.num_q_heads * hd, bias=False)
        self.wkv = nn.Linear(d, 2 * model.num_kv_heads * hd, bias=False)
        self.wo = nn.Linear(model.num_q_heads * hd, d, bias=False)
        gated = model.mlp == "gated"
        self.up = nn.Linear(d, (2 if gated else 1) * model.ffn_hidden_size, bias=False)
        self.down = nn.Linear(model.ffn_hidden_size, d, bias=False)

    def forward(self, x, positions, attention):
        m, n = self.model, x.shape[0]
        h = self.ln1(x)
        q = rope(self.wq(h).view(n, m.num_q_heads, m.head_dim), positions)
        k, v = self.wkv(h).view(n, 2, m.num_kv_heads, m.head_dim).unbind(1)
        o = attention(q.contiguous(), rope(k, positions).contiguous(), v.contiguous())
        x = x + self.wo(o.reshape(n, m.num_q_heads * m.head_dim))
        up = self.up(self.ln2(x))
        if m.mlp == "gated":
            gate, up = up.chunk(2, dim=-1)
            up = F.silu(gate) * up
        else:
            up = F.gelu(up)
        return x + self.down(up)


class GPT(nn.Module):
    def __init__(self, model: fcp_torch.Model, layers: int):
        super().__init__()
        self.embed = nn.Embedding(256, model.hidden_size)
        self.blocks = nn.ModuleList(Block(model) for _ in range(layers))
        self.norm = nn.LayerNorm(model.hidden_size)
        self.head = nn.Linear(model.hidden_size, 256, bias=False)

    def forward(self, tokens, positions, attention):
        x = self.embed(tokens)
        for block in self.blocks:
            x = block(x, positions, attention)
        return self.head(self.norm(x))


# ---- training ----
def build(args, device):
    model = fcp_torch.Model(num_q_heads=args.heads, num_kv_heads=args.kv_heads,
                            head_dim=args.dim // args.heads, dtype="FP32", hidden_size=args.dim,
                            ffn_hidden_size=4 * args.dim, mlp=args.mlp)
    torch.manual_seed(args.seed)
    gpt = GPT(model, args.layers).to(device)  # initialized on the CPU: the same everywhere
    optimizer = torch.optim.AdamW(gpt.parameters(), lr=args.lr, weight_decay=0.01)
    return model, gpt, optimizer


def train(args, rank: int, world: int) -> int:
    """One rank (or, with world 0, the single-process reference)."""
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and device.index is None:  # ranks share the GPUs round-robin
        device = torch.device("cuda", rank % torch.cuda.device_count())
    model, gpt, optimizer = build(args, device)
    files = corpus(args.data_dir, args.max_doc_len)
    cp = None
    if world:
        import torch.distributed as dist
        store = dist.FileStore(args.store, world)
        timeout = datetime.timedelta(seconds=args.timeout_s)
        dist.init_process_group("gloo", store=dist.PrefixStore("torch", store), rank=rank,
                                world_size=world, timeout=timeout)
        coordinator = None if args.coordinator == "local" else args.coordinator
        cp = fcp_torch.ContextParallel(rank, world, rendezvous=store, coordinator=coordinator,
                                       strategy=args.strategy, model=model, job_id=args.job,
                                       device=device,
                                       threads=args.threads, timeout_s=args.timeout_s)
    log = open(args.json_log, "w") if args.json_log and rank == 0 else None
    for step in range(args.steps):
        start = time.perf_counter()
        lengths, tokens = draw_batch(files, args.seed, step, args.tokens_per_step)
        targets = next_token_targets(tokens, lengths)
        count = int((targets != -100).sum())
        tokens, targets = tokens.to(device), targets.to(device)
        optimizer.zero_grad(set_to_none=True)
        if cp is None:
            positions = torch.cat([torch.arange(n) for n in lengths]).to(device)
            logits = gpt(tokens, positions, lambda q, k, v: document_attention(q, k, v, lengths))
            loss = F.cross_entropy(logits, targets, ignore_index=-100, reduction="sum") / count
            loss.backward()
            total_loss, plan = loss.item(), None
        else:
            plan = cp.plan(lengths, step=step)
            if step + 1 < args.steps:  # the coordinator plans the next batch during this step
                cp.prefetch(draw_batch(files, args.seed, step + 1, args.tokens_per_step)[0],
                            step + 1)
            logits = gpt(cp.dispatch(tokens, plan), cp.positions(plan),
                         lambda q, k, v: cp.attention(q, k, v, plan))
            local_targets = cp.dispatch(targets, plan)
            loss = F.cross_entropy(logits, local_targets, ignore_index=-100,
                                   reduction="sum") / count
            loss.backward()
            grads = [p.grad for p in gpt.parameters()]
            flat = torch.cat([g.reshape(-1) for g in grads] + [loss.detach().reshape(1)])
            dist.all_reduce(flat)  # sum: the weight gradients and the loss of the whole batch
            offset = 0
            for g in grads:
                g.copy_(flat[offset:offset + g.numel()].view_as(g))
                offset += g.numel()
            total_loss = flat[-1].item()
        optimizer.step()
        seconds = time.perf_counter() - start
        record = {"step": step, "loss": total_loss, "tokens": int(tokens.numel()),
                  "documents": len(lengths), "tokens_per_s": tokens.numel() / seconds}
        if cp is not None:
            stats = cp.reset_stats()
            measured = torch.tensor([stats["forward_seconds"] + stats["backward_seconds"]])
            dist.all_reduce(measured, op=dist.ReduceOp.MAX)
            record.update(strategy=plan.strategy, plan_source=plan.source,
                          predicted_attention_ms=plan.predicted_ms * args.layers,
                          measured_attention_ms=measured.item() * 1e3)
        if rank == 0:
            line = (f"step {step:3d} loss {total_loss:.6f} tokens {record['tokens']} in "
                    f"{len(lengths)} docs, {record['tokens_per_s']:.0f} tokens/s")
            if cp is not None:
                line += (f", {plan.strategy} plan ({plan.source}): attention predicted "
                         f"{record['predicted_attention_ms']:.4g} ms, measured "
                         f"{record['measured_attention_ms']:.4g} ms")
            print(line, flush=True)
            if log:
                log.write(json.dumps(record) + "\n")
                log.flush()
    if cp is not None and rank == 0:
        print(f"planner: {cp.planner_stats()}", flush=True)
        if log:
            log.write(json.dumps({"planner": cp.planner_stats()}) + "\n")
    if rank == 0 and args.save_weights:
        torch.save(gpt.state_dict(), args.save_weights)
    if cp is not None:
        cp.close()
        dist.destroy_process_group()
    return 0


# ---- launcher ----
def start_coordinator():
    """(process, "127.0.0.1:PORT") of an fcp-coordinator started here, or (None, "local")."""
    binary = os.environ.get("FCP_COORDINATOR") or os.path.join(ROOT, "build", "service",
                                                                "fcp-coordinator")
    if not os.path.exists(binary):
        print(f"no fcp-coordinator at {binary}: planning locally in each rank", flush=True)
        return None, "local"
    process = subprocess.Popen([binary, "--host", "127.0.0.1", "--port", "0",
                                "--metrics-port", "-1"], stdout=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    match = re.search(r"on port (\d+)", line)
    if not match:
        process.kill()
        raise SystemExit(f"fcp-coordinator did not start: {line!r}")
    return process, f"127.0.0.1:{match.group(1)}"


def launch(args, argv) -> int:
    """Starts the W ranks as processes of this script; the first failure fails the run."""
    coordinator_process = None
    if args.coordinator is None:
        coordinator_process, args.coordinator = start_coordinator()
    with tempfile.TemporaryDirectory() as directory:
        common = [sys.executable, os.path.abspath(__file__), *argv, "--coordinator",
                  args.coordinator, "--store", os.path.join(directory, "store")]
        ranks = [subprocess.Popen([*common, "--rank", str(r)]) for r in range(args.world)]
        code = 0
        try:
            deadline = None
            while any(p.poll() is None for p in ranks):
                failed = [p.returncode for p in ranks if p.returncode not in (None, 0)]
                if failed and deadline is None:  # the others should fail within their timeout
                    deadline = time.monotonic() + args.timeout_s + 30
                if deadline is not None and time.monotonic() > deadline:
                    break
                time.sleep(0.1)
        finally:
            for p in ranks:
                if p.poll() is None:
                    p.kill()
                p.wait()
                code = code or p.returncode
            if coordinator_process is not None:
                coordinator_process.send_signal(signal.SIGTERM)
                coordinator_process.wait(timeout=30)
    if code:
        print(f"train_gpt: a rank failed (exit code {code})", file=sys.stderr)
    return 1 if code else 0


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", type=int, default=4, help="context-parallel ranks")
    parser.add_argument("--reference", action="store_true",
                        help="one process, plain per-document attention")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--tokens-per-step", type=int, default=2048)
    parser.add_argument("--max-doc-len", type=int, default=1024,
                        help="longest file taken, in tokens (bytes)")
    parser.add_argument("--data-dir", default="/usr/lib/python3.11")
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--dim", type=int, default=64, help="hidden size")
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--kv-heads", type=int, default=2)
    parser.add_argument("--mlp", choices=["gated", "plain"], default="gated")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--strategy", default="auto")
    parser.add_argument("--coordinator", help="HOST:PORT, or 'local' (default: start one)")
    parser.add_argument("--job", default="train_gpt")
    parser.add_argument("--device", default="cpu",
                        help="cpu, or cuda (rank r on GPU r %% the GPU count)")
    parser.add_argument("--threads", type=int, default=1, help="torch and fcp CPU threads")
    parser.add_argument("--timeout-s", type=float, default=120)
    parser.add_argument("--json-log", help="write each step's record here (JSON lines)")
    parser.add_argument("--save-weights", help="torch.save the final state_dict here")
    parser.add_argument("--rank", type=int, help=argparse.SUPPRESS)  # set by the launcher
    parser.add_argument("--store", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.dim % args.heads or args.heads % args.kv_heads or (args.dim // args.heads) % 2:
        parser.error("--dim / --heads must be even and --kv-heads must divide --heads")
    return args


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    if args.reference:
        return train(args, 0, 0)
    if args.rank is not None:
        return train(args, args.rank, args.world)
    return launch(args, argv)


if __name__ == "__main__":
    sys.exit(main())
