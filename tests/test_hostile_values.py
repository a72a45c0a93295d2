"""Hostile input (issue 20), continued: scalars that do not fit a float dtype, conversion errors
that name the op, multinomial weights whose sum overflows, and checkpoint state that is
well-formed JSON with a valid digest but the wrong structure."""
import json
import os

import numpy as np
import pytest

import cgad
from cgad import checkpoint
from cgad.models.gpt import GPT, GPTConfig
from conftest import DEVICES

BF16_MAX = 3.3895313892515355e38


# --- a finite value beyond the dtype's largest is an error, not a silent inf (torch raises too)

@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype,value", [(cgad.float32, 1e300), (cgad.float32, -3.5e38),
                                         (cgad.bfloat16, 3.4e38), (cgad.bfloat16, -1e39)])
def test_fill_full_masked_fill_reject_float_overflow(device, dtype, value):
    t = cgad.zeros(3, dtype=dtype, device=device)
    with pytest.raises(ValueError, match=r"fill_: value .* without overflow"):
        t.fill_(value)
    np.testing.assert_array_equal(t.numpy(), np.zeros(3, np.float32))  # left as it was
    with pytest.raises(ValueError, match=r"full: value .* without overflow"):
        cgad.full((2,), value, dtype=dtype, device=device)
    mask = cgad.tensor([True, False], device=device)
    with pytest.raises(ValueError, match=r"masked_fill: value .* without overflow"):
        cgad.zeros(2, dtype=dtype, device=device).masked_fill(mask, value)


@pytest.mark.parametrize("device", DEVICES)
def test_inf_nan_and_the_largest_finite_values_still_fill(device):
    for value in (float("inf"), float("-inf")):
        assert np.all(cgad.zeros(2, device=device).fill_(value).numpy() == value)
    assert np.isnan(cgad.full((2,), float("nan"), device=device).numpy()).all()
    big = float(np.finfo(np.float32).max)
    assert np.all(cgad.full((2,), big, device=device).numpy() == np.float32(big))
    b = cgad.full((2,), BF16_MAX, dtype=cgad.bfloat16, device=device).numpy()
    assert np.all(b == np.float32(BF16_MAX))
    assert np.all(cgad.zeros(2, dtype=cgad.float64, device=device).fill_(1e300).numpy() == 1e300)


def test_scalar_operands_overflow_to_inf_as_in_torch():
    # an operand is not a fill: float32 * 1e300 is inf in torch, without an error
    np.testing.assert_array_equal((cgad.ones(2) * 1e300).numpy(), [np.inf, np.inf])
    np.testing.assert_array_equal((cgad.ones(2) - 1e300).numpy(), [-np.inf, -np.inf])


# --- conversion errors name the op the user called

@pytest.mark.parametrize("device", DEVICES)
def test_float_to_int_conversion_errors_name_the_op(device):
    x = cgad.tensor([1.0, float("nan")], device=device)
    with pytest.raises(ValueError, match=r"^to: cannot convert the float32 value nan to int64"):
        x.long()
    with pytest.raises(ValueError, match=r"^to: cannot convert the float32 value 1e\+30 to int32"):
        cgad.tensor([1e30], device=device).to(cgad.int32)
    dst = cgad.zeros(2, dtype=cgad.int64, device=device)
    with pytest.raises(ValueError, match=r"^copy_: cannot convert the float32 value inf to int64"):
        dst.copy_(cgad.tensor([2.0, float("inf")], device=device))
    np.testing.assert_array_equal(dst.numpy(), [0, 0])  # checked before anything is written


# --- multinomial: weights near float64's maximum sum to inf, which must not bias the draws

def test_multinomial_with_an_overflowing_sum_keeps_the_distribution():
    probs = cgad.tensor(np.array([1e308, 1e308, 0.5e308]))  # sum overflows float64
    cgad.manual_seed(0)
    draws = np.array([cgad.multinomial(probs, 1).item() for _ in range(600)])
    counts = np.bincount(draws, minlength=3)
    # expected 240/240/120; an infinite running total sent every draw to the last category
    assert abs(counts[2] - 120) < 45 and abs(counts[0] - 240) < 60, counts
    # without replacement all three come out, each once
    assert sorted(cgad.multinomial(probs, 3).numpy().tolist()) == [0, 1, 2]


# --- checkpoint state: well-formed JSON, valid digest, wrong structure

def _tiny_checkpoint(tmp_path):
    cgad.manual_seed(0)
    model = GPT(GPTConfig(block_size=8, vocab_size=13, n_layer=1, n_head=2, n_embd=16))
    opt = model.configure_optimizers(0.1, 1e-3)
    checkpoint.save_checkpoint(str(tmp_path), 1, model, opt, {})
    return model, opt, checkpoint.resolve_checkpoint(str(tmp_path))


def _rewrite_state(ckpt, edit):
    path = os.path.join(ckpt, checkpoint.STATE_FILE)
    with open(path, encoding="utf-8") as f:
        state = json.load(f)
    edit(state)
    state.pop(checkpoint.STATE_HASH_KEY, None)
    state[checkpoint.STATE_HASH_KEY] = checkpoint._state_digest(state)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(state, f)
    return path


@pytest.mark.parametrize("edit", [lambda s: s.update(step="1"), lambda s: s.update(files=["model"]),
                                  lambda s: s["files"].update({"model.safetensors": 7})])
def test_state_with_the_wrong_structure_is_a_value_error_naming_it(tmp_path, edit):
    model, opt, ckpt = _tiny_checkpoint(tmp_path)
    path = _rewrite_state(ckpt, edit)
    with pytest.raises(ValueError, match=f"{path}: corrupt checkpoint state"):
        checkpoint.load_checkpoint(str(tmp_path), model, opt)


@pytest.mark.parametrize("edit", [lambda s: s.pop("optimizer"),
                                  lambda s: s["optimizer"].update(param_groups=[{"lr": "x"}])])
def test_optimizer_state_that_does_not_fit_is_a_value_error_naming_the_checkpoint(tmp_path, edit):
    model, opt, ckpt = _tiny_checkpoint(tmp_path)
    _rewrite_state(ckpt, edit)
    with pytest.raises(ValueError, match="optimizer state does not match"):
        checkpoint.load_checkpoint(str(tmp_path), model, opt)


@pytest.mark.parametrize("device", DEVICES)
def test_integer_arange_past_its_dtype_is_an_error_not_a_wrap(device):
    with pytest.raises(ValueError, match="arange: value 2.14748e\\+09 cannot be converted to int32"):
        cgad.arange(2**31 - 1, 2**31 + 2, dtype=cgad.int32, device=device)
    with pytest.raises(ValueError, match="arange: value"):
        cgad.arange(-2**31, -2**31 - 3, -1, dtype=cgad.int32, device=device)
    np.testing.assert_array_equal(cgad.arange(2**31 - 3, 2**31, dtype=cgad.int32, device=device).numpy(),
                                  [2**31 - 3, 2**31 - 2, 2**31 - 1])
