"""bfloat16 as a CPU dtype: rounding, creation, casts and their VJPs, elementwise ops, reductions,
views, the bf16 GEMM behind matmul/linear, and the float32-computed nn ops. References are numpy
(or torch) on the same bf16-rounded inputs. CI runs this file a second time with
CGAD_BF16_GEMM=fallback, the float32-arithmetic GEMM of CPUs without AVX512_BF16."""
import numpy as np
import pytest

import cgad
import cgad.nn.functional as F
from conftest import DEVICES, nmax_err

BF16_EPS = 2.0 ** -8  # one bf16 rounding, relative (8 significant bits)


def bf16_round(a):
    """float32 -> nearest bf16 (ties to even), back as float32; NaN stays NaN: the reference."""
    a = np.ascontiguousarray(a, dtype=np.float32)
    u = a.view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint32) << 16
    out = r.astype(np.uint32).view(np.float32)
    return np.where(np.isnan(a), np.float32(np.nan), out)


def rnd(shape, seed=0, scale=1.0):
    return bf16_round(np.random.default_rng(seed).standard_normal(shape).astype(np.float32) * scale)


def bt(a, device="cpu", requires_grad=False):
    """A bf16 leaf holding a (already bf16-representable)."""
    t = cgad.tensor(np.asarray(a, dtype=np.float32), dtype=cgad.bfloat16, device=device)
    return t.requires_grad_() if requires_grad else t


def test_rounding_to_nearest_even_and_nan():
    one = 1.0
    vals = np.array([one + 2 ** -8, one + 3 * 2 ** -8, one + 2 ** -8 + 2 ** -20, -2.5, 3.0e38, 1e-40,
                     np.inf, -np.inf, np.nan, 0.0, -0.0], dtype=np.float32)
    got = cgad.tensor(vals).bfloat16().numpy()
    assert got.dtype == np.float32
    want = bf16_round(vals)
    assert np.array_equal(np.isnan(got), np.isnan(want))
    ok = ~np.isnan(want)
    assert np.array_equal(got[ok], want[ok])
    assert got[0] == 1.0 and got[1] == one + 2 ** -6 and got[2] == one + 2 ** -7  # ties to even; above a tie, up
    assert np.signbit(got[-1])


def test_rounding_matches_torch():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(3).standard_normal(10000).astype(np.float32) * 10.0 ** np.arange(-5, 5).repeat(1000)
    assert np.array_equal(cgad.tensor(x).bfloat16().numpy(), torch.tensor(x).bfloat16().float().numpy())


@pytest.mark.parametrize("device", DEVICES)
def test_creation(device):
    bf = cgad.bfloat16
    assert cgad.zeros(2, 3, dtype=bf, device=device).dtype == bf
    assert cgad.ones(4, dtype="bfloat16", device=device).numpy().tolist() == [1.0] * 4
    t = cgad.tensor([1.0, 2.0, 1.0 + 2 ** -9], dtype=bf, device=device)
    assert t.dtype == bf and t.numpy().tolist() == [1.0, 2.0, 1.0]
    cgad.manual_seed(1)
    r = cgad.randn(1000, dtype=bf, device=device)
    cgad.manual_seed(1)
    r32 = cgad.randn(1000, device=device)
    assert r.dtype == bf and np.array_equal(r.numpy(), bf16_round(r32.numpy()))
    assert cgad.full((2,), 0.1, dtype=bf, device=device).numpy()[0] == bf16_round(np.float32(0.1))
    assert cgad.empty(3, dtype=bf, device=device).shape == (3,)
    assert cgad.zeros(0, dtype=bf, device=device).numpy().shape == (0,)


@pytest.mark.parametrize("device", DEVICES)
def test_casts_are_differentiable(device):
    x = cgad.tensor(rnd((3, 4)), device=device, requires_grad=True)
    b = x.bfloat16()
    assert b.dtype == cgad.bfloat16 and b.requires_grad
    (b.float() * 2.0).sum().backward()
    assert x.grad.dtype == cgad.float32 and np.all(x.grad.numpy() == 2.0)
    # a bf16 leaf: its grad is bf16, through .float() and .to()
    y = bt(rnd((5,)), device, requires_grad=True)
    (y.to(cgad.float32) * cgad.tensor(np.arange(5, dtype=np.float32), device=device)).sum().backward()
    assert y.grad.dtype == cgad.bfloat16 and y.grad.numpy().tolist() == [0, 1, 2, 3, 4]
    assert x.to("bfloat16").to(cgad.float64).dtype == cgad.float64
    assert b.long().dtype == cgad.int64


