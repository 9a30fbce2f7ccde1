#!/usr/bin/env python3
"""A trainer rank's loop with fcp: while step s trains, the plan of step s+1 is prefetched.

    PYTHONPATH=client/python:build/python python3 client/python/examples/trainer_loop.py \
        --coordinator localhost:50051 --workers 8 --rank 3 --steps 5

Every rank of the job runs this with its own --rank and the same --seed: they draw the same
batches, so the coordinator plans each step once and answers every rank with its slice. A real
trainer would permute its tokens by the slice's block order and run the attention tiles; here
the step just reports what the plan asks of this rank.
"""

import argparse
import random
import sys

from fcp_client import Model, PlanError, PlannerClient, make_request


def draw_batch(rng: random.Random, tokens: int, lengths_pool):
    """Document lengths summing to exactly `tokens` (the last one trimmed)."""
    lengths = []
    while tokens > 0:
        # From the file if given, else long-tailed like real data (median ~400 tokens).
        n = rng.choice(lengths_pool) if lengths_pool else int(rng.lognormvariate(6, 1.5)) + 1
        lengths.append(min(n, tokens))
        tokens -= lengths[-1]
    return lengths


def request_for(args, step: int, lengths_pool):
    rng = random.Random(args.seed * 1_000_003 + step)  # the same batch on every rank
    lengths = draw_batch(rng, args.workers * args.tokens_per_worker, lengths_pool)
    return make_request(job_id=args.job, step=step, lengths=lengths, workers=args.workers,
                        ranks=[args.rank], model=Model(), strategy=args.strategy)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--coordinator", required=True, help="fcp-coordinator host:port")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--rank", type=int, default=0)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--tokens-per-worker", type=int, default=8192)
    parser.add_argument("--lengths", help="document lengths file, one per line (else synthetic)")
    parser.add_argument("--strategy", default="", help="empty = the coordinator's default")
    parser.add_argument("--job", default="python-example")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    lengths_pool = []
    if args.lengths:
        with open(args.lengths) as f:
            lengths_pool = [int(line) for line in f if line.strip() and not line.startswith("#")]

    with PlannerClient(args.coordinator) as client:
        client.prefetch(request_for(args, 0, lengths_pool))
        for step in range(args.steps):
            try:
                result = client.get(step)
            except PlanError as error:
                print(f"step {step}: planning failed: {error}", file=sys.stderr)
                return 1
            if step + 1 < args.steps:
                client.prefetch(request_for(args, step + 1, lengths_pool))  # overlaps this step
            mine = result.slice(args.rank)
            blocks = result.plan.blocks
            tokens = sum(blocks[b].end - blocks[b].begin for b in mine.blocks)
            print(f"step {step}: plan {result.plan.plan_id} strategy {result.plan.strategy} "
                  f"cache_hit {result.cache_hit} rank {args.rank}: {tokens} tokens, "
                  f"{len(mine.tiles)} tiles, {len(mine.sends)} sends, "
                  f"predicted {mine.predicted.fwd_ms + mine.predicted.bwd_ms:.3f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
