"""Hostile input (issue 20): deep graphs, in-place writes autograd must see, numbers that do not
fit, changing and malformed files, Python-level misuse. The crash classes run in a child process,
so a crash is a failed test naming the signal instead of a dead test run."""
import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import cgad
import cgad.nn as nn
from conftest import DEVICES

CGAD_PATH = os.path.dirname(os.path.dirname(os.path.abspath(cgad.__file__)))
# Under the sanitizers every frame is larger (the old recursion died sooner) and every op slower.
SANITIZED = "libasan" in os.environ.get("LD_PRELOAD", "")


def run_child(code, timeout=600):
    """Runs code in a fresh interpreter; an AssertionError names a signal or a failure."""
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=CGAD_PATH), timeout=timeout)
    if proc.returncode < 0:
        raise AssertionError(f"child died of {signal.Signals(-proc.returncode).name}\n{proc.stderr[-3000:]}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


# --- crashes: deep graphs

def test_million_node_chain_backward_and_release_do_not_recurse():
    depth = 200_000 if SANITIZED else 1_000_000
    out = run_child(f"""
        import cgad
        x = cgad.ones(1, requires_grad=True)
        y = x
        for _ in range({depth}):
            y = y * 1.0
        y.sum().backward()      # the engine walks the chain with its own stack
        assert x.grad.tolist() == [1.0]
        y = None                # the nodes free one another in a loop, not recursively
        y = x.unsqueeze(0)
        for _ in range({depth} // 4):
            y = (y + 1.0)[0].unsqueeze(0)   # views and binary nodes, never back-propagated
        y = None
        y = x
        for _ in range({depth} // 4):
            y = y * y               # two edges to one node, and saved tensors holding the chain
        y = None
        print("ok")
    """)
    assert out.strip() == "ok"


# --- silent wrong answers: in-place writes to tensors saved for backward

@pytest.mark.parametrize("device", DEVICES)
def test_inplace_write_to_saved_tensor_is_an_error_naming_the_op(device):
    def modify_under_no_grad(x, w):
        with cgad.no_grad():
            w.fill_(5.0)

    cases = [
        ("MulBackward", lambda x, w: (x * w).sum(), modify_under_no_grad),
        ("MulBackward", lambda x, w: (x * w).sum(), lambda x, w: w[1:].fill_(0.0)),  # through a view
        ("MulBackward", lambda x, w: (x * w).sum(), lambda x, w: w.detach().copy_(cgad.zeros(3, device=device))),
        ("LogBackward", lambda x, w: x.log().sum(), lambda x, w: x.detach().zero_()),
        ("ExpBackward", lambda x, w: (x.exp() * 1.0).sum(), lambda x, w: None),  # its output, below
        ("LinearBackward", lambda x, w: (x.reshape(1, 3) @ w.reshape(3, 1)).sum(), lambda x, w: w.copy_(np.ones(3))),
    ]
    for op, forward, modify in cases:
        x = cgad.ones(3, device=device, requires_grad=True)
        w = cgad.full((3,), 2.0, device=device)
        loss = forward(x, w)
        modify(x, w)
        if op == "ExpBackward":
            loss = x.exp()
            loss.fill_(0.0)  # exp saved its output
            loss = loss.sum()
        with pytest.raises(RuntimeError, match=rf"modified by an in-place operation: \w*(?:{op}|MatmulBackward)'s saved tensor"):
            loss.backward()


def test_optimizer_step_between_forward_and_backward_is_an_error():
    lin = nn.Linear(3, 2)
    opt = cgad.optim.AdamW(lin.parameters())
    loss = lin(cgad.ones(4, 3)).sum()
    loss.backward(retain_graph=True)
    opt.step()  # the weight the graph saved changes
    with pytest.raises(RuntimeError, match="LinearBackward's saved tensor of shape \\(2, 3\\) is at version \\d+; expected version \\d+"):
        loss.backward()


def test_version_counter_counts_every_inplace_write_and_spares_unsaved_inputs():
    t = cgad.zeros(4)
    v = t._version
    t.fill_(1.0)
    t[1:3].copy_(cgad.ones(2))
    t.zero_()
    t.detach().copy_(np.arange(4.0))
    assert t._version == v + 4 and t[1:]._version == t._version
    # add saves nothing, so changing its input afterwards is fine (as torch)
    x = cgad.ones(3, requires_grad=True)
    loss = (x + 1).sum()
    with cgad.no_grad():
        x.fill_(3.0)
    loss.backward()
    assert x.grad.tolist() == [1.0, 1.0, 1.0]
    # a graph kept with retain_graph runs again while nothing it saved changed
    y = cgad.ones(3, requires_grad=True)
    loss = (y * y).sum()
    loss.backward(retain_graph=True)
    loss.backward()
    assert y.grad.tolist() == [4.0, 4.0, 4.0]


@pytest.mark.parametrize("device", DEVICES)
def test_copy_from_an_overlapping_view_reads_the_source_first(device):
    a = cgad.arange(10, device=device).float()
    a[1:].copy_(a[:-1])
    assert a.tolist() == [0.0] + list(range(9))
    b = cgad.arange(10, device=device).float()
    b[:-2].copy_(b[2:])
    assert b.tolist() == list(range(2, 10)) + [8.0, 9.0]
    m = cgad.arange(9, device=device).float().reshape(3, 3)
    m.copy_(m.T)
    np.testing.assert_array_equal(m.numpy(), np.arange(9.0).reshape(3, 3).T)
    r = cgad.arange(6, device=device).float().reshape(2, 3)
    r.copy_(r[0])  # broadcast from a row of itself
    assert r.tolist() == [[0.0, 1.0, 2.0], [0.0, 1.0, 2.0]]


# --- silent wrong answers: numbers that do not fit

@pytest.mark.parametrize("make", [
    lambda: cgad.tensor([2**63]), lambda: cgad.tensor([1, 2**64]), lambda: cgad.tensor(-2**70),
    lambda: cgad.tensor(np.array([2**63], dtype=np.uint64)),
    lambda: cgad.tensor([float("nan")], dtype=cgad.int64), lambda: cgad.tensor([1.0, float("inf")]).long(),
    lambda: cgad.tensor([1e30]).to(cgad.int32), lambda: cgad.tensor([-3e9], dtype=cgad.float64).to(cgad.int32),
    lambda: cgad.zeros(2, dtype=cgad.int64).fill_(float("nan")), lambda: cgad.zeros(2, dtype=cgad.int32).fill_(2**40),
    lambda: cgad.zeros(2, dtype=cgad.int64).fill_(2**70), lambda: cgad.full((2,), 2**63),
    lambda: cgad.arange(2**62, 2**63 + 5), lambda: cgad.arange(0, 2**60, 2**58, dtype=cgad.int32),
], ids=lambda f: "")
def test_values_an_integer_dtype_cannot_hold_are_value_errors(make):
    with pytest.raises(ValueError):
        make()


@pytest.mark.parametrize("device", DEVICES)
def test_failed_float_to_int_copy_leaves_the_destination_unchanged(device):
    t = cgad.tensor([7, 8], device=device)
    with pytest.raises(ValueError, match="nan"):
        t.copy_(np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="inf"):
        t.copy_(cgad.tensor([float("inf"), 1.0], device=device))
    assert t.tolist() == [7, 8]
    assert cgad.tensor(np.array([-2147483648.9, 2147483647.5])).to(cgad.int32).tolist() == [-2147483648, 2147483647]


def test_large_integers_are_exact():
    big = 2**62 + 1  # not a double
    assert cgad.arange(2**53, 2**53 + 4).tolist() == [2**53 + i for i in range(4)]
    assert cgad.arange(big, big + 7, 3).tolist() == [big, big + 3, big + 6]
    assert cgad.arange(2**63 - 1, -2**63, -2**63 + 1).tolist() == [2**63 - 1, 0, -2**63 + 1]
    assert cgad.arange(-2**62, 2**62, 2**61).tolist() == [-2**62, -2**61, 0, 2**61]
    assert cgad.full((2,), big).tolist() == [big, big]
    assert cgad.zeros(2, dtype=cgad.int64).fill_(big).tolist() == [big, big]
    assert cgad.tensor([big, -big]).tolist() == [big, -big]
    assert cgad.tensor(np.array([2**63 - 1], dtype=np.uint64)).tolist() == [2**63 - 1]


@pytest.mark.parametrize("dtype", [">i8", ">i4", ">f4", ">f8", "<f8", "=i4"])
def test_numpy_byte_orders_are_converted(dtype):
    a = np.array([[1.5, -2.0, 3.0], [4.0, 2.0**20, -7.0]]).astype(np.dtype(dtype))
    expected = a.astype(a.dtype.newbyteorder("=")).tolist()
    assert cgad.from_numpy(a).tolist() == expected
    assert cgad.tensor(a).tolist() == expected
    assert cgad.tensor(a[:, ::2]).tolist() == a[:, ::2].tolist()
    t = cgad.zeros(2, 3, dtype=cgad.float64)
    t.copy_(a)
    assert t.tolist() == [[float(v) for v in row] for row in expected]


# --- Python-level misuse that would change state instead of raising

def test_module_assignment_never_silently_unregisters_a_parameter():
    lin = nn.Linear(2, 2)
    with pytest.raises(TypeError, match="cannot assign Tensor as parameter 'weight'"):
        lin.weight = cgad.ones(2, 2)
    with pytest.raises(TypeError, match="cannot assign ndarray as parameter 'bias'"):
        lin.bias = np.zeros(2)
    assert [n for n, _ in lin.named_parameters()] == ["weight", "bias"]
    seq = nn.Sequential(nn.Linear(2, 2))
    with pytest.raises(TypeError, match="child module '0'"):
        setattr(seq, "0", 3)
    lin.bias = None  # as torch: the name stays registered, with no parameter
    assert lin.bias is None and [n for n, _ in lin.named_parameters()] == ["weight"]
    lin.bias = nn.Parameter(cgad.zeros(2))
    assert [n for n, _ in lin.named_parameters()] == ["weight", "bias"]


def test_failed_load_state_dict_changes_nothing():
    lin = nn.Linear(3, 2)
    before = {k: v.numpy().copy() for k, v in lin.state_dict().items()}
    with pytest.raises(ValueError, match="bias has shape"):
        lin.load_state_dict({"weight": np.ones((2, 3), np.float32), "bias": np.ones(5, np.float32)})
    for k, v in lin.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), before[k])


