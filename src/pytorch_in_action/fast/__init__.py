"""Speed paths beside the models: optimisations, not lessons.

The models in `pytorch_in_action.models` are written to be read: their `generate` runs their own modules. This
package holds what makes CPU decoding faster without changing a token, kept apart so the model files stay
architectures (the models never import it):

* `linear`       few-row products through the fastest of four kernels (packed weights), chosen by measuring;
* `gpt2`         GPT-2's one-token step written out flat, its products on packed weights;
* `gpt2_native`  GPT-2's batch-1 step as one call into a C++ kernel (`native/gpt2_decode.cpp`);
* `t5`           T5's flat one-token decoder step;
* `native`       builds those kernels with `torch.utils.cpp_extension` on first use.

The one entry point is `cpu_decoder(model)`: an object whose `generate` takes the model's arguments and returns
the model's tokens, faster (docs/benchmarks.md has the numbers per path).
"""

from __future__ import annotations

from torch import nn

from pytorch_in_action.fast.gpt2 import GPT2Decoder
from pytorch_in_action.fast.t5 import T5Decoder
from pytorch_in_action.models.gpt2 import GPT2LMHeadModel
from pytorch_in_action.models.t5 import T5ForConditionalGeneration

__all__ = ["GPT2Decoder", "T5Decoder", "cpu_decoder"]

def cpu_decoder(model: nn.Module, native: bool | None = None) -> GPT2Decoder | T5Decoder:
    """A faster decoder for `model` (a `GPT2LMHeadModel` or a `T5ForConditionalGeneration`) with its `generate`.

    Both decode every batch with a flat eager one-token step over packed weights, which needs no compiler. GPT-2
    with `native=True` (the default) decodes batch 1 through a native C++ step instead, built on first use with the
    machine's C++ compiler. T5 has no native step, so `native=True` is refused.
    """
    if isinstance(model, GPT2LMHeadModel):
        return GPT2Decoder(model, native=True if native is None else native)
    if isinstance(model, T5ForConditionalGeneration):
        if native:
            raise ValueError("T5 has no native decoding step: use cpu_decoder(model) or native=False")
        return T5Decoder(model)
    raise TypeError(f"cpu_decoder takes a GPT2LMHeadModel or a T5ForConditionalGeneration, not "
                    f"{type(model).__name__}")
