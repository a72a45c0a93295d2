"""Property-based fuzzing of cgad's public op API against numpy (float64 references).

Each property draws shapes (zero-size and size-1 dims, broadcasting edge cases), dtypes, memory
layouts (negative-stride, Fortran-order and strided numpy inputs; permuted, strided and expanded
cgad views), values (NaN, +-inf, -0.0, huge and tiny) and arguments (dims, indices and sizes in
and out of range, wrong types). The hostile-input properties (issue 20) add graphs tens of
thousands of nodes deep freed on a small stack, in-place writes to tensors saved for backward,
copies between overlapping views, integers at and beyond the int32/int64/2**53 limits, numpy
inputs in either byte order, and truncated, bit-flipped and garbage shard and weight files. Every call must either match the numpy reference (normalized max
error for floats, exact for ints and bools, the same NaN positions and the result dtype
torch.result_type gives) or raise exactly the exception type docs/api.md assigns; differentiable
ops also check their backward (a random-weight VJP, or a plain sum) against float64 formulas.

Run by tests/test_fuzz.py in a child process, so that a crash is a reported failure rather than a
dead test run: `python tests/fuzz_ops.py [--summary out.json] [--only binary,views] [--scale 2]`.
Before each call the case is written to $CGAD_FUZZ_CASE_FILE, which names it after a crash.
"""
import argparse
import faulthandler
import json
import math
import os
import sys
import time
import traceback
import warnings
from functools import reduce

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cgad
import cgad.nn.functional as F

# ---------------------------------------------------------------------------------------------
# bookkeeping

COUNTS = {}
_CASE_FD = None


def note_case(op, desc):
    """Counts the case and records it where the parent finds it if this process dies."""
    COUNTS[op] = COUNTS.get(op, 0) + 1
    if _CASE_FD is not None:
        b = f"{op}: {desc}\n".encode("utf-8", "replace")
        os.pwrite(_CASE_FD, b, 0)
        os.ftruncate(_CASE_FD, len(b))


class Mismatch(AssertionError):
    pass


def check_call(op, desc, call, errs, verify):
    """call() must raise one of `errs` (a set of exception types) when it is non-empty, else
    return a result that verify(result) accepts. Any other outcome is a Mismatch naming the case."""
    note_case(op, desc)
    if errs:
        try:
            r = call()
        except Exception as e:  # noqa: BLE001
            if type(e) in errs:
                return None
            raise Mismatch(f"{op}: {desc}\n  expected {_names(errs)}, got {type(e).__name__}: {e}") from e
        raise Mismatch(f"{op}: {desc}\n  expected {_names(errs)}, but it returned {_short(r)}")
    try:
        r = call()
    except Exception as e:  # noqa: BLE001
        raise Mismatch(f"{op}: {desc}\n  raised {type(e).__name__}: {e}\n  (a valid call)") from e
    try:
        verify(r)
    except AssertionError as e:
        raise Mismatch(f"{op}: {desc}\n  {e}") from e
    return r


def _names(errs):
    return "/".join(sorted(e.__name__ for e in errs))


def _short(r):
    if isinstance(r, cgad.Tensor):
        return f"tensor of shape {r.shape} {r.dtype}"
    if isinstance(r, (tuple, list)):
        return type(r).__name__ + "(" + ", ".join(_short(x) for x in r) + ")"
    return repr(r)[:80]


# ---------------------------------------------------------------------------------------------
# dtypes and promotion (torch.result_type, written out independently of cgad)

DTYPES = ("float32", "float64", "int32", "int64", "bool")
FLOATS = ("float32", "float64")
INTS = ("int32", "int64")
ORDER = {"bool": 0, "int32": 1, "int64": 2, "float32": 3, "float64": 4}
CG = {"float32": cgad.float32, "float64": cgad.float64, "int32": cgad.int32, "int64": cgad.int64,
      "bool": cgad.bool}
TOL = {"float32": 2e-5, "float64": 1e-12}
GTOL = {"float32": 2e-4, "float64": 1e-9}
SPECIALS = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e30, -1e30, 1e-30, 3.0, -1.0])
INT_LIMITS = {"int32": (-2**31, 2**31 - 1), "int64": (-2**63, 2**63 - 1), "bool": (0, 1)}


def category(d):
    return 0 if d == "bool" else 1 if d in INTS else 2


def promote(a, b):
    if a is None:
        return b
    if b is None:
        return a
    return a if ORDER[a] >= ORDER[b] else b


def result_type(dimmed=(), zerod=(), scalars=()):
    """torch.result_type: 0-d tensors and Python scalars widen dimensioned tensors only across
    categories (bool < int < float); Python float -> float32, int -> int64, bool -> bool."""
    def prom(ds):
        return reduce(promote, ds, None)

    def combine(higher, lower):
        if higher is None:
            return lower
        if lower is None:
            return higher
        if category(higher) == 2:
            return higher
        if higher == "bool" or category(lower) == 2:
            return promote(higher, lower)
        return higher

    wrapped = prom([scalar_dtype(s) for s in scalars])
    return combine(prom(dimmed), combine(prom(zerod), wrapped))


def scalar_dtype(s):
    if isinstance(s, (bool, np.bool_)):
        return "bool"
    if isinstance(s, (int, np.integer)):
        return "int64"
    return "float32"


def dtname(t):
    return str(t.dtype).replace("cgad.", "")


# ---------------------------------------------------------------------------------------------
# strategies

def draw_rng(data):
    return np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))


def dim_size():
    return st.sampled_from([0, 1, 1, 2, 2, 3, 3, 4, 5])


def draw_shape(data, min_dims=0, max_dims=4, label="shape"):
    shape = tuple(data.draw(st.lists(dim_size(), min_size=min_dims, max_size=max_dims), label=label))
    while int(np.prod(shape)) > 240:
        shape = shape[1:]
    return shape


def gen_values(rng, shape, dtype, special=True, positive=False):
    """Random values of a dtype: floats of mixed scales with ties and, unless special is False,
    NaN, +-inf, -0.0, tiny and (unless special == "nonhuge", for ops whose float32 products
    would overflow where float64 ones do not) +-1e30; small ints (no overflow in sums and
    products); random bools."""
    if dtype == "bool":
        return np.asarray(rng.random(shape) < 0.5).reshape(shape)
    if dtype in INTS:
        lo = 0 if positive else -9
        return np.asarray(rng.integers(lo, 10, size=shape)).astype(dtype).reshape(shape)
    scale = float(rng.choice([1.0, 1.0, 1.0, 10.0, 1e-3]))
    a = np.asarray(rng.standard_normal(shape) * scale, dtype=np.float64).reshape(shape)
    if rng.random() < 0.2:
        a = np.asarray(np.round(a))  # ties, for max/argmax/topk
    if positive:
        a = np.asarray(np.abs(a) + 0.1)
    if special and a.size and rng.random() < 0.3:
        mask = rng.random(shape) < 0.25
        pool = SPECIALS if special is True else SPECIALS[np.abs(SPECIALS) < 1e10]
        a[mask] = rng.choice(pool, size=int(mask.sum()))
    return a.astype(dtype)


LAYOUTS = ("c", "c", "np_rev", "np_F", "np_step", "list", "cg_perm", "cg_step", "cg_expand")


class Input:
    """A cgad tensor with known logical values `a`, stored in some layout. With grad, `leaf` is the
    tensor that requires grad and leaf_grad(gx) maps the grad of `t` to the leaf's layout."""

    def __init__(self, a, t, leaf=None, leaf_grad=None, layout="c"):
        self.a, self.t, self.leaf, self.leaf_grad, self.layout = a, t, leaf, leaf_grad, layout

    def desc(self):
        return f"{self.a.dtype}{self.a.shape}/{self.layout}"


def make_input(data, rng, shape, dtype, grad=False, special=True, positive=False, layout=None, values=None):
    a = values if values is not None else gen_values(rng, shape, dtype, special, positive)
    if layout is None:
        layout = data.draw(st.sampled_from(LAYOUTS), label="layout")
    grad = grad and dtype in FLOATS
    nd = a.ndim
    ident = lambda g: g  # noqa: E731
    if layout == "np_rev" and nd >= 1:
        b = a[::-1].copy()[::-1]  # a negative-stride numpy view with a's values
        return _finish(Input(a, cgad.from_numpy(b), layout=layout), grad, ident)
    if layout == "np_F" and nd >= 2:
        b = np.asfortranarray(a)
        return _finish(Input(a, cgad.from_numpy(b), layout=layout), grad, ident)
    if layout == "np_step" and nd >= 1:
        big = np.zeros(a.shape[:-1] + (a.shape[-1] * 2,), a.dtype)
        big[..., ::2] = a
        return _finish(Input(a, cgad.tensor(big[..., ::2]), layout=layout), grad, ident)
    if layout == "list" and 1 <= a.size <= 24 and dtype != "float64":
        t = cgad.tensor(a.tolist(), dtype=CG[dtype])
        return _finish(Input(a, t, layout=layout), grad, ident)
    if layout == "cg_perm" and nd >= 2:
        p = list(rng.permutation(nd))
        inv = list(np.argsort(p))
        leaf = cgad.from_numpy(np.ascontiguousarray(a.transpose(p)))
        if grad:
            leaf.requires_grad_()
        return Input(a, leaf.permute(*inv), leaf if grad else None,
                     lambda g: np.ascontiguousarray(g.transpose(p)), layout)
    if layout == "cg_step" and nd >= 1:
        big = np.zeros(a.shape[:-1] + (a.shape[-1] * 2 + 1,), a.dtype)
        big[..., 1::2] = a
        leaf = cgad.from_numpy(big)
        if grad:
            leaf.requires_grad_()

        def lg(g):
            out = np.zeros(big.shape, g.dtype)
            out[..., 1::2] = g
            return out
        return Input(a, leaf[..., 1::2], leaf if grad else None, lg, layout)
    if layout == "cg_expand" and nd >= 1 and a.size:
        d = int(rng.integers(0, nd))
        small = a.take([0], axis=d)
        a = np.ascontiguousarray(np.broadcast_to(small, a.shape))
        leaf = cgad.from_numpy(np.ascontiguousarray(small))
        if grad:
            leaf.requires_grad_()
        return Input(a, leaf.expand(*a.shape), leaf if grad else None,
                     lambda g: g.sum(axis=d, keepdims=True), layout)
    t = cgad.from_numpy(a) if rng.random() < 0.5 else cgad.tensor(a)
    return _finish(Input(a, t, layout="c"), grad, ident)


def _finish(inp, grad, lg):
    if grad:
        inp.t.requires_grad_()
        inp.leaf, inp.leaf_grad = inp.t, lg
    return inp


def draw_dtype(data, grad, label="dtype"):
    """Any dtype; mostly floating ones when the case also checks grads."""
    return data.draw(st.sampled_from(DTYPES + FLOATS * 4 if grad else DTYPES), label=label)


def draw_dim(data, nd, label="dim", allow_huge=True):
    """A dim: mostly in range for nd dims (sometimes a numpy int), sometimes just out, rarely
    beyond int64 or of a wrong type (float, str, bool)."""
    n = max(nd, 1)
    r = data.draw(st.integers(0, 39), label=label + "_kind")
    if r < 32:
        d = data.draw(st.integers(-n, n - 1), label=label)
        return np.int64(d) if r == 31 else d
    if r < 37 or not allow_huge:
        return data.draw(st.sampled_from([n, -n - 1, n + 3]), label=label)
    if r < 39:
        return data.draw(st.sampled_from([2**63 - 1, -2**63, 2**70]), label=label)
    return data.draw(st.sampled_from([1.0, "0", True]), label=label)


def bad_type(d):
    return isinstance(d, (bool, np.bool_, float, str))


def dim_ok(d, nd):
    n = max(nd, 1)
    return not bad_type(d) and -n <= d < n


def dim_errs(d, nd, extra=0):
    """The errors a dim argument alone calls for (extra: the op accepts nd + extra dims)."""
    if bad_type(d):
        return {TypeError}
    return set() if dim_ok(d, nd + extra) else {IndexError}


def wrap(d, nd):
    return d + max(nd, 1) if d < 0 else d


# ---------------------------------------------------------------------------------------------
# comparisons

def assert_values(got, exp, dtype, tol=None, scale=None, what="values", floor=0.0):
    """got: a cgad tensor; exp: the numpy reference (float64 for floating dtypes). Checks dtype,
    shape, NaN/inf positions and the normalized max error (exact for ints and bools)."""
    assert isinstance(got, cgad.Tensor), f"{what}: expected a tensor, got {type(got).__name__}"
    assert dtname(got) == dtype, f"{what}: dtype {dtname(got)}, expected {dtype}"
    g = got.numpy()
    exp = np.asarray(exp)
    assert g.shape == exp.shape, f"{what}: shape {g.shape}, expected {exp.shape}"
    assert tuple(got.shape) == exp.shape, f"{what}: .shape {got.shape}, expected {exp.shape}"
    if dtype not in FLOATS:
        e = exp.astype(dtype)
        if not np.array_equal(g, e):
            bad = np.argwhere(g != e)[:4].tolist()
            raise AssertionError(f"{what}: mismatch at {bad}: got {g[tuple(np.array(bad).T)] if bad else g}, "
                                 f"expected {e[tuple(np.array(bad).T)] if bad else e}")
        return
    with np.errstate(all="ignore"):
        e = exp.astype(np.float64).astype(dtype).astype(np.float64)  # the reference rounded to dtype
        g = g.astype(np.float64)
    gn, en = np.isnan(g), np.isnan(e)
    if not np.array_equal(gn, en):
        bad = np.argwhere(gn != en)[:4].tolist()
        raise AssertionError(f"{what}: NaN positions differ at {bad} (got {g.ravel()[:6]}, expected {e.ravel()[:6]})")
    ei = np.isinf(e)
    if not np.array_equal(g[ei], e[ei]):
        raise AssertionError(f"{what}: infinities differ: got {g[ei][:6]}, expected {e[ei][:6]}")
    fin = ~en & ~ei
    if not np.all(np.isfinite(g[fin])):
        raise AssertionError(f"{what}: non-finite values where the reference is finite: {g[fin][~np.isfinite(g[fin])][:6]}")
    if not fin.any():
        return
    tol = TOL[dtype] if tol is None else tol
    s = max(float(np.max(np.abs(e[fin]))) if scale is None else float(scale), floor)
    err = float(np.max(np.abs(g[fin] - e[fin])))
    if err > tol * max(s, 1e-30) and err > 1e-300:
        i = int(np.argmax(np.abs(g[fin] - e[fin])))
        raise AssertionError(f"{what}: normalized max error {err / max(s, 1e-30):.3g} > {tol:g} "
                             f"(got {g[fin][i]!r}, expected {e[fin][i]!r})")