BINARY = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("op", sorted(BINARY))
def test_binary_against_numpy(op, device):
    a, b = rnd((4, 5), 1), rnd((5,), 2) + 3.0  # b broadcasts; away from 0 for div
    b = bf16_round(b)
    out = getattr(bt(a, device), "__" + ("truediv" if op == "div" else op) + "__")(bt(b, device))
    assert out.dtype == cgad.bfloat16
    # float32 arithmetic of the bf16 values, one rounding: bit-exact with numpy
    assert np.array_equal(out.numpy(), bf16_round(BINARY[op](a, b)))


@pytest.mark.parametrize("device", DEVICES)
def test_unary_scalars_and_promotion(device):
    a = rnd((6, 7), 4)
    x = bt(a, device)
    p = bf16_round(np.abs(a) + 0.5)
    pos = bt(p, device)
    for got, want in [(-x, -a), (x.abs(), np.abs(a)), (x.exp(), np.exp(a)), (x.tanh(), np.tanh(a)),
                      (pos.log(), np.log(p)), (pos.sqrt(), np.sqrt(p)), (pos.rsqrt(), 1 / np.sqrt(p)), (x * 2.5, a * 2.5), (x ** 2, a * a),
                      (1.0 - x, 1.0 - a)]:
        assert got.dtype == cgad.bfloat16
        assert nmax_err(got.numpy(), bf16_round(want)) <= BF16_EPS
    # promotion: bf16 op float32 -> float32, bf16 op int -> bf16, comparisons -> bool
    assert (x + cgad.tensor(a, device=device)).dtype == cgad.float32
    assert (x + cgad.tensor([1], device=device)).dtype == cgad.bfloat16
    assert (x > 0).dtype == cgad.bool and np.array_equal((x > 0).numpy(), a > 0)


@pytest.mark.parametrize("device", DEVICES)
def test_reductions_accumulate_in_float32(device):
    a = rnd((3, 1000), 5)
    x = bt(a, device)
    s, m = x.sum(), x.mean(dim=1)
    assert s.dtype == cgad.bfloat16 and m.dtype == cgad.bfloat16
    want_s = a.astype(np.float64).sum()
    assert abs(s.item() - want_s) <= BF16_EPS * abs(want_s) + 1e-6
    assert nmax_err(m.numpy(), bf16_round(a.astype(np.float64).mean(axis=1).astype(np.float32))) <= BF16_EPS
    # 4096 ones sum to 4096: a bf16 accumulator would stop at 256
    assert cgad.ones(4096, dtype=cgad.bfloat16, device=device).sum().item() == 4096.0
    assert np.all(cgad.ones(4096, 3, dtype=cgad.bfloat16, device=device).sum(dim=0).numpy() == 4096.0)
    # over leading dims (column sums of the data as it lies), rounded once
    c = rnd((300, 7, 10), 7)
    got = bt(c, device).sum(dim=(0, 1))
    assert got.dtype == cgad.bfloat16 and got.shape == (10,)
    assert nmax_err(got.numpy(), c.astype(np.float64).sum(axis=(0, 1))) <= BF16_EPS
    got = bt(c, device).mean(dim=0)
    assert got.dtype == cgad.bfloat16
    assert nmax_err(got.numpy(), bf16_round(c.astype(np.float64).mean(axis=0).astype(np.float32))) <= BF16_EPS
    v, i = x.max(dim=1)
    assert v.dtype == cgad.bfloat16 and np.array_equal(i.numpy(), a.argmax(axis=1))
    assert x.argmax().item() == a.argmax()
    tv, ti = x.topk(3)
    assert np.array_equal(tv.numpy(), -np.sort(-a, axis=1)[:, :3])
    y = bt(a, device, requires_grad=True)
    y.sum(dim=0).sum().backward()
    assert y.grad.dtype == cgad.bfloat16 and np.all(y.grad.numpy() == 1.0)


