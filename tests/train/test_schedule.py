import pytest
import torch

from pytorch_in_action.errors import PiaError
from pytorch_in_action.train.schedule import build_scheduler


def _lrs(name, steps=100, **kw):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = build_scheduler(opt, name, total_steps=steps, **kw)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_warmup_cosine_rises_then_decays_to_zero_per_step():
    lrs = _lrs("warmup_cosine", warmup_steps=10)
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert lrs[-1] < 0.01


def test_step_schedule_is_defined_in_steps_not_epochs():
    # the classic bug: a per-epoch step size with a per-batch scheduler.step() drives the lr to ~1e-8
    lrs = _lrs("step", step_size=40, gamma=0.1)
    assert lrs[39] == 1.0 and lrs[40] == pytest.approx(0.1) and lrs[99] == pytest.approx(0.01)


def test_inverse_sqrt_and_onecycle_and_state_roundtrip():
    lrs = _lrs("inverse_sqrt", warmup_steps=4)
    assert lrs[3] == pytest.approx(1.0) and lrs[15] == pytest.approx(0.5)
    one = _lrs("onecycle")
    assert max(one) == pytest.approx(1.0, rel=1e-3) and one[0] < 0.1 and one[-1] < 1e-3
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    s = build_scheduler(opt, "cosine", total_steps=10)
    for _ in range(3):
        s.step()
    s2 = build_scheduler(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0), "cosine", total_steps=10)
    s2.load_state_dict(s.state_dict())
    assert s2.get_last_lr() == s.get_last_lr()


def test_unknown_schedule():
    with pytest.raises(PiaError, match="unknown scheduler"):
        _lrs("linear")
