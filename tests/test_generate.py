"""Generation with the key/value cache (GPT.generate_tokens, use_cache=True) against the uncached
path: the same logits at every generated position, the same ids for the same seed, across the
crop at block_size; memory flat over a long generation and no graph left behind."""
import numpy as np
import pytest

import cgad
from cgad.models import gpt as gpt_module
from cgad.models.gpt import GPT, GPTConfig
from conftest import DEVICES, nmax_err

# HS = 10 and C = 40 leave remainders in the decode kernels' 16-lane dot products, V = 61 in their
# 4-row tiles
CONFIG = GPTConfig(block_size=16, vocab_size=61, n_layer=2, n_head=4, n_embd=40)


def make_model(device="cpu", seed=0):
    cgad.manual_seed(seed)
    model = GPT(CONFIG)
    model.eval()
    return model.to(device)


def prompt(B, T, device="cpu", seed=1):
    ids = np.random.default_rng(seed).integers(0, CONFIG.vocab_size, size=(B, T))
    return cgad.tensor(ids, device=device)


def run_recording(monkeypatch, model, idx, n, use_cache, **kw):
    """(new ids (B, n), the logits (B, V) each step sampled from) of one generation."""
    seen = []
    sample = gpt_module._sample

    def recording(logits, temperature, top_k):
        seen.append(logits.numpy())
        return sample(logits, temperature, top_k)

    monkeypatch.setattr(gpt_module, "_sample", recording)
    out = [t.numpy() for t in model.generate_tokens(idx, n, use_cache=use_cache, **kw)]
    monkeypatch.setattr(gpt_module, "_sample", sample)
    return np.concatenate(out, axis=1), seen


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("B", [1, 3])
@pytest.mark.parametrize("T, n", [(1, 6), (1, 24), (5, 20), (20, 6)])  # the last three crop
def test_cached_logits_match_uncached_at_every_step(monkeypatch, device, B, T, n):
    model = make_model(device)
    idx = prompt(B, T, device)
    ids_c, logits_c = run_recording(monkeypatch, model, idx, n, True, top_k=1)
    ids_u, logits_u = run_recording(monkeypatch, model, idx, n, False, top_k=1)
    assert len(logits_c) == len(logits_u) == n
    for step, (c, u) in enumerate(zip(logits_c, logits_u)):
        assert c.shape == (B, CONFIG.vocab_size)
        assert nmax_err(c, u) < 1e-5, f"step {step}"
    np.testing.assert_array_equal(ids_c, ids_u)  # greedy: the same tokens


@pytest.mark.parametrize("device", DEVICES)
def test_same_seed_same_ids_with_and_without_cache(device):
    model = make_model(device)
    idx = prompt(2, 3, device)
    outs = []
    for use_cache in (True, False, True):
        cgad.manual_seed(7)
        outs.append(model.generate(idx, 30, temperature=0.9, top_k=20, use_cache=use_cache).numpy())
    assert outs[0].shape == (2, 33)
    np.testing.assert_array_equal(outs[0][:, :3], idx.numpy())
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_array_equal(outs[0], outs[2])


def test_generate_is_built_on_generate_tokens():
    model = make_model()
    idx = prompt(2, 4)
    cgad.manual_seed(3)
    steps = list(model.generate_tokens(idx, 5, top_k=10))
    assert all(t.shape == (2, 1) and t.dtype == cgad.int64 for t in steps)
    cgad.manual_seed(3)
    out = model.generate(idx, 5, top_k=10)
    np.testing.assert_array_equal(out.numpy()[:, 4:], np.concatenate([t.numpy() for t in steps], axis=1))
    assert model.generate(idx, 0) is idx


@pytest.mark.parametrize("device", DEVICES)
def test_memory_flat_over_a_long_generation(device):
    config = GPTConfig(block_size=256, vocab_size=61, n_layer=2, n_head=4, n_embd=40)
    cgad.manual_seed(0)
    model = GPT(config).to(device)
    stats = []
    for _ in model.generate_tokens(prompt(2, 3, device), 200, top_k=10):
        s = cgad.memory_stats(device)
        stats.append((s["os_allocs"], s["allocated_bytes"]))
    # the cache and the step's buffers exist from the prefill on; after a warm-up step the
    # allocator neither asks the OS for memory nor holds more of it
    assert len(set(stats[2:])) == 1, stats[:5]


def test_generate_leaves_no_graph_and_grad_mode_on():
    model = make_model()
    idx = prompt(1, 4)
    gen = model.generate_tokens(idx, 3)
    for tok in gen:
        assert cgad.is_grad_enabled()  # the generator's no_grad never leaks into its consumer
        assert not tok.requires_grad
    out = model.generate(idx, 3)
    assert not out.requires_grad
    assert cgad.is_grad_enabled()
    assert all(p.grad is None for p in model.parameters())


def test_bad_sampling_arguments_raise_when_called():
    model = make_model()
    with pytest.raises(ValueError, match="temperature"):
        model.generate_tokens(prompt(1, 2), 3, temperature=0.0)
    with pytest.raises(ValueError, match="top_k"):
        model.generate_tokens(prompt(1, 2), 3, top_k=0)


