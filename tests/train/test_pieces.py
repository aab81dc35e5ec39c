import pytest
import torch

from pytorch_in_action.errors import PiaError
from pytorch_in_action.train.distributed import _first_slurm_host, map_slurm_env
from pytorch_in_action.train.metrics import topk_correct
from pytorch_in_action.train.optim import build_optimizer
from pytorch_in_action.train.precision import autocast_ctx, resolve_amp


def test_slurm_variables_are_mapped_for_torch_distributed():
    env = {"SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1", "SLURM_JOB_NODELIST": "gpu[003-004]",
           "SLURM_JOB_ID": "1234"}
    map_slurm_env(env)
    assert (env["RANK"], env["WORLD_SIZE"], env["LOCAL_RANK"], env["MASTER_ADDR"]) == ("5", "8", "1", "gpu003")
    assert env["MASTER_PORT"] == str(29500 + 234)
    torchrun = {"RANK": "0", "SLURM_PROCID": "3", "SLURM_NTASKS": "4"}
    map_slurm_env(torchrun)  # torchrun's own variables win
    assert torchrun["RANK"] == "0"
    assert _first_slurm_host("node7,node8") == "node7"


def test_no_weight_decay_on_biases_and_norms():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Linear(4, 2))
    opt = build_optimizer(model, "sgd", lr=0.1, weight_decay=5e-4, nesterov=True)
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 5e-4 and all(p.ndim >= 2 for p in decay["params"])
    assert no_decay["weight_decay"] == 0.0 and len(no_decay["params"]) == 4
    assert opt.defaults["nesterov"]
    assert isinstance(build_optimizer(model, "adamw", lr=1e-3), torch.optim.AdamW)
    with pytest.raises(PiaError):
        build_optimizer(model, "lamb")


def test_topk_counts():
    logits = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.05, 0.15], [0.2, 0.3, 0.5]])
    assert topk_correct(logits, torch.tensor([1, 2, 0]), (1, 2, 5)) == [1, 2, 3]


def test_amp_choices():
    with autocast_ctx(torch.device("cpu"), "bf16"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    with pytest.raises(PiaError, match="needs a CUDA device"):
        resolve_amp("fp16", torch.device("cpu"))
    with pytest.raises(PiaError):
        resolve_amp("fp8", torch.device("cpu"))
