"""nn.Parameter: a leaf tensor that requires grad and that Modules register as a parameter."""
from cgad import _C


class Parameter(_C.Tensor):
    """A tensor a Module registers as a parameter; requires grad unless told otherwise."""

    def __init__(self, data=None, requires_grad=True):
        if data is None:
            data = _C.empty([0], _C.dtype.float32, "cpu")
        if not isinstance(data, _C.Tensor):
            raise TypeError(f"Parameter: expected a cgad.Tensor, got {type(data).__name__}")
        super().__init__(data.detach())
        self.requires_grad_(requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + _C.Tensor.__repr__(self)
