import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def pia_cache(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pia-cache")
    os.environ["PIA_CACHE"] = str(path)
    return path
