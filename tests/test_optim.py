"""Adam/AdamW and clip_grad_norm_: trajectories against torch.optim, groups, set_alpha, state_dict."""
import numpy as np
import pytest

import cgad
import cgad.nn as nn
from conftest import DEVICES, nmax_err

rng = np.random.default_rng(3)


def _problem():
    w0 = [rng.standard_normal((4, 3)).astype(np.float32), rng.standard_normal(3).astype(np.float32)]
    x = rng.standard_normal((8, 4)).astype(np.float32)
    return w0, x


def _run_cgad(opt_cls, w0, x, steps, clip, **kw):
    ps = [nn.Parameter(cgad.tensor(w)) for w in w0]
    opt = opt_cls([{"params": [ps[0]]}, {"params": [ps[1]], "weight_decay": 0.0}], **kw)
    losses, norms = [], []
    for s in range(steps):
        opt.param_groups[0]["lr"] = kw["lr"] * (1 - s / (2 * steps))  # a schedule through the dicts
        loss = (((cgad.tensor(x) @ ps[0] + ps[1]).tanh()) ** 2).sum()
        opt.zero_grad()
        loss.backward()
        norms.append(float(nn.utils.clip_grad_norm_(ps, clip)))
        opt.step()
        losses.append(loss.item())
    return [p.numpy() for p in ps], losses, norms


def _run_torch(torch, opt_cls, w0, x, steps, clip, **kw):
    ps = [torch.nn.Parameter(torch.tensor(w)) for w in w0]
    opt = opt_cls([{"params": [ps[0]]}, {"params": [ps[1]], "weight_decay": 0.0}], **kw)
    losses, norms = [], []
    for s in range(steps):
        opt.param_groups[0]["lr"] = kw["lr"] * (1 - s / (2 * steps))
        loss = (((torch.tensor(x) @ ps[0] + ps[1]).tanh()) ** 2).sum()
        opt.zero_grad()
        loss.backward()
        norms.append(float(torch.nn.utils.clip_grad_norm_(ps, clip)))
        opt.step()
        losses.append(loss.item())
    return [p.detach().numpy() for p in ps], losses, norms


@pytest.mark.parametrize("name", ["Adam", "AdamW"])
def test_trajectory_matches_torch(torch, name):
    w0, x = _problem()
    kw = dict(lr=0.05, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    ours = _run_cgad(getattr(cgad.optim, name), w0, x, 30, 0.5, **kw)
    ref = _run_torch(torch, getattr(torch.optim, name), w0, x, 30, 0.5, **kw)
    for a, b in zip(ours[0], ref[0]):
        assert nmax_err(a, b) < 1e-5
    assert nmax_err(ours[1], ref[1]) < 1e-5
    assert nmax_err(ours[2], ref[2]) < 1e-5


@pytest.mark.parametrize("device", DEVICES)
def test_adamw_first_step_by_hand(device):
    p = nn.Parameter(cgad.tensor([1.0, -2.0], device=device))
    opt = cgad.optim.AdamW([p], lr=0.1, weight_decay=0.5)
    p.grad = cgad.tensor([0.5, 0.0], device=device)
    opt.step()
    # step 1: m_hat = g, v_hat = g^2, update = g / (|g| + eps); decay first: p *= 1 - lr * wd
    expected = np.array([1.0 * 0.95 - 0.1 * 0.5 / (0.5 + 1e-8), -2.0 * 0.95], np.float32)
    np.testing.assert_allclose(p.numpy(), expected, rtol=1e-6)
    state = opt.state_dict()["state"][0]
    np.testing.assert_allclose(state["exp_avg"], [0.05, 0.0], rtol=1e-6)  # moments: host copies of device state
    assert p.device == device


def test_skips_params_without_grad_and_set_alpha():
    a, b = nn.Parameter(cgad.ones(2)), nn.Parameter(cgad.ones(2))
    opt = cgad.optim.Adam([a, b], lr=0.1)
    a.grad = cgad.ones(2)
    opt.step()
    np.testing.assert_array_equal(b.numpy(), [1, 1])
    assert a.numpy()[0] < 1
    assert 1 not in opt.state_dict()["state"]
    opt.set_alpha(0.5)
    assert opt.get_alpha() == 0.5 and all(g["lr"] == 0.5 for g in opt.param_groups)


def test_state_dict_round_trip_continues_identically():
    w0, x = _problem()

    def steps(opt, ps, n):
        for _ in range(n):
            opt.zero_grad()
            ((cgad.tensor(x) @ ps[0] + ps[1]) ** 2).mean().backward()
            opt.step()

    ps = [nn.Parameter(cgad.tensor(w)) for w in w0]
    opt = cgad.optim.AdamW(ps, lr=0.01)
    steps(opt, ps, 3)
    sd = opt.state_dict()
    assert sd["state"][0]["step"] == 3 and sd["state"][0]["exp_avg"].shape == (4, 3)
    saved = [p.numpy().copy() for p in ps]
    steps(opt, ps, 2)
    after = [p.numpy() for p in ps]
    ps2 = [nn.Parameter(cgad.tensor(w)) for w in saved]
    opt2 = cgad.optim.AdamW(ps2, lr=0.5)
    opt2.load_state_dict(sd)
    assert opt2.get_alpha() == 0.01
    steps(opt2, ps2, 2)
    for a, b in zip(after, ps2):
        np.testing.assert_array_equal(a, b.numpy())


@pytest.mark.parametrize("device", DEVICES)
def test_clip_grad_norm_formula(device):
    p = nn.Parameter(cgad.zeros(4, device=device))
    p.grad = cgad.tensor([3.0, 4.0, 0.0, 0.0], device=device)
    norm = nn.utils.clip_grad_norm_([p], 1.0)
    assert norm.shape == () and norm.dtype == cgad.float32 and float(norm) == 5.0 and norm.device == device
    np.testing.assert_allclose(p.grad.numpy(), np.array([3, 4, 0, 0]) / (5 + 1e-6), rtol=1e-6)
    p.grad = cgad.tensor([0.3, 0.4, 0.0, 0.0], device=device)
    assert abs(float(nn.utils.clip_grad_norm_([p], 1.0)) - 0.5) < 1e-7
    np.testing.assert_allclose(p.grad.numpy(), [0.3, 0.4, 0, 0], rtol=1e-7)


def test_bad_hyperparameters():
    p = nn.Parameter(cgad.ones(2))
    with pytest.raises(ValueError, match="learning rate"):
        cgad.optim.AdamW([p], lr=-1.0)
    with pytest.raises(ValueError, match="beta"):
        cgad.optim.Adam([p], betas=(1.5, 0.9))
    with pytest.raises(TypeError):
        cgad.optim.Adam([cgad.ones(2, dtype=cgad.int64)])
    opt = cgad.optim.Adam([p])
    opt.param_groups[0]["lr"] = "fast"
    with pytest.raises(TypeError, match="lr"):
        opt.step()
