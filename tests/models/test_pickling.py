"""Whole models survive `torch.save(model)` / `torch.load` and `copy.deepcopy`, also after decoding: the copy
computes exactly what the original does (decoding leaves nothing on a model that pickling would trip on)."""

import copy
import io

import pytest
import torch

from pytorch_in_action.models.bert import BertConfig, BertForSequenceClassification
from pytorch_in_action.models.distilbert import DistilBertConfig, DistilBertForSequenceClassification
from pytorch_in_action.models.gpt2 import GPT2Config, GPT2LMHeadModel
from pytorch_in_action.models.t5 import T5Config, T5ForConditionalGeneration

IDS = torch.randint(3, 30, (4, 6), generator=torch.Generator().manual_seed(0))


def pickled(model: torch.nn.Module) -> torch.nn.Module:
    buf = io.BytesIO()
    torch.save(model, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=False)


def gpt2(act: str) -> GPT2LMHeadModel:
    return GPT2LMHeadModel(GPT2Config(vocab_size=30, n_positions=32, n_embd=16, n_layer=2, n_head=2,
                                      activation_function=act))


def t5(ff: str) -> T5ForConditionalGeneration:
    return T5ForConditionalGeneration(T5Config(vocab_size=30, d_model=16, d_kv=8, d_ff=32, num_layers=2,
                                               num_heads=2, feed_forward_proj=ff))


MODELS = {
    "gpt2 gelu_new": lambda: gpt2("gelu_new"),
    "gpt2 relu": lambda: gpt2("relu"),
    "t5 relu": lambda: t5("relu"),
    "t5 gated-gelu": lambda: t5("gated-gelu"),
    "bert": lambda: BertForSequenceClassification(BertConfig(vocab_size=30, d_model=16, n_layer=2, n_head=2,
                                                             d_ff=32, act="gelu_new")),
    "distilbert": lambda: DistilBertForSequenceClassification(DistilBertConfig(vocab_size=30, d_model=16,
                                                                               n_layer=2, n_head=2, d_ff=32)),
}


@pytest.mark.parametrize("name", MODELS)
def test_saved_and_copied_models_compute_what_the_original_does(name):
    torch.manual_seed(0)
    model = MODELS[name]().eval()
    decodes = hasattr(model, "generate")
    run = (lambda m: m.generate(IDS, max_new_tokens=4)) if decodes else (lambda m: m(IDS).logits)
    expected = run(model)
    for clone in (pickled(model), copy.deepcopy(model)):
        assert torch.equal(run(clone), expected), name
        if decodes:
            assert torch.equal(run(model), expected)  # the original still decodes the same
