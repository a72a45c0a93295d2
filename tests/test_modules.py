"""nn.Module semantics: registration, tied parameters, state_dict round trips in place, modes."""
import numpy as np
import pytest

import cgad
import cgad.nn as nn
import cgad.nn.functional as F
from conftest import nmax_err


class Tied(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 4)
        self.blocks = nn.ModuleList([nn.Linear(4, 4), nn.Linear(4, 4)])
        self.norms = nn.ModuleDict({"a": nn.LayerNorm(4)})
        self.head = nn.Linear(4, 10, bias=False)
        self.head.weight = self.emb.weight  # tied, as GPT-2's lm_head and wte
        self.drop = nn.Dropout(0.5)

    def forward(self, idx):
        x = self.emb(idx)
        for b in self.blocks:
            x = x + F.gelu(b(x), "tanh")
        return self.head(self.drop(self.norms["a"](x)))


def test_named_parameters_once_and_state_dict_with_aliases():
    m = Tied()
    names = [n for n, _ in m.named_parameters()]
    assert names == ["emb.weight", "blocks.0.weight", "blocks.0.bias", "blocks.1.weight", "blocks.1.bias",
                     "norms.a.weight", "norms.a.bias"]
    sd = m.state_dict()
    assert "head.weight" in sd and len(sd) == len(names) + 1
    assert m.num_parameters() == 10 * 4 + 2 * (16 + 4) + 8


def test_load_state_dict_in_place_keeps_ties_and_optimizer_refs():
    m = Tied()
    opt = cgad.optim.AdamW(m.parameters(), lr=0.1)
    w_before = m.emb.weight
    sd = {k: np.full(tuple(v.shape), 0.5, np.float32) for k, v in m.state_dict().items()}
    m.load_state_dict(sd)
    assert m.emb.weight is w_before
    np.testing.assert_array_equal(m.head.weight.numpy(), np.full((10, 4), 0.5, np.float32))
    m.eval()
    loss = F.cross_entropy(m(cgad.tensor([[1, 2, 3]])), cgad.tensor([[2, 3, 4]]))
    loss.backward()
    opt.step()
    assert m.head.weight.numpy()[0, 0] != 0.5  # the optimizer updated the very tensor the model uses


def test_train_eval_and_dropout():
    m = Tied()
    m.eval()
    assert not m.drop.training and not m.training
    idx = cgad.tensor([[1, 2, 3]])
    np.testing.assert_array_equal(m(idx).numpy(), m(idx).numpy())
    m.train()
    assert m.drop.training


def test_every_parameter_gets_a_gradient_and_changes():
    m = Tied()
    m.eval()
    before = {n: p.numpy().copy() for n, p in m.named_parameters()}
    opt = cgad.optim.AdamW(m.parameters(), lr=1e-2)
    loss = F.cross_entropy(m(cgad.tensor([[1, 2, 3, 4]])), cgad.tensor([[2, 3, 4, 5]]))
    loss.backward()
    for n, p in m.named_parameters():
        assert p.grad is not None and np.isfinite(p.grad.numpy()).all() and np.abs(p.grad.numpy()).sum() > 0, n
    opt.step()
    for n, p in m.named_parameters():
        assert not np.array_equal(before[n], p.numpy()), n


def test_zero_grad_apply_sequential():
    m = nn.Sequential(nn.Linear(3, 4), nn.GELU(), nn.Linear(4, 1))
    m(cgad.ones(2, 3)).sum().backward()
    assert all(p.grad is not None for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())
    seen = []
    m.apply(lambda mod: seen.append(type(mod).__name__))
    assert seen == ["Linear", "GELU", "Linear", "Sequential"]
    assert len(m) == 3 and isinstance(m[1], nn.GELU)


def test_linear_and_layernorm_match_torch(torch):
    lin = nn.Linear(5, 3)
    ref = torch.nn.Linear(5, 3)
    lin.load_state_dict({k: v.detach().numpy() for k, v in ref.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((2, 5)).astype(np.float32)
    assert nmax_err(lin(cgad.tensor(x)).numpy(), ref(torch.tensor(x)).detach().numpy()) < 1e-6
    ln = nn.LayerNorm(5)
    assert nmax_err(ln(cgad.tensor(x)).numpy(), torch.nn.LayerNorm(5)(torch.tensor(x)).detach().numpy()) < 1e-6


def test_parameter_is_a_leaf_tensor():
    p = nn.Parameter(cgad.ones(2, 2))
    assert p.requires_grad and p.is_leaf and isinstance(p, cgad.Tensor)
    with pytest.raises(TypeError):
        nn.Parameter([1.0, 2.0])