def assert_exact(got, exp, dtype, what="values"):
    """Values that are moved, not computed: equal bit for bit (NaNs in the same places)."""
    assert isinstance(got, cgad.Tensor), f"{what}: expected a tensor, got {type(got).__name__}"
    assert dtname(got) == dtype, f"{what}: dtype {dtname(got)}, expected {dtype}"
    g = got.numpy()
    exp = np.asarray(exp).astype(dtype)
    assert g.shape == exp.shape, f"{what}: shape {g.shape}, expected {exp.shape}"
    assert tuple(got.shape) == exp.shape, f"{what}: .shape {got.shape}, expected {exp.shape}"
    if not np.array_equal(g, exp, equal_nan=dtype in FLOATS):
        bad = np.argwhere(~((g == exp) | ((g != g) & (exp != exp))))[:4].tolist()
        raise AssertionError(f"{what}: mismatch at {bad}")


def exact_sum(r):
    """The correctly rounded sum (math.fsum), or numpy's where inf/NaN make fsum refuse."""
    try:
        return math.fsum(r)
    except (ValueError, OverflowError):
        return float(np.sum(r))


def finite(*arrays):
    return all(np.all(np.isfinite(np.asarray(x, dtype=np.float64))) for x in arrays)


def run_grad(op, desc, outs, grads_exp, inputs, rng, floors=None):
    """Back-propagates random weights (or ones: a plain sum loss) from `outs` and compares each
    input's leaf grad with the reference. grads_exp: function(weights) -> list of grads (float64
    arrays, None where no grad is expected) per input. The normalized error divides by the
    larger of max|grad| and a floor: 1e-3 max|weights| by default, or floors(weights)[i] where
    cancellation makes a grad that is zero in exact arithmetic come out as rounding noise of
    that size (softmax of a plain sum, layer_norm with a large rstd)."""
    if not any(x is not None and x.leaf is not None for x in inputs):
        return
    ws = []
    plain_sum = rng.random() < 0.3
    for o in outs:
        shape = tuple(o.shape)
        w = np.ones(shape) if plain_sum else rng.standard_normal(shape)
        ws.append(w)
    exp = grads_exp(ws)
    if exp is None or not all(e is None or finite(e) for e in exp):
        return  # the reference grad is not finite here (log at 0, pow of negatives, ...)
    note_case(op + ":grad", desc)
    try:
        if len(outs) == 1 and plain_sum and rng.random() < 0.5:
            outs[0].sum().backward()
        elif len(outs) == 1 and outs[0].ndim == 0 and plain_sum:
            outs[0].backward()
        else:
            loss = None
            for o, w in zip(outs, ws):
                term = (o * cgad.tensor(w, dtype=o.dtype)).sum()
                loss = term if loss is None else loss + term
            loss.backward()
    except Exception as e:  # noqa: BLE001
        raise Mismatch(f"{op}:grad: {desc}\n  backward raised {type(e).__name__}: {e}") from e
    for k, (inp, e) in enumerate(zip(inputs, exp)):
        if inp is None or inp.leaf is None or e is None:
            continue
        dtype = str(inp.a.dtype)
        got = inp.leaf.grad
        if got is None:
            raise Mismatch(f"{op}:grad: {desc}\n  input {k} has no grad")
        want = inp.leaf_grad(np.asarray(e, dtype=np.float64).reshape(inp.a.shape))
        wmax = max((float(np.max(np.abs(w))) for w in ws if np.size(w)), default=0.0)
        floor = 1e-3 * wmax if floors is None else float(floors(ws)[k])
        try:
            # a float64 input of a float32 result gets its grad through float32
            tol = GTOL["float32" if "float32" in [dtype] + [dtname(o) for o in outs] else "float64"]
            assert_values(got, want, dtype, tol=tol, what=f"grad of input {k}", floor=floor)
        except AssertionError as err:
            raise Mismatch(f"{op}:grad: {desc}\n  {err}") from err


def unbroadcast(g, shape):
    g = np.asarray(g, dtype=np.float64)
    while g.ndim > len(shape):
        g = g.sum(axis=0)
    for i, s in enumerate(shape):
        if s == 1 and g.shape[i] != 1:
            g = g.sum(axis=i, keepdims=True)
    return g.reshape(shape)


def gather_vjp(shape, f, ws):
    """VJP of an op that only moves elements: f maps an array of element ids (int64, -1 for
    'no source') to the list of outputs; each output element's grad flows to its source."""
    n = int(np.prod(shape))
    ids = np.arange(n, dtype=np.int64).reshape(shape)
    gi = np.zeros(n)
    for o, w in zip(f(ids), ws):
        o = np.asarray(o)
        w = np.broadcast_to(np.asarray(w, dtype=np.float64), o.shape)
        m = o >= 0
        np.add.at(gi, o[m], w[m])
    return gi.reshape(shape)


# ---------------------------------------------------------------------------------------------
# the properties

PROPS = {}


def prop(name, examples):
    def deco(fn):
        PROPS[name] = (fn, examples)
        return fn
    return deco


def draw_broadcast_pair(data):
    out = draw_shape(data, max_dims=4, label="out_shape")

    def derive(label):
        nd = data.draw(st.integers(0, len(out)), label=label + "_ndim")
        s = list(out[len(out) - nd:])
        for i in range(len(s)):
            r = data.draw(st.integers(0, 11), label=label + "_kind")
            if r < 3:
                s[i] = 1
            elif r == 11:
                s[i] = data.draw(dim_size(), label=label + "_bad")
        return tuple(s)
    return derive("a"), derive("b")


def draw_scalar(data):
    kind = data.draw(st.sampled_from(["int", "int", "float", "float", "bool", "special", "huge", "np"]),
                     label="scalar_kind")
    if kind == "int":
        return data.draw(st.integers(-5, 5), label="scalar")
    if kind == "float":
        return data.draw(st.sampled_from([0.5, -2.5, 0.1, 3.0, 1e-3, -0.0, 2.0]), label="scalar")
    if kind == "bool":
        return data.draw(st.booleans(), label="scalar")
    if kind == "special":
        return data.draw(st.sampled_from([math.nan, math.inf, -math.inf, 1e30, 1e300]), label="scalar")
    if kind == "huge":
        return data.draw(st.sampled_from([2**31, 2**40, 2**63 - 1, 2**63, -2**63 - 1, 2**70]), label="scalar")
    return data.draw(st.sampled_from([np.float64(1.5), np.int64(3), np.float32(-0.25), np.int32(2)]),
                     label="scalar")


BINOPS = {
    "+": (lambda x, y: x + y, np.add), "-": (lambda x, y: x - y, np.subtract),
    "*": (lambda x, y: x * y, np.multiply), "/": (lambda x, y: x / y, np.divide),
    "**": (lambda x, y: x ** y, np.power),
    "==": (lambda x, y: x == y, np.equal), "!=": (lambda x, y: x != y, np.not_equal),
    "<": (lambda x, y: x < y, np.less), "<=": (lambda x, y: x <= y, np.less_equal),
    ">": (lambda x, y: x > y, np.greater), ">=": (lambda x, y: x >= y, np.greater_equal),
}
COMPARE = ("==", "!=", "<", "<=", ">", ">=")


def as_dtype(v, dtype):
    """An array or a Python/numpy scalar as a numpy array of dtype (a scalar as cgad converts it)."""
    if isinstance(v, np.ndarray):
        return v.astype(dtype)
    if dtype in FLOATS:
        return np.asarray(float(v), dtype=dtype)
    return np.asarray(int(v), dtype=dtype)


def np_ipow(a, b, dtype):
    """Integer powers as torch computes them: wrapping, and for negative exponents 1 for 1,
    +-1 for -1 and 0 otherwise."""
    bits = 32 if dtype == "int32" else 64
    a, b = np.broadcast_arrays(a, b)
    out = np.zeros(a.shape, dtype)
    for i in np.ndindex(a.shape):
        x, y = int(a[i]), int(b[i])
        if y < 0:
            r = 1 if x == 1 else ((-1 if y % 2 else 1) if x == -1 else 0)
        else:
            r = pow(x, y, 2**bits)
            r = r - 2**bits if r >= 2**(bits - 1) else r
        out[i] = r
    return out


