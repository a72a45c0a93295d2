"""no_grad / enable_grad: context managers and decorators over the engine's grad mode."""
import functools

from cgad import _C


class _GradMode:
    enabled = True

    def __init__(self):
        self._prev = []

    def __enter__(self):
        self._prev.append(_C.is_grad_enabled())
        _C.set_grad_enabled(self.enabled)
        return self

    def __exit__(self, *exc):
        _C.set_grad_enabled(self._prev.pop())
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with type(self)():
                return fn(*args, **kwargs)
        return wrapper


class no_grad(_GradMode):
    """Ops inside record no graph. Works as a context manager and as a decorator."""
    enabled = False


class enable_grad(_GradMode):
    """Turns recording back on inside a no_grad region."""
    enabled = True


class set_grad_enabled(_GradMode):
    """Sets grad mode to `mode` for the block (or for good, when not used as a context)."""

    def __init__(self, mode):
        super().__init__()
        self.enabled = bool(mode)
        self._prev.append(_C.is_grad_enabled())
        _C.set_grad_enabled(self.enabled)

    def __enter__(self):
        return self

    def __call__(self, fn):
        raise TypeError("set_grad_enabled is not a decorator; use no_grad or enable_grad")
