import os
from pathlib import Path

import pytest
import torch


@pytest.fixture(scope="session")
def digits_root(tmp_path_factory) -> Path:
    """The bundled digits as an ImageFolder tree, in a private cache."""
    os.environ["PIA_CACHE"] = str(tmp_path_factory.mktemp("pia-cache"))
    from pytorch_in_action.data.digits import materialize_digits

    torch.set_num_threads(1)  # tiny models on a shared 2-core machine: one thread avoids oversubscription
    return materialize_digits()
