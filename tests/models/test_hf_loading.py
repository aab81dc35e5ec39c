"""Reading a local Hugging Face folder: unreadable weight files are one clear line, whatever the format."""

import pytest

from pytorch_in_action.errors import PiaError
from pytorch_in_action.models.hf_loading import load_hf_state_dict


@pytest.mark.parametrize(("name", "content", "reason"), [
    ("model.safetensors", b"not a safetensors file", "cannot read weights from .*model\\.safetensors: "),
    ("pytorch_model.bin", b"root:x:0:0:root:/root:/bin/bash\n",
     r"pytorch_model\.bin: not a file written by torch.save \(IndexError"),
    ("pytorch_model.bin", b"garbage", r"pytorch_model\.bin: refused by the weights-only loader \(Unsupported operand"),
])
def test_unreadable_weights_are_one_line(tmp_path, name, content, reason):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(PiaError, match=reason) as caught:
        load_hf_state_dict(tmp_path)
    assert "\n" not in str(caught.value)


def test_a_folder_without_weights_says_which_files_it_looked_for(tmp_path):
    with pytest.raises(PiaError, match="no model.safetensors or pytorch_model.bin in"):
        load_hf_state_dict(tmp_path)
