"""Learning-rate schedule: linear warmup, then cosine decay to a floor (nanoGPT's get_lr)."""
import math


def warmup_cosine(max_lr, min_lr, warmup_steps, max_steps):
    """Return step -> lr: linear warmup over `warmup_steps` (reaching max_lr at the end of the
    last warmup step, as build-nanogpt does), cosine decay to min_lr at `max_steps`, then flat."""
    if warmup_steps < 0 or max_steps < 1:
        raise ValueError(f"warmup_cosine: need warmup_steps >= 0 and max_steps >= 1, got "
                         f"{warmup_steps} and {max_steps}")

    def get_lr(step):
        if step < warmup_steps:
            return max_lr * (step + 1) / warmup_steps
        if step >= max_steps or max_steps <= warmup_steps:
            return min_lr
        decay_ratio = (step - warmup_steps) / (max_steps - warmup_steps)
        coeff = 0.5 * (1.0 + math.cos(math.pi * decay_ratio))
        return min_lr + coeff * (max_lr - min_lr)

    return get_lr
