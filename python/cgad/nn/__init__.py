"""cgad.nn: Module, Parameter, the standard layers, functional ops, init and utils."""
from cgad.nn import functional, init, utils  # noqa: F401
from cgad.nn.layers import GELU, Dropout, Embedding, LayerNorm, Linear  # noqa: F401
from cgad.nn.module import Module, ModuleDict, ModuleList, Sequential  # noqa: F401
from cgad.nn.parameter import Parameter  # noqa: F401