def test_multinomial_num_samples_must_be_an_int():
    with pytest.raises(TypeError, match="num_samples must be an int"):
        cgad.multinomial(cgad.ones(3), 2.5)


# --- crashes and errors from files: shards that change, malformed weight files

def test_shard_rewritten_under_the_loader_is_an_error_not_sigbus(tmp_path):
    out = run_child(f"""
        import os, numpy as np
        from cgad.data import DataLoaderLite, write_shard
        path = {str(tmp_path / "tokens.bin")!r}
        write_shard(path, np.arange(5000) % 300)
        loader = DataLoaderLite(2, 8, path)
        loader.next_batch()
        # replaced the supported way (a new file renamed into place): the loader keeps its file
        write_shard(path, np.zeros(100))
        x, y = loader.next_batch()
        assert x.numpy()[0, 0] == 16 % 300, x.numpy()
        loader.reset()
        with open(path, "r+b") as f:   # rewritten in place: shorter than when it was opened
            f.truncate(1100)
        try:
            for _ in range(4):
                loader.next_batch()
        except ValueError as e:
            assert path in str(e) and "changed size" in str(e), e
            print("ok")
    """)
    assert out.strip() == "ok"
    assert sorted(os.listdir(tmp_path)) == ["tokens.bin"]  # no temporary file left behind


