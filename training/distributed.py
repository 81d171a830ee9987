"""Training on more than one process: data-parallel (DDP) through torch.distributed, as `torchrun`
starts it. NCCL joins GPUs, gloo joins CPUs.

Every process holds the whole model and the corpus's ids; each step's batch is drawn once from
the same generator in every process, and each takes its own share of its rows (`World.share`),
so the step's gradient, averaged by DDP, is the gradient of the whole batch, as one process
would take it. Evaluations run in the first process and are sent to the others, so every
process takes the same decisions; only the first writes checkpoints, metrics and output.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
from torch import distributed as dist
from torch import nn


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def share(self, rows: torch.Tensor) -> torch.Tensor:
        """This process's rows of a batch drawn alike in every process."""
        return rows if self.size == 1 else rows[self.rank :: self.size]

    def seed_masks(self, seed: int, step: int) -> None:
        """Seed torch's generator for this process's dropout masks of `step`: each process its own
        masks (the same ones would drop the same units of every share), and the same again after a
        resume, whose checkpoint holds only the first process's generator."""
        if self.size > 1:
            torch.manual_seed(seed + (step * self.size + self.rank) * 1_000_003)

    def wrap(self, model: nn.Module) -> nn.Module:
        """The model that a step runs: DDP averages the gradients of all processes in backward."""
        if self.size == 1:
            return model
        device = next(model.parameters()).device
        return nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """`values` summed over every process (a copy)."""
        values = values.clone()
        if self.size > 1:
            dist.all_reduce(values)
        return values

    def from_main(self, value: Any) -> Any:
        """The first process's `value`, in every process."""
        if self.size == 1:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]


ONE = World()  # a single process: no torchrun


def join(device: str) -> tuple[World, str]:
    """The world `torchrun` started this process in (a world of one without it), and this process's
    device: with CUDA, the GPU of its local rank."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return ONE, device
    if device == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return World(dist.get_rank(), dist.get_world_size()), device


def leave(world: World, finished: bool) -> None:
    """Close this process's share of the world. A run that `finished` first waits for every process
    to finish too: one that closed its connections while another still read them could make gloo
    abort the other (SIGABRT). A run that failed does not wait: torchrun stops the others."""
    if world.size > 1 and dist.is_initialized():
        if finished:
            dist.barrier()
        dist.destroy_process_group()
