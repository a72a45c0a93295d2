"""GPT-2 on cgad, in the shape of nanoGPT's model.py.

Parameter names match nanoGPT and Hugging Face (`transformer.h.0.attn.c_attn.weight`, ...), so
weights move between them by name. Dimension letters: B batch, T time, C channels (n_embd),
V vocabulary, NH heads, HS head size (C // NH).
"""
import json
import math
import os
from dataclasses import dataclass, fields

import numpy as np

import cgad
import cgad.nn as nn
import cgad.optim
import cgad.nn.functional as F


@dataclass
class GPTConfig:
    """Model hyperparameters; the defaults are GPT-2 small (124M)."""

    block_size: int = 1024
    vocab_size: int = 50257
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768

    PRESETS = {  # name -> (n_layer, n_head, n_embd, block_size)
        "tiny": (2, 4, 128, 128),
        "mini": (6, 6, 384, 256),
        "gpt2": (12, 12, 768, 1024),
        "gpt2-medium": (24, 16, 1024, 1024),
        "gpt2-large": (36, 20, 1280, 1024),
        "gpt2-xl": (48, 25, 1600, 1024),
    }

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"GPTConfig.{f.name} must be a positive int, got {value!r}")
        if self.n_embd % self.n_head:
            raise ValueError(f"GPTConfig: n_embd {self.n_embd} is not divisible by "
                             f"n_head {self.n_head}")

    @classmethod
    def preset(cls, name, **overrides):
        """A named size (tiny, mini, gpt2, gpt2-medium, gpt2-large, gpt2-xl), fields overridable."""
        if name not in cls.PRESETS:
            raise ValueError(f"unknown GPT preset {name!r}; choose from {', '.join(cls.PRESETS)}")
        n_layer, n_head, n_embd, block_size = cls.PRESETS[name]
        kwargs = dict(n_layer=n_layer, n_head=n_head, n_embd=n_embd, block_size=block_size)
        kwargs.update(overrides)
        return cls(**kwargs)

    def to_dict(self):
        """The fields as a plain dict (for config.json and checkpoints)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


class CausalSelfAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.n_head = config.n_head
        self.n_embd = config.n_embd
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)  # q, k, v for all heads at once
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)
        self.c_proj.RESIDUAL_PROJECTION = True

    def forward(self, x, kv=None, pos=0):
        """kv: a (keys, values) pair of (B, NH, S, HS) cache buffers that receive this pass's
        keys and values at positions pos..pos+T-1 (cached generation): with pos 0 the prefill;
        with pos > 0 one new position (T = 1) that attends to the cached positions 0..pos."""
        B, T, C = x.shape
        NH, HS = self.n_head, C // self.n_head
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)  # each (B, T, C)
        q = q.view(B, T, NH, HS).transpose(1, 2)  # (B, NH, T, HS)
        k = k.view(B, T, NH, HS).transpose(1, 2)
        v = v.view(B, T, NH, HS).transpose(1, 2)
        if kv is not None:
            cgad._C.copy_(kv[0][:, :, pos:pos + T], k)
            cgad._C.copy_(kv[1][:, :, pos:pos + T], v)
            if pos > 0:  # the one new query sees every cached position: no mask
                k, v = kv[0][:, :, :pos + T], kv[1][:, :, :pos + T]
        y = F.scaled_dot_product_attention(q, k, v, is_causal=pos == 0)  # (B, NH, T, HS)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # heads side by side again
        return self.c_proj(y)


class MLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd)
        self.gelu = nn.GELU(approximate="tanh")
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd)
        self.c_proj.RESIDUAL_PROJECTION = True

    def forward(self, x):
        return self.c_proj(self.gelu(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd)
        self.mlp = MLP(config)

    def forward(self, x, kv=None, pos=0):
        x = x + self.attn(self.ln_1(x), kv, pos)
        x = x + self.mlp(self.ln_2(x))
        return x


class KVCache:
    """The keys and values of every layer for B sequences and `size` positions, preallocated,
    and with `fused` the buffers one fused decode step reuses; `length` positions are filled.
    bf16_weights: the fused step reads bfloat16 copies of the weight matrices (the lm_head's
    too), half the bytes of float32; everything else stays float32."""

    def __init__(self, model, B, size, device, fused=True, bf16_weights=False):
        cfg = model.config
        NH, HS = cfg.n_head, cfg.n_embd // cfg.n_head
        dtype = model.lm_head.weight.dtype
        self.size, self.length = size, 0

        def buf(*shape):
            return cgad.empty(*shape, dtype=dtype, device=device)

        self.kv = [(buf(B, NH, size, HS), buf(B, NH, size, HS)) for _ in range(cfg.n_layer)]
        if not fused:
            return
        self.x = buf(B, cfg.n_embd)  # (B, C) the new position's residual stream
        self.logits = buf(B, cfg.vocab_size)  # (B, V)
        # one layer_norm slot per thread (kernels/decode.h)
        self.work = buf(cgad._C.decode_work_size(B, cfg.n_embd, NH, size, cgad.get_num_threads()))

        def matrix(w):
            return w.to(cgad.bfloat16) if bf16_weights else w

        self.weights = [[blk.ln_1.weight, blk.ln_1.bias, matrix(blk.attn.c_attn.weight), blk.attn.c_attn.bias,
                         matrix(blk.attn.c_proj.weight), blk.attn.c_proj.bias, blk.ln_2.weight, blk.ln_2.bias,
                         matrix(blk.mlp.c_fc.weight), blk.mlp.c_fc.bias, matrix(blk.mlp.c_proj.weight),
                         blk.mlp.c_proj.bias]
                        for blk in model.transformer.h]
        self.lm_head = matrix(model.lm_head.weight)
        self.eps = [blk.ln_1.eps for blk in model.transformer.h]  # ln_2's is the same: GPT-2's 1e-5


def _sample(logits, temperature, top_k):
    """One id per row of logits (B, V): softmax(logits / temperature) over the top_k largest."""
    logits = logits / temperature
    if top_k is not None:
        v, _ = logits.topk(min(top_k, logits.shape[-1]))
        logits = logits.masked_fill(logits < v[:, -1:], float("-inf"))
    probs = F.softmax(logits, dim=-1)
    return cgad.multinomial(probs, 1)  # (B, 1)


class GPT(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),
            wpe=nn.Embedding(config.block_size, config.n_embd),
            h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
            ln_f=nn.LayerNorm(config.n_embd),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight  # weight tying, as GPT-2
        self.apply(self._init_weights)
        # the init's temporary buffers would stay in the allocator's cache for the whole run
        cgad.empty_cache()

    def _init_weights(self, module):
        std = 0.02
        if isinstance(module, nn.Linear):
            if getattr(module, "RESIDUAL_PROJECTION", False):
                # keeps the residual stream's variance from growing with depth (GPT-2 paper)
                std *= (2 * self.config.n_layer) ** -0.5
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=std)

    def forward(self, idx, targets=None):
        """Logits (B, T, V) for int64 ids idx (B, T), and the mean cross-entropy when targets
        (B, T) are given (else None)."""
        B, T = idx.shape
        if T > self.config.block_size:
            raise ValueError(f"GPT: sequence length {T} exceeds block_size "
                             f"{self.config.block_size}")
        pos = cgad.arange(0, T, device=idx.device)  # (T,)
        x = self.transformer.wte(idx) + self.transformer.wpe(pos)  # (B, T, C)
        for block in self.transformer.h:
            x = block(x)
        x = self.transformer.ln_f(x)
        logits = self.lm_head(x)  # (B, T, V)
        loss = None if targets is None else F.cross_entropy(logits, targets)
        return logits, loss

    def configure_optimizers(self, weight_decay, learning_rate, betas=(0.9, 0.95), eps=1e-8):
        """AdamW that decays 2-D weights (matmuls, embeddings) but not biases or LayerNorm
        weights."""
        params = [p for p in self.parameters() if p.requires_grad]
        groups = [
            {"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
        ]
        return cgad.optim.AdamW(groups, lr=learning_rate, betas=betas, eps=eps)

    @cgad.no_grad()
    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None, use_cache=True):
        """Append max_new_tokens sampled ids to idx (B, T); builds no graph, and the same
        cgad.manual_seed gives the same ids with or without the cache (generate_tokens)."""
        new = list(self.generate_tokens(idx, max_new_tokens, temperature, top_k, use_cache))
        return cgad.cat([idx] + new, dim=1) if new else idx

    def generate_tokens(self, idx, max_new_tokens, temperature=1.0, top_k=None, use_cache=True):
        """A generator yielding each new (B, 1) int64 id tensor of generate as it is sampled.
        use_cache: prefill a per-layer key/value cache over the prompt, then run one position
        per step (the fused decode kernels, reading bf16 copies of the weight matrices under
        cgad.autocast; the ordinary ops on a device without those kernels); without it every
        step reruns the whole context. Both sample from the same distribution; the context is
        cropped to block_size alike."""
        if temperature <= 0:
            raise ValueError(f"generate: temperature must be positive, got {temperature}")
        if top_k is not None and top_k < 1:
            raise ValueError(f"generate: top_k must be at least 1, got {top_k}")
        if idx.ndim != 2:
            raise ValueError(f"generate: expected ids of shape (B, T), got {tuple(idx.shape)}")
        if not use_cache:
            return self._uncached_tokens(idx, max_new_tokens, temperature, top_k)
        # on a device whose kernel table lacks the fused decode kernels each step runs through
        # the ordinary ops with the same cache. Under autocast the fused step reads bf16 copies
        # of float32 weight matrices (autocast leaves float64 alone): the bytes per token halve
        fused = cgad._C.decode_supported(idx.device)
        # (the CPU's decode kernels read bf16 weights beside float32 activations; CUDA's do not)
        bf16 = (cgad._C.get_autocast(idx.device)[0] and self.lm_head.weight.dtype == cgad.float32
                and idx.device.type != "cuda")
        return self._cached_tokens(idx, max_new_tokens, temperature, top_k, fused, bf16)

    def _uncached_tokens(self, idx, max_new_tokens, temperature, top_k):
        bs = self.config.block_size
        for _ in range(max_new_tokens):
            with cgad.no_grad():
                idx_cond = idx if idx.shape[1] <= bs else idx[:, -bs:]
                logits, _ = self(idx_cond)
                idx_next = _sample(logits[:, -1, :], temperature, top_k)
                idx = cgad.cat((idx, idx_next), dim=1)
            yield idx_next

    def _cached_tokens(self, idx, max_new_tokens, temperature, top_k, fused, bf16):
        if max_new_tokens <= 0:
            return
        bs = self.config.block_size
        B, T = idx.shape
        crops = T + max_new_tokens > bs + 1  # some step's context is cropped: keep the ids
        decode = self._decode if fused else self._decode_ops
        with cgad.no_grad():
            cache = KVCache(self, B, min(bs, T + max_new_tokens - 1), idx.device, fused, bf16)
            context = idx if T <= bs else idx[:, -bs:]
            logits = self._prefill(context, cache)
        length = context.shape[1]
        for step in range(max_new_tokens):
            with cgad.no_grad():
                idx_next = _sample(logits, temperature, top_k)
            yield idx_next
            if step + 1 == max_new_tokens:
                return
            with cgad.no_grad():
                if crops:
                    context = cgad.cat((context, idx_next), dim=1)
                if length < bs:
                    logits = decode(idx_next, cache)
                    length += 1
                else:
                    # every position of the cropped context moves: rebuild the whole cache
                    context = context[:, -bs:]
                    logits = self._prefill(context, cache)

    def _prefill(self, idx, cache):
        """Logits (B, V) of the last position of idx (B, T), T <= cache.size, filling the cache's
        positions 0..T-1."""
        B, T = idx.shape
        pos = cgad.arange(0, T, device=idx.device)  # (T,)
        x = self.transformer.wte(idx) + self.transformer.wpe(pos)  # (B, T, C)
        for block, kv in zip(self.transformer.h, cache.kv):
            x = block(x, kv)
        x = self.transformer.ln_f(x[:, -1, :])  # (B, C): the lm_head runs on the last position only
        cache.length = T
        return self.lm_head(x)

    def _decode(self, idx_next, cache):
        """Logits (B, V) of the one new position idx_next (B, 1), through and into the cache;
        the fused decode kernels write into the cache's buffers, so a step allocates nothing."""
        x, pos = cache.x, cache.length
        cgad._C.decode_embed_(x, idx_next, self.transformer.wte.weight, self.transformer.wpe.weight, pos)
        for weights, (k, v), eps in zip(cache.weights, cache.kv, cache.eps):
            cgad._C.decode_block_(x, weights, k, v, pos, self.config.n_head, eps, cache.work)
        ln_f = self.transformer.ln_f
        cgad._C.decode_logits_(cache.logits, x, ln_f.weight, ln_f.bias, cache.lm_head, ln_f.eps, cache.work)
        cache.length = pos + 1
        return cache.logits

    def _decode_ops(self, idx_next, cache):
        """_decode through the ordinary ops (graph-free under no_grad), for a device without the
        fused decode kernels."""
        pos = cache.length
        x = self.transformer.wte(idx_next) + self.transformer.wpe(
            cgad.arange(pos, pos + 1, device=idx_next.device))  # (B, 1, C)
        for block, kv in zip(self.transformer.h, cache.kv):
            x = block(x, kv, pos)
        cache.length = pos + 1
        return self.lm_head(self.transformer.ln_f(x[:, -1, :]))

    @classmethod
    def from_pretrained(cls, path):
        """GPT-2 weights from a Hugging Face folder (config.json + model.safetensors) or a
        .safetensors file, in OpenAI's, transformers' or nanoGPT's layout (float32, float16 or
        bfloat16, loaded as float32); no torch needed. The whole file is checked (names, layer
        indices, shapes) before the model is built."""
        weights, entries, hf_config = _read_pretrained_header(path)
        config, conv1d = _config_from_weights(entries, hf_config, weights)
        tensors = _read_pretrained_tensors(weights, entries, conv1d)
        model = cls(config)
        model.load_state_dict(tensors)
        return model


