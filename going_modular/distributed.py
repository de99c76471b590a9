# Written by notebooks/05_going_modular.ipynb: edit the notebook, not this file.
"""Training with several processes (torchrun + DistributedDataParallel): the few helpers it needs.

In an ordinary single-process run init_distributed returns at once and all_reduce_sum and unwrap
return their input, so the rest of the package calls them unconditionally; split_data and shard are only
called for create_dataloaders(..., distributed=True).
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Dataset, DistributedSampler, Subset


def is_distributed() -> bool:
    """True inside a process group (started by torchrun and joined with init_distributed)."""
    return dist.is_available() and dist.is_initialized()


def init_distributed(device: torch.device) -> tuple[int, int, torch.device]:
    """Join the process group when torchrun started several processes; return (rank, world size, device).

    torchrun tells each process who it is through RANK, LOCAL_RANK and WORLD_SIZE. GPUs talk
    through the NCCL backend (one GPU per process, picked by LOCAL_RANK), CPU processes through gloo.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return 0, 1, device
    if device.type == "cuda":
        local_rank, gpus = int(os.environ["LOCAL_RANK"]), torch.cuda.device_count()
        if local_rank >= gpus:
            raise RuntimeError(
                f"torchrun started process {local_rank} on a machine with {gpus} GPU(s); DDP on CUDA uses "
                f"one GPU per process. Use --nproc_per_node={gpus} or fewer, or --device cpu (gloo)."
            )
        device = torch.device("cuda", local_rank)  # one GPU per process
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), world_size, device


def split_data(train_data: Dataset, test_data: Dataset, seed: int | None) -> tuple[DistributedSampler, Subset]:
    """Each process's part: a DistributedSampler over the training set, a disjoint shard of the test set.

    The sampler repeats a few training images when the size does not divide evenly (every process
    gets as many); the test shards do not overlap and are not padded, so each image counts once.
    """
    if not is_distributed():
        raise RuntimeError("distributed=True needs torch.distributed.init_process_group() first (torchrun).")
    sampler = DistributedSampler(train_data, shuffle=True, seed=seed or 0)
    return sampler, shard(test_data)


def shard(data: Dataset) -> Subset:
    """This process's part of an evaluation set (validation or test): every world-size-th item, no padding."""
    rank, world = dist.get_rank(), dist.get_world_size()
    return Subset(data, range(rank, len(data), world))


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum `tensor` over all processes, in place (every process gets the total); alone, leave it."""
    if is_distributed():
        dist.all_reduce(tensor)
    return tensor


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DistributedDataParallel (whose state_dict keys gain "module."), or the model itself."""
    return getattr(model, "module", model)
