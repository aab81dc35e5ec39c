"""The native speed path needs a C++ compiler and ninja to build its kernel: without them its tests skip
with a one-line reason, except under CI=true, where `.ci/run` installs them and their absence fails."""

import os

import pytest

from pytorch_in_action.fast import native


@pytest.fixture
def toolchain() -> None:
    missing = native.missing_tool()
    if missing is None:
        return
    reason = f"building the native decoding step needs {missing}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}; CI requires it")
    pytest.skip(reason)
