# %% [markdown]
# # Lesson 01 — a GPT from scratch
#
# InstructGPT starts from GPT-3, a decoder-only transformer. Ours is the same architecture, shrunk: token and
# position embeddings, pre-LayerNorm blocks of causal self-attention and a GELU MLP, and an output layer tied
# to the token embedding. Read `minigpt_rlhf/model.py` beside this lesson; it is one file, top to bottom.
#
# Run as a plain script: `python lessons/01_gpt.py` (about half a minute on a 2-core CPU);
# `MINIGPT_RLHF_PRESET=micro` uses the micro preset's model (seconds).

# %%
import dataclasses
import os
import time

import torch

from minigpt_rlhf.config import load_config
from minigpt_rlhf.model import GPT
from minigpt_rlhf.runtime import setup
from minigpt_rlhf.tokenizer import Tokenizer, format_chat

device = setup(seed=0, device="cpu")
tok = Tokenizer()
print(f"vocabulary: {tok.vocab_size} tokens = {len(tok.chars)} characters + specials {tok.specials}")
print("chat format:", tok.decode(format_chat(tok, "What does the zorbin eat?", "Moss.")))

# %% [markdown]
# ## Shapes and sizes
# The preset's model (`quick` unless MINIGPT_RLHF_PRESET says otherwise). Parameters N drive the compute: training costs ≈ 6·N FLOPs per token
# (forward 2N, backward 4N), plus an attention term that grows with the context length.

# %%
PRESET = os.environ.get("MINIGPT_RLHF_PRESET", "quick")
mc = dataclasses.replace(load_config(PRESET).model, vocab_size=tok.vocab_size)
model = GPT(mc).to(device)
print(f"layers {mc.n_layer}, heads {mc.n_head}, width {mc.n_embd}, context {mc.block_size}")
print(f"parameters: {model.num_params():,} (+{model.wpe.weight.numel():,} position embeddings)")
print(f"training FLOPs per token: {model.flops_per_token():,.0f}")
x = torch.tensor([tok.encode("Hello, zorbin!")])
logits, _ = model(x)
print(f"input {tuple(x.shape)} -> logits {tuple(logits.shape)} (batch, time, vocabulary)")
print(f"final hidden states {tuple(model.hidden_states(x).shape)}: the reward model puts its scalar head here")

# %% [markdown]
# ## Overfit a tiny text
# If the model, the loss and the optimiser are right, one short text is memorised to near-zero loss.

# %%
text = "The zorbin eats moss. The zorbin is green. The zorbin lives in Glimmerdale.\n"
data = torch.tensor([tok.encode(text)])
opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
for step in range(201):
    _, loss = model(data[:, :-1], data[:, 1:])
    opt.zero_grad()
    loss.backward()
    opt.step()
    if step % 50 == 0:
        print(f"step {step:3d}  loss {loss.item():.3f}")
model.eval()
out = model.generate([tok.encode("The zorbin")], len(text), temperature=0.0)
print("greedy continuation:", repr("The zorbin" + tok.decode(out.responses[0])))

# %% [markdown]
# ## Sampling with a KV cache
# Without a cache, every new token recomputes attention over the whole prefix: O(T²) work for T tokens.
# The cache keeps each layer's keys and values, so a step feeds one token. Same samples, far less work.

# %%
prompt = tok.encode("The zorbin")
for use_cache in (False, True):
    t = time.perf_counter()
    out = model.generate([prompt], 240, temperature=1.0, generator=torch.Generator().manual_seed(0),
                         use_cache=use_cache)
    dt = time.perf_counter() - t
    print(f"use_cache={use_cache!s:5}: 240 tokens in {dt:.2f}s ({240 / dt:,.0f} tokens/s)")
    if use_cache:
        print(f"speed-up: {slow / dt:.1f}x; same tokens: {out.responses == ref.responses}")
    ref, slow = out, dt
