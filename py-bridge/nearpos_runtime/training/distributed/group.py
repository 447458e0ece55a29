"""This process's place in a distributed run, as torch.distributed's launcher describes it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from ..errors import ConfigError

#: How long a collective may wait for the other processes (a rank evaluating on a big test
#: split keeps the others waiting in the next step's gather).
COLLECTIVE_TIMEOUT = timedelta(hours=2)


@dataclass(frozen=True)
class Group:
    """Ranks of this process (from the launcher's environment variables)."""

    rank: int
    world: int
    local_rank: int
    local_world: int
    node: int
    restart: int = 0
    run_id: str = "none"

    @property
    def leader(self) -> bool:
        """The first process of its node: it evaluates, reports events and the result."""
        return self.local_rank == 0

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Group:
        e = dict(os.environ if env is None else env)
        missing = [k for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK") if k not in e]
        if missing:
            raise ConfigError(
                f"not started by torch.distributed's launcher: {', '.join(missing)} not set "
                "(run under torchrun, or set distributed in the config and use the runtime)"
            )
        world = int(e["WORLD_SIZE"])
        return cls(
            rank=int(e["RANK"]),
            world=world,
            local_rank=int(e["LOCAL_RANK"]),
            local_world=int(e.get("LOCAL_WORLD_SIZE", world)),
            node=int(e.get("GROUP_RANK", "0")),
            restart=int(e.get("TORCHELASTIC_RESTART_COUNT", "0")),
            run_id=e.get("TORCHELASTIC_RUN_ID", "none"),
        )

    def device(self, name: str) -> torch.device:
        """This process's device: its own GPU (by local rank) on CUDA, else the CPU."""
        cuda = torch.cuda.is_available() and name != "cpu"
        if name == "cuda" and not torch.cuda.is_available():
            raise ConfigError("device: 'cuda' requested but CUDA is not available here")
        if not cuda:
            return torch.device("cpu")
        if self.local_rank >= torch.cuda.device_count():
            raise ConfigError(
                f"distributed.nproc_per_node: local rank {self.local_rank} has no GPU "
                f"({torch.cuda.device_count()} visible); use at most one process per GPU"
            )
        torch.cuda.set_device(self.local_rank)
        return torch.device("cuda", self.local_rank)


def backend_for(name: str, device: torch.device) -> str:
    """The collective backend: ``auto`` is nccl on CUDA and gloo on the CPU."""
    if name == "auto":
        return "nccl" if device.type == "cuda" else "gloo"
    if name == "nccl" and device.type != "cuda":
        raise ConfigError("distributed.backend 'nccl' needs CUDA; use 'gloo' on the CPU")
    return name


def init(backend: str, group: Group | None = None) -> None:
    """Join the process group the launcher set up.

    Under the elastic agent's shared store (``TORCHELASTIC_USE_AGENT_STORE``) the keys of
    each attempt get a prefix of their own: the store outlives a restart, and a restarted
    group reading the previous attempt's addresses would try to connect to processes that
    are gone (gloo: ``connectFullMesh failed ... Connection refused``)."""
    if dist.is_initialized():
        return
    if group is None or os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        dist.init_process_group(backend=backend, timeout=COLLECTIVE_TIMEOUT)
        return
    store = dist.TCPStore(
        os.environ["MASTER_ADDR"],
        int(os.environ["MASTER_PORT"]),
        world_size=group.world,
        is_master=False,
        timeout=COLLECTIVE_TIMEOUT,
    )
    dist.init_process_group(
        backend=backend,
        store=dist.PrefixStore(f"nearpos/attempt_{group.restart}", store),
        rank=group.rank,
        world_size=group.world,
        timeout=COLLECTIVE_TIMEOUT,
    )


def all_gather_bytes(t: torch.Tensor, device: torch.device) -> list[torch.Tensor]:
    """Every rank's ``t`` (a uint8 tensor of the same size on each rank), on the CPU."""
    local = t.to(device)
    out = [torch.empty_like(local) for _ in range(dist.get_world_size())]
    dist.all_gather(out, local)
    return [o.cpu() for o in out]
