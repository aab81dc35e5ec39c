import errno
import io
import os
import random

import numpy as np
import pytest
import torch

from pytorch_in_action.errors import PiaError
from pytorch_in_action.train.atomic import RunWriteError
from pytorch_in_action.train.checkpoint import (
    capture_rng_state,
    export_safetensors,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)


def test_rng_state_roundtrip_through_a_weights_only_file(tmp_path):
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    save_checkpoint(tmp_path / "c.pt", {"rng": capture_rng_state()})
    first = (random.random(), np.random.rand(), torch.rand(3))
    restore_rng_state(load_checkpoint(tmp_path / "c.pt")["rng"])
    second = (random.random(), np.random.rand(), torch.rand(3))
    assert first[0] == second[0] and first[1] == second[1] and torch.equal(first[2], second[2])


def test_atomic_write_keeps_previous_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "latest.pt"
    save_checkpoint(path, {"step": torch.tensor(1)})

    def boom(obj, f, *a, **k):
        f.write(b"the first bytes")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(RunWriteError, match=r"cannot write .*latest.pt: No space left on device \(ENOSPC\);"):
        save_checkpoint(path, {"step": torch.tensor(2)})
    monkeypatch.undo()
    assert int(load_checkpoint(path)["step"]) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["latest.pt"]


def test_weights_only_refuses_arbitrary_objects(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("this would run on load",))

    torch.save({"x": Payload()}, tmp_path / "evil.pt")
    with pytest.raises(PiaError, match="cannot read checkpoint"):
        load_checkpoint(tmp_path / "evil.pt")
    with pytest.raises(PiaError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")


def _truncated_checkpoint() -> bytes:
    buf = io.BytesIO()
    torch.save({"w": torch.zeros(1000)}, buf)
    return buf.getvalue()[:2000]


@pytest.mark.parametrize(("content", "reason"), [
    (b"garbage", r"refused by the weights-only loader \(Unsupported operand"),
    (b"root:x:0:0:root:/root:/bin/bash\n", r"not a file written by torch.save \(IndexError"),
    (b"", "the file is empty or cut short"),
    (_truncated_checkpoint(), "PytorchStreamReader failed reading zip archive: failed finding central directory$"),
])
def test_a_file_that_is_no_checkpoint_is_one_clear_error(tmp_path, content, reason):
    """Whatever the loader trips on (a bad opcode, an empty stack, no data, a cut-off archive) comes out as one
    line that says why."""
    (tmp_path / "junk.pt").write_bytes(content)
    with pytest.raises(PiaError, match=r"cannot read checkpoint .*junk\.pt: " + reason) as caught:
        load_checkpoint(tmp_path / "junk.pt")
    assert "\n" not in str(caught.value)


def test_export_safetensors(tmp_path):
    from safetensors.torch import load_file

    model = torch.nn.Linear(3, 2)
    export_safetensors(model, tmp_path / "m.safetensors")
    loaded = load_file(str(tmp_path / "m.safetensors"))
    assert all(torch.equal(loaded[k], v) for k, v in model.state_dict().items())
