"""GPT on cgad against PyTorch reference outputs (tests/fixtures/gpt_tiny_reference.npz, written by
tests/reference/make_reference.py): logits, loss, gradients and a 5-step AdamW trajectory; plus
configuration, init, optimizer groups and generation."""
import math
import os

import numpy as np
import pytest

import cgad
import cgad.nn as nn
from cgad.models.gpt import GPT, GPTConfig

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures",
                       "gpt_tiny_reference.npz")


def nmax(a, b):
    """Normalized max error: max|a - b| / max|b|."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


@pytest.fixture(scope="module")
def ref():
    return dict(np.load(FIXTURE))


def reference_model(ref):
    V, C, n_layer, n_head, block = (int(v) for v in ref["hparams"][:5])
    model = GPT(GPTConfig(block_size=block, vocab_size=V, n_layer=n_layer, n_head=n_head,
                          n_embd=C))
    model.load_state_dict({k[2:]: v for k, v in ref.items() if k.startswith("w.")})
    return model


def test_logits_loss_and_gradients_match_torch(ref):
    model = reference_model(ref)
    logits, loss = model(cgad.tensor(ref["x"]), cgad.tensor(ref["y"]))
    assert logits.shape == ref["logits"].shape
    assert nmax(logits.numpy(), ref["logits"]) <= 1e-5
    assert nmax(loss.item(), ref["loss"]) <= 1e-5
    loss.backward()
    grads = dict(model.named_parameters())
    assert len(grads) == len([k for k in ref if k.startswith("g.")])
    for name, p in grads.items():
        assert nmax(p.grad.numpy(), ref["g." + name]) <= 1e-4, name


def test_adamw_clip_trajectory_matches_torch(ref):
    model = reference_model(ref)
    _, _, _, _, _, lr, b1, b2, eps, wd, clip = ref["hparams"]
    opt = model.configure_optimizers(float(wd), float(lr), betas=(float(b1), float(b2)),
                                     eps=float(eps))
    losses, norms = [], []
    for batch in ref["batches"]:
        opt.zero_grad()
        _, loss = model(cgad.tensor(batch[:, :-1]), cgad.tensor(batch[:, 1:]))
        loss.backward()
        norms.append(float(nn.utils.clip_grad_norm_(list(model.parameters()), float(clip))))
        losses.append(loss.item())
        opt.step()
    assert nmax(losses, ref["traj_loss"]) <= 1e-4
    assert nmax(norms, ref["traj_norm"]) <= 1e-4
    assert nmax(model.transformer.wte.weight.numpy(), ref["final_wte"]) <= 1e-4


def test_presets_and_validation():
    expected = {"tiny": (2, 4, 128, 128), "mini": (6, 6, 384, 256), "gpt2": (12, 12, 768, 1024),
                "gpt2-medium": (24, 16, 1024, 1024), "gpt2-large": (36, 20, 1280, 1024),
                "gpt2-xl": (48, 25, 1600, 1024)}
    for name, (n_layer, n_head, n_embd, block) in expected.items():
        c = GPTConfig.preset(name, vocab_size=65)
        assert (c.n_layer, c.n_head, c.n_embd, c.block_size, c.vocab_size) == \
            (n_layer, n_head, n_embd, block, 65)
    assert GPTConfig() == GPTConfig.preset("gpt2", vocab_size=50257)
    with pytest.raises(ValueError, match="preset"):
        GPTConfig.preset("huge")
    with pytest.raises(ValueError, match="divisible"):
        GPTConfig(n_embd=100, n_head=3)


def tiny_model(seed=0, vocab_size=61, block_size=16):
    cgad.manual_seed(seed)
    return GPT(GPTConfig(block_size=block_size, vocab_size=vocab_size, n_layer=2, n_head=2,
                         n_embd=32))


def test_init_statistics_and_tying():
    model = GPT(GPTConfig(block_size=64, vocab_size=512, n_layer=4, n_head=4, n_embd=128))
    p = dict(model.named_parameters())
    assert "lm_head.weight" not in p  # tied: listed once, under wte
    assert "lm_head.weight" in model.state_dict()
    model.transformer.wte.weight.normal_(0.0, 1.0)
    np.testing.assert_array_equal(model.lm_head.weight.numpy(), model.transformer.wte.weight.numpy())
    assert abs(p["transformer.h.0.attn.c_attn.weight"].numpy().std() - 0.02) < 1e-3
    resid = 0.02 / math.sqrt(2 * 4)
    assert abs(p["transformer.h.3.mlp.c_proj.weight"].numpy().std() - resid) < 5e-4
    assert abs(p["transformer.h.1.attn.c_proj.weight"].numpy().std() - resid) < 5e-4
    assert not p["transformer.h.0.mlp.c_fc.bias"].numpy().any()
    np.testing.assert_array_equal(p["transformer.ln_f.weight"].numpy(), 1.0)


def test_configure_optimizers_decays_only_2d_weights():
    model = tiny_model()
    opt = model.configure_optimizers(weight_decay=0.1, learning_rate=1e-3)
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim == 2 for p in decay["params"])
    assert all(p.ndim == 1 for p in no_decay["params"])
    # wte, wpe and 4 matrices per block; 2 LayerNorms x 2 + 4 biases per block, plus ln_f
    assert (len(decay["params"]), len(no_decay["params"])) == (2 + 4 * 2, 8 * 2 + 2)
    assert opt.get_alpha() == 1e-3 and tuple(decay["betas"]) == (0.9, 0.95)


def test_forward_without_targets_and_too_long():
    model = tiny_model()
    logits, loss = model(cgad.zeros(2, 5, dtype=cgad.int64))
    assert logits.shape == (2, 5, 61) and loss is None
    with pytest.raises(ValueError, match="block_size"):
        model(cgad.zeros(1, 17, dtype=cgad.int64))


def test_generate_top_k_stays_within_k():
    model = tiny_model()
    idx = cgad.tensor([[1, 2, 3]])
    logits, _ = model(idx)
    allowed = set(np.argsort(logits.numpy()[0, -1])[-3:].tolist())
    cgad.manual_seed(1)
    firsts = {int(model.generate(idx, 1, top_k=3).numpy()[0, -1]) for _ in range(40)}
    assert firsts <= allowed and len(firsts) > 1
    greedy = model.generate(idx, 1, top_k=1).numpy()[0, -1]
    assert greedy == int(np.argmax(logits.numpy()[0, -1]))


def test_generate_is_seeded_builds_no_graph_and_crops():
    model = tiny_model(block_size=8)
    idx = cgad.tensor([[5, 6], [7, 8]])
    cgad.manual_seed(42)
    a = model.generate(idx, 12, temperature=0.8, top_k=10)
    cgad.manual_seed(42)
    b = model.generate(idx, 12, temperature=0.8, top_k=10)
    assert a.shape == (2, 14)  # longer than block_size 8: the context was cropped
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    np.testing.assert_array_equal(a.numpy()[:, :2], idx.numpy())
    assert not a.requires_grad
    with pytest.raises(ValueError, match="temperature"):
        model.generate(idx, 1, temperature=0.0)


def test_tiny_preset_trains_a_step_and_generates():
    """The tiny preset end to end: forward, backward, clipping, AdamW, then sampling (the
    sanitizer run's training step)."""
    cgad.manual_seed(0)
    model = GPT(GPTConfig.preset("tiny", vocab_size=65))
    opt = model.configure_optimizers(0.1, 1e-3)
    data = np.random.default_rng(0).integers(0, 65, (2, 33))
    x, y = cgad.tensor(data[:, :-1]), cgad.tensor(data[:, 1:])
    losses = []
    for _ in range(2):
        opt.zero_grad()
        _, loss = model(x, y)
        loss.backward()
        norm = float(nn.utils.clip_grad_norm_(model.parameters(), 1.0))
        opt.step()
        losses.append(loss.item())
        assert math.isfinite(norm) and norm > 0
    assert abs(losses[0] - math.log(65)) < 0.1 and losses[1] < losses[0]
    out = model.generate(x[:1, :4], 6, top_k=5)
    assert out.shape == (1, 10) and int(out.numpy().max()) < 65