def test_decode_ops_check_their_arguments():
    model = make_model()
    cache = gpt_module.KVCache(model, 1, 8, cgad.device("cpu"))
    wte, wpe = model.transformer.wte.weight, model.transformer.wpe.weight
    with pytest.raises(IndexError, match="out of range"):
        cgad._C.decode_embed_(cache.x, cgad.tensor([[CONFIG.vocab_size]]), wte, wpe, 0)
    with pytest.raises(IndexError, match="position"):
        cgad._C.decode_block_(cache.x, cache.weights[0], *cache.kv[0], 8, CONFIG.n_head, 1e-5, cache.work)
    with pytest.raises(ValueError, match="12 block weights"):
        cgad._C.decode_block_(cache.x, cache.weights[0][:5], *cache.kv[0], 0, CONFIG.n_head, 1e-5, cache.work)
    with pytest.raises(ValueError, match="attn.c_attn.weight"):
        w = list(cache.weights[0])
        w[2] = w[4]
        cgad._C.decode_block_(cache.x, w, *cache.kv[0], 0, CONFIG.n_head, 1e-5, cache.work)
    with pytest.raises(ValueError, match="work"):
        cgad._C.decode_logits_(cache.logits, cache.x, model.transformer.ln_f.weight, model.transformer.ln_f.bias,
                               wte, 1e-5, cgad.empty(3))


def test_decode_supported_reads_the_kernel_table():
    # the CPU backend registers the decode kernels for the CPU and the test device
    assert cgad._C.decode_supported("cpu") and cgad._C.decode_supported(cgad.device("test"))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("B", [1, 3])
@pytest.mark.parametrize("T, n", [(1, 6), (5, 20)])  # the second crops
def test_cached_path_without_fused_kernels_matches_fused(monkeypatch, device, B, T, n):
    # a device whose kernel table lacks the decode kernels (as CUDA's may) decodes through the
    # ordinary ops with the same cache: forced here on a device that has them
    model = make_model(device)
    idx = prompt(B, T, device)
    ids_f, logits_f = run_recording(monkeypatch, model, idx, n, True, top_k=1)
    monkeypatch.setattr(cgad._C, "decode_supported", lambda d: False)
    ids_o, logits_o = run_recording(monkeypatch, model, idx, n, True, top_k=1)
    ids_u, logits_u = run_recording(monkeypatch, model, idx, n, False, top_k=1)
    for step, (f, o, u) in enumerate(zip(logits_f, logits_o, logits_u)):
        assert nmax_err(o, f) < 1e-5, f"step {step}"
        assert nmax_err(o, u) < 1e-5, f"step {step}"
    np.testing.assert_array_equal(ids_o, ids_f)
    np.testing.assert_array_equal(ids_o, ids_u)


def test_cached_path_without_fused_kernels_leaves_no_graph(monkeypatch):
    monkeypatch.setattr(cgad._C, "decode_supported", lambda d: False)
    model = make_model()
    out = model.generate(prompt(2, 3), 8)
    assert out.shape == (2, 11) and not out.requires_grad and cgad.is_grad_enabled()
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("B", [1, 3])
def test_autocast_decodes_with_bf16_weights(monkeypatch, B):
    # under autocast the fused step reads bf16 copies of the weight matrices; the logits stay
    # within bf16's rounding of float32's, as do those of the ops path under autocast (a
    # cpu-only region: autocast("cpu") does not cover the test device)
    model = make_model()
    idx = prompt(B, 3)
    ids_f, logits_f = run_recording(monkeypatch, model, idx, 20, True, top_k=1)
    with cgad.autocast("cpu"):
        ids_b, logits_b = run_recording(monkeypatch, model, idx, 20, True, top_k=1)
        monkeypatch.setattr(cgad._C, "decode_supported", lambda d: False)
        ids_o, logits_o = run_recording(monkeypatch, model, idx, 20, True, top_k=1)
    for step, (f, b, o) in enumerate(zip(logits_f, logits_b, logits_o)):
        assert 0 < nmax_err(b, f) < 1e-2, f"step {step}"  # > 0: bf16 weights were read
        assert nmax_err(o.astype(np.float32), f) < 2e-2, f"step {step}"
    np.testing.assert_array_equal(ids_b, ids_f)  # greedy: the same tokens on this model
    np.testing.assert_array_equal(ids_o, ids_f)
    for w in model.parameters():
        assert w.dtype == cgad.float32  # the copies are the cache's, not the model's


def test_decode_ops_check_bf16_weights():
    model = make_model()
    cache = gpt_module.KVCache(model, 1, 8, cgad.device("cpu"), bf16_weights=True)
    ln_f = model.transformer.ln_f
    assert cache.weights[0][2].dtype == cache.lm_head.dtype == cgad.bfloat16
    cgad._C.decode_block_(cache.x, cache.weights[0], *cache.kv[0], 0, CONFIG.n_head, 1e-5, cache.work)
    with pytest.raises(TypeError, match="one dtype"):
        w = list(cache.weights[0])
        w[8] = model.transformer.h[0].mlp.c_fc.weight  # float32 beside bf16 matrices
        cgad._C.decode_block_(cache.x, w, *cache.kv[0], 0, CONFIG.n_head, 1e-5, cache.work)
    with pytest.raises(TypeError, match="needs a float32 x"):
        x64 = cache.x.double()
        cgad._C.decode_logits_(cache.logits.double(), x64, ln_f.weight.double(), ln_f.bias.double(),
                               cache.lm_head, 1e-5, cache.work.double())
