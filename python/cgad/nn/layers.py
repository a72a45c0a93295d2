"""The standard layers: Linear, Embedding, LayerNorm, GELU, Dropout (torch's defaults)."""
import math

from cgad import _C
from cgad.nn import functional as F
from cgad.nn.module import Module
from cgad.nn.parameter import Parameter


def _uniform(shape, bound):
    return Parameter(_C.zeros(list(shape), _C.dtype.float32, "cpu").uniform_(-bound, bound))


def _check_size(v, name, layer):
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ValueError(f"{layer}: {name} must be a non-negative int, got {v!r}")


class Linear(Module):
    """y = x @ weight^T + bias, weight (out_features, in_features), torch's uniform init."""

    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        _check_size(in_features, "in_features", "Linear")
        _check_size(out_features, "out_features", "Linear")
        self.in_features, self.out_features = in_features, out_features
        bound = 1.0 / math.sqrt(in_features) if in_features else 0.0
        self.weight = _uniform((out_features, in_features), bound)
        self.bias = _uniform((out_features,), bound) if bias else None
        if not bias:
            self.register_parameter("bias", None)

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Embedding(Module):
    """A (num_embeddings, embedding_dim) table looked up by integer ids, N(0, 1) init."""

    def __init__(self, num_embeddings, embedding_dim):
        super().__init__()
        _check_size(num_embeddings, "num_embeddings", "Embedding")
        _check_size(embedding_dim, "embedding_dim", "Embedding")
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.weight = Parameter(_C.randn([num_embeddings, embedding_dim], _C.dtype.float32, "cpu"))

    def forward(self, idx):
        return F.embedding(idx, self.weight)

    def extra_repr(self):
        return f"{self.num_embeddings}, {self.embedding_dim}"


class LayerNorm(Module):
    """LayerNorm over the trailing normalized_shape, weight ones and bias zeros."""

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True):
        super().__init__()
        if isinstance(normalized_shape, int):
            normalized_shape = (normalized_shape,)
        if not isinstance(normalized_shape, (tuple, list)) or not all(
                isinstance(d, int) and not isinstance(d, bool) for d in normalized_shape):
            raise TypeError(f"LayerNorm: normalized_shape must be an int or a tuple of ints, got {normalized_shape!r}")
        self.normalized_shape = tuple(normalized_shape)
        self.eps = eps
        shape = list(self.normalized_shape)
        self.weight = Parameter(_C.full(shape, 1.0, _C.dtype.float32, "cpu")) if elementwise_affine else None
        self.bias = Parameter(_C.zeros(shape, _C.dtype.float32, "cpu")) if elementwise_affine and bias else None
        for name in ("weight", "bias"):
            if getattr(self, name) is None:
                self.register_parameter(name, None)

    def forward(self, x):
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}"


class GELU(Module):
    """GELU activation; approximate="tanh" for GPT-2."""

    def __init__(self, approximate="none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x):
        return F.gelu(x, self.approximate)

    def extra_repr(self):
        return f"approximate={self.approximate!r}"


class Dropout(Module):
    """Dropout with probability p while training; identity in eval mode."""

    def __init__(self, p=0.5):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1], got {p}")
        self.p = p

    def forward(self, x):
        return F.dropout(x, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}"
