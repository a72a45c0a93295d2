"""GPT on the "test" device against the same model on the CPU: a few AdamW steps with clipping
give bit-identical losses, norms, gradients and parameters, nothing is left on (or allocated
from) the CPU during a step, and generate works there too."""
import numpy as np

import cgad
from cgad.models.gpt import GPT, GPTConfig

CONFIG = GPTConfig(block_size=16, vocab_size=37, n_layer=2, n_head=2, n_embd=16)


def _batch(seed=0):
    rng = np.random.default_rng(seed)
    data = rng.integers(0, CONFIG.vocab_size, (3, CONFIG.block_size + 1))
    return data[:, :-1], data[:, 1:]


def _train(device, steps=3):
    cgad.manual_seed(11)
    model = GPT(CONFIG).to(device)
    opt = model.configure_optimizers(weight_decay=0.1, learning_rate=3e-3)
    x, y = (cgad.tensor(a, device=device) for a in _batch())
    losses, norms, grads = [], [], []
    for step in range(steps):
        if step == steps - 1 and device != "cpu":
            cgad.reset_peak_memory_stats("cpu")
            cpu_before = cgad.memory_stats("cpu")["allocated_bytes"]
        logits, loss = model(x, y)
        assert logits.device == device and loss.device == device
        opt.zero_grad()
        loss.backward()
        norm = cgad.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
        opt.step()
        if step == steps - 1 and device != "cpu":
            # a whole step on the device: not one byte taken from the CPU's pool, even for a moment
            assert cgad.memory_stats("cpu")["peak_bytes"] == cpu_before
        assert norm.device == device
        losses.append(loss.item())
        norms.append(float(norm))
        grads.append({n: p.grad.numpy() for n, p in model.named_parameters()})
    return model, opt, losses, norms, grads


def test_training_on_the_test_device_is_bit_identical_to_the_cpu():
    cpu_model, _, cpu_losses, cpu_norms, cpu_grads = _train("cpu")
    model, opt, losses, norms, grads = _train("test")
    assert losses == cpu_losses and norms == cpu_norms
    assert norms[0] > 0.5  # the clip was active
    for g, cg in zip(grads, cpu_grads):
        for name in cg:
            np.testing.assert_array_equal(g[name], cg[name], err_msg=name)
    for (name, p), (_, cp) in zip(model.named_parameters(), cpu_model.named_parameters()):
        assert p.device == "test" and p.grad.device == "test", name
        np.testing.assert_array_equal(p.numpy(), cp.numpy(), err_msg=name)
    for slot in opt.state_dict()["state"].values():  # host copies of the moments
        assert np.isfinite(slot["exp_avg"]).all()
    assert model.lm_head.weight is model.transformer.wte.weight  # the tie survived the move


def test_generate_on_the_test_device_matches_the_cpu():
    cgad.manual_seed(5)
    model = GPT(CONFIG)
    model.eval()
    start = [[1, 2, 3]]
    cgad.manual_seed(9)
    cpu_out = model.generate(cgad.tensor(start), 20, top_k=5)  # crosses block_size: the crop too
    model.to("test")
    cgad.manual_seed(9)
    out = model.generate(cgad.tensor(start, device="test"), 20, top_k=5)
    assert out.device == "test"
    np.testing.assert_array_equal(out.numpy(), cpu_out.numpy())
