"""Where a training process sits in a torchrun job, and the few collectives training needs.

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK and LOCAL_WORLD_SIZE for each process it starts;
without them a process is rank 0 of 1 and none of this talks to anyone.
"""

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn
from torch import distributed as dist


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1

    @classmethod
    def from_environment(cls) -> "Ranks":
        env = os.environ
        return cls(
            int(env.get("RANK", 0)),
            int(env.get("WORLD_SIZE", 1)),
            int(env.get("LOCAL_RANK", 0)),
            int(env.get("LOCAL_WORLD_SIZE", 1)),
        )

    @property
    def main(self) -> bool:
        return self.rank == 0


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def device_for(ranks: Ranks) -> torch.device:
    """This process's GPU (one per local rank), else the CPU."""
    if torch.cuda.is_available():
        device = torch.device("cuda", ranks.local_rank)
        torch.cuda.set_device(device)
        return device
    return torch.device("cpu")


@contextlib.contextmanager
def process_group(ranks: Ranks, device: torch.device) -> Iterator[None]:
    """NCCL between GPUs, gloo on the CPU; nothing for a single process."""
    if ranks.world == 1:
        yield
        return
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    try:
        yield
    finally:
        dist.destroy_process_group()


def wrap(net: nn.Module, ranks: Ranks, device: torch.device) -> nn.Module:
    """DistributedDataParallel (which starts every rank from rank 0's weights) when distributed."""
    if ranks.world == 1:
        return net
    device_ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(net, device_ids=device_ids)


def from_main(value: object, ranks: Ranks) -> object:
    """Rank 0's value on every rank (pickled, so any object)."""
    if ranks.world == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def mean(value: Tensor, ranks: Ranks) -> float:
    """The mean of a scalar over the ranks."""
    if ranks.world > 1:
        value = value.clone()
        dist.all_reduce(value)
        value /= ranks.world
    return float(value.item())


def sync_buffers(net: nn.Module, ranks: Ranks) -> None:
    """Every rank takes rank 0's buffers (BatchNorm statistics), which rank 0 saves: DDP
    broadcasts them before each forward, so after the last step each rank has its own."""
    if ranks.world > 1:
        for buffer in net.buffers():
            dist.broadcast(buffer, src=0)


def gather_strided(share: np.ndarray, ranks: Ranks, count: int) -> np.ndarray:
    """Rank r holds items r, r + world, ...: every rank receives all `count` items, in order."""
    if ranks.world == 1:
        return share
    shares: list = [None] * ranks.world
    dist.all_gather_object(shares, share)
    gathered = np.zeros(count, dtype=share.dtype)
    for rank, part in enumerate(shares):
        gathered[rank :: ranks.world] = part
    return gathered


def barrier(ranks: Ranks) -> None:
    if ranks.world > 1:
        dist.barrier()