def save_raw_safetensors(path, header, data=b""):
    raw = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(len(raw).to_bytes(8, "little") + raw + data)
    return str(path)


def gpt_weights(n_layer=2, C=8, V=16, T=8, seed=0):
    from cgad.models.gpt import GPT, GPTConfig
    cgad.manual_seed(seed)
    model = GPT(GPTConfig(block_size=T, vocab_size=V, n_layer=n_layer, n_head=2, n_embd=C))
    return model, {k: v.numpy() for k, v in model.state_dict().items() if k != "lm_head.weight"}


@pytest.mark.parametrize("edit, match", [
    (lambda w: w.update({"transformer.h.1000000000.ln_1.weight": w["transformer.h.1.ln_1.weight"]}), "without gaps"),
    (lambda w: w.update({f"transformer.h.3.{k[16:]}": v for k, v in list(w.items()) if k.startswith("transformer.h.1.")}), "without gaps"),
    (lambda w: w.update({"transformer.h.0.attn.c_attn.wieght": w["transformer.h.0.attn.c_attn.weight"]}), "unexpected key"),
    (lambda w: w.update({"transformer.h.01.ln_1.weight": w["transformer.h.1.ln_1.weight"]}), "unexpected key"),
    (lambda w: w.update({"transformer.h.1.mlp.c_fc.weight": np.zeros((32, 9), np.float32)}), "mlp.c_fc.weight has shape"),
    (lambda w: w.update({"transformer.wpe.weight": np.zeros((8, 9), np.float32)}), "wpe.weight has shape"),
    (lambda w: w.pop("transformer.ln_f.bias"), "ln_f.bias is missing"),
])
def test_pretrained_keys_and_shapes_are_checked_before_building(tmp_path, edit, match):
    from safetensors.numpy import save_file
    from cgad.models.gpt import GPT
    _, w = gpt_weights()
    edit(w)
    path = tmp_path / "w.safetensors"
    save_file(w, str(path))
    before = cgad.memory_stats()["peak_bytes"]
    with pytest.raises(ValueError, match=match) as e:
        GPT.from_pretrained(str(path))
    assert str(path) in str(e.value)
    assert cgad.memory_stats()["peak_bytes"] == before  # nothing was built