# n_embd -> n_head for the GPT-2 family, used when no config.json says otherwise
GPT2_HEADS = {768: 12, 1024: 16, 1280: 20, 1600: 25}
_CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
# a block's parameters -> their shape given C, as nn.Linear stores them ((out, in))
_BLOCK_SHAPES = {
    "ln_1.weight": lambda C: (C,), "ln_1.bias": lambda C: (C,),
    "attn.c_attn.weight": lambda C: (3 * C, C), "attn.c_attn.bias": lambda C: (3 * C,),
    "attn.c_proj.weight": lambda C: (C, C), "attn.c_proj.bias": lambda C: (C,),
    "ln_2.weight": lambda C: (C,), "ln_2.bias": lambda C: (C,),
    "mlp.c_fc.weight": lambda C: (4 * C, C), "mlp.c_fc.bias": lambda C: (4 * C,),
    "mlp.c_proj.weight": lambda C: (C, 4 * C), "mlp.c_proj.bias": lambda C: (C,),
}


def _read_pretrained_header(path):
    """(weights file, {this model's name: Entry}, config.json dict or {}) for path, with every
    file name in an error; reads no tensor data."""
    from cgad import _safetensors

    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"pretrained weights not found: {path}")
    folder, weights = (path, os.path.join(path, "model.safetensors")) if os.path.isdir(path) \
        else (os.path.dirname(path), path)
    if not os.path.isfile(weights):
        raise FileNotFoundError(f"pretrained weights not found: {weights}")
    hf_config = {}
    config_path = os.path.join(folder, "config.json")
    if os.path.isfile(config_path):
        try:
            with open(config_path, encoding="utf-8") as f:
                hf_config = json.load(f)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"{config_path}: not valid JSON: {e}") from None
        if not isinstance(hf_config, dict):
            raise ValueError(f"{config_path}: expected a JSON object, got {type(hf_config).__name__}")

    entries = {}
    for key, entry in _safetensors.read_header(weights).items():
        parts = key.split(".")
        if parts[0] == "transformer":
            parts = parts[1:]
        # attn.bias / attn.masked_bias are causal-mask buffers (attn.c_attn.bias is a weight)
        if len(parts) >= 2 and parts[-2] == "attn" and parts[-1] in ("bias", "masked_bias"):
            continue
        name = ".".join(parts)
        name = name if name == "lm_head.weight" else "transformer." + name
        if name in entries:
            raise ValueError(f"{weights}: {key} appears twice (with and without the 'transformer.' prefix)")
        entries[name] = entry
    return weights, entries, hf_config


