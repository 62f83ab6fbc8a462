"""The health gate's collective test: bus bandwidth per node, measured with all-reduce.

    torchrun --nnodes=K --node-rank=I --master-addr=A --master-port=P --nproc-per-node=N \\
        bandwidth_check.py --size-mib 64 --iters 10

Every process joins one process group (nccl on GPUs, gloo on the CPU). Node 0 (the first node
that passed the node checks) is the reference: for each other node i, the processes of nodes 0
and i all-reduce a tensor of --size-mib MiB --iters times, and node i's bus bandwidth is
size / time x 2(n-1)/n for those n processes (the nccl-tests formula). A node with a slow link
slows its own pair only; node 0 takes the best of its pairs. Then one all-reduce across every
process gives the group's bus bandwidth. The first process of each node prints one line,
`BANDWIDTH {"node_rank": I, "bandwidth_gbps": ..., "group_gbps": ...}`.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import time

import torch
import torch.distributed as dist


def _timed_all_reduce(tensor, group, iters: int) -> float:
    dist.all_reduce(tensor, group=group)  # warm-up: connections and buffers
    if tensor.is_cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(iters):
        dist.all_reduce(tensor, group=group)
    if tensor.is_cuda:
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / iters


def bus_bandwidth_gbps(nbytes: int, seconds: float, ranks: int) -> float:
    """nccl-tests' all-reduce bus bandwidth in GB/s: algbw x 2(n-1)/n."""
    return nbytes / seconds * 2 * (ranks - 1) / ranks / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=float, default=64)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=120, help="seconds per collective")
    args = parser.parse_args()

    cuda = torch.cuda.is_available()
    local_rank = int(os.environ["LOCAL_RANK"])
    if cuda:
        torch.cuda.set_device(local_rank)
    dist.init_process_group(
        "nccl" if cuda else "gloo", timeout=datetime.timedelta(seconds=args.timeout)
    )
    world, rank = dist.get_world_size(), dist.get_rank()
    per_node = int(os.environ["LOCAL_WORLD_SIZE"])
    nodes, node = world // per_node, rank // per_node
    device = torch.device("cuda", local_rank) if cuda else torch.device("cpu")
    numel = max(1, int(args.size_mib * 2**20 / 4))
    tensor = torch.ones(numel, dtype=torch.float32, device=device)
    nbytes = numel * 4

    pairs = {}
    for other in range(1, nodes):
        ranks = list(range(per_node)) + list(range(other * per_node, (other + 1) * per_node))
        group = dist.new_group(ranks)  # every process creates every group
        if rank in ranks:
            seconds = _timed_all_reduce(tensor, group, args.iters)
            pairs[other] = bus_bandwidth_gbps(nbytes, seconds, len(ranks))
    group_gbps = bus_bandwidth_gbps(nbytes, _timed_all_reduce(tensor, None, args.iters), world)
    if local_rank == 0:
        mine = max(pairs.values()) if node == 0 and pairs else pairs.get(node)
        line = {"node_rank": node, "bandwidth_gbps": mine, "group_gbps": group_gbps}
        print("BANDWIDTH " + json.dumps(line), flush=True)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
