"""The Tensor API surface: creation defaults, conversion, devices, grad mode, RNG, threads."""
import numpy as np
import pytest

import cgad


def test_tensor_default_dtypes():
    assert cgad.tensor(1.5).dtype == cgad.float32
    assert cgad.tensor([1, 2]).dtype == cgad.int64
    assert cgad.tensor([True, False]).dtype == cgad.bool
    assert cgad.tensor(np.zeros(2, np.float64)).dtype == cgad.float64
    assert cgad.tensor(np.zeros(2, np.int32)).dtype == cgad.int32
    assert cgad.tensor([1, 2], dtype="float64").dtype == cgad.float64
    assert cgad.tensor(2.0).shape == ()
    assert cgad.arange(3).dtype == cgad.int64 and cgad.arange(0.0, 1.0, 0.25).dtype == cgad.float32
    np.testing.assert_allclose(cgad.arange(0.0, 1.0, 0.25).numpy(), [0, 0.25, 0.5, 0.75])


def test_tensor_copies_its_input():
    a = np.ones(3, np.float32)
    t = cgad.tensor(a)
    a[0] = 5
    assert t.numpy()[0] == 1
    u = cgad.from_numpy(a)
    a[1] = 7
    assert u.numpy()[1] == 1


def test_host_copies_and_conversions():
    t = cgad.tensor([[1.5, 2.5]], requires_grad=True)
    assert t.tolist() == [[1.5, 2.5]]
    assert np.asarray(t).dtype == np.float32
    assert t[0, 1].item() == 2.5 and float(t[0, 0]) == 1.5 and len(t) == 1
    assert t.long().dtype == cgad.int64 and t.to("float64").dtype == cgad.float64
    b = t.to(cgad.bfloat16)
    assert b.dtype == cgad.bfloat16 and b.numpy().dtype == np.float32
    assert t.ndim == 2 and t.numel() == 2 and t.is_leaf and t.size(-1) == 2
    assert t.cpu().device == "cpu" and str(t.device) == "cpu"


def test_creation_functions():
    assert cgad.zeros(2, 3).shape == (2, 3) and cgad.ones((4,)).numpy().sum() == 4
    assert cgad.empty([2, 2], dtype=cgad.float64).dtype == cgad.float64
    assert cgad.randn(3, requires_grad=True).requires_grad
    np.testing.assert_array_equal(cgad.tril(cgad.ones(3, 3)).numpy(), np.tril(np.ones((3, 3))))
    np.testing.assert_array_equal(cgad.tril(cgad.ones(3, 3), -1).numpy(), np.tril(np.ones((3, 3)), -1))


def test_cuda_absent():
    assert cgad.cuda.is_available() is False
    assert cgad.cuda.device_count() == 0
    with pytest.raises(RuntimeError, match="CUDA"):
        cgad.ones(2).to("cuda")
    with pytest.raises(RuntimeError, match="CUDA"):
        cgad.ones(2).cuda()
    with pytest.raises(RuntimeError, match="CUDA"):
        cgad.cuda.synchronize()
    with pytest.raises(ValueError, match="device"):
        cgad.ones(2).to("tpu")


def test_no_grad_context_and_decorator():
    x = cgad.ones(2, requires_grad=True)
    with cgad.no_grad():
        assert not cgad.is_grad_enabled()
        assert not (x * 2).requires_grad
    assert cgad.is_grad_enabled()

    @cgad.no_grad()
    def f(t):
        return t * 2
    assert not f(x).requires_grad and (x * 2).requires_grad


def test_detach_and_retain_graph():
    x = cgad.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [4.0, 8.0])  # accumulated twice
    with pytest.raises(RuntimeError, match="backward"):
        y.backward()
    assert not x.detach().requires_grad


def test_rng_state_round_trip_and_seed():
    cgad.manual_seed(123)
    a = cgad.randn(5).numpy()
    state = cgad.get_rng_state()
    assert state.dtype == np.uint8 and state.ndim == 1
    b = cgad.randn(5).numpy()
    cgad.set_rng_state(state)
    np.testing.assert_array_equal(cgad.randn(5).numpy(), b)
    cgad.manual_seed(123)
    np.testing.assert_array_equal(cgad.randn(5).numpy(), a)
    assert abs(cgad.randn(100000).numpy().std() - 1) < 0.01


def test_multinomial_follows_probabilities():
    cgad.manual_seed(0)
    probs = cgad.tensor([[0.1, 0.0, 0.9]])
    draws = [cgad.multinomial(probs, 1).item() for _ in range(400)]
    assert 1 not in draws and 0.8 < draws.count(2) / 400 < 0.97


def test_threads():
    n = cgad.get_num_threads()
    cgad.set_num_threads(1)
    assert cgad.get_num_threads() == 1
    cgad.set_num_threads(n)


def test_repr_mentions_grad():
    assert "requires_grad=True" in repr(cgad.ones(2, requires_grad=True))
    assert "grad_fn" in repr(cgad.ones(2, requires_grad=True) * 2)
