"""Misuse through the public API raises the exception type docs/api.md assigns, naming the problem."""
import os
import subprocess
import sys

import numpy as np
import pytest

import cgad
import cgad.nn as nn
import cgad.nn.functional as F


@pytest.mark.parametrize("fn,exc,match", [
    (lambda: cgad.ones(2, 3) + cgad.ones(4), ValueError, r"\(2, 3\).*\(4,\)"),
    (lambda: cgad.ones(2, 3) @ cgad.ones(4, 2), ValueError, "matmul"),
    (lambda: cgad.ones(6).reshape(4, 2), ValueError, "reshape"),
    (lambda: cgad.ones(2, 3).sum(2), IndexError, "dim"),
    (lambda: cgad.ones(2, 3).transpose(0, 5), IndexError, "dim"),
    (lambda: cgad.ones(2)[5], IndexError, "index"),
    (lambda: cgad.ones(3, dtype=cgad.int64, requires_grad=True), TypeError, "int64"),
    (lambda: cgad.ones(2, device="gpu"), ValueError, "gpu"),
    (lambda: cgad.ones(2, dtype="float16"), TypeError, "float16"),
    (lambda: cgad.tensor(["a", "b"]), TypeError, "tensor"),
    (lambda: cgad.ones(2) + "x", TypeError, "unsupported operand"),
    (lambda: cgad.ones(3)[cgad.tensor([0, 1])], TypeError, "index"),
    (lambda: F.embedding(cgad.tensor([0, 10]), cgad.ones(10, 4)), IndexError, "10"),
    (lambda: F.embedding(cgad.tensor([-1]), cgad.ones(10, 4)), IndexError, "-1"),
    (lambda: F.embedding(cgad.ones(2), cgad.ones(10, 4)), TypeError, "embedding"),
    (lambda: F.cross_entropy(cgad.ones(4, 5), cgad.tensor([0, 1, 2, 5])), IndexError, "target 5"),
    (lambda: F.cross_entropy(cgad.ones(4, 5), cgad.tensor([0, 1, 2])), ValueError, "cross_entropy"),
    (lambda: F.cross_entropy(cgad.ones(2, 4, 5), cgad.tensor([0, 1])), ValueError, r"\(2, 4, 5\)"),
    (lambda: F.layer_norm(cgad.ones(2, 3), (4,)), ValueError, "normalized_shape"),
    (lambda: F.scaled_dot_product_attention(cgad.ones(1, 2, 3, 4), cgad.ones(1, 2, 3, 5), cgad.ones(1, 2, 3, 4)),
     ValueError, "attention"),
    (lambda: F.dropout(cgad.ones(2), 1.5), ValueError, "dropout"),
    (lambda: F.gelu(cgad.ones(2), "fast"), ValueError, "approximate"),
    (lambda: cgad.ones(3).topk(4), ValueError, "topk"),
    (lambda: cgad.ones(2, 3).view(4, 2), ValueError, "view"),
    (lambda: cgad.cat([cgad.ones(2, 3), cgad.ones(3, 2)], 0), ValueError, "cat"),
    (lambda: cgad.zeros(1 << 24, 1 << 24), MemoryError, "cannot allocate"),
    (lambda: cgad.zeros(-1), ValueError, "negative"),
    (lambda: cgad.zeros(2.5), TypeError, "int"),
    (lambda: (cgad.ones(3, requires_grad=True) * 2).backward(), RuntimeError, "scalar"),
    (lambda: cgad.ones(3).expand(2, 4), ValueError, "expand"),
    (lambda: cgad.ones(2, 2).masked_fill(cgad.ones(3, dtype=cgad.bool), 0.0), ValueError, "masked_fill: shapes"),
])
def test_misuse_raises(fn, exc, match):
    with pytest.raises(exc, match=match):
        fn()


def test_state_dict_shape_mismatch_names_the_key():
    m = nn.Linear(3, 2)
    sd = {"weight": np.zeros((3, 2), np.float32), "bias": np.zeros(2, np.float32)}
    with pytest.raises(ValueError, match=r"weight.*\(3, 2\).*\(2, 3\)"):
        m.load_state_dict(sd)
    for kind in (RuntimeError, KeyError):  # torch raises RuntimeError; it is a lookup failure too
        with pytest.raises(kind, match=r"^load_state_dict: missing keys \['bias'\]"):
            m.load_state_dict({"weight": np.zeros((2, 3), np.float32)})


def test_grad_shape_mismatch_in_backward():
    x = cgad.ones(3, requires_grad=True)
    with pytest.raises((ValueError, RuntimeError), match="shape"):
        (x * 2).backward(cgad.ones(4))


def test_thread_counts_beyond_any_machine_are_a_value_error():
    # set_num_threads(100000) was accepted, and the next parallel loop segfaulted (libgomp's
    # per-team arrays on the stack); run in a child so a regression cannot take pytest down
    code = ("import cgad\n"
            "try:\n    cgad.set_num_threads(100000)\nexcept ValueError as e:\n    print('ValueError', e)\n"
            "print(float((cgad.randn(300, 300) * 2).sum()))\n")
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(cgad.__file__))))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    assert "ValueError set_num_threads" in proc.stdout
    for n in (0, 2**70):
        with pytest.raises(ValueError, match="set_num_threads"):
            cgad.set_num_threads(n)


def test_manual_seed_range():
    cgad.manual_seed(2**64 - 1)  # was TypeError (int64 only); torch takes [-2**63, 2**64)
    a = cgad.randn(3).tolist()
    cgad.manual_seed(-1)
    assert cgad.randn(3).tolist() == a
    with pytest.raises(ValueError, match="manual_seed"):
        cgad.manual_seed(2**64)
    with pytest.raises(TypeError):
        cgad.manual_seed("0")


def test_grad_assignment_and_copy_into_an_expanded_view():
    x = cgad.ones(2, requires_grad=True)
    with pytest.raises(TypeError, match="grad"):
        x.grad = 5  # was RuntimeError: Unable to cast
    with pytest.raises(RuntimeError, match="expanded"):
        cgad.ones(1).expand(3).copy_(cgad.tensor([1.0, 2.0, 3.0]))  # silently wrote 3 into one location
