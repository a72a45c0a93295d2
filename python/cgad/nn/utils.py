"""nn.utils: gradient clipping."""
import numbers

from cgad import _C


def clip_grad_norm_(parameters, max_norm, norm_type=2.0):
    """Scales grads in place so their total L2 norm is at most max_norm; returns the norm before.

    The result is a 0-d float32 tensor; coef = max_norm / (norm + 1e-6), clamped to 1.0 (torch's
    formula). Parameters without a grad are skipped.
    """
    if norm_type not in (2, 2.0):
        raise ValueError(f"clip_grad_norm_: only norm_type=2 is supported, got {norm_type!r}")
    if isinstance(parameters, _C.Tensor):
        parameters = [parameters]
    parameters = list(parameters)
    for i, p in enumerate(parameters):
        if not isinstance(p, _C.Tensor):
            raise TypeError(f"clip_grad_norm_: parameter {i} must be a cgad.Tensor, got {type(p).__name__}")
    if isinstance(max_norm, bool) or not isinstance(max_norm, numbers.Real):
        raise TypeError(f"clip_grad_norm_: max_norm must be a number, got {max_norm!r}")
    grads = [p.grad for p in parameters if p.grad is not None]
    return _C.clip_grad_norm(grads, float(max_norm))
