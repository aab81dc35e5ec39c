"""Process-group setup from torchrun (or SLURM) environment variables; gloo on CPU, nccl on GPU."""

from __future__ import annotations

import datetime
import os
import re
from dataclasses import dataclass

import torch
import torch.distributed as dist

from pytorch_in_action.errors import PiaError


@dataclass
class DistEnv:
    """Who this process is. With world_size 1 every collective is a no-op, so recipes need no branches."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.is_distributed:
            dist.barrier()

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum `tensor` over all ranks (in place, also returned)."""
        if self.is_distributed:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def broadcast_object(self, obj: object) -> object:
        if not self.is_distributed:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]


def _first_slurm_host(nodelist: str) -> str:
    """First host of a SLURM node list such as `node[003-005,009],gpu1` -> `node003`."""
    m = re.match(r"([^,\[]+)(\[([^\]]+)\])?", nodelist)
    if not m:
        return nodelist
    prefix, _, ranges = m.groups()
    if not ranges:
        return prefix
    return prefix + ranges.split(",")[0].split("-")[0]


def map_slurm_env(env: dict[str, str] | None = None) -> None:
    """Under `srun` without torchrun, translate SLURM's variables into the ones torch.distributed reads."""
    env = os.environ if env is None else env
    if "RANK" in env or "SLURM_PROCID" not in env or int(env.get("SLURM_NTASKS", "1")) <= 1:
        return
    env["RANK"] = env["SLURM_PROCID"]
    env["WORLD_SIZE"] = env["SLURM_NTASKS"]
    env["LOCAL_RANK"] = env.get("SLURM_LOCALID", "0")
    env.setdefault("MASTER_ADDR", _first_slurm_host(env.get("SLURM_JOB_NODELIST", env.get("SLURM_NODELIST", "127.0.0.1"))))
    env.setdefault("MASTER_PORT", str(29500 + int(env.get("SLURM_JOB_ID", "0")) % 1000))


def _attempt_store(restart: str, rank: int, world_size: int, timeout: datetime.timedelta) -> dist.Store:
    """The rendezvous store seen through a prefix per elastic attempt.

    After torchrun restarts a failed group, the store still holds the previous attempt's keys (gloo's peer
    addresses among them); a restarted rank could read a dead peer's address and fail to connect.
    """
    agent_hosts_store = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"
    store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), world_size,
                          is_master=not agent_hosts_store and rank == 0, timeout=timeout,
                          multi_tenant=not agent_hosts_store)
    return dist.PrefixStore(f"pytorch_in_action/attempt_{restart}", store)


def init_distributed(device: str = "auto", timeout_s: int = 1800) -> DistEnv:
    """Join the process group when launched by torchrun/SLURM; otherwise a single-process DistEnv."""
    map_slurm_env()
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        if not torch.cuda.is_available():
            raise PiaError("--device cuda was asked but no CUDA device is available")
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    elif device == "cpu":
        dev = torch.device("cpu")
    else:
        raise PiaError(f"unknown device {device!r}; use auto, cpu or cuda")
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        timeout = datetime.timedelta(seconds=timeout_s)
        restart = os.environ.get("TORCHELASTIC_RESTART_COUNT")
        if restart is None:
            dist.init_process_group(backend, timeout=timeout)
        else:
            dist.init_process_group(backend, store=_attempt_store(restart, rank, world_size, timeout), rank=rank,
                                    world_size=world_size, timeout=timeout)
    return DistEnv(rank=rank, world_size=world_size, local_rank=local_rank, device=dev)


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