@pytest.mark.parametrize("device", DEVICES)
def test_views(device):
    a = rnd((2, 3, 4), 6)
    x = bt(a, device, requires_grad=True)
    for got, want in [(x.reshape(6, 4), a.reshape(6, 4)), (x.transpose(0, 2), a.transpose(2, 1, 0)),
                      (x.permute(1, 0, 2), a.transpose(1, 0, 2)), (x[1, :, 1:3], a[1, :, 1:3]),
                      (x.unsqueeze(0).expand(2, 2, 3, 4), np.broadcast_to(a, (2, 2, 3, 4))),
                      (x.transpose(0, 1).contiguous(), a.transpose(1, 0, 2)), (x.split(2, dim=2)[1], a[:, :, 2:]),
                      (cgad.cat([x, x], 1), np.concatenate([a, a], 1))]:
        assert got.dtype == cgad.bfloat16 and np.array_equal(got.numpy(), want)
    x[0].sum().backward()
    assert x.grad.dtype == cgad.bfloat16 and x.grad.numpy().sum() == 12


def ref_matmul(a, b):
    return np.matmul(a.astype(np.float64), b.astype(np.float64))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shapes", [((1, 1), (1, 1)), ((1, 37), (37, 5)), ((29, 8), (8, 1)), ((13, 7), (7, 33)),
                                    ((25, 131), (131, 65)), ((2, 3, 12, 64), (2, 3, 64, 32)), ((5, 9, 17), (17, 3)),
                                    ((7,), (7, 4)), ((4, 7), (7,))])
def test_matmul_bf16_outside_autocast(shapes, device):
    sa, sb = shapes
    a, b = rnd(sa, 7), rnd(sb, 8)
    out = bt(a, device) @ bt(b, device)
    assert out.dtype == cgad.bfloat16
    # float32 accumulation, one bf16 rounding of the result
    assert nmax_err(out.numpy(), ref_matmul(a, b)) <= BF16_EPS


@pytest.mark.parametrize("device", DEVICES)
def test_matmul_transposed_operands(device):
    a, b = rnd((40, 23), 9), rnd((31, 40), 10)  # a^T (23, 40) @ b^T (40, 31): both passed with transpose flags
    out = bt(a, device).transpose(0, 1) @ bt(b, device).transpose(0, 1)
    assert nmax_err(out.numpy(), ref_matmul(a.T, b.T)) <= BF16_EPS


@pytest.mark.parametrize("device", DEVICES)
def test_linear_and_its_backward(device):
    x, w, bias = rnd((3, 5, 67), 11), rnd((45, 67), 12), rnd((45,), 13)
    tx, tw, tb = bt(x, device, True), bt(w, device, True), bt(bias, device, True)
    out = F.linear(tx, tw, tb)
    assert out.dtype == cgad.bfloat16 and out.shape == (3, 5, 45)
    want = ref_matmul(x, w.T) + bias
    assert nmax_err(out.numpy(), want) <= BF16_EPS
    g = rnd((3, 5, 45), 14)
    (out.float() * cgad.tensor(g, device=device)).sum().backward()
    for t in (tx, tw, tb):
        assert t.grad.dtype == cgad.bfloat16
    g64 = g.reshape(-1, 45).astype(np.float64)
    assert nmax_err(tx.grad.numpy().reshape(-1, 67), g64 @ w) <= BF16_EPS
    assert nmax_err(tw.grad.numpy(), g64.T @ x.reshape(-1, 67)) <= BF16_EPS
    assert nmax_err(tb.grad.numpy(), g64.sum(0)) <= BF16_EPS


def test_bf16_linear_identical_across_thread_counts():
    """The bf16 GEMM splits C among the threads but sums every element in k order on one thread:
    forward, grad_x (B stored (K, N)) and grad_W (a transposed A) give the same bits on 1 and 2
    threads, with shapes large enough to run multithreaded and to leave partial panels."""
    x, w, b, g = rnd((301, 96), 30), rnd((203, 96), 31), rnd(203, 32), rnd((301, 203), 33)
    n = cgad.get_num_threads()
    runs = []
    try:
        for t in (1, 2):
            cgad.set_num_threads(t)
            tx, tw, tb = bt(x, requires_grad=True), bt(w, requires_grad=True), bt(b, requires_grad=True)
            out = F.linear(tx, tw, tb)
            out.backward(bt(g))
            runs.append([a.numpy() for a in (out, tx.grad, tw.grad, tb.grad)])
    finally:
        cgad.set_num_threads(n)
    for one, two in zip(*runs):
        np.testing.assert_array_equal(one, two)
    assert nmax_err(runs[0][0], x.astype(np.float64) @ w.T + b) <= BF16_EPS


def test_gemm_implementation_is_reported():
    assert cgad._C.bf16_gemm_impl() in ("amx_bf16", "avx512_bf16", "fallback")