def float_to_int_ok(a, dtype):
    """Whether every float in a truncates to a value of the integer dtype (no NaN, inf or overflow)."""
    lo, hi = INT_LIMITS[dtype]
    x = np.asarray(a, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return bool(np.all((np.trunc(x) >= lo) & (x < hi + 1)))


FLOAT_MAX = {"float32": float(np.finfo(np.float32).max), "float64": math.inf}


def fits(v, dtype):
    """Whether a fill value converts to dtype without overflow: integers in range, and for floats
    inf/NaN or a finite value no larger than the dtype's largest (as torch's checked fills)."""
    if dtype in FLOATS:
        return not math.isfinite(v) or abs(v) <= FLOAT_MAX[dtype]
    lo, hi = INT_LIMITS[dtype]
    if isinstance(v, (float, np.floating)):
        return math.isfinite(v) and lo <= v <= hi
    return lo <= int(v) <= hi


@prop("binary", 620)
def fuzz_binary(data):
    rng = draw_rng(data)
    op = data.draw(st.sampled_from(list(BINOPS)), label="op")
    form = data.draw(st.sampled_from(["tt", "tt", "ts", "st"]), label="form")
    sa, sb = draw_broadcast_pair(data)
    fn, npfn = BINOPS[op]
    grad = op not in COMPARE and data.draw(st.booleans(), label="grad")
    da = draw_dtype(data, grad, "dtype_a")
    db = draw_dtype(data, grad, "dtype_b")
    A = make_input(data, rng, sa, da, grad=grad)
    errs = set()
    if form == "tt":
        B = make_input(data, rng, sb, db, grad=grad)
        if op == "**" and B.a.dtype.kind in "iub" and rng.random() < 0.5:
            B = make_input(data, rng, sb, db, grad=grad, values=np.asarray(np.abs(B.a)))
        dimmed = [x.a.dtype.name for x in (A, B) if x.a.ndim]
        zerod = [x.a.dtype.name for x in (A, B) if not x.a.ndim]
        rt = result_type(dimmed, zerod)
        left, right = A.a, B.a
        call = lambda: fn(A.t, B.t)  # noqa: E731
        desc = f"{A.desc()} {op} {B.desc()}"
        try:
            oshape = np.broadcast_shapes(sa, sb)
        except ValueError:
            errs.add(ValueError)
            oshape = None
    else:
        s = draw_scalar(data)
        if form == "st" and isinstance(s, np.generic):
            form = "ts"  # numpy scalars on the left are numpy's business (they take the array path)
        B = None
        rt = result_type([A.a.dtype.name] if A.a.ndim else [], [] if A.a.ndim else [A.a.dtype.name], [s])
        if rt not in FLOATS and not fits(s, rt):
            errs.add(ValueError)  # a Python int that the result's integer dtype cannot hold
        if form == "ts":
            left, right = A.a, s
            call = lambda: fn(A.t, s)  # noqa: E731
            desc = f"{A.desc()} {op} {s!r}"
        else:
            left, right = s, A.a
            call = lambda: fn(s, A.t)  # noqa: E731
            desc = f"{s!r} {op} {A.desc()}"
        oshape = sa
    compute = rt
    out_dtype = rt
    if op == "/" and rt not in FLOATS:
        compute = out_dtype = "float32"
    if op in COMPARE:
        out_dtype = "bool"
    if rt == "bool" and op in ("-", "**"):
        errs.add(TypeError)
    if op == "**" and compute in INTS and form == "ts" and not isinstance(right, (bool, np.bool_)) and right < 0:
        errs.add(ValueError)  # integers to negative integer (Python scalar) powers, as torch
    ref = None
    if not errs:
        lv, rv = as_dtype(left, compute), as_dtype(right, compute)
        with np.errstate(all="ignore"):
            if op in COMPARE:  # compare in the promoted dtype, exactly
                ref = npfn(lv, rv)
            elif compute in FLOATS:
                ref = npfn(lv.astype(np.float64), rv.astype(np.float64))
            elif compute == "bool":
                ref = {"+": np.logical_or, "*": np.logical_and}[op](lv, rv)
            elif op == "**":
                ref = np_ipow(lv, rv, compute)
            else:
                ref = npfn(lv, rv)
        ref = np.asarray(ref)

    def verify(r):
        assert_values(r, ref, out_dtype, what=f"{op} result")
        if op in COMPARE:
            assert not r.requires_grad, "a comparison result requires grad"

    out = check_call("binary:" + op, desc, call, errs, verify)
    if out is None or not grad or op in COMPARE or out_dtype not in FLOATS:
        return
    ins = [A, B] if B is not None else [A]
    if not any(x.leaf is not None for x in ins):
        return
    x, y = as_dtype(left, compute).astype(np.float64), as_dtype(right, compute).astype(np.float64)
    if not finite(x, y):
        return

    def grads(ws):
        g = ws[0]
        with np.errstate(all="ignore"):
            if op == "+":
                gx, gy = g, g
            elif op == "-":
                gx, gy = g, -g
            elif op == "*":
                gx, gy = g * y, g * x
            elif op == "/":
                gx, gy = g / y, -g * x / (y * y)
            else:
                gx, gy = g * y * np.power(x, y - 1), g * np.power(x, y) * np.log(x)
        if form == "tt":
            return [unbroadcast(gx, sa), unbroadcast(gy, sb)]
        return [unbroadcast(gx if form == "ts" else gy, sa)]
    run_grad("binary:" + op, desc, [out], grads, ins, rng)


UNARY = {
    "exp": (lambda t: t.exp(), np.exp, lambda x, y, g: g * y),
    "log": (lambda t: t.log(), np.log, lambda x, y, g: g / x),
    "tanh": (lambda t: t.tanh(), np.tanh, lambda x, y, g: g * (1 - y * y)),
    "sqrt": (lambda t: t.sqrt(), np.sqrt, lambda x, y, g: g * 0.5 / y),
    "rsqrt": (lambda t: t.rsqrt(), lambda x: 1 / np.sqrt(x), lambda x, y, g: g * -0.5 * y ** 3),
    "abs": (lambda t: abs(t) if np.random.random() < 0.5 else t.abs(), np.abs, lambda x, y, g: g * np.sign(x)),
    "neg": (lambda t: -t if np.random.random() < 0.5 else t.neg(), np.negative, lambda x, y, g: -g),
}


@prop("unary", 350)
def fuzz_unary(data):
    rng = draw_rng(data)
    op = data.draw(st.sampled_from(list(UNARY)), label="op")
    shape = draw_shape(data)
    grad = data.draw(st.booleans(), label="grad")
    dt = draw_dtype(data, grad)
    positive = op in ("log", "sqrt", "rsqrt") and data.draw(st.booleans(), label="positive")
    A = make_input(data, rng, shape, dt, grad=grad, positive=positive)
    fn, npfn, dfn = UNARY[op]
    errs = set()
    keeps = op in ("abs", "neg")
    if keeps:
        out_dtype = dt
        if dt == "bool":
            errs.add(TypeError)
    else:
        out_dtype = dt if dt in FLOATS else "float32"
    x = A.a.astype(out_dtype) if not errs else None
    with np.errstate(all="ignore"):
        ref = npfn(x.astype(np.float64)) if (x is not None and out_dtype in FLOATS) else (npfn(x) if x is not None else None)
    out = check_call("unary:" + op, A.desc(), lambda: fn(A.t), errs,
                     lambda r: assert_values(r, ref, out_dtype))
    if out is None or A.leaf is None:
        return
    xf = x.astype(np.float64)
    if not finite(xf):
        return
    with np.errstate(all="ignore"):
        run_grad("unary:" + op, A.desc(), [out], lambda ws: [dfn(xf, npfn(xf), ws[0])], [A], rng)


def draw_dims_arg(data, nd):
    kind = data.draw(st.sampled_from(["none", "int", "int", "tuple", "list", "empty"]), label="dims_kind")
    if kind == "none":
        return None
    if kind == "int":
        return draw_dim(data, nd)
    if kind == "empty":
        return ()
    k = data.draw(st.integers(1, 3), label="ndims")
    ds = [draw_dim(data, nd, allow_huge=False) for _ in range(k)]
    return tuple(ds) if kind == "tuple" else ds


@prop("reduce", 600)
def fuzz_reduce(data):
    rng = draw_rng(data)
    op = data.draw(st.sampled_from(["sum", "mean", "max", "max_dim", "argmax", "topk"]), label="op")
    shape = draw_shape(data)
    nd = len(shape)
    grad = data.draw(st.booleans(), label="grad")
    dt = draw_dtype(data, grad)
    A = make_input(data, rng, shape, dt, grad=grad)
    a = A.a
    keepdim = data.draw(st.booleans(), label="keepdim")
    errs = set()
    if op in ("sum", "mean"):
        dims = draw_dims_arg(data, nd)
        dl = [] if dims is None else list(dims) if isinstance(dims, (tuple, list)) else [dims]
        for d in dl:
            errs |= dim_errs(d, nd)
        ok = [wrap(d, nd) for d in dl if dim_ok(d, nd)]
        if nd and len(set(ok)) != len(ok):
            errs.add(ValueError)
        if op == "mean" and dt not in FLOATS:
            errs.add(TypeError)
        axes = tuple(range(nd)) if not dl else tuple(sorted(set(ok))) if nd else ()
        out_dtype = dt if dt in FLOATS else "int64"
        desc = f"{A.desc()}.{op}(dim={dims!r}, keepdim={keepdim})"
        call = lambda: getattr(A.t, op)(dim=dims, keepdim=keepdim) if rng.random() < 0.7 else getattr(A.t, op)(dims, keepdim)  # noqa: E731
        ref = scale = None
        if not errs:
            with np.errstate(all="ignore"):
                x = a.astype(np.float64) if dt in FLOATS else a.astype(np.int64)
                ref = x.sum(axis=axes, keepdims=keepdim) if op == "sum" else x.mean(axis=axes, keepdims=keepdim)
                if dt in FLOATS:
                    ax = np.abs(x)
                    scale = float(np.max(ax.sum(axis=axes))) if x.size else 0.0
                    if op == "mean":
                        cnt = int(np.prod([shape[i] for i in axes])) if axes else 1
                        scale = scale / max(cnt, 1)
        out = check_call("reduce:" + op, desc, call, errs,
                         lambda r: assert_values(r, ref, out_dtype, scale=scale))
        if out is None or A.leaf is None or not finite(a):
            return
        cnt = int(np.prod([shape[i] for i in axes])) if axes else 1

        def grads(ws):
            g = np.asarray(ws[0], dtype=np.float64)
            if not keepdim:
                g = np.expand_dims(g, axes) if axes else g
            g = np.broadcast_to(g, shape)
            return [g / cnt if op == "mean" else g]
        if op == "mean" and cnt == 0:
            return
        run_grad("reduce:" + op, desc, [out], grads, [A], rng)
        return
    if op == "max":
        desc = f"{A.desc()}.max()"
        if a.size == 0:
            errs.add(ValueError)
        ref = None if errs else np.max(a)
        out = check_call("reduce:max", desc, lambda: A.t.max(), errs,
                         lambda r: assert_exact(r, ref, dt))
        if out is None or A.leaf is None or not finite(a):
            return
        mask = (a == np.max(a)).astype(np.float64)
        run_grad("reduce:max", desc, [out], lambda ws: [mask * ws[0] / mask.sum()], [A], rng)
        return
    if op in ("max_dim", "argmax"):
        dim = draw_dim(data, nd) if (op == "max_dim" or data.draw(st.booleans(), label="has_dim")) else None
        desc = f"{A.desc()}.{'max' if op == 'max_dim' else 'argmax'}({dim!r}, keepdim={keepdim})"
        if dim is None:
            if a.size == 0:
                errs.add(ValueError)
        elif not dim_ok(dim, nd):
            errs |= dim_errs(dim, nd)
        elif nd and shape[wrap(dim, nd)] == 0:
            errs.add(ValueError)
        vals = idx = None
        if not errs:
            if dim is None:
                idx = np.asarray(np.argmax(a.reshape(-1)))
                if keepdim:
                    idx = idx.reshape((1,) * nd)
            elif nd == 0:
                vals, idx = a, np.asarray(0)
            else:
                d = wrap(dim, nd)
                idx = np.argmax(a, axis=d)
                vals = np.take_along_axis(a, np.expand_dims(idx, d), d)
                idx = np.expand_dims(idx, d) if keepdim else idx
                vals = vals if keepdim else np.squeeze(vals, d)
        if op == "argmax":
            call = lambda: A.t.argmax(dim=dim, keepdim=keepdim) if dim is not None or rng.random() < 0.5 else A.t.argmax(keepdim=keepdim)  # noqa: E731
            out = check_call("reduce:argmax", desc, call, errs, lambda r: assert_exact(r, idx, "int64"))
            if out is not None:
                assert not out.requires_grad, "argmax result requires grad"
            return

        def verify(r):
            assert isinstance(r, tuple) and len(r) == 2, f"max(dim) returned {_short(r)}"
            assert_exact(r[0], vals, dt, "values")
            assert_exact(r[1], idx, "int64", "indices")
        out = check_call("reduce:max_dim", desc, lambda: A.t.max(dim, keepdim), errs, verify)
        if out is None or A.leaf is None or not finite(a):
            return
        d = wrap(dim, nd)

        def grads(ws):
            g = np.zeros(shape)
            w = np.asarray(ws[0], dtype=np.float64)
            if nd == 0:
                return [w]
            ii = np.argmax(a, axis=d)
            w = w if keepdim else np.expand_dims(w, d)
            np.put_along_axis(g, np.expand_dims(ii, d), w, d)
            return [g]
        run_grad("reduce:max_dim", desc, [out[0]], grads, [A], rng)
        return
    # topk
    dim = draw_dim(data, nd) if data.draw(st.booleans(), label="has_dim") else None
    n = 1 if nd == 0 else (shape[wrap(dim if dim is not None else -1, nd)] if dim_ok(dim if dim is not None else -1, nd) else 0)
    k = data.draw(st.sampled_from([0, 1, 2, n, n + 1, -1]), label="k")
    desc = f"{A.desc()}.topk({k}, dim={dim!r})"
    if not dim_ok(-1 if dim is None else dim, nd):
        errs |= dim_errs(dim, nd)
    elif k < 0 or k > n:
        errs.add(ValueError)
    elif nd == 0 and k == 0:
        errs.add(ValueError)  # torch returns the 0-d value itself here; a ValueError is fine too
        note_case("reduce:topk", f"{A.desc()}.topk(0)")
        try:
            r = A.t.topk(0)
        except ValueError:
            return
        assert_exact(r[0], a, dt)
        return

    def verify(r):
        assert isinstance(r, tuple) and len(r) == 2, f"topk returned {_short(r)}"
        v, i = r
        d = wrap(-1 if dim is None else dim, nd)
        if nd == 0:
            assert_exact(v, a, dt, "values")
            assert_exact(i, np.asarray(0), "int64", "indices")
            return
        srt = np.flip(np.sort(a, axis=d), axis=d)  # descending, NaN first
        want = np.take(srt, np.arange(k), axis=d)
        assert_exact(v, want, dt, "values")
        ii = i.numpy()
        assert dtname(i) == "int64" and ii.shape == want.shape, f"indices {dtname(i)}{ii.shape}"
        if ii.size:
            assert ii.min() >= 0 and ii.max() < n, "indices out of range"
            picked = np.take_along_axis(a, ii, d)
            assert np.array_equal(picked, want, equal_nan=dt in FLOATS), "values at the indices differ"
            s = np.sort(ii, axis=d)
            assert np.all(np.diff(s, axis=d) > 0), "repeated indices"
    call = lambda: A.t.topk(k) if dim is None else A.t.topk(k, dim)  # noqa: E731
    out = check_call("reduce:topk", desc, call, errs, verify)
    if out is not None and A.leaf is not None and out[0].numel() and rng.random() < 0.5:
        note_case("reduce:topk:grad", desc)
        try:
            out[0].sum().backward()
        except RuntimeError:
            pass
        else:
            raise Mismatch(f"reduce:topk:grad: {desc}\n  backward through topk did not raise RuntimeError")


# --- shape ops and views -----------------------------------------------------------------------

def draw_reshape_target(data, shape):
    n = int(np.prod(shape))
    kind = data.draw(st.integers(0, 9), label="target_kind")
    if kind <= 5:
        # a valid factorization: shuffle the dims, merge neighbours, add ones, maybe one -1
        dims = list(shape)
        data.draw(st.randoms(use_true_random=False), label="r").shuffle(dims)
        out = []
        for d in dims:
            if out and data.draw(st.booleans(), label="merge"):
                out[-1] *= d
            else:
                out.append(d)
        if data.draw(st.booleans(), label="ones"):
            out.insert(data.draw(st.integers(0, len(out)), label="at"), 1)
        if out and data.draw(st.integers(0, 2), label="infer") == 0:
            out[data.draw(st.integers(0, len(out) - 1), label="which")] = -1
        return tuple(out)
    if kind <= 7:
        return tuple(data.draw(st.lists(st.sampled_from([-1, 0, 1, 2, 3, 4, 6, 12, -2]), max_size=4), label="target"))
    return (n,) if kind == 8 else (-1,)


def reshape_expect(shape, target):
    n = int(np.prod(shape))
    if sum(1 for d in target if d == -1) > 1 or any(d < -1 for d in target):
        return None
    known = int(np.prod([d for d in target if d != -1]))
    if -1 in target:
        if known == 0 or n % known:
            return None
        return tuple(n // known if d == -1 else d for d in target)
    return tuple(target) if known == n else None


def draw_expand_sizes(data, shape):
    nd = len(shape)
    lead = data.draw(st.lists(st.sampled_from([0, 1, 2, 3, -1]), max_size=2), label="lead")
    sizes = list(lead)
    for s in shape:
        r = data.draw(st.integers(0, 9), label="ek")
        if r < 3:
            sizes.append(-1)
        elif r < 7 or s != 1:
            sizes.append(s if r < 8 else data.draw(st.sampled_from([0, 2, 3, -2]), label="ebad"))
        else:
            sizes.append(data.draw(st.sampled_from([0, 2, 3]), label="enew"))
    if data.draw(st.integers(0, 15), label="drop") == 0 and nd:
        sizes = sizes[1:]
    return tuple(sizes)


def expand_expect(shape, sizes):
    nd = len(shape)
    if len(sizes) < nd:
        return None
    lead = len(sizes) - nd
    out = []
    for i, s in enumerate(sizes):
        if i < lead:
            if s < 0:
                return None
            out.append(s)
            continue
        o = shape[i - lead]
        if s == -1 or s == o:
            out.append(o)
        elif o == 1 and s >= 0:
            out.append(s)
        else:
            return None
    return tuple(out)


@prop("views", 780)
def fuzz_views(data):
    rng = draw_rng(data)
    op = data.draw(st.sampled_from(["reshape", "view", "transpose", "permute", "unsqueeze", "squeeze",
                                    "expand", "contiguous", "T", "split", "chunk", "tril", "masked_fill"]),
                   label="op")
    shape = draw_shape(data, min_dims=0 if op not in ("tril",) else data.draw(st.integers(0, 2)))
    nd = len(shape)
    grad = data.draw(st.booleans(), label="grad")
    dt = draw_dtype(data, grad)
    A = make_input(data, rng, shape, dt, grad=grad)
    a = A.a
    errs = set()
    np_f = None  # ids/values -> list of outputs (numpy), for the reference and the VJP
    if op in ("reshape", "view"):
        target = draw_reshape_target(data, shape)
        style = data.draw(st.sampled_from(["args", "tuple", "list"]), label="style")
        arg = target if style == "args" else (tuple(target),) if style == "tuple" else (list(target),)
        desc = f"{A.desc()}.{op}{arg!r}"
        final = reshape_expect(shape, target)
        if final is None:
            errs.add(ValueError)
        else:
            np_f = lambda x, ids=False: [x.reshape(final)]  # noqa: E731
        if op == "view" and final is not None and not A.t.is_contiguous():
            # a view may be impossible for these strides: RuntimeError, or a correct view
            note_case("views:view", desc)
            try:
                r = A.t.view(*arg)
            except RuntimeError:
                return
            except Exception as e:  # noqa: BLE001
                raise Mismatch(f"views:view: {desc}\n  raised {type(e).__name__}: {e}") from e
            assert_exact(r, a.reshape(final), dt)
            out = [r]
            call = None
        else:
            call = lambda: getattr(A.t, op)(*arg)  # noqa: E731
    elif op == "transpose":
        d0, d1 = draw_dim(data, nd, "d0"), draw_dim(data, nd, "d1")
        desc = f"{A.desc()}.transpose({d0}, {d1})"
        if not (dim_ok(d0, nd) and dim_ok(d1, nd)):
            errs |= dim_errs(d0, nd) | dim_errs(d1, nd)
        elif nd:
            np_f = lambda x, ids=False: [np.swapaxes(x, wrap(d0, nd), wrap(d1, nd))]  # noqa: E731
        else:
            np_f = lambda x, ids=False: [x]  # noqa: E731
        call = lambda: A.t.transpose(d0, d1)  # noqa: E731
    elif op == "permute":
        r = data.draw(st.integers(0, 9), label="pk")
        dims = list(rng.permutation(nd))
        dims = [int(d) - nd if rng.random() < 0.3 else int(d) for d in dims]
        if r == 8:
            dims = dims[:-1] if dims else [0]
        elif r == 9 and nd:
            dims[0] = dims[-1] if nd > 1 else nd + 1
        desc = f"{A.desc()}.permute{tuple(dims)}"
        if len(dims) != nd:
            errs.add(ValueError)
        elif any(not (-nd <= d < nd) for d in dims) and nd:
            errs.add(IndexError)
        elif len(set(wrap(d, nd) for d in dims)) != nd:
            errs.add(ValueError)
        else:
            np_f = lambda x, ids=False: [np.transpose(x, [wrap(d, nd) for d in dims])]  # noqa: E731
        call = lambda: A.t.permute(*dims) if rng.random() < 0.5 else A.t.permute(dims)  # noqa: E731
    elif op == "unsqueeze":
        d = draw_dim(data, nd + 1)
        desc = f"{A.desc()}.unsqueeze({d})"
        if not dim_ok(d, nd + 1):
            errs |= dim_errs(d, nd + 1)
        else:
            np_f = lambda x, ids=False: [np.expand_dims(x, d if d >= 0 else d + nd + 1)]  # noqa: E731
        call = lambda: A.t.unsqueeze(d)  # noqa: E731
    elif op == "squeeze":
        d = draw_dim(data, nd) if data.draw(st.booleans(), label="has_dim") else None
        desc = f"{A.desc()}.squeeze({d!r})"
        if d is not None and not dim_ok(d, nd):
            errs |= dim_errs(d, nd)
        elif d is None:
            np_f = lambda x, ids=False: [x.reshape(tuple(s for s in shape if s != 1))]  # noqa: E731
        else:
            w = wrap(d, nd)
            np_f = lambda x, ids=False: [np.squeeze(x, w) if nd and shape[w] == 1 else x]  # noqa: E731
        call = lambda: A.t.squeeze(d) if d is not None else A.t.squeeze()  # noqa: E731
    elif op == "expand":
        sizes = draw_expand_sizes(data, shape)
        desc = f"{A.desc()}.expand{sizes}"
        final = expand_expect(shape, sizes)
        if final is None:
            errs.add(ValueError)
        else:
            np_f = lambda x, ids=False: [np.broadcast_to(x, final)]  # noqa: E731
        call = lambda: A.t.expand(*sizes) if rng.random() < 0.5 else A.t.expand(sizes)  # noqa: E731
    elif op == "contiguous":
        desc = f"{A.desc()}.contiguous()"
        np_f = lambda x, ids=False: [x]  # noqa: E731

        def call():
            r = A.t.contiguous()
            assert r.is_contiguous(), "contiguous() gave a non-contiguous tensor"
            return r
    elif op == "T":
        desc = f"{A.desc()}.T"
        np_f = lambda x, ids=False: [x.T]  # noqa: E731
        call = lambda: A.t.T  # noqa: E731
    elif op in ("split", "chunk"):
        dim = draw_dim(data, nd) if data.draw(st.booleans(), label="has_dim") else 0
        n = shape[wrap(dim, nd)] if nd and dim_ok(dim, nd) else 0
        if op == "split":
            if data.draw(st.booleans(), label="as_list"):
                k = data.draw(st.integers(0, 3), label="pieces")
                sizes = list(rng.multinomial(n, [1 / k] * k)) if k else []
                sizes = [int(s) for s in sizes]
                if data.draw(st.integers(0, 5), label="bad") == 0:
                    sizes = sizes + [1] if sizes else [-1, n + 1]
                arg = sizes
            else:
                arg = data.draw(st.sampled_from([1, 2, 3, 5, 0, -1]), label="split_size")
        else:
            arg = data.draw(st.sampled_from([1, 2, 3, 4, 0, -2]), label="chunks")
        desc = f"{A.desc()}.{op}({arg!r}, dim={dim})"
        if not dim_ok(dim, nd) or nd == 0:
            errs |= dim_errs(dim, nd) or {IndexError}
        if op == "split" and isinstance(arg, list):
            if any(s < 0 for s in arg) or sum(arg) != n:
                errs.add(ValueError)
        elif isinstance(arg, int) and arg <= 0:
            errs.add(ValueError)
        if not errs:
            d = wrap(dim, nd)
            if op == "split":
                if isinstance(arg, list):
                    pieces = arg
                else:
                    pieces = [arg] * (n // arg) + ([n % arg] if n % arg else []) or [0]
            else:
                if n == 0:
                    pieces = [0] * arg
                else:
                    sz = -(-n // arg)
                    pieces = [sz] * (n // sz) + ([n % sz] if n % sz else [])
            cuts = np.cumsum(pieces)[:-1]
            np_f = lambda x, ids=False: list(np.split(x, cuts, axis=d)) if pieces else []  # noqa: E731
        call = lambda: getattr(A.t, op)(arg, dim) if rng.random() < 0.5 else getattr(A.t, op)(arg, dim=dim)  # noqa: E731
    elif op == "tril":
        diag = data.draw(st.sampled_from([0, 0, 1, -1, 2, -3, 5, 2**63 - 1, -2**63, 2**70, -2**70]), label="diag")
        desc = f"tril({A.desc()}, {diag})"
        if nd < 2:
            errs.add(ValueError)
        else:
            R, C = shape[-2], shape[-1]
            k = max(-(R + C), min(R + C, diag))
            keep = (np.arange(C)[None, :] - np.arange(R)[:, None]) <= k
            np_f = lambda x, ids=False: [np.where(keep, x, -1 if ids else np.zeros((), x.dtype))]  # noqa: E731
        call = lambda: cgad.tril(A.t, diag) if rng.random() < 0.7 else cgad.tril(A.t, diagonal=diag)  # noqa: E731
    else:  # masked_fill
        ms = list(shape[len(shape) - data.draw(st.integers(0, nd), label="mnd"):])
        for i in range(len(ms)):
            if data.draw(st.integers(0, 3), label="m1") == 0:
                ms[i] = 1
        if data.draw(st.integers(0, 9), label="mbad") == 0:
            ms = ms + [2] if ms else [3]
        mdt = "bool" if data.draw(st.integers(0, 7), label="mdt") else data.draw(st.sampled_from(DTYPES), label="mdtype")
        mask = make_input(data, rng, tuple(ms), mdt)
        value = data.draw(st.sampled_from([0.0, -1.5, 2.5, 7, True, math.nan, -math.inf, 1e30, 2**31, 2**40,
                                           -1e300, 3.5e38]), label="value")
        desc = f"{A.desc()}.masked_fill({mask.desc()}, {value!r})"
        if mdt != "bool":
            errs.add(TypeError)
        try:
            if np.broadcast_shapes(shape, tuple(ms)) != shape:
                errs.add(ValueError)
        except ValueError:
            errs.add(ValueError)
        if not fits(value, dt) and dt != "bool":
            errs.add(ValueError)
        if not errs:
            m = np.broadcast_to(mask.a, shape)
            with np.errstate(all="ignore"):
                fill = np.asarray(value).astype(np.float64).astype(dt)
            np_f = lambda x, ids=False: [np.where(m, -1 if ids else fill, x)]  # noqa: E731
        call = lambda: A.t.masked_fill(mask.t, value)  # noqa: E731
    if call is not None:
        ref = np_f(a) if np_f is not None and not errs else None

        def verify(r):
            outs = list(r) if isinstance(r, tuple) else [r]
            assert len(outs) == len(ref), f"{len(outs)} outputs, expected {len(ref)}"
            for i, (o, e) in enumerate(zip(outs, ref)):
                assert_exact(o, e, dt, f"output {i}")
        out = check_call("views:" + op, desc, call, errs, verify)
        if out is None:
            return
        out = list(out) if isinstance(out, tuple) else [out]
    if A.leaf is None or not out or np_f is None or errs:
        return
    run_grad("views:" + op, desc, out, lambda ws: [gather_vjp(shape, lambda i: np_f(i, True), ws)], [A], rng)


@prop("cat_stack", 250)
def fuzz_cat_stack(data):
    rng = draw_rng(data)
    op = data.draw(st.sampled_from(["cat", "stack"]), label="op")
    base = draw_shape(data, min_dims=0, max_dims=3)
    nd = len(base)
    k = data.draw(st.integers(0, 3), label="count")
    dim = draw_dim(data, nd + (op == "stack"), allow_huge=False)
    grad = data.draw(st.booleans(), label="grad")
    ins, shapes = [], []
    for i in range(k):
        s = list(base)
        if op == "cat" and nd and dim_ok(dim, nd):
            s[wrap(dim, nd)] = data.draw(dim_size(), label="catlen")
        r = data.draw(st.integers(0, 11), label="bad")
        if r == 0 and s:
            s[data.draw(st.integers(0, len(s) - 1), label="which")] += 1
        elif r == 1:
            s = s[1:] if s else [2]
        dt = draw_dtype(data, grad)
        ins.append(make_input(data, rng, tuple(s), dt, grad=grad))
        shapes.append(tuple(s))
    errs = {TypeError} if bad_type(dim) else set()
    desc = f"{op}([{', '.join(x.desc() for x in ins)}], dim={dim!r})"
    if k == 0:
        errs.add(ValueError)
    elif op == "cat":
        if any(len(s) == 0 for s in shapes):
            errs.add(ValueError)
        if not dim_ok(dim, len(shapes[0])):
            errs |= dim_errs(dim, len(shapes[0]))
        if any(len(s) != len(shapes[0]) for s in shapes):
            errs.add(ValueError)
        elif len(shapes[0]) and dim_ok(dim, len(shapes[0])):
            d = wrap(dim, len(shapes[0]))
            if any(s[:d] + s[d + 1:] != shapes[0][:d] + shapes[0][d + 1:] for s in shapes):
                errs.add(ValueError)
    else:
        if any(s != shapes[0] for s in shapes):
            errs.add(ValueError)
        n0 = len(shapes[0])
        if not dim_ok(dim, n0 + 1):
            errs |= dim_errs(dim, n0 + 1)
    ref = None
    if not errs:
        out_dt = reduce(promote, [x.a.dtype.name for x in ins])
        if op == "cat":
            d = wrap(dim, len(shapes[0]))

            def np_f(arrs):
                return np.concatenate(arrs, axis=d)
        else:
            n0 = len(shapes[0])
            d = dim if dim >= 0 else dim + n0 + 1

            def np_f(arrs):
                return np.stack(arrs, axis=d)
        ref = np_f([x.a.astype(out_dt) for x in ins])
    fn = cgad.cat if op == "cat" else cgad.stack
    lst = [x.t for x in ins]
    call = lambda: fn(lst, dim) if rng.random() < 0.5 else fn(tuple(lst), dim=dim)  # noqa: E731
    out = check_call(op, desc, call, errs, lambda r: assert_exact(r, ref, out_dt))
    if out is None or not any(x.leaf is not None for x in ins) or dtname(out) not in FLOATS:
        return
    sizes = [x.a.size for x in ins]
    offs = np.concatenate([[0], np.cumsum(sizes)])

    def grads(ws):
        total = int(offs[-1])
        ids = [np.arange(offs[i], offs[i + 1], dtype=np.int64).reshape(shapes[i]) for i in range(k)]
        gi = np.zeros(total)
        o = np_f(ids)
        np.add.at(gi, o.reshape(-1), np.asarray(ws[0], dtype=np.float64).reshape(-1))
        return [gi[offs[i]:offs[i + 1]].reshape(shapes[i]) if ins[i].leaf is not None else None for i in range(k)]
    run_grad(op, desc, [out], grads, ins, rng)


def draw_index_item(data, rng):
    kind = data.draw(st.sampled_from(["int", "int", "slice", "slice", "slice", "none", "ellipsis",
                                      "bad", "npint", "hugeint"]), label="item")
    if kind == "int":
        return data.draw(st.integers(-6, 6), label="i")
    if kind == "npint":
        return np.int64(data.draw(st.integers(-3, 3), label="i"))
    if kind == "hugeint":
        return data.draw(st.sampled_from([2**63 - 1, -2**63, 2**70, -2**70]), label="i")
    if kind == "none":
        return None
    if kind == "ellipsis":
        return Ellipsis
    if kind == "bad":
        return data.draw(st.sampled_from([True, 1.5, [0, 1], "a", np.array([0]), cgad.tensor([0])]), label="bad")
    bound = st.one_of(st.none(), st.integers(-7, 7), st.sampled_from([2**63 - 1, -2**63 - 5, 2**70]))
    step = data.draw(st.sampled_from([None, None, 1, 2, 3, 0, -1, 2**70]), label="step")
    return slice(data.draw(bound, label="start"), data.draw(bound, label="stop"), step)


@prop("index", 500)
def fuzz_index(data):
    rng = draw_rng(data)
    shape = draw_shape(data)
    nd = len(shape)
    grad = data.draw(st.booleans(), label="grad")
    dt = draw_dtype(data, grad)
    A = make_input(data, rng, shape, dt, grad=grad)
    items = [draw_index_item(data, rng) for _ in range(data.draw(st.integers(0, 4), label="n_items"))]
    as_tuple = len(items) != 1 or data.draw(st.booleans(), label="tuple")
    idx = tuple(items) if as_tuple else items[0]
    errs = set()
    bad = lambda h: isinstance(h, (bool, np.bool_, float, list, str, np.ndarray, cgad.Tensor))  # noqa: E731
    consumed = sum(1 for h in items if h is not None and h is not Ellipsis)
    if sum(1 for h in items if h is Ellipsis) > 1 or consumed > nd:
        errs.add(IndexError)
    d = 0
    for h in items:
        if h is None:
            continue
        if h is Ellipsis:
            d += max(nd - consumed, 0)
            continue
        if bad(h):
            errs.add(TypeError)
        elif isinstance(h, slice):
            if h.step is not None and h.step <= 0:
                errs.add(ValueError)
        elif isinstance(h, (int, np.integer)) and d < nd and not (-shape[d] <= h < shape[d]):
            errs.add(IndexError)
        d += 1
    desc = f"{A.desc()}[{idx!r}]"
    ref = None
    if not errs:
        ref = np.asarray(A.a[idx])
    out = check_call("index", desc, lambda: A.t[idx], errs, lambda r: assert_exact(r, ref, dt))
    if out is None or A.leaf is None:
        return
    run_grad("index", desc, [out], lambda ws: [gather_vjp(shape, lambda i: [i[idx]], ws)], [A], rng)


# --- nn ops ------------------------------------------------------------------------------------

def np_softmax(x, d, log):
    with np.errstate(all="ignore"):
        m = np.max(x, axis=d, keepdims=True, initial=-np.inf)
        m = np.where(m == -np.inf, 0.0, m)
        z = x - m
        s = np.sum(np.exp(z), axis=d, keepdims=True)
        return z - np.log(s) if log else np.exp(z) / s


@prop("softmax", 300)
def fuzz_softmax(data):
    rng = draw_rng(data)
    log = data.draw(st.booleans(), label="log")
    shape = draw_shape(data)
    nd = len(shape)
    dt = data.draw(st.sampled_from(DTYPES + FLOATS * 3), label="dtype")
    grad = data.draw(st.booleans(), label="grad")
    A = make_input(data, rng, shape, dt, grad=grad)
    dim = draw_dim(data, nd)
    name = "log_softmax" if log else "softmax"
    style = data.draw(st.sampled_from(["F", "method"]), label="style")
    desc = f"{name}({A.desc()}, dim={dim}) via {style}"
    errs = set()
    if dt not in FLOATS:
        errs.add(TypeError)
    if not dim_ok(dim, nd):
        errs |= dim_errs(dim, nd)
    ref = None
    if not errs:
        x = A.a.astype(np.float64)
        ref = np_softmax(x, wrap(dim, nd) if nd else None, log)
    call = (lambda: getattr(F, name)(A.t, dim)) if style == "F" else (lambda: getattr(A.t, name)(dim))
    out = check_call(name, desc, call, errs, lambda r: assert_values(r, ref, dt, tol=TOL[dt] * 4))
    if out is None or A.leaf is None or not finite(A.a):
        return
    d = wrap(dim, nd) if nd else None

    def grads(ws):
        g = np.asarray(ws[0], dtype=np.float64)
        y = ref
        if log:
            return [g - np.exp(y) * g.sum(axis=d, keepdims=True)]
        return [y * (g - (g * y).sum(axis=d, keepdims=True))]
    run_grad(name, desc, [out], grads, [A], rng, floors=lambda ws: [np.max(np.abs(ws[0]), initial=0.0)])


@prop("linear", 250)
def fuzz_linear(data):
    rng = draw_rng(data)
    xs = draw_shape(data, min_dims=0, max_dims=3, label="x_shape")
    in_f = xs[-1] if xs else data.draw(dim_size(), label="in")
    out_f = data.draw(dim_size(), label="out")
    ws = (out_f, in_f)
    r = data.draw(st.integers(0, 11), label="bad")
    if r == 0:
        ws = (out_f, in_f + 1)
    elif r == 1:
        ws = (in_f,)
    has_b = data.draw(st.booleans(), label="has_b")
    bs = (out_f,) if data.draw(st.integers(0, 9), label="bbad") else (out_f + 1,)
    dts = [data.draw(st.sampled_from(FLOATS * 4 + ("int64",)), label="dt") for _ in range(3)]
    if data.draw(st.integers(0, 3), label="same") :
        dts = [dts[0]] * 3
    grad = data.draw(st.booleans(), label="grad")
    X = make_input(data, rng, xs, dts[0], grad=grad, special="nonhuge")
    W = make_input(data, rng, ws, dts[1], grad=grad, special="nonhuge")
    B = make_input(data, rng, bs, dts[2], grad=grad, special="nonhuge") if has_b else None
    desc = f"linear({X.desc()}, {W.desc()}, {B.desc() if B else None})"
    errs = set()
    used = [dts[0], dts[1]] + ([dts[2]] if has_b else [])
    if any(d not in FLOATS for d in used) or len(set(used)) > 1:
        errs.add(TypeError)
    if len(ws) != 2 or len(xs) < 1 or xs[-1] != ws[-1] or (has_b and bs != (ws[0],)):
        errs.add(ValueError)
    ref = None
    if not errs:
        x, w = X.a.astype(np.float64), W.a.astype(np.float64)
        with np.errstate(all="ignore"):
            ref = x @ w.T + (B.a.astype(np.float64) if has_b else 0.0)
    call = lambda: F.linear(X.t, W.t, B.t if B else None) if rng.random() < 0.5 else F.linear(X.t, W.t, b=B.t if B else None)  # noqa: E731
    scale = None
    if ref is not None and ref.size:
        scale = float(np.max(np.abs(x) @ np.abs(w).T)) + (float(np.max(np.abs(B.a))) if has_b and B.a.size else 0.0)
    out = check_call("linear", desc, call, errs, lambda r: assert_values(r, ref, dts[0], tol=TOL[dts[0]] * 5, scale=scale))
    if out is None or not finite(X.a, W.a, B.a if B else 0):
        return

    def grads(ws_):
        rows = int(np.prod(xs[:-1]))
        g = np.asarray(ws_[0], dtype=np.float64).reshape(rows, out_f)
        x2 = x.reshape(rows, in_f)
        return [(g @ w).reshape(xs), g.T @ x2, g.sum(axis=0) if has_b else None]
    run_grad("linear", desc, [out], grads, [X, W, B], rng)


@prop("embedding", 200)
def fuzz_embedding(data):
    rng = draw_rng(data)
    V, C = data.draw(dim_size(), label="V"), data.draw(dim_size(), label="C")
    ishape = draw_shape(data, max_dims=3, label="idx_shape")
    idt = data.draw(st.sampled_from(["int64", "int64", "int32", "float32", "bool"]), label="idx_dtype")
    wdt = data.draw(st.sampled_from(FLOATS * 3 + ("int64",)), label="w_dtype")
    ws = (V, C) if data.draw(st.integers(0, 9), label="wbad") else (V,)
    lo, hi = (-1, V + 1) if data.draw(st.integers(0, 4), label="oob") == 0 else (0, max(V, 1))
    ids = rng.integers(lo, hi, size=ishape) if V or lo < 0 else np.zeros(ishape, np.int64)
    ids = np.asarray(ids).reshape(ishape)
    I = make_input(data, rng, ishape, idt, values=ids.astype(idt) if idt != "bool" else None)
    grad = data.draw(st.booleans(), label="grad")
    W = make_input(data, rng, ws, wdt, grad=grad)
    desc = f"embedding({I.desc()} ids {I.a.ravel()[:6].tolist()}, {W.desc()})"
    errs = set()
    if idt not in INTS or wdt not in FLOATS:
        errs.add(TypeError)
    if len(ws) != 2:
        errs.add(ValueError)
    elif idt in INTS and I.a.size and (I.a.min() < 0 or I.a.max() >= V):
        errs.add(IndexError)
    ref = None if errs else W.a[I.a.astype(np.int64)]
    out = check_call("embedding", desc, lambda: F.embedding(I.t, W.t), errs, lambda r: assert_exact(r, ref, wdt))
    if out is None:
        return

    def grads(ws_):
        gw = np.zeros(ws)
        np.add.at(gw, I.a.astype(np.int64).reshape(-1), np.asarray(ws_[0], dtype=np.float64).reshape(I.a.size, C))
        return [None, gw]
    run_grad("embedding", desc, [out], grads, [None, W], rng)


@prop("layer_norm", 250)
def fuzz_layer_norm(data):
    rng = draw_rng(data)
    xs = draw_shape(data, min_dims=1, max_dims=3, label="x_shape")
    k = data.draw(st.integers(0, len(xs)), label="k")
    ns = tuple(xs[len(xs) - k:]) if k else ()
    if data.draw(st.integers(0, 9), label="nsbad") == 0:
        ns = ns[:-1] + ((ns[-1] + 1),) if ns else (3,)
    eps = data.draw(st.sampled_from([1e-5, 1e-5, 0.0, 1e-12, 0.1, 3.0, math.inf, -1e-3, math.nan]), label="eps")
    dt = data.draw(st.sampled_from(FLOATS * 4 + ("int64",)), label="dtype")
    wdt = dt if data.draw(st.integers(0, 7), label="wsame") else data.draw(st.sampled_from(DTYPES), label="wdt")
    grad = data.draw(st.booleans(), label="grad")
    X = make_input(data, rng, xs, dt, grad=grad)
    has_w, has_b = data.draw(st.booleans(), label="has_w"), data.draw(st.booleans(), label="has_b")
    pshape = ns if data.draw(st.integers(0, 9), label="pbad") else ns + (1,)
    W = make_input(data, rng, pshape, wdt, grad=grad) if has_w else None
    B = make_input(data, rng, pshape, wdt, grad=grad) if has_b else None
    ns_arg = ns[0] if len(ns) == 1 and data.draw(st.booleans(), label="int_ns") else ns
    desc = f"layer_norm({X.desc()}, {ns_arg!r}, {W.desc() if W else None}, {B.desc() if B else None}, eps={eps!r})"
    errs = set()
    if dt not in FLOATS or ((has_w or has_b) and wdt != dt):
        errs.add(TypeError)
    if not ns or len(ns) > len(xs) or tuple(xs[len(xs) - len(ns):]) != ns or not (eps >= 0) \
            or ((has_w or has_b) and pshape != ns):
        errs.add(ValueError)
    ref = None
    check_values = True
    if not errs:
        C = int(np.prod(ns))
        N = X.a.size // C if C else 0
        x = X.a.astype(np.float64).reshape(N, C)
        with np.errstate(all="ignore"):
            # exact row sums, so a constant row has exactly zero variance
            mu = np.array([exact_sum(r) for r in x]).reshape(N, 1) / max(C, 1)
            var = np.array([exact_sum(r) for r in (x - mu) ** 2]).reshape(N, 1) / max(C, 1)
            rstd = 1.0 / np.sqrt(var + eps)
            xhat = (x - mu) * rstd
            w = W.a.astype(np.float64).reshape(-1) if has_w else np.ones(C)
            b = B.a.astype(np.float64).reshape(-1) if has_b else np.zeros(C)
            ref = (xhat * w + b).reshape(xs)
            # x - mean carries a rounding error of about eps_dtype * |mean|, amplified by rstd:
            # where that alone exceeds the tolerance the values are not comparable
            cond = np.abs(mu) * rstd
            cond = np.where(np.isnan(cond), 0.0, cond)
            check_values = not (N and C) or float(np.max(cond)) * np.finfo(dt).eps < TOL[dt]

    def verify(r):
        if check_values:
            assert_values(r, ref, dt, tol=TOL[dt] * 20)
        else:
            assert dtname(r) == dt and tuple(r.shape) == xs, f"{dtname(r)}{r.shape}"
    call = lambda: F.layer_norm(X.t, ns_arg, W.t if W else None, B.t if B else None, eps=eps)  # noqa: E731
    out = check_call("layer_norm", desc, call, errs, verify)
    if out is None or not check_values or C == 0 or not finite(X.a, W.a if W else 0, B.a if B else 0) \
            or not math.isfinite(eps) or np.any(var + eps == 0):
        return

    def grads(ws_):
        g = np.asarray(ws_[0], dtype=np.float64).reshape(N, C)
        dn = g * w
        dx = rstd * (dn - dn.mean(axis=1, keepdims=True) - xhat * (dn * xhat).mean(axis=1, keepdims=True))
        return [dx.reshape(xs), (g * xhat).sum(axis=0).reshape(ns) if has_w else None,
                g.sum(axis=0).reshape(ns) if has_b else None]
    def floors(ws_):
        g = float(np.max(np.abs(ws_[0]), initial=0.0))
        gam = float(np.max(np.abs(w), initial=1.0))
        return [g * gam * float(np.max(rstd, initial=0.0)), g * float(np.max(np.abs(xhat), initial=0.0)), g]
    run_grad("layer_norm", desc, [out], grads, [X, W, B], rng, floors=floors)


ERF = np.frompyfunc(math.erf, 1, 1)


@prop("gelu", 200)
def fuzz_gelu(data):
    rng = draw_rng(data)
    shape = draw_shape(data)
    dt = data.draw(st.sampled_from(FLOATS * 4 + ("int64", "bool")), label="dtype")
    approx = data.draw(st.sampled_from(["none", "tanh", "default", "fast", None]), label="approximate")
    grad = data.draw(st.booleans(), label="grad")
    X = make_input(data, rng, shape, dt, grad=grad)
    desc = f"gelu({X.desc()}, approximate={approx!r})"
    errs = set()
    if approx not in ("none", "tanh", "default"):
        errs.add(ValueError)
    if dt not in FLOATS:
        errs.add(TypeError)
    x = X.a.astype(np.float64)
    tanh = approx == "tanh"
    k0, k1 = math.sqrt(2 / math.pi), 0.044715
    with np.errstate(all="ignore"):
        if tanh:
            u = k0 * (x + k1 * x ** 3)
            ref = 0.5 * x * (1 + np.tanh(u))
        else:
            e = np.asarray(ERF(x / math.sqrt(2))).astype(np.float64) if x.size else x
            ref = 0.5 * x * (1 + e)
    call = lambda: F.gelu(X.t) if approx == "default" else F.gelu(X.t, approximate=approx)  # noqa: E731
    # gelu(x) is O(|x|): for x << 0 float32 loses 1 + erf(x / sqrt(2)) to cancellation (as torch does)
    xs_max = float(np.max(np.abs(x[np.isfinite(x)]), initial=0.0))
    out = check_call("gelu", desc, call, errs, lambda r: assert_values(r, ref, dt, tol=TOL[dt] * 10, floor=xs_max))
    if out is None or not finite(x) or (tanh and dt == "float32" and xs_max > 1e10):
        return  # float32 x**3 overflows: 0 * inf in the tanh form's derivative gives NaN, as in torch

    def grads(ws_):
        g = np.asarray(ws_[0], dtype=np.float64)
        if tanh:
            th = np.tanh(u)
            return [g * (0.5 * (1 + th) + 0.5 * x * (1 - th * th) * k0 * (1 + 3 * k1 * x * x))]
        return [g * (0.5 * (1 + e) + x * np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi))]
    run_grad("gelu", desc, [out], grads, [X], rng)


@prop("cross_entropy", 250)
def fuzz_cross_entropy(data):
    rng = draw_rng(data)
    three = data.draw(st.booleans(), label="3d")
    lead = (data.draw(dim_size(), label="B"), data.draw(dim_size(), label="T")) if three else (data.draw(dim_size(), label="N"),)
    V = data.draw(dim_size(), label="V")
    ls, ts = lead + (V,), lead
    r = data.draw(st.integers(0, 11), label="bad")
    if r == 0:
        ts = lead[:-1] + (lead[-1] + 1,)
    elif r == 1:
        ls = (V,)
    elif r == 2:
        ls = lead + (V, 2)
    ldt = data.draw(st.sampled_from(FLOATS * 4 + ("int64",)), label="ldtype")
    tdt = data.draw(st.sampled_from(["int64", "int64", "int32", "float32"]), label="tdtype")
    ignore = data.draw(st.sampled_from([-100, -100, 0, 1, -1, 5]), label="ignore_index")
    oob = data.draw(st.integers(0, 5), label="oob") == 0
    tv = rng.integers(-1 if oob else 0, V + 1 if oob else max(V, 1), size=ts) if (V or oob) else np.zeros(ts, np.int64)
    tv = np.asarray(tv).reshape(ts)
    if tv.size and rng.random() < 0.4:
        tv[rng.random(ts) < 0.3] = ignore
    grad = data.draw(st.booleans(), label="grad")
    Lg = make_input(data, rng, ls, ldt, grad=grad)
    Tg = make_input(data, rng, ts, tdt, values=tv.astype(tdt))
    desc = f"cross_entropy({Lg.desc()}, {Tg.desc()} {Tg.a.ravel()[:6].tolist()}, ignore_index={ignore})"
    errs = set()
    if ldt not in FLOATS or tdt not in INTS:
        errs.add(TypeError)
    shapes_ok = len(ls) in (2, 3) and len(ts) + 1 == len(ls) and ls[:-1] == ts
    if not shapes_ok:
        errs.add(ValueError)
    elif ls[-1] == 0:
        errs.add(ValueError)
    elif tdt in INTS:
        t = Tg.a.astype(np.int64)
        live = t != ignore
        if np.any((t[live] < 0) | (t[live] >= ls[-1])):
            errs.add(IndexError)
    ref = None
    if not errs:
        x = Lg.a.astype(np.float64).reshape(-1, V)
        t = Tg.a.astype(np.int64).reshape(-1)
        live = t != ignore
        with np.errstate(all="ignore"):
            m = np.max(x, axis=1, keepdims=True) if x.size else np.zeros((x.shape[0], 1))
            lse = (m + np.log(np.sum(np.exp(x - m), axis=1, keepdims=True))).reshape(-1)
            nll = lse[live] - x[live, t[live]]
            ref = np.asarray(nll.mean() if live.any() else np.nan)
    out = check_call("cross_entropy", desc, lambda: F.cross_entropy(Lg.t, Tg.t, ignore_index=ignore), errs,
                     lambda r: assert_values(r, ref, ldt, tol=TOL[ldt] * 10))
    if out is None or not finite(Lg.a) or not live.any():
        return

    def grads(ws_):
        g = float(np.asarray(ws_[0]))
        p = np.exp(x - lse[:, None])
        p[np.arange(len(t))[live], t[live]] -= 1
        p[~live] = 0
        return [(p * g / live.sum()).reshape(ls), None]
    run_grad("cross_entropy", desc, [out], grads, [Lg, None], rng)


@prop("attention", 250)
def fuzz_attention(data):
    rng = draw_rng(data)
    lead = draw_shape(data, min_dims=0, max_dims=2, label="lead")
    L, S = data.draw(dim_size(), label="L"), data.draw(dim_size(), label="S")
    E, Ev = data.draw(dim_size(), label="E"), data.draw(dim_size(), label="Ev")
    qs, ks, vs = lead + (L, E), lead + (S, E), lead + (S, Ev)
    r = data.draw(st.integers(0, 13), label="bad")
    if r == 0:
        ks = lead + (S, E + 1)
    elif r == 1:
        vs = lead + (S + 1, Ev)
    elif r == 2:
        qs = (2,) + qs
    elif r == 3 and lead:
        ks = (lead[0] + 1,) + ks[1:]
    elif r == 4:
        qs, ks, vs = (E,), (E,), (Ev,)
    dts = [data.draw(st.sampled_from(FLOATS * 4 + ("int64",)), label="dt")] * 3
    if data.draw(st.integers(0, 9), label="mixed") == 0:
        dts[data.draw(st.integers(0, 2), label="which")] = data.draw(st.sampled_from(DTYPES), label="other")
    causal = data.draw(st.booleans(), label="is_causal")
    scale = data.draw(st.sampled_from([None, None, 0.5, 1.0, 0.0, -2.0, math.inf, math.nan]), label="scale")
    grad = data.draw(st.booleans(), label="grad")
    Q, K, Vv = (make_input(data, rng, s, d, grad=grad, special="nonhuge") for s, d in zip((qs, ks, vs), dts))
    desc = f"sdpa({Q.desc()}, {K.desc()}, {Vv.desc()}, is_causal={causal}, scale={scale!r})"
    errs = set()
    if any(d not in FLOATS for d in dts) or len(set(dts)) > 1:
        errs.add(TypeError)
    nd = len(qs)
    if nd < 2 or len(ks) != nd or len(vs) != nd or ks[:-2] != qs[:-2] or vs[:-2] != qs[:-2] \
            or ks[-1] != qs[-1] or vs[-2] != ks[-2]:
        errs.add(ValueError)
    if scale is not None and not math.isfinite(scale):
        errs.add(ValueError)
    ref = None
    if not errs:
        q, k, v = (X.a.astype(np.float64) for X in (Q, K, Vv))
        sc = 1 / math.sqrt(E) if scale is None and E else (1.0 if scale is None else scale)
        with np.errstate(all="ignore"):
            s = sc * (q @ np.swapaxes(k, -1, -2)) if E else np.zeros(lead + (L, S))
            mask = (np.arange(S)[None, :] <= np.arange(L)[:, None]) if causal else np.ones((L, S), bool)
            s = np.where(mask, s, -np.inf)
            p = np_softmax(s, -1, False) if S else s
            p = np.where(mask, p, 0.0)
            # masked keys are skipped, not multiplied by zero (a NaN in v stays out)
            ref = np.where(mask[..., None], p[..., None] * v[..., None, :, :], 0.0).sum(axis=-2)
        scl = None
        if ref.size and v.size:
            scl = float(np.max(np.abs(v)))
    call = lambda: F.scaled_dot_product_attention(Q.t, K.t, Vv.t, is_causal=causal, scale=scale)  # noqa: E731
    out = check_call("attention", desc, call, errs, lambda r: assert_values(r, ref, dts[0], tol=TOL[dts[0]] * 20, scale=scl))
    if out is None or not finite(Q.a, K.a, Vv.a):
        return

    def grads(ws_):
        g = np.asarray(ws_[0], dtype=np.float64)
        dv = np.swapaxes(p, -1, -2) @ g
        dp = g @ np.swapaxes(v, -1, -2)
        ds = p * (dp - (dp * p).sum(axis=-1, keepdims=True))
        return [sc * ds @ k, sc * np.swapaxes(ds, -1, -2) @ q, dv]
    def floors(ws_):  # the terms of ds = p (dp - D) cancel: their size bounds the noise
        g = float(np.max(np.abs(ws_[0]), initial=0.0))
        mq, mk, mv = (float(np.max(np.abs(z), initial=0.0)) for z in (q, k, v))
        return [abs(sc) * mk * g * mv, abs(sc) * mq * g * mv, g]
    run_grad("attention", desc, [out], grads, [Q, K, Vv], rng, floors=floors)


@prop("matmul", 200)
def fuzz_matmul(data):
    rng = draw_rng(data)
    M, K, N = (data.draw(dim_size(), label=n) for n in "MKN")
    ba, bb = draw_broadcast_pair(data)
    ba, bb = ba[:2], bb[:2]
    sa = ba + (M, K) if data.draw(st.integers(0, 5), label="a1") else (K,)
    sb = bb + (K, N) if data.draw(st.integers(0, 5), label="b1") else (K,)
    if data.draw(st.integers(0, 9), label="bad") == 0:
        sb = sb[:-2] + (K + 1,) + sb[-1:] if len(sb) >= 2 else (K + 1,)
    dt = data.draw(st.sampled_from(FLOATS * 4 + ("int64",)), label="dtype")
    dtb = dt if data.draw(st.integers(0, 7), label="same") else data.draw(st.sampled_from(DTYPES), label="dtb")
    grad = data.draw(st.booleans(), label="grad")
    A = make_input(data, rng, sa, dt, grad=grad, special="nonhuge")
    B = make_input(data, rng, sb, dtb, grad=grad, special="nonhuge")
    desc = f"{A.desc()} @ {B.desc()}"
    errs = set()
    if dt not in FLOATS or dtb != dt:
        errs.add(TypeError)
    ref = None
    try:
        with np.errstate(all="ignore"):
            ref = np.matmul(A.a.astype(np.float64), B.a.astype(np.float64))
    except ValueError:
        errs.add(ValueError)
    scl = None
    if ref is not None and ref.size:
        scl = float(np.max(np.matmul(np.abs(A.a.astype(np.float64)), np.abs(B.a.astype(np.float64)))))
    call = lambda: A.t @ B.t if rng.random() < 0.5 else A.t.matmul(B.t)  # noqa: E731
    out = check_call("matmul", desc, call, errs, lambda r: assert_values(r, ref, dt, tol=TOL[dt] * 5, scale=scl))
    if out is None or len(sa) < 2 or len(sb) < 2 or not finite(A.a, B.a):
        return
    a, b = A.a.astype(np.float64), B.a.astype(np.float64)

    def grads(ws_):
        g = np.asarray(ws_[0], dtype=np.float64)
        return [unbroadcast(g @ np.swapaxes(b, -1, -2), sa), unbroadcast(np.swapaxes(a, -1, -2) @ g, sb)]
    run_grad("matmul", desc, [out], grads, [A, B], rng)


# --- creation and conversion -------------------------------------------------------------------

NP_EXTRA = ("float16", "uint8", "int8", "int16", "uint32", "complex64", "object", "U3")


@prop("creation", 300)
def fuzz_creation(data):
    rng = draw_rng(data)
    kind = data.draw(st.sampled_from(["from_numpy", "tensor", "tensor_dtype", "to", "zeros", "full"]), label="kind")
    shape = draw_shape(data)
    npdt = data.draw(st.sampled_from(DTYPES * 3 + NP_EXTRA), label="np_dtype")
    if kind in ("zeros", "full"):
        size = data.draw(st.sampled_from([shape, shape, (-1,), (2, -3), (2.5,), (True,), ("2",), (2**70,)]),
                         label="size")
        dt = data.draw(st.sampled_from(DTYPES + (None, "float16", "float32")), label="dtype")
        value = data.draw(st.sampled_from([1.5, -2, True, math.nan, 1e300, -3.5e38, math.inf]), label="value")
        desc = f"{kind}({size!r}, dtype={dt!r}" + (f", value={value!r})" if kind == "full" else ")")
        errs = set()
        if any(isinstance(s, (bool, float, str)) for s in size):
            errs.add(TypeError)
        elif any(s < 0 for s in size):
            errs.add(ValueError)
        elif any(s >= 2**63 for s in size):
            errs.add(ValueError)
        if dt == "float16":
            errs.add(TypeError)
        out_dt = dt or ("float32" if kind == "zeros" else "bool" if value is True else "int64" if isinstance(value, int) else "float32")
        if kind == "full" and out_dt != "float16" and not fits(value, out_dt) and out_dt != "bool":
            errs.add(ValueError)
        if kind == "zeros":
            call = lambda: cgad.zeros(*size, dtype=dt)  # noqa: E731
            ref = None if errs else np.zeros(size)
        else:
            call = lambda: cgad.full(size, value, dtype=dt)  # noqa: E731
            ref = None if errs else np.full(size, np.asarray(value).astype(np.float64).astype(out_dt))
        check_call("creation:" + kind, desc, call, errs, lambda r: assert_exact(r, ref, out_dt))
        return
    if npdt in DTYPES:
        a = gen_values(rng, shape, npdt)
    elif npdt == "object":
        a = np.empty(shape, object)
    elif npdt == "U3":
        a = np.full(shape, "ab")
    else:
        a = gen_values(rng, shape, "int64" if npdt[0] in "ui" else "float64", special=False).astype(npdt)
    lay = data.draw(st.sampled_from(["c", "rev", "F", "step"]), label="np_layout")
    b = a
    if lay == "rev" and a.ndim:
        b = a[::-1].copy()[::-1]
    elif lay == "F" and a.ndim >= 2:
        b = np.asfortranarray(a)
    elif lay == "step" and a.ndim:
        big = np.zeros(a.shape[:-1] + (a.shape[-1] * 3,), a.dtype)
        big[..., ::3] = a
        b = big[..., ::3]
    desc = f"{kind}(np {a.dtype}{a.shape}/{lay})"
    errs = set()
    if kind == "from_numpy":
        if npdt not in DTYPES:
            errs.add(TypeError)
        out_dt = npdt
        call = lambda: cgad.from_numpy(b)  # noqa: E731
        ref = a
    elif kind in ("tensor", "tensor_dtype"):
        kept = npdt if npdt in DTYPES else "float32" if npdt in ("float16",) else "int64" if npdt[0] in "ui" else None
        if kept is None:
            errs.add(TypeError)
        target = data.draw(st.sampled_from(DTYPES), label="target") if kind == "tensor_dtype" else None
        rg = data.draw(st.booleans(), label="requires_grad")
        out_dt = target or kept
        if rg and out_dt not in FLOATS:
            errs.add(TypeError)
        ref = a
        if kept is not None and out_dt is not None and out_dt != kept:
            if out_dt in INTS and kept in FLOATS and not float_to_int_ok(a.astype(kept), out_dt):
                errs.add(ValueError)  # NaN, inf or out-of-range values have no integer value
            with np.errstate(all="ignore"):
                ref = a.astype(kept).astype(out_dt)
        desc += f" dtype={target!r} requires_grad={rg}"
        call = lambda: cgad.tensor(b, dtype=target, requires_grad=rg)  # noqa: E731
    else:  # .to(dtype) / .float() / .long() ...
        if npdt not in DTYPES:
            return
        target = data.draw(st.sampled_from(DTYPES), label="target")
        if target in INTS and npdt in FLOATS and not float_to_int_ok(a, target):
            errs.add(ValueError)
        how = data.draw(st.sampled_from(["to", "to_str", "method"]), label="how")
        meth = {"float32": "float", "float64": "double", "int32": "int", "int64": "long", "bool": "bool"}[target]
        src = cgad.from_numpy(b)
        desc += f".to({target}) via {how}"
        call = {"to": lambda: src.to(CG[target]), "to_str": lambda: src.to(target),
                "method": lambda: getattr(src, meth)()}[how]
        out_dt = target
        with np.errstate(all="ignore"):
            ref = a.astype(target)

    def verify(r):
        assert_exact(r, np.asarray(ref).astype(out_dt), out_dt)
        assert r.ndim == a.ndim and r.numel() == a.size
        if a.ndim:
            assert len(r) == a.shape[0]
        if a.size == 1:
            it = r.item()
            want = np.asarray(ref).astype(out_dt).reshape(()).item()
            assert it == want or (it != it and want != want), f"item() {it!r} != {want!r}"
        lst = r.tolist()
        want = np.asarray(ref).astype(out_dt).tolist()
        assert repr(lst) == repr(want), f"tolist() {lst!r:.60} != {want!r:.60}"
        assert np.array_equal(np.asarray(r), np.asarray(ref).astype(out_dt), equal_nan=out_dt in FLOATS), "np.asarray differs"
    check_call("creation:" + kind, desc, call, errs, verify)


# --- autograd misuse -----------------------------------------------------------------------------

@prop("autograd", 120)
def fuzz_autograd(data):
    rng = draw_rng(data)
    shape = draw_shape(data, max_dims=3)
    dt = data.draw(st.sampled_from(FLOATS), label="dtype")
    x = cgad.tensor(np.asarray(rng.standard_normal(shape), dtype=dt), requires_grad=True)
    kind = data.draw(st.sampled_from(["implicit", "grad_shape", "twice", "retain", "no_grad", "detached"]),
                     label="kind")
    y = (x * 0.5).tanh()
    desc = f"{kind} on {dt}{shape}"
    n = int(np.prod(shape))
    if kind == "implicit":
        check_call("autograd:" + kind, desc, lambda: y.backward(), {RuntimeError} if n != 1 else set(), lambda r: None)
    elif kind == "grad_shape":
        gs = data.draw(st.sampled_from([shape, shape + (1,), (n + 1,)]), label="gshape")
        errs = set() if tuple(gs) == tuple(shape) else {ValueError}
        check_call("autograd:" + kind, desc + f" grad {gs}", lambda: y.backward(cgad.ones(*gs, dtype=CG[dt])), errs,
                   lambda r: None)
    elif kind in ("twice", "retain"):
        loss = (y * y).sum()
        loss.backward(retain_graph=kind == "retain")
        errs = {RuntimeError} if kind == "twice" else set()
        check_call("autograd:" + kind, desc, lambda: loss.backward(), errs, lambda r: None)
        if kind == "retain":
            th = np.tanh(0.5 * x.numpy().astype(np.float64))
            want = 2 * (2 * th * (1 - th ** 2) * 0.5)
            assert_values(x.grad, want, dt, tol=GTOL[dt])
    elif kind == "no_grad":
        with cgad.no_grad():
            z = (x * 3.0).sum()
        check_call("autograd:" + kind, desc, lambda: z.backward(), {RuntimeError}, lambda r: None)
    else:
        z = x.detach().sum()
        check_call("autograd:" + kind, desc, lambda: z.backward(), {RuntimeError}, lambda r: None)


# --- hostile input: deep graphs, in-place writes after a save, overlapping copies, extreme
# integers, byte orders, malformed files ---------------------------------------------------------

def in_small_stack(fn, stack_bytes=1 << 20):
    """Runs fn on a thread with a 1 MiB stack, so a per-node recursion dies at tens of thousands
    of nodes (a crash the parent reports) instead of needing a graph a million deep."""
    import threading
    out = {}

    def run():
        try:
            out["value"] = fn()
        except BaseException as e:  # noqa: BLE001
            out["error"] = e
    old = threading.stack_size(stack_bytes)
    try:
        t = threading.Thread(target=run)
        t.start()
        t.join()
    finally:
        threading.stack_size(old)
    if "error" in out:
        raise out["error"]
    return out.get("value")


@prop("deep_chain", 12)
def fuzz_deep_chain(data):
    depth = data.draw(st.sampled_from([1, 7, 300, 40_000]), label="depth")
    kind = data.draw(st.sampled_from(["mul", "add", "views", "square", "mixed"]), label="kind")
    backward = data.draw(st.booleans(), label="backward")
    desc = f"{kind} chain of {depth}, backward={backward}"

    def build_and_free():
        x = cgad.ones(2, requires_grad=True)
        y = x
        for i in range(depth):
            k = kind if kind != "mixed" else ("mul", "add", "views", "square")[i % 4]
            y = y * 1.0 if k == "mul" else y + 0.5 if k == "add" else y * y if k == "square" else y.unsqueeze(0)[0]
        if backward:
            y.sum().backward()
        del y  # the release of the whole chain happens here, on the small stack
        return x.grad.numpy() if backward else None

    def verify(g):
        if backward and kind in ("mul", "add", "views"):  # squares overflow: only their survival counts
            assert_exact(cgad.from_numpy(g), np.ones(2), "float32", what="grad")
    check_call("deep_chain:" + kind, desc, lambda: in_small_stack(build_and_free), set(), verify)


# op -> (forward on (a, b), the grads of a and b from numpy float64 values and the out grad g,
# which inputs it saves: the ones an in-place write must then make an error)
SAVING_OPS = {
    "add": (lambda a, b: a + b, lambda a, b, g: (g, g), ()),
    "sub": (lambda a, b: a - b, lambda a, b, g: (g, -g), ()),
    "mul": (lambda a, b: a * b, lambda a, b, g: (g * b, g * a), ("a", "b")),
    "div": (lambda a, b: a / b, lambda a, b, g: (g / b, -g * a / b ** 2), ("b",)),
    # exp saves its output, not a; the mul after it saves that output and b
    "exp": (lambda a, b: a.exp() * b, lambda a, b, g: (g * b * np.exp(a), g * np.exp(a)), ("b",)),
    "tanh": (lambda a, b: a.tanh() + b, lambda a, b, g: (g * (1 - np.tanh(a) ** 2), g), ()),
    "sqrt": (lambda a, b: (a * a + 1.0).sqrt() + b, lambda a, b, g: (g * a / np.sqrt(a * a + 1), g), ("a",)),
    "matmul": (lambda a, b: a.reshape(1, -1) @ b.reshape(-1, 1),
               lambda a, b, g: (g.sum() * b, g.sum() * a), ("a", "b")),
    "linear": (lambda a, b: F.linear(a.reshape(1, -1), b.reshape(1, -1)),
               lambda a, b, g: (g.sum() * b, g.sum() * a), ("a", "b")),
}


@prop("inplace_after_save", 250)
def fuzz_inplace_after_save(data):
    rng = draw_rng(data)
    op = data.draw(st.sampled_from(sorted(SAVING_OPS)), label="op")
    n = data.draw(st.integers(1, 5), label="n")
    target = data.draw(st.sampled_from(["a", "b", "none"]), label="target")
    how = data.draw(st.sampled_from(["fill_", "copy_", "zero_", "view", "no_grad", "detach", "adam"]), label="how")
    forward, vjp, saves = SAVING_OPS[op]
    av, bv = rng.uniform(0.5, 2.0, n), rng.uniform(0.5, 2.0, n)
    a = cgad.tensor(av, dtype=cgad.float64, requires_grad=True)
    b = cgad.tensor(bv, dtype=cgad.float64, requires_grad=True)
    out = forward(a, b)
    loss = out.sum()
    desc = f"{op} on ({n},), then {how} on {target}"
    if target != "none":
        t = a if target == "a" else b
        if how == "adam":
            t.grad = cgad.ones(n, dtype=cgad.float64)
            cgad.optim.Adam([t], lr=0.1).step()
            t.grad = None
        else:
            with cgad.no_grad():
                {"fill_": lambda: t.fill_(3.0), "copy_": lambda: t.copy_(np.full(n, 3.0)), "zero_": lambda: t.zero_(),
                 "view": lambda: t[n // 2:].fill_(3.0), "no_grad": lambda: t.fill_(3.0),
                 "detach": lambda: t.detach().copy_(cgad.full((n,), 3.0, dtype=cgad.float64))}[how]()
    errs = {RuntimeError} if target in saves else set()

    def verify(_):
        ga, gb = vjp(av, bv, np.ones(1 if op in ("matmul", "linear") else n))
        assert_values(a.grad, np.broadcast_to(ga, (n,)), "float64", tol=1e-9, what="grad a")
        assert_values(b.grad, np.broadcast_to(gb, (n,)), "float64", tol=1e-9, what="grad b")
    if not errs:
        check_call("inplace_after_save:" + op, desc, loss.backward, errs, verify)
        return
    note_case("inplace_after_save:" + op, desc)
    try:
        loss.backward()
    except RuntimeError as e:
        if "modified by an in-place operation" not in str(e) or "Backward's saved tensor" not in str(e):
            raise Mismatch(f"inplace_after_save:{op}: {desc}\n  the error does not name the op: {e}") from e
        if a.grad is not None or b.grad is not None:
            raise Mismatch(f"inplace_after_save:{op}: {desc}\n  a grad changed before the error") from e
        return
    raise Mismatch(f"inplace_after_save:{op}: {desc}\n  expected a RuntimeError, the backward returned")


@prop("overlap_copy", 200)
def fuzz_overlap_copy(data):
    rng = draw_rng(data)
    n = data.draw(st.integers(2, 12), label="n")
    kind = data.draw(st.sampled_from(["shift", "transpose", "broadcast_row", "strided"]), label="kind")
    dt = data.draw(st.sampled_from(DTYPES[:4]), label="dtype")
    base_np = gen_values(rng, (n, n), dt, special=False)
    base = cgad.from_numpy(base_np.copy())
    ref = base_np.copy()
    if kind == "shift":
        k = data.draw(st.integers(-n + 1, n - 1), label="k")  # the destination k elements after the source
        flat, rflat = base.reshape(n * n), ref.reshape(n * n)
        m, d0, s0 = n * n - abs(k), max(k, 0), max(-k, 0)
        dst, src = flat[d0:d0 + m], flat[s0:s0 + m]
        rflat[d0:d0 + m] = rflat[s0:s0 + m].copy()
        ref = rflat.reshape(n, n)
        desc = f"flat[{d0}:+{m}].copy_(flat[{s0}:+{m}]) of {dt}({n},{n})"
    elif kind == "transpose":
        dst, src = base, base.T
        ref = ref.T.copy()
        desc = f"m.copy_(m.T) of {dt}({n},{n})"
    elif kind == "broadcast_row":
        r = data.draw(st.integers(0, n - 1), label="row")
        dst, src = base, base[r]
        ref = np.broadcast_to(ref[r], (n, n)).copy()
        desc = f"m.copy_(m[{r}]) of {dt}({n},{n})"
    else:  # even columns from the odd ones, interleaved in one storage
        h = n // 2
        dst, src = base[:, 0:2 * h:2], base[:, 1:2 * h:2]
        ref[:, 0:2 * h:2] = ref[:, 1:2 * h:2].copy()
        desc = f"m[:, 0:{2 * h}:2].copy_(m[:, 1:{2 * h}:2]) of {dt}({n},{n})"
    check_call("overlap_copy:" + kind, desc, lambda: dst.copy_(src), set(),
               lambda r: assert_exact(base, ref, dt))


EXTREME_INTS = [2**31 - 1, 2**31, -2**31, -2**31 - 1, 2**53, 2**53 + 1, 2**62 + 1, 2**63 - 1, 2**63, -2**63,
                -2**63 - 1, 2**64, 2**100, -2**100]


@prop("extreme_ints", 300)
def fuzz_extreme_ints(data):
    v = data.draw(st.sampled_from(EXTREME_INTS + [0, -7]), label="value")
    dt = data.draw(st.sampled_from(INTS + FLOATS), label="dtype")
    kind = data.draw(st.sampled_from(["tensor", "full", "fill_", "masked_fill", "add", "arange", "float_to_int"]),
                     label="kind")
    fit = fits(v, dt)
    desc = f"{kind} with {v} and {dt}"
    if kind == "tensor":
        # as torch, every Python int is read as an int64 first, whatever the dtype asked for
        errs = set() if fits(v, "int64") and fit else {ValueError}
        call = lambda: cgad.tensor([v, 1], dtype=CG[dt])  # noqa: E731
        ref = None if errs else np.array([v, 1], dtype=object)
    elif kind == "full":
        errs = set() if fit and (dt in INTS or fits(v, "int64") or True) else {ValueError}
        call = lambda: cgad.full((2,), v, dtype=CG[dt])  # noqa: E731
        ref = None if errs else np.array([v, v], dtype=object)
    elif kind == "fill_":
        errs = set() if fit else {ValueError}
        call = lambda: cgad.zeros(2, dtype=CG[dt]).fill_(v)  # noqa: E731
        ref = None if errs else np.array([v, v], dtype=object)
    elif kind == "masked_fill":
        errs = set() if fit else {ValueError}
        call = lambda: cgad.zeros(2, dtype=CG[dt]).masked_fill(cgad.tensor([True, False]), v)  # noqa: E731
        ref = None if errs else np.array([v, 0], dtype=object)
    elif kind == "add":
        errs = set() if fit else {ValueError}
        call = lambda: cgad.ones(2, dtype=CG[dt]) + v  # noqa: E731
        bits = 32 if dt == "int32" else 64
        w = (v + 1 + 2**(bits - 1)) % 2**bits - 2**(bits - 1) if dt in INTS else v + 1  # integer adds wrap, as torch's
        ref = None if errs else np.array([w, w], dtype=object)
    elif kind == "arange":
        start = v
        end = data.draw(st.sampled_from([v + 3, v - 3, v + 10**6 * 7]), label="end")
        step = data.draw(st.sampled_from([1, -1, 2**20 + 1]), label="step")
        vals = list(range(start, end, step))[:8] if (end - start) * step > 0 and abs(end - start) // abs(step) < 8 else None
        if vals is None:
            return
        ok = fits(start, "int64") and fits(end, "int64") and all(fits(x, dt) for x in vals)
        errs = set() if ok else {ValueError}
        if dt in FLOATS:  # a float arange of huge ints: allowed to round, checked by shape only
            errs = errs if not ok else set()
        call = lambda: cgad.arange(start, end, step, dtype=CG[dt])  # noqa: E731
        ref = None if errs else np.array(vals, dtype=object)
        desc += f" to {end} by {step}"
    else:  # a float holding v converted to an integer dtype
        src_dt = data.draw(st.sampled_from(FLOATS), label="src_dtype")
        special = data.draw(st.sampled_from([None, math.nan, math.inf, -math.inf]), label="special")
        x = special if special is not None else float(np.asarray(float(v), dtype=src_dt)) if fits(v, "int64") or True else v
        tgt = data.draw(st.sampled_from(INTS), label="target")
        src = cgad.tensor(np.array([x, 1.0], dtype=src_dt))
        errs = set() if float_to_int_ok(np.array([x], dtype=src_dt), tgt) else {ValueError}
        how = data.draw(st.sampled_from(["to", "copy_"]), label="how")
        call = (lambda: src.to(CG[tgt])) if how == "to" else (lambda: cgad.zeros(2, dtype=CG[tgt]).copy_(src))
        ref = None if errs else np.array([math.trunc(x), 1], dtype=object)
        desc = f"{src_dt} {x!r} to {tgt} via {how}"
        dt = tgt

    def verify(r):
        got = r.tolist()
        if dt in INTS:
            assert got == [int(e) for e in ref], f"{got} != {list(ref)} (exact)"
        else:
            want = [float(np.asarray(float(e), dtype=dt)) for e in ref]
            assert np.allclose(got, want, rtol=1e-6), f"{got} != {want}"
    check_call("extreme_ints:" + kind, desc, call, errs, verify)


@prop("byte_order", 150)
def fuzz_byte_order(data):
    rng = draw_rng(data)
    dt = data.draw(st.sampled_from(DTYPES), label="dtype")
    shape = draw_shape(data, max_dims=3)
    order = data.draw(st.sampled_from([">", "<", "="]), label="order")
    a = gen_values(rng, shape, dt)
    b = a.astype(np.dtype(dt).newbyteorder(order))
    if b.ndim and data.draw(st.booleans(), label="reversed"):
        b = b[::-1]
        a = a[::-1]
    how = data.draw(st.sampled_from(["from_numpy", "tensor", "copy_"]), label="how")
    desc = f"{how}(np {b.dtype.str}{shape})"
    if how == "from_numpy":
        call = lambda: cgad.from_numpy(b)  # noqa: E731
    elif how == "tensor":
        call = lambda: cgad.tensor(b, dtype=CG[dt])  # noqa: E731
    else:
        call = lambda: cgad.zeros(*shape, dtype=CG[dt]).copy_(b)  # noqa: E731
    check_call("byte_order:" + how, desc, call, set(), lambda r: assert_exact(r, a, dt))


@prop("files", 120)
def fuzz_files(data):
    import tempfile
    from safetensors.numpy import save_file
    from cgad.data import DataLoaderLite, read_shard, write_shard
    from cgad.models.gpt import GPT
    rng = draw_rng(data)
    kind = data.draw(st.sampled_from(["shard", "safetensors"]), label="kind")
    mutation = data.draw(st.sampled_from(["none", "truncate", "flip", "append", "header_len", "garbage"]), label="mutation")
    folder = tempfile.mkdtemp()
    path = os.path.join(folder, "f.bin" if kind == "shard" else "model.safetensors")
    if kind == "shard":
        write_shard(path, rng.integers(0, 300, 600))
    else:
        C, V, T = 4, 8, 4
        w = {"wte.weight": np.ones((V, C), np.float32), "wpe.weight": np.ones((T, C), np.float32),
             "ln_f.weight": np.ones(C, np.float32), "ln_f.bias": np.zeros(C, np.float32)}
        for name, shape in (("ln_1.weight", (C,)), ("ln_1.bias", (C,)), ("attn.c_attn.weight", (C, 3 * C)),
                            ("attn.c_attn.bias", (3 * C,)), ("attn.c_proj.weight", (C, C)), ("attn.c_proj.bias", (C,)),
                            ("ln_2.weight", (C,)), ("ln_2.bias", (C,)), ("mlp.c_fc.weight", (C, 4 * C)),
                            ("mlp.c_fc.bias", (4 * C,)), ("mlp.c_proj.weight", (4 * C, C)), ("mlp.c_proj.bias", (C,))):
            w[f"h.0.{name}"] = rng.standard_normal(shape).astype(np.float32)
        save_file(w, path)
        with open(os.path.join(folder, "config.json"), "w") as f:
            json.dump({"n_head": 2}, f)
    raw = bytearray(open(path, "rb").read())
    if mutation == "truncate":
        raw = raw[:int(rng.integers(0, len(raw)))]
    elif mutation == "flip":
        i = int(rng.integers(0, len(raw)))
        raw[i] ^= 1 << int(rng.integers(0, 8))
    elif mutation == "append":
        raw += bytes(int(rng.integers(1, 9)))
    elif mutation == "header_len":
        raw[:8] = int(rng.integers(0, 2**63)).to_bytes(8, "little")
    elif mutation == "garbage":
        raw = bytearray(rng.integers(0, 256, int(rng.integers(0, 2000))).astype(np.uint8).tobytes())
    with open(path, "wb") as f:
        f.write(raw)
    desc = f"{kind} with mutation {mutation} ({len(raw)} bytes)"
    if kind == "shard":
        call = lambda: (read_shard(path), DataLoaderLite(2, 8, path).next_batch())  # noqa: E731
    else:
        call = lambda: GPT.from_pretrained(folder)  # noqa: E731
    note_case("files:" + kind, desc)
    try:
        call()
    except (ValueError, UnicodeDecodeError) as e:
        if isinstance(e, UnicodeDecodeError) or path not in str(e):
            raise Mismatch(f"files:{kind}: {desc}\n  the error does not name the file: {type(e).__name__}: {e}") from e
    except Exception as e:  # noqa: BLE001
        raise Mismatch(f"files:{kind}: {desc}\n  expected success or a ValueError naming the file, got "
                       f"{type(e).__name__}: {e}") from e


# ---------------------------------------------------------------------------------------------
# driver

def main(argv=None):
    global _CASE_FD
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--summary", help="write the case counts as JSON here")
    ap.add_argument("--only", help="comma-separated properties to run")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every property's max_examples")
    args = ap.parse_args(argv)
    faulthandler.enable()
    case_file = os.environ.get("CGAD_FUZZ_CASE_FILE")
    if case_file:
        _CASE_FD = os.open(case_file, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    np.random.seed(0)
    cgad.manual_seed(0)
    warnings.simplefilter("ignore", RuntimeWarning)  # numpy's overflow/invalid notes in the references
    names = args.only.split(",") if args.only else list(PROPS)
    failures, times = [], {}
    t_all = time.perf_counter()
    for name in names:
        fn, n = PROPS[name]
        test = settings(max_examples=max(1, int(n * args.scale)), derandomize=True, deadline=None, database=None,
                        report_multiple_bugs=False, print_blob=False,
                        suppress_health_check=list(HealthCheck))(given(st.data())(fn))
        t0 = time.perf_counter()
        try:
            test()
        except Exception as e:  # noqa: BLE001
            failures.append(name)
            print(f"FAIL {name}: {type(e).__name__}: {e}", file=sys.stderr)
            traceback.print_exc()
        times[name] = time.perf_counter() - t0
        print(f"{name:14s} {times[name]:6.2f}s", flush=True)
    wall = time.perf_counter() - t_all
    total = sum(COUNTS.values())
    print(f"\nfuzzed {total} cases in {wall:.1f}s ({len(COUNTS)} ops):")
    for op in sorted(COUNTS):
        print(f"  {op:28s} {COUNTS[op]}")
    if args.summary:
        with open(args.summary, "w") as f:
            json.dump({"total": total, "wall_s": wall, "per_op": COUNTS, "per_property_s": times,
                       "failures": failures}, f, indent=1, sort_keys=True)
    if failures:
        print(f"FAILED properties: {', '.join(failures)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
