"""The debugging kit behind `train/gpt2.py --check`: quick facts that catch most broken setups
(misaligned targets, detached or dead parameters, an optimizer that moves nothing, a model that
cannot learn) before a long run is spent on them."""
import math

import numpy as np


def _result(ok, name, detail):
    return {"ok": bool(ok), "name": name, "detail": detail}


def check_targets_shifted(loader):
    """The batch's targets are its inputs shifted by one token of the underlying data."""
    loader.reset()
    n = loader.B * loader.T
    start = loader.current_position
    raw = np.asarray(loader.tokens[start:start + n + 1], dtype=np.int64)
    x, y = loader.next_batch()
    loader.reset()
    ok = np.array_equal(x.numpy().reshape(-1), raw[:-1]) and \
        np.array_equal(y.numpy().reshape(-1), raw[1:])
    return _result(ok, "targets are inputs shifted by one",
                   f"checked {n} positions" if ok else "x/y do not match data[i], data[i+1]")


def check_gradients(model, x, y):
    """After one backward pass every parameter has a gradient (the graph reaches it from the
    loss), and every gradient is finite and nonzero."""
    model.zero_grad()
    _, loss = model(x, y)
    loss.backward()
    unreached, bad = [], []
    for name, p in model.named_parameters():
        if p.grad is None:
            unreached.append(name)
            continue
        g = p.grad.numpy()
        if not np.isfinite(g).all() or not np.any(g):
            bad.append(name)
    n = len(list(model.parameters()))
    return [
        _result(not unreached, "the graph reaches every parameter from the loss",
                f"{n} parameters reached" if not unreached else f"no gradient: {unreached}"),
        _result(not bad, "every parameter gets a finite nonzero gradient",
                "all finite and nonzero" if not bad else f"zero or non-finite: {bad}"),
    ]


def check_parameters_change(model, optimizer):
    """One optimizer step (on the gradients already computed) changes every parameter."""
    before = {name: p.numpy().copy() for name, p in model.named_parameters()}
    optimizer.step()
    same = [name for name, p in model.named_parameters() if np.array_equal(p.numpy(), before[name])]
    return _result(not same, "every parameter changes after one step",
                   f"{len(before)} parameters changed" if not same else f"unchanged: {same}")


def check_overfit(model, optimizer, x, y, steps=100):
    """Repeated steps on one batch drive its loss far down (to under a third of its start)."""
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        _, loss = model(x, y)
        loss.backward()
        losses.append(loss.item())
        optimizer.step()
    first, last = losses[0], losses[-1]
    ok = math.isfinite(last) and last < first / 3
    return _result(ok, "one batch can be overfit",
                   f"loss {first:.4f} -> {last:.4f} in {steps} steps")


def run_checks(model, optimizer, loader, log=print, overfit_steps=100):
    """Run every check on a fresh model and its optimizer, log PASS/FAIL lines; returns True
    when all pass. The model's weights are trained on in the process."""
    results = [check_targets_shifted(loader)]
    x, y = loader.next_batch()
    loader.reset()
    device = next(iter(model.parameters())).device
    if str(device) != "cpu":
        x, y = x.to(device), y.to(device)
    results += check_gradients(model, x, y)
    results.append(check_parameters_change(model, optimizer))
    results.append(check_overfit(model, optimizer, x, y, steps=overfit_steps))
    for r in results:
        log(f"{'PASS' if r['ok'] else 'FAIL'}  {r['name']}: {r['detail']}")
    ok = all(r["ok"] for r in results)
    log("all checks passed" if ok else "some checks FAILED")
    return ok
