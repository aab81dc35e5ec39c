"""The engine's stop mechanism in one process: a stop signal ends training at the next optimizer-step boundary with
a snapshot, a second Ctrl-C is immediate, and the time budget ends it after an evaluation and a save."""

import signal

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from pytorch_in_action.errors import RunStopped
from pytorch_in_action.train.distributed import DistEnv
from pytorch_in_action.train.loop import Engine, EngineConfig
from pytorch_in_action.train.run import RunDir
from pytorch_in_action.train.sampler import ShardedBatchSampler

STEPS = 8  # 32 items, batch 4: one epoch


def _engine(tmp_path, on_step=None, **cfg) -> Engine:
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(32, 3), torch.randn(32, 1))
    loader = DataLoader(data, batch_sampler=ShardedBatchSampler(32, 4, seed=0))
    model = torch.nn.Linear(3, 1)
    calls = []

    def loss_fn(m, batch):
        calls.append(1)
        if on_step is not None:
            on_step(len(calls))
        x, y = batch
        return torch.nn.functional.mse_loss(m(x), y), len(x)

    config = EngineConfig(epochs=1, progress=False, best_metric="val_loss", best_mode="min", **cfg)
    return Engine(model, torch.optim.SGD(model.parameters(), lr=0.1), loader, config=config, dist=DistEnv(),
                  loss_fn=loss_fn, eval_fn=lambda m: {"val_loss": 1.0},
                  run=RunDir(tmp_path / "run", tensorboard=False))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR1, signal.SIGINT])
def test_a_stop_signal_ends_at_the_next_step_with_a_snapshot(tmp_path, sig):
    before = signal.getsignal(sig)
    engine = _engine(tmp_path, on_step=lambda n: n == 3 and signal.raise_signal(sig))
    with pytest.raises(RunStopped, match=rf"stopped by {sig.name} at step 3 \(epoch 1, batch 3/8\); snapshot saved"):
        engine.fit()
    snap = torch.load(engine.run.latest, weights_only=True)
    assert snap["global_step"] == 3 and snap["batch_in_epoch"] == 3 and snap["epoch"] == 0
    assert signal.getsignal(sig) is before  # the handlers are restored
    assert RunStopped.exit_code == 75


def test_a_second_ctrl_c_interrupts_at_once(tmp_path):
    def twice(n):
        if n == 2:
            signal.raise_signal(signal.SIGINT)
            signal.raise_signal(signal.SIGINT)

    engine = _engine(tmp_path, on_step=twice)
    with pytest.raises(KeyboardInterrupt):
        engine.fit()
    assert not engine.run.latest.exists()


def test_the_time_budget_stops_after_a_step_evaluates_and_saves(tmp_path):
    engine = _engine(tmp_path, max_minutes=1e-9)
    summary = engine.fit()
    assert summary["stopped_by"] == "time budget" and summary["global_step"] == 1
    assert summary["last"]["val_loss"] == 1.0 and summary["last"]["step"] == 1
    assert torch.load(engine.run.latest, weights_only=True)["batch_in_epoch"] == 1
    assert engine.run.best.exists()
    assert _engine(tmp_path / "no-budget").fit()["stopped_by"] is None