@pytest.mark.parametrize("make, match", [
    (lambda p: open(p, "wb").write(b"\x01\x02"), "shorter than the 8-byte header length"),
    (lambda p: open(p, "wb").write((10**9).to_bytes(8, "little") + b"{}"), "header length"),
    (lambda p: open(p, "wb").write((5).to_bytes(8, "little") + b"{oops"), "corrupt safetensors header"),
    (lambda p: save_raw_safetensors(p, [1, 2]), "expected a JSON object"),
    (lambda p: save_raw_safetensors(p, {"wte.weight": {"dtype": "F32", "shape": [4, 4], "data_offsets": [0, 64]}}), "outside the file"),
    (lambda p: save_raw_safetensors(p, {"wte.weight": {"dtype": "F32", "shape": [4, 4], "data_offsets": [0, 8]}}, bytes(8)), "needs 64 bytes"),
    (lambda p: save_raw_safetensors(p, {"wte.weight": {"dtype": "C64", "shape": [1], "data_offsets": [0, 8]}}, bytes(8)), "unsupported dtype"),
    (lambda p: save_raw_safetensors(p, {"wte.weight": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 0]}}), "invalid shape"),
])
def test_malformed_safetensors_files_are_value_errors_naming_the_file(tmp_path, make, match):
    from cgad.models.gpt import GPT
    path = str(tmp_path / "bad.safetensors")
    make(path)
    with pytest.raises(ValueError, match=match) as e:
        GPT.from_pretrained(path)
    assert path in str(e.value)


def test_bad_config_json_is_a_value_error_naming_it(tmp_path):
    from safetensors.numpy import save_file
    from cgad.models.gpt import GPT
    _, w = gpt_weights()
    save_file(w, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="config.json: not valid JSON"):
        GPT.from_pretrained(str(tmp_path))
    (tmp_path / "config.json").write_text('{"n_head": 3}')
    with pytest.raises(ValueError, match="not divisible by n_head 3") as e:
        GPT.from_pretrained(str(tmp_path))
    assert "model.safetensors" in str(e.value)


