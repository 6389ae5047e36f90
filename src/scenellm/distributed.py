"""Data-parallel training across processes (``torch.distributed``), seen from one rank.

A stage launched by ``torchrun`` finds ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` in its
environment; :func:`join` opens the process group (NCCL on CUDA, gloo on CPU) and returns
the :class:`World`. Outside ``torchrun`` the world is one process and every collective is
the identity, so a recipe is written once for both.

Gradients are averaged by :class:`torch.nn.parallel.DistributedDataParallel`; this module
only adds what a recipe needs around it: which part of a global batch this rank takes
(:meth:`World.shard`, a :class:`~torch.utils.data.distributed.DistributedSampler` over the
batch), rank 0's value of a Python object, means of logged figures, and agreement on a
failure so that no rank waits forever in a collective its peers left.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0 writes the outputs, checkpoints and metrics."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.size > 1

    def shard(self, items: list) -> list:
        """This rank's part of a global batch: items ``rank, rank + size, …``; a batch
        shorter than a multiple of ``size`` is padded from its start, so every rank steps."""
        if not self.active:
            return list(items)
        from torch.utils.data.distributed import DistributedSampler

        sampler = DistributedSampler(items, num_replicas=self.size, rank=self.rank,
                                     shuffle=False)
        return [items[i] for i in sampler]

    def broadcast(self, value):
        """Rank 0's ``value`` on every rank (any picklable object)."""
        if not self.active:
            return value
        import torch.distributed as dist

        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        """The mean over ranks of each figure (same keys on every rank)."""
        if not self.active or not values:
            return values
        import torch
        import torch.distributed as dist

        keys = sorted(values)
        total = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64)
        dist.all_reduce(total)
        return dict(zip(keys, (total / self.size).tolist(), strict=True))

    def any(self, flag: bool) -> bool:
        """True on every rank when ``flag`` is true on at least one."""
        if not self.active:
            return flag
        import torch
        import torch.distributed as dist

        value = torch.tensor([float(flag)])
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())


def world_from_env() -> World:
    """The world ``torchrun`` describes in the environment (one process without it)."""
    return World(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                 int(os.environ.get("LOCAL_RANK", 0)))


def join(device_type: str, timeout_minutes: float = 30.0) -> World:
    """Open the default process group for this rank (once); NCCL for CUDA, gloo for CPU."""
    import torch.distributed as dist

    world = world_from_env()
    if world.active and not dist.is_initialized():
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo",
                                timeout=timedelta(minutes=timeout_minutes))
    return world


def leave() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def wrap(model, world: World, device, unused: bool = True):
    """``model`` under DistributedDataParallel in a world of several processes, else
    ``model``. ``unused``: some parameters may get no gradient in a step (a relation-free
    batch leaves heads idle on one rank while another trains them)."""
    if not world.active:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index if device.index is not None else world.local_rank] \
        if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=unused)


def _grouped() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def all_sum(*tensors) -> None:
    """Sum each tensor over the ranks, in place (nothing without a process group): the
    statistics a model keeps outside its gradients, e.g. a codebook's EMA counts."""
    if _grouped():
        import torch.distributed as dist

        for tensor in tensors:
            dist.all_reduce(tensor)


def from_rank_0(tensor) -> None:
    """Rank 0's values of ``tensor`` on every rank, in place (nothing without a group)."""
    if _grouped():
        import torch.distributed as dist

        dist.broadcast(tensor, src=0)
