"""DistilBERT from scratch equals Hugging Face on tiny random configs: forward and backward, learned and sinusoidal
positions, several activations, padding in the mask."""

import pytest
import torch
import transformers
from safetensors.torch import save_file
from torch.testing import assert_close
from transformers.models.distilbert.modeling_distilbert import create_sinusoidal_embeddings

from pytorch_in_action.errors import PiaError
from pytorch_in_action.models.distilbert import (
    DistilBertConfig,
    DistilBertForSequenceClassification,
    DistilBertModel,
    convert_hf_distilbert,
    sinusoidal_positions,
)

F64 = dict(rtol=1e-10, atol=1e-10)
F32 = dict(rtol=1e-5, atol=1e-5)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run faster on one thread, and much faster when the machine is shared."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

CONFIGS = [  # (HF DistilBertConfig kwargs, HF attention implementation)
    (dict(dim=32, n_layers=2, n_heads=4, hidden_dim=64, activation="gelu"), "sdpa"),
    (dict(dim=24, n_layers=1, n_heads=3, hidden_dim=48, activation="relu", sinusoidal_pos_embds=True,
          max_position_embeddings=20), "eager"),
    (dict(dim=48, n_layers=3, n_heads=6, hidden_dim=80, activation="gelu", sinusoidal_pos_embds=True,
          pad_token_id=2), "sdpa"),
]
IDS = ["learned-gelu-sdpa", "sinusoidal-relu-eager", "sinusoidal-gelu-sdpa"]


def hf_model(cls, kw, attn, num_labels=3, dtype=torch.float64):
    torch.manual_seed(0)
    cfg = transformers.DistilBertConfig(vocab_size=57, num_labels=num_labels, attn_implementation=attn, **kw)
    return cls(cfg).to(dtype).eval()


def inputs(cfg, B=3, T=9, seed=1):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, cfg.vocab_size, (B, T), generator=g)
    mask = torch.ones(B, T, dtype=torch.long)
    mask[0, T - 4:] = 0
    mask[2, T - 1:] = 0
    return ids, mask


def hf_grads(model):
    """HF gradients under our names: the conversion that maps weights maps their gradients too."""
    return convert_hf_distilbert({n: p.grad for n, p in model.named_parameters()})


