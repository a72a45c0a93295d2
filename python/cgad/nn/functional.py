"""cgad.nn.functional: the fused nn ops (forward and VJP in C++), with torch's signatures."""
import numbers

from cgad import _C

Tensor = _C.Tensor


def _tensor(x, op, name):
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: {name} must be a cgad.Tensor, got {type(x).__name__}")
    return x


def _opt_tensor(x, op, name):
    return None if x is None else _tensor(x, op, name)


def _number(x, op, name):
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        raise TypeError(f"{op}: {name} must be a number, got {x!r}")
    return float(x)


def linear(x, w, b=None):
    """x @ w^T + b with w (out, in), the bias add fused into the GEMM."""
    return _C.linear(_tensor(x, "linear", "input"), _tensor(w, "linear", "weight"), _opt_tensor(b, "linear", "bias"))


def embedding(idx, w):
    """Rows of w (V, C) picked by the integer ids idx: shape idx.shape + (C,)."""
    return _C.embedding(_tensor(idx, "embedding", "input"), _tensor(w, "embedding", "weight"))


def layer_norm(x, normalized_shape, w=None, b=None, eps=1e-5):
    """Normalizes over the trailing normalized_shape dims, then scales by w and shifts by b."""
    if isinstance(normalized_shape, numbers.Integral) and not isinstance(normalized_shape, bool):
        normalized_shape = (normalized_shape,)
    if not isinstance(normalized_shape, (tuple, list)) or not all(
            isinstance(d, numbers.Integral) and not isinstance(d, bool) for d in normalized_shape):
        raise TypeError(f"layer_norm: normalized_shape must be an int or a tuple of ints, got {normalized_shape!r}")
    return _C.layer_norm(_tensor(x, "layer_norm", "input"), [int(d) for d in normalized_shape],
                         _opt_tensor(w, "layer_norm", "weight"), _opt_tensor(b, "layer_norm", "bias"),
                         _number(eps, "layer_norm", "eps"))


def gelu(x, approximate="none"):
    """GELU: exact (erf) by default, or the tanh approximation GPT-2 uses (approximate="tanh")."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return _C.gelu(_tensor(x, "gelu", "input"), approximate == "tanh")


def _dim(dim, op):
    if isinstance(dim, bool) or not isinstance(dim, numbers.Integral):
        raise TypeError(f"{op}: dim must be an int, got {dim!r}")
    if not -2**63 <= dim < 2**63:
        raise IndexError(f"{op}: dim {dim} is out of range")
    return int(dim)


def softmax(x, dim):
    """Softmax along dim."""
    return _C.softmax(_tensor(x, "softmax", "input"), _dim(dim, "softmax"))


def log_softmax(x, dim):
    """Log-softmax along dim, computed with log-sum-exp."""
    return _C.log_softmax(_tensor(x, "log_softmax", "input"), _dim(dim, "log_softmax"))


def dropout(x, p=0.5, training=True):
    """Zeroes elements with probability p and scales the rest by 1/(1-p); identity when not training."""
    return _C.dropout(_tensor(x, "dropout", "input"), _number(p, "dropout", "p"), bool(training))


def cross_entropy(logits, targets, ignore_index=-100):
    """Mean negative log-likelihood over the non-ignored targets.

    logits (N, V) with targets (N,), or (B, T, V) with (B, T): classes on the LAST dim.
    """
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, numbers.Integral):
        raise TypeError(f"cross_entropy: ignore_index must be an int, got {ignore_index!r}")
    return _C.cross_entropy(_tensor(logits, "cross_entropy", "logits"), _tensor(targets, "cross_entropy", "targets"),
                            int(ignore_index))


def scaled_dot_product_attention(q, k, v, is_causal=False, scale=None):
    """softmax(q k^T * scale [+ causal mask]) v for q (B, NH, L, E), k (B, NH, S, E), v (B, NH, S, Ev).

    scale defaults to 1/sqrt(E); with is_causal query i sees keys 0..i (top-left aligned).
    """
    op = "scaled_dot_product_attention"
    return _C.scaled_dot_product_attention(_tensor(q, op, "q"), _tensor(k, op, "k"), _tensor(v, op, "v"),
                                           bool(is_causal), None if scale is None else _number(scale, op, "scale"))