def _config_from_weights(entries, hf_config, weights):
    """(GPTConfig, whether the file stores Conv1D (in, out) weights) from the names and shapes
    alone; a ValueError naming the file and the key for an unknown name, a layer missing or
    incomplete, or a shape that disagrees with the others."""
    def shape(name):
        if name not in entries:
            raise ValueError(f"{weights}: not GPT-2 weights: {name} is missing")
        return entries[name].shape

    wte = shape("transformer.wte.weight")
    if len(wte) != 2:
        raise ValueError(f"{weights}: wte.weight must be 2-D (vocab_size, n_embd), got shape {wte}")
    vocab_size, C = wte
    wpe = shape("transformer.wpe.weight")
    if len(wpe) != 2 or wpe[1] != C:
        raise ValueError(f"{weights}: wpe.weight has shape {wpe}, expected (block_size, {C})")
    block_size = wpe[0]
    # Conv1D files store (in, out); c_attn (C, 3C) vs Linear's (3C, C) tells which this file is
    conv1d = shape("transformer.h.0.attn.c_attn.weight") == (C, 3 * C) and C > 0
    expected = {"transformer.wte.weight": wte, "transformer.wpe.weight": wpe,
                "transformer.ln_f.weight": (C,), "transformer.ln_f.bias": (C,), "lm_head.weight": wte}
    layers = set()
    for name in entries:
        parts = name.split(".")
        if name in expected:
            continue
        local = ".".join(parts[3:])
        if len(parts) < 4 or parts[:2] != ["transformer", "h"] or local not in _BLOCK_SHAPES \
                or not (parts[2].isascii() and parts[2].isdigit()) or str(int(parts[2])) != parts[2]:
            raise ValueError(f"{weights}: unexpected key {name!r}: not a GPT-2 parameter name")
        layers.add(int(parts[2]))
    n_layer = len(layers)
    if n_layer == 0 or layers != set(range(n_layer)):
        raise ValueError(f"{weights}: the layer indices must run 0..n_layer-1 without gaps, "
                         f"got {sorted(layers)[:8]}{' ...' if n_layer > 8 else ''}")
    for i in range(n_layer):
        for local, fn in _BLOCK_SHAPES.items():
            s = fn(C)
            expected[f"transformer.h.{i}.{local}"] = s[::-1] if conv1d and local in _CONV1D else s
    for name, s in expected.items():
        if name == "lm_head.weight" and name not in entries:
            continue  # tied to wte; Hugging Face's own files leave it out
        if shape(name) != tuple(s):
            raise ValueError(f"{weights}: {name} has shape {shape(name)}, expected {tuple(s)} "
                             f"for n_embd {C}{' (Conv1D layout)' if conv1d else ''}")

    n_head = hf_config.get("n_head") or GPT2_HEADS.get(C)
    if n_head is None:
        raise ValueError(f"{weights}: n_embd {C} is not a GPT-2 size and there is no "
                         f"config.json giving n_head")
    for key, value in (("n_layer", n_layer), ("n_embd", C), ("vocab_size", vocab_size)):
        if key in hf_config and hf_config[key] != value:
            raise ValueError(f"{weights}: config.json says {key}={hf_config[key]} but the weights "
                             f"have {value}")
    try:
        config = GPTConfig(block_size=block_size, vocab_size=vocab_size, n_layer=n_layer,
                           n_head=n_head, n_embd=C)
    except ValueError as e:
        raise ValueError(f"{weights}: {e}") from None
    return config, conv1d


def _read_pretrained_tensors(weights, entries, conv1d):
    """The checked entries' data as float32 arrays under this model's names, Linear-oriented."""
    from cgad import _safetensors

    raw = {name: _safetensors.read_float32(weights, e) for name, e in entries.items()}
    if conv1d:
        for name in raw:
            if name.endswith(_CONV1D):
                raw[name] = np.ascontiguousarray(raw[name].T)
    lm_head = raw.pop("lm_head.weight", None)
    if lm_head is not None and not np.array_equal(lm_head, raw["transformer.wte.weight"]):
        raise ValueError(f"{weights}: lm_head.weight differs from wte.weight; GPT ties them")
    raw["lm_head.weight"] = raw["transformer.wte.weight"]
    return raw