@pytest.mark.parametrize(("kw", "attn"), CONFIGS, ids=IDS)
def test_distilbert_model_matches_hf_float64(kw, attn):
    ref = hf_model(transformers.DistilBertModel, kw, attn)
    ours = DistilBertModel.from_hf(ref)
    ids, mask = inputs(ref.config)
    a = ref(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    b = ours(ids, mask, output_hidden_states=True)
    assert len(b.hidden_states) == len(a.hidden_states) == kw["n_layers"] + 1
    for x, y in zip(b.hidden_states, a.hidden_states):
        assert_close(x, y, **F64)
    assert_close(b.last_hidden_state, a.last_hidden_state, **F64)
    w = torch.randn_like(a.last_hidden_state)
    (a.last_hidden_state * w).sum().backward()
    (b.last_hidden_state * w).sum().backward()
    ref_g = {k[11:]: v for k, v in hf_grads(ref).items()}
    for name, p in ours.named_parameters():
        assert_close(p.grad, ref_g[name], **F64, msg=lambda m, n=name: f"grad {n}: {m}")


@pytest.mark.parametrize("num_labels", [1, 2, "multi"])
@pytest.mark.parametrize(("kw", "attn"), CONFIGS, ids=IDS)
def test_sequence_classification_matches_hf_float64(kw, attn, num_labels):
    n = 3 if num_labels == "multi" else num_labels
    ref = hf_model(transformers.DistilBertForSequenceClassification, kw, attn, num_labels=n)
    ours = DistilBertForSequenceClassification.from_hf(ref)
    ids, mask = inputs(ref.config)
    g = torch.Generator().manual_seed(2)
    if num_labels == 1:
        labels = torch.randn(ids.size(0), generator=g, dtype=torch.float64)
    elif num_labels == "multi":
        labels = torch.randint(0, 2, (ids.size(0), n), generator=g).double()
    else:
        labels = torch.randint(0, n, (ids.size(0),), generator=g)
    a = ref(input_ids=ids, attention_mask=mask, labels=labels)
    b = ours(ids, mask, labels=labels)
    assert_close(b.logits, a.logits, **F64)
    assert_close(b.loss, a.loss, **F64)
    a.loss.backward()
    b.loss.backward()
    ref_g = hf_grads(ref)
    for name, p in ours.named_parameters():
        assert_close(p.grad, ref_g[name], **F64, msg=lambda m, k=name: f"grad {k}: {m}")


@pytest.mark.parametrize(("kw", "attn"), CONFIGS[:2], ids=IDS[:2])
def test_sequence_classification_matches_hf_float32(kw, attn):
    ref = hf_model(transformers.DistilBertForSequenceClassification, kw, attn, dtype=torch.float32)
    ours = DistilBertForSequenceClassification.from_hf(ref)
    ids, mask = inputs(ref.config, B=5, T=13)
    labels = torch.tensor([0, 1, 2, 1, 0])
    a = ref(input_ids=ids, attention_mask=mask, labels=labels)
    b = ours(ids, mask, labels=labels)
    assert_close(b.logits, a.logits, **F32)
    assert_close(b.loss, a.loss, **F32)
    a.loss.backward()
    b.loss.backward()
    ref_g = hf_grads(ref)
    for name, p in ours.named_parameters():
        assert_close(p.grad, ref_g[name], **F32, msg=lambda m, k=name: f"grad {k}: {m}")


def test_sinusoidal_positions_equal_hf_table():
    for n_pos, dim in [(16, 8), (50, 24), (512, 64)]:
        expected = create_sinusoidal_embeddings(n_pos, dim, torch.empty(n_pos, dim))
        assert_close(sinusoidal_positions(n_pos, dim), expected, rtol=0, atol=1e-7)
    # a fresh model with sinusoidal_pos_embds starts from that table (HF does the same)
    cfg = DistilBertConfig(vocab_size=20, d_model=16, n_layer=1, n_head=2, d_ff=32, max_positions=30,
                           sinusoidal_pos_embds=True)
    assert_close(DistilBertModel(cfg).embeddings.position.weight.detach(), sinusoidal_positions(30, 16))


def test_config_from_hf():
    hf = transformers.DistilBertConfig(dim=40, n_layers=2, n_heads=5, hidden_dim=70, activation="relu",
                                       sinusoidal_pos_embds=True, num_labels=4, seq_classif_dropout=0.3)
    for src in (hf, hf.to_dict()):
        cfg = DistilBertConfig.from_hf(src)
        assert (cfg.d_model, cfg.n_layer, cfg.n_head, cfg.d_ff, cfg.act) == (40, 2, 5, 70, "relu")
        assert (cfg.sinusoidal_pos_embds, cfg.num_labels, cfg.seq_classif_dropout) == (True, 4, 0.3)
    with pytest.raises(PiaError, match="not a DistilBERT checkpoint"):
        DistilBertConfig.from_hf(transformers.BertConfig())


def test_no_token_types_and_no_pooler():
    ref = hf_model(transformers.DistilBertModel, CONFIGS[0][0], "sdpa")
    ours = DistilBertModel.from_hf(ref)
    assert not hasattr(ours.embeddings, "token_type") and not hasattr(ours, "pooler")
    ids, mask = inputs(ref.config)
    assert ours(ids, mask).pooler_output is None


def test_from_pretrained_folder_and_errors(tmp_path):
    ref = hf_model(transformers.DistilBertForSequenceClassification, CONFIGS[1][0], "sdpa", dtype=torch.float32)
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "config.json").write_text(ref.config.to_json_string())
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(folder / "model.safetensors"))
    ours = DistilBertForSequenceClassification.from_pretrained(folder)
    ids, mask = inputs(ref.config)
    assert_close(ours(ids, mask).logits, ref(input_ids=ids, attention_mask=mask).logits, **F32)
    enc = DistilBertModel.from_pretrained(folder)  # the encoder alone from a task checkpoint
    assert_close(enc(ids, mask).last_hidden_state, ref.distilbert(input_ids=ids, attention_mask=mask).last_hidden_state,
                 **F32)
    base = tmp_path / "base"
    base.mkdir()
    (base / "config.json").write_text(ref.config.to_json_string())
    save_file({k: v.contiguous() for k, v in ref.distilbert.state_dict().items()}, str(base / "model.safetensors"))
    with pytest.raises(PiaError, match="lacks weights for DistilBertForSequenceClassification: pre_classifier"):
        DistilBertForSequenceClassification.from_pretrained(base)  # no head saved: say so, never init silently
    with pytest.raises(ValueError, match="longer than max_position_embeddings"):
        ours(torch.zeros(1, 21, dtype=torch.long))
