"""The quick model's training step in float32 and under bf16 autocast, one thread: python docs/experiments/bf16_step.py

Variants: fp32; bf16 (the recipe: float32 attention, logits and heads); bf16 with torch's bf16 attention; bf16
with bf16 logits too. Median seconds of an AdamW step with clipping (as pretraining takes it) and, from the torch
profiler over 10 steps, the time of the matrix products (mm, addmm) and of attention.
"""
import statistics
import time

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from minigpt_rlhf import model as M

torch.set_num_threads(1)
torch.set_flush_denormal(True)
sdpa = F.scaled_dot_product_attention
recipe_fp32_linear = M.fp32_linear


def bf16_attention(q, k, v, **kw):  # the recipe casts q, k, v to float32 under CPU autocast; undo it
    with torch.autocast("cpu", dtype=torch.bfloat16):
        return sdpa(q.bfloat16(), k.bfloat16(), v.bfloat16(), **kw)


VARIANTS = {"fp32": (False, sdpa, recipe_fp32_linear), "bf16 (recipe)": (True, sdpa, recipe_fp32_linear),
            "bf16, bf16 attention": (True, bf16_attention, recipe_fp32_linear),
            "bf16, bf16 logits": (True, sdpa, lambda layer, x: layer(x))}
for name, (bf16, attention, head) in VARIANTS.items():
    M.F.scaled_dot_product_attention, M.fp32_linear = attention, head
    torch.manual_seed(0)
    m = M.GPT(M.GPTConfig(vocab_size=1024, block_size=128, n_layer=4, n_head=4, n_embd=128))
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3, foreach=True)
    x = torch.randint(1024, (12, 129), generator=torch.Generator().manual_seed(0))

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = m(x[:, :-1], x[:, 1:])[1]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    times = []
    for i in range(25):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(10):
            step()
    ops = {e.key: e.self_cpu_time_total / 1e6 for e in prof.key_averages()}
    mm = ops.get("aten::mm", 0) + ops.get("aten::addmm", 0)
    att = sum(v for k, v in ops.items() if "scaled_dot_product" in k)
    print(f"{name:22} step {statistics.median(times[5:]):.3f} s   over 10 steps: matrix products {mm:.2f} s, "
          f"attention {att:.2f} s")
M.F.scaled_dot_product_attention = sdpa
