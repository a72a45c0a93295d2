"""Write tests/fixtures/gpt_tiny_reference.npz: a tiny GPT-2 run in PyTorch, for parity tests that
need no torch. Run by hand (needs torch==2.13.0): python tests/reference/make_reference.py

The torch model is nanoGPT's (tanh GELU, pre-LayerNorm, tied lm_head), written out here so the
fixture depends on nothing but torch. Stored: the weights (nanoGPT names), one batch, its logits and
loss, every parameter's gradient, and the losses and pre-clip grad norms of 5 AdamW + clipping
steps over 5 stored batches (configure_optimizers' groups: 2-D weights decayed).
"""
import math
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

V, C, N_LAYER, N_HEAD, BLOCK, B, T = 97, 32, 2, 4, 32, 3, 17
LR, BETAS, EPS, WD, CLIP, STEPS = 3e-3, (0.9, 0.95), 1e-8, 0.1, 1.0, 5
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures",
                   "gpt_tiny_reference.npz")


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln_1 = nn.LayerNorm(C)
        self.attn = nn.Module()
        self.attn.c_attn = nn.Linear(C, 3 * C)
        self.attn.c_proj = nn.Linear(C, C)
        self.ln_2 = nn.LayerNorm(C)
        self.mlp = nn.Module()
        self.mlp.c_fc = nn.Linear(C, 4 * C)
        self.mlp.c_proj = nn.Linear(4 * C, C)

    def forward(self, x):
        Bx, Tx, _ = x.shape
        q, k, v = self.attn.c_attn(self.ln_1(x)).split(C, dim=2)
        q, k, v = (t.view(Bx, Tx, N_HEAD, C // N_HEAD).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.attn.c_proj(y.transpose(1, 2).contiguous().view(Bx, Tx, C))
        return x + self.mlp.c_proj(F.gelu(self.mlp.c_fc(self.ln_2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self):
        super().__init__()
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(V, C), wpe=nn.Embedding(BLOCK, C),
            h=nn.ModuleList([Block() for _ in range(N_LAYER)]), ln_f=nn.LayerNorm(C)))
        self.lm_head = nn.Linear(C, V, bias=False)
        self.transformer.wte.weight = self.lm_head.weight
        for name, p in self.named_parameters():
            # biases and LayerNorm weights are random too, so a swapped or misplaced one shows
            if name.endswith("bias"):
                nn.init.normal_(p, std=0.02)
            elif p.ndim == 2:
                std = 0.02 / math.sqrt(2 * N_LAYER) if name.endswith("c_proj.weight") else 0.02
                nn.init.normal_(p, std=std)
            else:
                nn.init.normal_(p, mean=1.0, std=0.1)

    def forward(self, idx, targets):
        x = self.transformer.wte(idx) + self.transformer.wpe(torch.arange(idx.shape[1]))
        for block in self.transformer.h:
            x = block(x)
        logits = self.lm_head(self.transformer.ln_f(x))
        return logits, F.cross_entropy(logits.view(-1, V), targets.reshape(-1))


def main():
    torch.manual_seed(0)
    model = GPT()
    out = {f"w.{k}": v.detach().numpy().copy() for k, v in model.state_dict().items()}
    batches = torch.randint(0, V, (STEPS, B, T + 1))
    x, y = batches[0, :, :-1], batches[0, :, 1:]
    logits, loss = model(x, y)
    loss.backward()
    out.update(x=x.numpy(), y=y.numpy(), logits=logits.detach().numpy(),
               loss=np.float32(loss.item()))
    out.update({f"g.{k}": p.grad.numpy().copy() for k, p in model.named_parameters()})

    params = list(model.parameters())
    groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": WD},
              {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=LR, betas=BETAS, eps=EPS)
    losses, norms = [], []
    for s in range(STEPS):
        opt.zero_grad()
        _, loss = model(batches[s, :, :-1], batches[s, :, 1:])
        loss.backward()
        norms.append(torch.nn.utils.clip_grad_norm_(params, CLIP).item())
        losses.append(loss.item())
        opt.step()
    out.update(batches=batches.numpy(), traj_loss=np.array(losses, dtype=np.float64),
               traj_norm=np.array(norms, dtype=np.float64),
               final_wte=model.transformer.wte.weight.detach().numpy().copy(),
               hparams=np.array([V, C, N_LAYER, N_HEAD, BLOCK, LR, BETAS[0], BETAS[1], EPS, WD,
                                 CLIP]))
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    np.savez_compressed(OUT, **out)
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes), torch {torch.__version__}")


if __name__ == "__main__":
    main()
