"""The run folder: a bad --out or --resume path is one clear error, before any of the run is written."""

import pytest

from pytorch_in_action.errors import PiaError
from pytorch_in_action.train.run import RunDir


def test_a_file_in_place_of_the_run_folder_is_refused(tmp_path):
    (tmp_path / "out").write_text("not a folder")
    with pytest.raises(PiaError, match="the run folder .*out is a file"):
        RunDir(tmp_path / "out")
    with pytest.raises(PiaError, match="cannot create the run folder"):
        RunDir(tmp_path / "out" / "sub")  # under a file


def test_resume_from_a_missing_checkpoint_is_refused_and_latest_may_be_absent(tmp_path, capsys):
    run = RunDir(tmp_path / "run", tensorboard=False)
    with pytest.raises(PiaError, match="checkpoint not found: .*nope.pt"):
        run.resume_path(str(tmp_path / "nope.pt"))
    assert run.resume_path("latest") is None  # nothing yet: a fresh start, said on stdout
    assert "starting from scratch" in capsys.readouterr().out
    assert run.resume_path(None) is None
    run.latest.write_bytes(b"x")
    assert run.resume_path("latest") == run.latest


def test_a_folder_holding_a_run_is_refused_unless_resumed_or_overwritten(tmp_path, capsys):
    run = RunDir(tmp_path / "run", tensorboard=False)
    run.write_text("config.yaml", "lr: 0.1\n")
    run.log_metrics({"epoch": 1, "step": 5, "val_top1": 0.9})
    run.latest.write_bytes(b"checkpoint")
    run.release()
    before = {p.name: p.read_bytes() for p in run.root.rglob("*") if p.is_file()}
    with pytest.raises(PiaError, match="already holds a run .*--resume.*--overwrite"):
        RunDir(run.root, tensorboard=False)
    assert {p.name: p.read_bytes() for p in run.root.rglob("*") if p.is_file()} == before
    with pytest.raises(PiaError, match="give one of them"):
        RunDir(run.root, resume="latest", overwrite=True)
    RunDir(run.root, tensorboard=False, resume="latest").release()  # continuing it is fine
    again = RunDir(run.root, tensorboard=False, overwrite=True)
    assert "deleted the previous run" in capsys.readouterr().out
    assert sorted(p.name for p in again.root.iterdir()) == [".lock", "checkpoints"]
    assert not any(again.checkpoints.iterdir())


def test_the_lock_names_the_live_holder_and_dies_with_it(tmp_path):
    import subprocess
    import sys

    root = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom pytorch_in_action.train.run import RunDir\n"
                               f"RunDir({str(root)!r}, tensorboard=False)\nprint('locked', flush=True)\n"
                               "time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(PiaError, match=rf"in use by a live run \(pid {holder.pid}@"):
            RunDir(root, tensorboard=False, resume="latest")
    finally:
        holder.kill()
        holder.wait()
    RunDir(root, tensorboard=False, resume="latest").release()  # killed: the lock is gone with the process


def test_failed_writes_are_one_line_and_leave_no_partial_file(tmp_path, monkeypatch):
    import errno
    import os
    from pathlib import Path

    from pytorch_in_action.train.atomic import RunWriteError

    run = RunDir(tmp_path / "run", tensorboard=False)
    run.write_text("config.yaml", "first\n")
    run.log_metrics({"epoch": 1, "step": 1})
    real_write_text = Path.write_text

    def full(self, text, *args, **kwargs):
        real_write_text(self, text[:3], *args, **kwargs)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(RunWriteError, match=r"cannot write .*config.yaml: No space left on device \(ENOSPC\)"):
        run.write_text("config.yaml", "second\n")
    monkeypatch.undo()
    assert (run.root / "config.yaml").read_text() == "first\n"
    assert sorted(p.name for p in run.root.iterdir()) == [".lock", "checkpoints", "config.yaml", "metrics.jsonl"]

    import pytorch_in_action.train.run as run_module

    class HalfLine:  # a file whose disk fills up after 5 characters of the line
        def __init__(self, *args, **kwargs):
            self.f = open(*args, **kwargs)  # noqa: SIM115

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, text):
            self.f.write(text[:5])
            self.f.flush()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def __getattr__(self, name):
            return getattr(self.f, name)

    monkeypatch.setattr(run_module, "open", HalfLine, raising=False)
    with pytest.raises(RunWriteError, match="metrics.jsonl"):
        run.log_metrics({"epoch": 2, "step": 2})
    monkeypatch.undo()
    assert run.metrics_file.read_text() == '{"epoch": 1, "step": 1}\n'  # no half line
