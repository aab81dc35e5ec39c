"""Faults a run folder must survive, tried through the real `pia image train` in subprocesses (the other recipes
share the engine and the run folder): a rerun into a finished run, two runs into one folder, `kill -9`, a full
disk, preemption by SIGTERM (also under 2 gloo ranks), Ctrl-C, and the time budget.

The runs are tiny (3 classes x 16 images of 16 px, batch 4: 12 steps an epoch). Where a test must act in the
middle of an epoch, a runner wraps the CLI and sleeps before each batch, so that the run cannot finish first."""

import errno
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from piatest import write_tree

# `python RUNNER image train ...`: the `pia` command, optionally slowed down (PIA_TEST_STEP_DELAY seconds before each
# batch, after touching the file PIA_TEST_MARK when given) or with writes that fail (PIA_TEST_ENOSPC_AT: the Nth
# torch.save writes a few bytes, then the disk is full)
RUNNER = """
import errno, os, pathlib, sys, time

import torch

import pytorch_in_action.train.loop as loop

delay = float(os.environ.get("PIA_TEST_STEP_DELAY", "0"))
if delay:
    to_device = loop.to_device

    def slow_to_device(batch, device):
        if os.environ.get("PIA_TEST_MARK"):
            pathlib.Path(os.environ["PIA_TEST_MARK"]).touch()
        time.sleep(delay)
        return to_device(batch, device)

    loop.to_device = slow_to_device
fail_at = int(os.environ.get("PIA_TEST_ENOSPC_AT", "0"))
if fail_at:
    real_save, calls = torch.save, [0]

    def full_disk_save(obj, f, *args, **kwargs):
        calls[0] += 1
        if calls[0] < fail_at:
            return real_save(obj, f, *args, **kwargs)
        f.write(b"the first bytes of a checkpoint")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    torch.save = full_disk_save
from pytorch_in_action.cli import main

sys.exit(main(sys.argv[1:]))
"""

STEPS_PER_EPOCH = 12


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return write_tree(tmp_path_factory.mktemp("faults") / "data", classes=("a", "b", "c"), per_class=16)


@pytest.fixture(scope="module")
def runner(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("runner") / "runner.py"
    path.write_text(RUNNER)
    return path


def _argv(tree: Path, out: Path, *extra: str) -> list[str]:
    return ["image", "train", "--data", str(tree), "--out", str(out), "--epochs", "2", "--batch-size", "4",
            "--workers", "0", "--device", "cpu", "--amp", "off", "--no-progress", "--lr", "0.05", *extra]


def _env(**extra: object) -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1", **{k: str(v) for k, v in extra.items()}}


def run(runner: Path, argv: list[str], **env: object) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(runner), *argv], env=_env(**env), capture_output=True, text=True,
                          timeout=600)


def start(runner: Path, argv: list[str], **env: object) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(runner), *argv], env=_env(**env), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while not path.exists():
        assert proc.poll() is None, f"the run ended before {path.name} appeared: {proc.communicate()[1][-2000:]}"
        assert time.time() < deadline, f"{path} did not appear"
        time.sleep(0.02)


def digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def state(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def assert_same_training_state(a: dict, b: dict) -> None:
    """Bitwise: every parameter and buffer, every optimizer state tensor, the step and the scheduler."""
    assert a["global_step"] == b["global_step"]
    assert a["model"].keys() == b["model"].keys()
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    assert sa.keys() == sb.keys() and sa
    for pid in sa:
        for k in sa[pid]:
            assert torch.equal(torch.as_tensor(sa[pid][k]), torch.as_tensor(sb[pid][k])), (pid, k)
    assert a["scheduler"] == b["scheduler"]


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr[-3000:]
    assert "Traceback" not in stderr
    return lines[0]


@pytest.fixture(scope="module")
def reference(tree, runner, tmp_path_factory) -> Path:
    """An uninterrupted run of the command the interrupted ones use."""
    out = tmp_path_factory.mktemp("reference") / "run"
    res = run(runner, _argv(tree, out))
    assert res.returncode == 0, res.stderr[-3000:]
    return out


def test_rerun_without_resume_is_refused_and_leaves_the_run_byte_identical(tree, runner, reference, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(reference, out)
    before = digests(out)
    res = run(runner, _argv(tree, out, "--lr", "0.5"))
    assert res.returncode == 2
    line = one_line(res.stderr)
    assert "already holds a run" in line and "--resume" in line and "--overwrite" in line
    assert digests(out) == before

    # --overwrite replaces it: one run's metrics, not two runs' mixed, and the old files are gone
    (out / "checkpoints" / "stale.pt").write_bytes(b"from the old run")
    res = run(runner, _argv(tree, out, "--epochs", "1", "--overwrite"))
    assert res.returncode == 0, res.stderr[-3000:]
    assert "deleted the previous run" in res.stdout
    assert [json.loads(x)["epoch"] for x in (out / "metrics.jsonl").read_text().splitlines()] == [1]
    assert not (out / "checkpoints" / "stale.pt").exists()
    assert state(out / "checkpoints" / "latest.pt")["global_step"] == STEPS_PER_EPOCH

    res = run(runner, _argv(tree, out, "--resume", "--overwrite"))
    assert res.returncode == 2 and "give one of them" in one_line(res.stderr)


def test_a_second_run_into_a_live_runs_folder_is_refused_and_the_live_one_finishes(tree, runner, reference,
                                                                                    tmp_path):
    out = tmp_path / "run"
    live = start(runner, _argv(tree, out), PIA_TEST_STEP_DELAY=2, PIA_TEST_MARK=tmp_path / "training")
    wait_for(tmp_path / "training", live)
    others = [start(runner, _argv(tree, out, *extra)) for extra in ((), ("--resume",), ("--overwrite",))]
    for other in others:  # started together, refused while the live run trains (48 s)
        _, err = other.communicate(timeout=300)
        assert other.returncode == 2, err[-3000:]
        line = one_line(err)
        assert "in use by a live run" in line and f"pid {live.pid}@" in line, line
    assert live.poll() is None, "the live run ended before the others were refused"
    _, err = live.communicate(timeout=600)
    assert live.returncode == 0, err[-3000:]
    assert_same_training_state(state(reference / "checkpoints/latest.pt"), state(out / "checkpoints/latest.pt"))
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2  # the live run's two epochs, nothing else


def test_after_kill_9_resume_is_not_refused(tree, runner, reference, tmp_path):
    out = tmp_path / "run"
    proc = start(runner, _argv(tree, out, "--ckpt-every-steps", "3"), PIA_TEST_STEP_DELAY=0.05)
    wait_for(out / "checkpoints" / "latest.pt", proc)
    proc.kill()
    proc.communicate()
    res = run(runner, _argv(tree, out, "--resume"))  # the lock died with the process
    assert res.returncode == 0, res.stderr[-3000:]
    assert_same_training_state(state(reference / "checkpoints/latest.pt"), state(out / "checkpoints/latest.pt"))


def _assert_failed_write(res: subprocess.CompletedProcess, out: Path, name: str) -> None:
    assert res.returncode == 2
    line = one_line(res.stderr)
    assert f"cannot write {out / 'checkpoints' / name}" in line, line
    assert "No space left on device (ENOSPC)" in line and "--resume" in line and "free disk space" in line
    assert not [p.name for p in (out / "checkpoints").iterdir() if p.name.startswith(".")], "a partial file is left"


def test_disk_full_while_saving_is_one_line_and_the_last_checkpoint_loads(tree, runner, tmp_path):
    """Injected at the file layer: the 2nd torch.save writes a few bytes, then fails with ENOSPC."""
    out = tmp_path / "run"
    res = run(runner, _argv(tree, out, "--ckpt-every-steps", "3"), PIA_TEST_ENOSPC_AT=2)
    _assert_failed_write(res, out, "latest.pt")
    last_good = state(out / "checkpoints" / "latest.pt")
    assert last_good["global_step"] == 3
    res = run(runner, _argv(tree, out, "--resume", "--epochs", "1"))
    assert res.returncode == 0, res.stderr[-3000:]
    assert state(out / "checkpoints" / "latest.pt")["global_step"] == STEPS_PER_EPOCH


def test_a_real_full_filesystem_is_one_line_and_the_last_checkpoint_loads(tree, runner, tmp_path):
    """A 4 MB tmpfs: latest.pt (2.3 MB) fits, the copy to best.pt does not."""
    mount = tmp_path / "small"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({made.stderr.decode().strip() or made.returncode}); the injected "
                    f"variant above covers the same path")
    try:
        out = mount / "run"
        res = run(runner, _argv(tree, out, "--epochs", "1"))
        _assert_failed_write(res, out, "best.pt")
        assert state(out / "checkpoints" / "latest.pt")["global_step"] == STEPS_PER_EPOCH
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_sigterm_mid_epoch_saves_a_snapshot_that_resumes_exactly(tree, runner, reference, tmp_path):
    out = tmp_path / "run"
    proc = start(runner, _argv(tree, out, "--ckpt-every-steps", "3"), PIA_TEST_STEP_DELAY=0.05)
    wait_for(out / "checkpoints" / "latest.pt", proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 75, err[-3000:]
    assert "stopped by SIGTERM" in one_line(err) and "--resume" in err
    snap = state(out / "checkpoints" / "latest.pt")
    assert 0 < snap["batch_in_epoch"] < STEPS_PER_EPOCH and snap["global_step"] > 3, "not a mid-epoch snapshot"

    res = run(runner, _argv(tree, out, "--resume"))
    assert res.returncode == 0, res.stderr[-3000:]
    assert_same_training_state(state(reference / "checkpoints/latest.pt"), state(out / "checkpoints/latest.pt"))
    assert (reference / "metrics.jsonl").read_text().count("\n") == (out / "metrics.jsonl").read_text().count("\n")


def test_ctrl_c_once_saves_and_twice_stops_at_once(tree, runner, tmp_path):
    out = tmp_path / "once"
    proc = start(runner, _argv(tree, out, "--ckpt-every-steps", "3"), PIA_TEST_STEP_DELAY=0.05)
    wait_for(out / "checkpoints" / "latest.pt", proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 75 and "stopped by SIGINT" in one_line(err)
    assert state(out / "checkpoints" / "latest.pt")["global_step"] > 3

    out = tmp_path / "twice"
    proc = start(runner, _argv(tree, out, "--ckpt-every-steps", "3"), PIA_TEST_STEP_DELAY=5,
                 PIA_TEST_MARK=tmp_path / "training")
    wait_for(tmp_path / "training", proc)  # inside the first (slow) step: the handlers are installed
    proc.send_signal(signal.SIGINT)
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and one_line(err).endswith("interrupted")
    assert not (out / "checkpoints" / "latest.pt").exists()


def test_time_budget_stops_at_a_step_evaluates_saves_and_resume_finishes(tree, runner, reference, tmp_path):
    out = tmp_path / "run"
    res = run(runner, _argv(tree, out, "--minutes", "0.01"), PIA_TEST_STEP_DELAY=0.1)  # 0.6 s: a few steps
    assert res.returncode == 0, res.stderr[-3000:]
    assert "time budget of 0.01 min spent" in res.stdout
    snap = state(out / "checkpoints" / "latest.pt")
    assert 0 < snap["global_step"] < STEPS_PER_EPOCH
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [snap["global_step"]] and "val_top1" in records[0]
    assert (out / "checkpoints" / "best.pt").exists() and (out / "model.safetensors").exists()

    res = run(runner, _argv(tree, out, "--resume"))
    assert res.returncode == 0, res.stderr[-3000:]
    assert_same_training_state(state(reference / "checkpoints/latest.pt"), state(out / "checkpoints/latest.pt"))


def _torchrun(runner: Path, *argv: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
            "--monitor-interval", "0.5", str(runner), *argv]


@pytest.mark.slow
def test_sigterm_under_two_gloo_ranks_saves_one_snapshot_that_resumes_exactly(tree, runner, tmp_path):
    """SIGTERM reaches rank 1 only (a worst case: one node preempted first); both ranks still stop after the same
    step, rank 0 writes the snapshot, and the resumed run equals an uninterrupted one bit for bit."""
    env = _env(OMP_NUM_THREADS=1)
    ref = subprocess.run(_torchrun(runner, *_argv(tree, tmp_path / "ref")), env=env, capture_output=True, text=True,
                         timeout=600)
    assert ref.returncode == 0, ref.stderr[-3000:]

    import psutil

    out = tmp_path / "run"
    agent = subprocess.Popen(_torchrun(runner, *_argv(tree, out, "--ckpt-every-steps", "2")),
                             env={**env, "PIA_TEST_STEP_DELAY": "0.1"}, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    wait_for(out / "checkpoints" / "latest.pt", agent)
    workers = [p for p in psutil.Process(agent.pid).children(recursive=True) if str(runner) in p.cmdline()]
    assert len(workers) == 2, workers
    rank1 = next(p for p in workers if p.environ().get("RANK") == "1")
    rank1.send_signal(signal.SIGTERM)
    _, err = agent.communicate(timeout=300)
    assert agent.returncode != 0  # torchrun reports the workers' exit code 75 as a failure: a rerun is needed
    assert "stopped by SIGTERM" in err, err[-3000:]
    snap = state(out / "checkpoints" / "latest.pt")
    assert 0 < snap["batch_in_epoch"] and snap["global_step"] > 2 and len(snap["rng_per_rank"]) == 2

    res = subprocess.run(_torchrun(runner, *_argv(tree, out, "--resume")), env=env, capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert_same_training_state(state(tmp_path / "ref/checkpoints/latest.pt"), state(out / "checkpoints/latest.pt"))


def test_errno_names_in_the_failure_line():
    from pytorch_in_action.train.atomic import write_failure

    line = write_failure(Path("/x/latest.pt"), OSError(errno.EROFS, os.strerror(errno.EROFS)))
    assert line.startswith("cannot write /x/latest.pt: Read-only file system (EROFS)")
    assert "make the filesystem writable" in line and "\n" not in line