@pytest.mark.parametrize("device", DEVICES)
def test_nn_ops_compute_in_float32_and_keep_bf16(device):
    a = rnd((4, 6, 32), 15)
    x = bt(a, device, requires_grad=True)
    x32 = cgad.tensor(a, device=device)
    w = cgad.tensor(rnd((32,), 16) + 1.0, device=device)
    cases = [(F.layer_norm(x, (32,), w, None), F.layer_norm(x32, (32,), w, None)),
             (F.softmax(x, -1), F.softmax(x32, -1)), (F.log_softmax(x, 1), F.log_softmax(x32, 1)),
             (F.gelu(x, approximate="tanh"), F.gelu(x32, approximate="tanh")),
             (F.scaled_dot_product_attention(x, x, x, is_causal=True),
              F.scaled_dot_product_attention(x32, x32, x32, is_causal=True))]
    for i, (got, want) in enumerate(cases):
        assert got.dtype == cgad.bfloat16
        # attention also rounds P to bf16 before P @ V (its own test has the float64 reference)
        assert nmax_err(got.numpy(), bf16_round(want.numpy())) <= (3 if i == len(cases) - 1 else 1) * BF16_EPS
    t = cgad.tensor(np.random.default_rng(0).integers(0, 32, (4, 6)), device=device)
    loss = F.cross_entropy(x, t)
    assert loss.dtype == cgad.bfloat16
    assert abs(loss.item() - F.cross_entropy(x32, t).item()) <= 2 * BF16_EPS * abs(loss.item())
    sum(c[0].float().sum() for c in cases).backward()
    assert x.grad.dtype == cgad.bfloat16 and np.all(np.isfinite(x.grad.numpy()))
    assert F.dropout(x, 0.5).dtype == cgad.bfloat16
    assert np.array_equal(F.dropout(x, 0.5, training=False).numpy(), a)


def test_bf16_gelu_tanh_against_float64():
    """The bf16 GELU (tanh form; an AVX-512 kernel where the CPU has it) and its VJP on 4,099
    elements (two of the kernel's chunks, a partial vector at the end) against float64 on the same
    bf16 inputs: one bf16 rounding of each element; inf, NaN and the tails as float32 computes them."""
    from math import pi, sqrt
    a = rnd(4099, 21, 3.0)
    a[:8] = [np.inf, -np.inf, np.nan, -40.0, 40.0, 0.0, 1e-30, -6.0]
    g = rnd(4099, 22)
    x = bt(a, requires_grad=True)
    y = F.gelu(x, approximate="tanh")
    y.backward(bt(g))
    v = a.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        th = np.tanh(sqrt(2 / pi) * (v + 0.044715 * v ** 3))
        want_y = 0.5 * v * (1 + th)
        want_dx = g * (0.5 * (1 + th) + 0.5 * v * (1 - th * th) * sqrt(2 / pi) * (1 + 3 * 0.044715 * v * v))
    # float32's 1 + tanh(u) cancels for large negative v: an absolute error of a few float32
    # epsilons times |g| and the derivative's v * du factor (<= 10 here), as in any float32 GELU
    for got, want, atol in ((y.numpy(), want_y, 1e-6), (x.grad.numpy(), want_dx, 1e-5)):
        fin = np.isfinite(want)
        assert np.array_equal(np.isnan(got[~fin]), np.isnan(want[~fin]))
        assert np.array_equal(got[~fin & ~np.isnan(want)], want[~fin & ~np.isnan(want)])
        assert np.all(np.abs(got[fin] - want[fin]) <= BF16_EPS * np.abs(want[fin]) + atol)
    assert y.numpy()[3] == 0.0 and y.numpy()[4] == 40.0


def attention_reference(q, k, v, g, causal, scale):
    """float64 attention and its VJP (dq, dk, dv) for (H, L, E) / (H, S, E) / (H, S, Ev) arrays."""
    s = scale * np.einsum("hle,hse->hls", q, k)
    L, S = s.shape[1:]
    if causal:  # top-left aligned, as torch: query i sees keys 0..i
        s = np.where(np.arange(S)[None, :] <= np.arange(L)[:, None], s, -np.inf)
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    o = p @ v
    ds = p * (g @ v.transpose(0, 2, 1) - (g * o).sum(-1, keepdims=True)) * scale
    return o, ds @ k, ds.transpose(0, 2, 1) @ q, p.transpose(0, 2, 1) @ g


