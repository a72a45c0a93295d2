"""Values at the edges that the sanitizer build once flagged as undefined behaviour: integer
arithmetic wraps around as torch's does, exp/tanh/GELU of NaN and inf keep IEEE results, and
shapes whose element count overflows are a ValueError."""
import math

import numpy as np
import pytest

import cgad
import cgad.nn.functional as F

I64_MIN, I64_MAX = -(2**63), 2**63 - 1
I32_MIN, I32_MAX = -(2**31), 2**31 - 1


def test_int64_add_sub_mul_neg_abs_and_sum_wrap_around():
    a = cgad.tensor([I64_MAX, I64_MIN, 2**62, 3])
    assert (a + 1).tolist() == [I64_MIN, I64_MIN + 1, 2**62 + 1, 4]
    assert (a - 1).tolist() == [I64_MAX - 1, I64_MAX, 2**62 - 1, 2]
    assert (a * 4).tolist() == [-4, 0, 0, 12]
    assert (-a).tolist() == [I64_MIN + 1, I64_MIN, -(2**62), -3]
    assert a.abs().tolist() == [I64_MAX, I64_MIN, 2**62, 3]
    assert cgad.tensor([I64_MAX, 1]).sum().item() == I64_MIN


def test_int32_wraps_around():
    a = cgad.tensor([I32_MAX, I32_MIN], dtype=cgad.int32)
    assert (a + cgad.tensor([1, -1], dtype=cgad.int32)).tolist() == [I32_MIN, I32_MAX]
    assert (-a).tolist() == [I32_MIN + 1, I32_MIN]
    assert (a * cgad.tensor([2, 2], dtype=cgad.int32)).tolist() == [-2, 0]


def test_wrap_around_matches_torch(torch):
    values = [I64_MAX, I64_MIN, 2**62, -(2**62) - 7, 3]
    a, t = cgad.tensor(values), torch.tensor(values)
    for f in (lambda x: x + x, lambda x: x * 3, lambda x: -x, lambda x: x - 5, lambda x: x.abs()):
        assert f(a).tolist() == f(t).tolist()
    assert a.sum().item() == t.sum().item()


@pytest.mark.parametrize("dtype", [cgad.float32, cgad.float64])
def test_transcendentals_of_nan_and_inf(dtype):
    x = cgad.tensor([float("nan"), float("inf"), -float("inf"), 0.0, 88.5, -104.0], dtype=dtype)
    e = x.exp().numpy()
    assert math.isnan(e[0]) and e[1] == math.inf and e[2] == 0.0 and e[3] == 1.0
    t = x.tanh().numpy()
    assert math.isnan(t[0]) and t[1] == 1.0 and t[2] == -1.0
    g = F.gelu(x, "tanh").numpy()
    assert math.isnan(g[0]) and g[1] == math.inf  # gelu(-inf) is NaN in torch as well
    s = cgad.tensor([[float("nan"), 1.0], [0.0, 1.0]], dtype=dtype).softmax(-1).numpy()
    assert np.isnan(s[0]).all() and np.isfinite(s[1]).all()


def test_overflowing_shapes_are_value_errors():
    x = cgad.zeros(4, 5)
    with pytest.raises(ValueError, match="too many elements"):
        x.reshape(2**40, 2**40)
    with pytest.raises(ValueError, match="too many elements"):
        x.view(2**40, 2**40, -1)
    with pytest.raises(ValueError):
        cgad.zeros(2**40, 2**40)
    assert cgad.zeros(0, 2**40).shape == (0, 2**40)
    assert cgad.arange(0, -1e300).shape == (0,)
