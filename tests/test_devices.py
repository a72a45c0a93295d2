"""The "test" device (CPU-backed, its own memory pool, data readable only inside kernels): creation
on a device, moves between devices (differentiable, in place for modules), and device errors."""
import numpy as np
import pytest

import cgad
import cgad.nn as nn

CREATORS = {
    "zeros": lambda d: cgad.zeros(2, 3, device=d),
    "ones": lambda d: cgad.ones(2, 3, dtype=cgad.float64, device=d),
    "full": lambda d: cgad.full((4,), 7, device=d),
    "randn": lambda d: cgad.randn(3, 5, device=d),
    "rand": lambda d: cgad.rand(3, 5, dtype=cgad.float64, device=d),
    "arange": lambda d: cgad.arange(2, 11, 3, device=d),
    "arange_float": lambda d: cgad.arange(0.5, 2.0, 0.25, device=d),
    "tensor": lambda d: cgad.tensor([[1, 2], [3, 4]], device=d),
    "tril": lambda d: cgad.tril(cgad.ones(3, 4, device=d), diagonal=1),
    "multinomial": lambda d: cgad.multinomial(cgad.tensor([[0.1, 0.2, 0.7], [0.5, 0.5, 0.0]], device=d), 2),
}


@pytest.mark.parametrize("name", list(CREATORS))
def test_creation_on_the_test_device_matches_the_cpu(name):
    cgad.manual_seed(7)
    ref = CREATORS[name]("cpu")
    cgad.manual_seed(7)
    cpu_before = cgad.memory_stats("cpu")["allocated_bytes"]
    t = CREATORS[name]("test")
    assert str(t.device) == "test" and t.dtype == ref.dtype
    # created where asked, not on the CPU and then moved (the CPU pool holds nothing new)
    assert cgad.memory_stats("cpu")["allocated_bytes"] == cpu_before
    np.testing.assert_array_equal(t.numpy(), ref.numpy())


def test_to_device_is_differentiable_and_round_trips():
    x = cgad.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    y = x.to("test")
    assert y.device == "test" and y.requires_grad
    z = (y * y).sum().to("cpu")
    z.backward()
    assert x.grad.device == "cpu"
    np.testing.assert_array_equal(x.grad.numpy(), 2 * np.arange(6.0).reshape(2, 3))
    assert x.to("cpu") is x or x.to("cpu").device == "cpu"


def test_copy_fill_across_devices():
    dst = cgad.zeros(2, 3, device="test")
    dst.copy_(cgad.tensor(np.ones((2, 3), np.float32) * 5))  # a CPU source is moved first
    np.testing.assert_array_equal(dst.numpy(), np.full((2, 3), 5, np.float32))
    dst.fill_(2.5)
    assert dst.device == "test"
    np.testing.assert_array_equal(dst.numpy(), np.full((2, 3), 2.5, np.float32))


def test_module_to_moves_parameters_in_place():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(5, 4)
            self.ln = nn.LayerNorm(4)
            self.head = nn.Linear(4, 5, bias=False)
            self.head.weight = self.emb.weight  # tied, as GPT's lm_head and wte

    m = Tied()
    opt = cgad.optim.AdamW(m.parameters(), lr=1e-2)
    before = [id(p) for p in m.parameters()]
    values = [p.numpy() for p in m.parameters()]
    assert m.to("test") is m
    assert [id(p) for p in m.parameters()] == before  # the same tensor objects
    assert m.head.weight is m.emb.weight
    for p, v in zip(m.parameters(), values):
        assert p.device == "test" and p.is_leaf and p.requires_grad
        np.testing.assert_array_equal(p.numpy(), v)
    assert all(p is q for p, q in zip(opt.param_groups[0]["params"], m.parameters()))


def test_test_device_errors():
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        cgad.zeros(2, device="gpu")
    with pytest.raises(RuntimeError, match="expected all tensors on the same device, got cpu and test"):
        cgad.ones(2) - cgad.ones(2, device="test")
    with pytest.raises(RuntimeError, match="built without CUDA"):
        cgad.ones(2).to("cuda")


def test_multinomial_needs_enough_nonzero_categories():
    # two draws without replacement from a row with one possible category used to write out of bounds
    state = cgad.get_rng_state()
    with pytest.raises(ValueError, match="without replacement from row 0, which has 1 categories of nonzero"):
        cgad.multinomial(cgad.tensor([[0.0, 1.0, 0.0]]), 2)
    np.testing.assert_array_equal(cgad.get_rng_state(), state)  # nothing was drawn
