"""Misuse through the public API raises the exception type DESIGN.md assigns, naming the problem."""
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
    (lambda: cgad.ones(2) + "x", TypeError, ""),
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
    (lambda: cgad.zeros(1 << 24, 1 << 24), MemoryError, ""),
    (lambda: cgad.zeros(-1), ValueError, "negative"),
    (lambda: cgad.zeros(2.5), TypeError, "int"),
    (lambda: (cgad.ones(3, requires_grad=True) * 2).backward(), RuntimeError, "scalar"),
    (lambda: cgad.ones(3).expand(2, 4), ValueError, "expand"),
    (lambda: cgad.ones(2, 2).masked_fill(cgad.ones(3, dtype=cgad.bool), 0.0), ValueError, ""),
])
def test_misuse_raises(fn, exc, match):
    with pytest.raises(exc, match=match):
        fn()


def test_state_dict_shape_mismatch_names_the_key():
    m = nn.Linear(3, 2)
    sd = {"weight": np.zeros((3, 2), np.float32), "bias": np.zeros(2, np.float32)}
    with pytest.raises(ValueError, match=r"weight.*\(3, 2\).*\(2, 3\)"):
        m.load_state_dict(sd)
    with pytest.raises(KeyError, match="bias"):
        m.load_state_dict({"weight": np.zeros((2, 3), np.float32)})


def test_grad_shape_mismatch_in_backward():
    x = cgad.ones(3, requires_grad=True)
    with pytest.raises((ValueError, RuntimeError), match="shape"):
        (x * 2).backward(cgad.ones(4))