@pytest.mark.parametrize("dtype", ["F16", "BF16"])
def test_half_precision_weight_files_load_as_float32(tmp_path, torch, dtype):
    from safetensors.torch import save_file
    from cgad.models.gpt import GPT
    model, w = gpt_weights()
    tdt = torch.float16 if dtype == "F16" else torch.bfloat16
    halves = {k: torch.from_numpy(v).to(tdt) for k, v in w.items()}
    save_file(halves, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text('{"n_head": 2}')
    loaded = GPT.from_pretrained(str(tmp_path))
    for name, p in loaded.state_dict().items():
        ref = halves.get(name, halves["transformer.wte.weight"] if name == "lm_head.weight" else None)
        assert p.dtype == cgad.float32
        np.testing.assert_array_equal(p.numpy(), ref.float().numpy(), err_msg=name)


# --- error types: the assigned type with cgad's own message, never pybind's or a KeyError

def _opt():
    return cgad.optim.AdamW(nn.Linear(2, 2).parameters())


@pytest.mark.parametrize("call, exc, match", [
    (lambda: cgad.ones(2).masked_fill(np.ones(2, bool), 0.0), TypeError, "masked_fill: mask must be a cgad.Tensor"),
    (lambda: cgad.ones(2).masked_fill(cgad.ones(2, dtype=cgad.bool), "x"), TypeError, "masked_fill: value must be a number"),
    (lambda: cgad.ones(2, 2) @ np.ones((2, 2)), TypeError, "matmul: other must be a cgad.Tensor, got ndarray"),
    (lambda: cgad.ones(2, 2).matmul([[1.0]]), TypeError, "matmul: other must be a cgad.Tensor"),
    (lambda: (cgad.ones(2, requires_grad=True) * 2).backward(np.ones(2)), TypeError, "backward: grad must be a cgad.Tensor"),
    (lambda: setattr(cgad.ones(2), "requires_grad", "yes"), TypeError, "requires_grad: expected a bool"),
    (lambda: cgad.ones(2).requires_grad_(1), TypeError, "requires_grad_: expected a bool"),
    (lambda: cgad.ones(2).type_as("float64"), TypeError, "type_as: other must be a cgad.Tensor"),
    (lambda: cgad.zeros_like([1, 2]), TypeError, "zeros_like: input must be a cgad.Tensor"),
    (lambda: nn.utils.clip_grad_norm_([1, 2], 1.0), TypeError, "parameter 0 must be a cgad.Tensor"),
    (lambda: nn.LayerNorm("8"), TypeError, "normalized_shape must be an int"),
    (lambda: nn.ModuleDict([nn.Linear(2, 2)]), TypeError, "expected a mapping"),
    (lambda: cgad.set_rng_state(None), TypeError, "expected a 1-D uint8 numpy array"),
    (lambda: cgad.set_rng_state(np.zeros(16)), TypeError, "expected a 1-D uint8 numpy array"),
    (lambda: cgad.ones(3, dtype=cgad.int64).masked_fill(cgad.ones(3, dtype=cgad.bool), 2**63), ValueError, "does not fit in int64"),
    (lambda: _opt().load_state_dict({"state": {}, "param_groups": [{"lr": 1.0}, {}]}), ValueError, "'params' list"),
    (lambda: _opt().load_state_dict({"state": {0: {"step": 1}}, "param_groups": [{"params": [0, 1]}]}), ValueError, "malformed"),
    (lambda: _opt().load_state_dict({"state": {7: {"step": 1, "exp_avg": np.zeros(2), "exp_avg_sq": np.zeros(2)}},
                                     "param_groups": [{"params": [0, 1]}]}), ValueError, "out of range"),
    (lambda: DataLoaderLite_from_nothing().load_state_dict({}), ValueError, "'shard' and 'position'"),
])
def test_misuse_raises_the_assigned_type_with_cgads_message(call, exc, match):
    with pytest.raises(exc, match=match) as e:
        call()
    assert "incompatible function arguments" not in str(e.value) and "Unable to cast" not in str(e.value)


def DataLoaderLite_from_nothing(tmp=[]):
    import tempfile
    from cgad.data import DataLoaderLite, write_shard
    path = os.path.join(tempfile.mkdtemp(), "t.bin")
    write_shard(path, np.arange(100))
    return DataLoaderLite(1, 4, path)


def test_failed_optimizer_load_state_dict_changes_nothing():
    opt = _opt()
    bad = {"state": {1: {"step": 1, "exp_avg": np.zeros(5), "exp_avg_sq": np.zeros(5)}},
           "param_groups": [{"params": [0, 1], "lr": 0.5}]}
    with pytest.raises(ValueError, match="shape"):
        opt.load_state_dict(bad)
    assert opt.param_groups[0]["lr"] == 1e-3 and opt.state_dict()["state"] == {}
    bad = {"state": {}, "param_groups": [{"params": [0, 1], "lr": "fast"}]}
    with pytest.raises(TypeError):
        opt.load_state_dict(bad)
    assert opt.param_groups[0]["lr"] == 1e-3


def test_index_writing_backward_kernels_check_their_indices():
    # the saved ids or indices are the op's own copies or its inputs; changed in place they are
    # caught by the version counter before a kernel could write outside the grad
    x = cgad.ones(2, 3, requires_grad=True)
    values, idx = x.max(1)
    idx.fill_(100)
    with pytest.raises(RuntimeError, match="MaxBackward's saved tensor"):
        values.sum().backward()
    w = cgad.ones(4, 3, requires_grad=True)
    ids = cgad.tensor([0, 3])
    out = cgad.nn.functional.embedding(ids, w)
    ids.fill_(1000)
    with pytest.raises(RuntimeError, match="EmbeddingBackward's saved tensor"):
        out.sum().backward()
    # topk and argmax with NaN and ties stay in range
    t = cgad.tensor([[float("nan"), 1.0, float("nan"), 1.0]])
    v, i = t.topk(4)
    assert sorted(i.tolist()[0]) == [0, 1, 2, 3] and t.argmax(1).tolist() == [0]


def test_stale_saved_tensor_is_found_before_any_grad_changes():
    # the add and sqrt nodes run first; the stale mul is found before them, so no leaf's grad
    # is half-accumulated when the error comes
    a = cgad.ones(3, dtype=cgad.float64, requires_grad=True)
    b = cgad.ones(3, dtype=cgad.float64, requires_grad=True)
    loss = ((a * a + 1.0).sqrt() + b).sum()
    with cgad.no_grad():
        a.fill_(2.0)
    with pytest.raises(RuntimeError, match="MulBackward's saved tensor"):
        loss.backward()
    assert a.grad is None and b.grad is None
