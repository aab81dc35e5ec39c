"""tools/tb_screenshot.py: the argument handling and the refusals (the screenshots themselves need Chromium)."""

import argparse
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
import tb_screenshot  # noqa: E402


def test_a_shot_is_the_dashboard_view_and_the_file_after_the_last_equals_sign():
    view, out = tb_screenshot.parse_shot("scalars&regexInput=overfit&tagFilter=loss=figures/a.png")
    assert view == "scalars&regexInput=overfit&tagFilter=loss"
    assert out == Path("figures/a.png")


@pytest.mark.parametrize("text", ["scalars", "=a.png", "scalars="])
def test_a_shot_without_a_view_or_a_file_is_refused(text):
    with pytest.raises(argparse.ArgumentTypeError, match="VIEW=FILE"):
        tb_screenshot.parse_shot(text)


def test_a_missing_log_folder_is_one_line_and_exit_code_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        tb_screenshot.main(["--logdir", str(tmp_path / "nope"), "--shot", f"scalars={tmp_path / 'a.png'}"])
    assert stop.value.code == 2
    assert "is not a folder" in capsys.readouterr().err
    assert not (tmp_path / "a.png").exists()


def test_no_chromium_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setattr(tb_screenshot.shutil, "which", lambda name: None)
    with pytest.raises(SystemExit, match="no Chromium found"):
        tb_screenshot.main(["--logdir", str(tmp_path), "--shot", f"scalars={tmp_path / 'a.png'}"])
