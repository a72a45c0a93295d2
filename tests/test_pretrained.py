"""GPT.from_pretrained on safetensors files written here in each layout real GPT-2 files come in:
OpenAI-converted (no `transformer.` prefix), transformers' GPT2LMHeadModel (prefix, lm_head
stored tied), nanoGPT names (Linear orientation); Conv1D weights stored (in, out). Logits are
checked against the PyTorch reference fixture."""
import json
import os

import numpy as np
import pytest
from safetensors.numpy import save_file

import cgad
from cgad.models.gpt import GPT, GPTConfig

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures",
                       "gpt_tiny_reference.npz")
CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


def nmax(a, b):
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


@pytest.fixture(scope="module")
def ref():
    return dict(np.load(FIXTURE))


def hf_tensors(weights, prefix, with_lm_head, n_layer, block):
    """Reference weights renamed and laid out as a Hugging Face GPT-2 file."""
    out = {}
    for name, w in weights.items():
        if name == "lm_head.weight":
            continue
        if name.endswith(CONV1D):
            w = np.ascontiguousarray(w.T)
        out[prefix + name[len("transformer."):]] = w
    for i in range(n_layer):  # the causal-mask buffers HF files carry
        out[f"{prefix}h.{i}.attn.bias"] = np.tril(np.ones((1, 1, block, block), np.float32))
        out[f"{prefix}h.{i}.attn.masked_bias"] = np.array(-1e4, dtype=np.float32)
    if with_lm_head:
        out["lm_head.weight"] = weights["transformer.wte.weight"].copy()
    return out


def write_folder(path, tensors, ref):
    V, C, n_layer, n_head, block = (int(v) for v in ref["hparams"][:5])
    os.makedirs(path)
    save_file(tensors, os.path.join(path, "model.safetensors"))
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump({"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "n_layer": n_layer,
                   "n_head": n_head, "n_embd": C, "n_positions": block, "vocab_size": V}, f)
    return str(path)


@pytest.mark.parametrize("layout", ["openai", "transformers", "nanogpt"])
def test_layouts_load_and_match_torch_logits(tmp_path, ref, layout):
    weights = {k[2:]: v for k, v in ref.items() if k.startswith("w.")}
    n_layer, block = int(ref["hparams"][2]), int(ref["hparams"][4])
    if layout == "openai":
        tensors = hf_tensors(weights, "", False, n_layer, block)
    elif layout == "transformers":
        tensors = hf_tensors(weights, "transformer.", True, n_layer, block)
    else:
        tensors = dict(weights)
    model = GPT.from_pretrained(write_folder(tmp_path / layout, tensors, ref))
    assert model.config.n_head == int(ref["hparams"][3])
    logits, loss = model(cgad.tensor(ref["x"]), cgad.tensor(ref["y"]))
    assert nmax(logits.numpy(), ref["logits"]) <= 1e-5
    assert abs(loss.item() - float(ref["loss"])) <= 1e-5 * float(ref["loss"])


def test_bare_file_uses_gpt2_head_table(tmp_path):
    # a 768-wide file with no config.json: n_head comes from the GPT-2 family table (12)
    cgad.manual_seed(3)
    src = GPT(GPTConfig(block_size=8, vocab_size=11, n_layer=1, n_head=12, n_embd=768))
    weights = {k: v.numpy() for k, v in src.state_dict().items()}
    path = tmp_path / "gpt2.safetensors"
    save_file(hf_tensors(weights, "", False, 1, 8), str(path))
    model = GPT.from_pretrained(str(path))
    assert (model.config.n_head, model.config.n_layer, model.config.block_size) == (12, 1, 8)
    idx = cgad.tensor([[1, 2, 3, 4]])
    np.testing.assert_allclose(model(idx)[0].numpy(), src(idx)[0].numpy(), rtol=0, atol=1e-5)


def test_bad_inputs(tmp_path, ref):
    with pytest.raises(FileNotFoundError):
        GPT.from_pretrained(str(tmp_path / "missing"))
    os.makedirs(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        GPT.from_pretrained(str(tmp_path / "empty"))
    save_file({"foo": np.zeros(3, np.float32)}, str(tmp_path / "x.safetensors"))
    with pytest.raises(ValueError, match="not GPT-2"):
        GPT.from_pretrained(str(tmp_path / "x.safetensors"))
    weights = {k[2:]: v for k, v in ref.items() if k.startswith("w.")}
    partial = {k: v for k, v in weights.items() if k != "transformer.h.1.ln_2.bias"}
    with pytest.raises(ValueError, match="ln_2.bias"):
        GPT.from_pretrained(write_folder(tmp_path / "partial", partial, ref))
    untied = dict(weights)
    untied["lm_head.weight"] = untied["lm_head.weight"] + 1.0
    with pytest.raises(ValueError, match="ties"):
        GPT.from_pretrained(write_folder(tmp_path / "untied", untied, ref))