# odd sizes beside the kernel's 64-row causal blocks; fewer queries than keys; one head's worth
@pytest.mark.parametrize("H,L,S,E,Ev,causal", [(6, 70, 70, 16, 24, True), (2, 5, 70, 16, 8, False),
                                               (3, 130, 130, 64, 64, True), (2, 3, 9, 8, 8, True),
                                               (1, 64, 64, 33, 7, False)])
def test_bf16_attention_in_bf16_against_float64(H, L, S, E, Ev, causal):
    q, k, v, g = rnd((H, L, E), 1), rnd((H, S, E), 2), rnd((H, S, Ev), 3), rnd((H, L, Ev), 4)
    tq, tk, tv = (bt(a, requires_grad=True) for a in (q, k, v))
    out = F.scaled_dot_product_attention(tq, tk, tv, is_causal=causal)
    assert out.dtype == cgad.bfloat16
    (out.float() * cgad.tensor(g)).sum().backward()
    want = attention_reference(*(a.astype(np.float64) for a in (q, k, v, g)), causal, 1 / np.sqrt(E))
    got = [out.numpy(), tq.grad.numpy(), tk.grad.numpy(), tv.grad.numpy()]
    assert all(t.grad.dtype == cgad.bfloat16 for t in (tq, tk, tv))
    # P and dS are rounded to bf16 before their products, and each output once: a few roundings
    for name, a, b in zip(("out", "dq", "dk", "dv"), got, want):
        assert nmax_err(a, b) <= 3 * BF16_EPS, name


def test_bf16_attention_reads_strided_views_like_the_model():
    # q, k, v as GPT makes them: head-split, transposed views of one (B, T, 3C) projection
    B, T, NH, HS = 2, 40, 3, 16
    qkv_a = rnd((B, T, 3 * NH * HS), 5)
    qkv = bt(qkv_a, requires_grad=True)
    q, k, v = (t.view(B, T, NH, HS).transpose(1, 2) for t in qkv.split(NH * HS, dim=2))
    out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    g = rnd((B, NH, T, HS), 6)
    (out.float() * cgad.tensor(g)).sum().backward()
    heads = qkv_a.reshape(B, T, 3, NH, HS).transpose(2, 0, 3, 1, 4).reshape(3, B * NH, T, HS).astype(np.float64)
    o, dq, dk, dv = attention_reference(*heads, g.reshape(B * NH, T, HS).astype(np.float64), True, 1 / np.sqrt(HS))
    assert nmax_err(out.numpy().reshape(B * NH, T, HS), o) <= 3 * BF16_EPS
    dqkv = np.stack([dq, dk, dv]).reshape(3, B, NH, T, HS).transpose(1, 3, 0, 2, 4).reshape(B, T, -1)
    assert nmax_err(qkv.grad.numpy(), dqkv) <= 3 * BF16_EPS


@pytest.mark.parametrize("device", DEVICES)
def test_cross_entropy_on_bf16_logits_reads_them_in_place(device):
    N, V = 96, 1000
    a = rnd((N, V), 21, scale=3.0)
    tg = np.random.default_rng(22).integers(0, V, N)
    tg[::7] = -100
    x = bt(a, device, requires_grad=True)
    t = cgad.tensor(tg, device=device)
    cgad.reset_peak_memory_stats(device)
    before = cgad.memory_stats(device)["allocated_bytes"]
    loss = F.cross_entropy(x, t)
    # no float32 copy of the logits (it would be 2x their bf16 bytes): only lse and the loss
    assert cgad.memory_stats(device)["peak_bytes"] - before < a.nbytes // 8
    assert loss.dtype == cgad.bfloat16  # outside autocast the result keeps the logits' dtype
    keep = tg != -100
    a64 = a.astype(np.float64)
    lse = np.log(np.exp(a64 - a64.max(1, keepdims=True)).sum(1)) + a64.max(1)
    want = (lse - a64[np.arange(N), np.where(keep, tg, 0)])[keep].mean()
    assert abs(loss.float().item() - want) <= BF16_EPS * abs(want)
    loss.float().backward()
    assert x.grad.dtype == cgad.bfloat16
    p = np.exp(a64 - lse[:, None])
    p[np.arange(N)[keep], tg[keep]] -= 1
    p[~keep] = 0
    assert nmax_err(x.grad.numpy(), p / keep.sum()) <= BF16_EPS
    with cgad.autocast("cpu" if device == "cpu" else device, dtype=cgad.bfloat16):
        inside = F.cross_entropy(bt(a, device), t)
    assert inside.dtype == cgad.float32 and abs(inside.item() - want) <= 1e-6 * abs(want)
