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
