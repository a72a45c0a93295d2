"""Memory stays flat: training the tiny GPT-2 stops asking the OS for blocks after the first steps
(cgad.memory_stats()["os_allocs"]) and its resident memory does not creep up; neither do
repeated backward passes, zero_grad, no_grad forwards or generate. bench/memory_flat.py runs the
same over 500 steps and prints the figures."""
import os
import sys

import numpy as np
import pytest

import cgad
import cgad.nn as nn
from cgad.models.gpt import GPT, GPTConfig

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench"))
from procfs import reset_peak_rss, status_kib  # noqa: E402

V, B, T = 65, 4, 32
RSS_MARGIN_KIB = 3 * 1024  # the malloc arenas of Python and the OpenMP threads settle slowly


def peak_rss_kib(samples):
    """The peak RSS since reset_peak_rss(), or the largest sample where it could not reset."""
    return status_kib("VmHWM") if samples["reset"] else max(samples["rss"])


@pytest.fixture
def gpt():
    cgad.manual_seed(0)
    model = GPT(GPTConfig.preset("tiny", vocab_size=V))
    rng = np.random.default_rng(0)
    batches = [rng.integers(0, V, (B, T + 1)) for _ in range(8)]
    data = [(cgad.tensor(b[:, :-1]), cgad.tensor(b[:, 1:])) for b in batches]
    return model, model.configure_optimizers(0.1, 1e-3), data


def watch(fn, iterations, settle):
    """Runs fn(i) `iterations` times; returns os_allocs per iteration and RSS figures after
    `settle` iterations."""
    allocs, samples = [], {"rss": [], "reset": False}
    for i in range(iterations):
        fn(i)
        allocs.append(cgad.memory_stats()["os_allocs"])
        if i == settle:
            samples["reset"] = reset_peak_rss()
            base = status_kib("VmRSS")
        if i >= settle:
            samples["rss"].append(status_kib("VmRSS"))
    return allocs, base, peak_rss_kib(samples)


def test_training_steps_hold_os_allocs_and_rss_flat(gpt):
    model, opt, data = gpt

    def step(i):
        x, y = data[i % len(data)]
        opt.zero_grad(set_to_none=True)
        _, loss = model(x, y)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        loss.item()

    allocs, base, peak = watch(step, 60, settle=10)
    assert len(set(allocs[2:])) == 1, f"os_allocs grew after step 2: {allocs}"
    assert peak - base < RSS_MARGIN_KIB, f"RSS grew from {base} KiB to a peak of {peak} KiB"


def test_repeated_backward_zero_grad_no_grad_and_generate_do_not_grow(gpt):
    model, opt, data = gpt
    x, y = data[0]

    def backward_twice(i):  # grads accumulate into the same buffers
        opt.zero_grad(set_to_none=(i % 2 == 0))
        for _ in range(2):
            _, loss = model(x, y)
            loss.backward()

    def no_grad_forward(i):
        with cgad.no_grad():
            model(x, y)[1].item()

    def retained_backward(i):
        model.zero_grad()
        _, loss = model(x, y)
        loss.backward(retain_graph=True)
        loss.backward()

    def generate(i):
        cgad.manual_seed(i)
        model.generate(x[:1, :8], 8, top_k=10)

    for name, fn in (("backward", backward_twice), ("no_grad", no_grad_forward),
                     ("retain_graph", retained_backward), ("generate", generate)):
        allocs, base, peak = watch(fn, 15, settle=4)
        assert len(set(allocs[2:])) == 1, f"{name}: os_allocs grew: {allocs}"
        assert peak - base < RSS_MARGIN_KIB, f"{name}: RSS from {base} KiB to {peak} KiB"
    assert model.transformer.h[0].attn.c_attn.weight.grad is not None
