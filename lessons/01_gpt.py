# %% [markdown]
# # Lesson 01 — a tokenizer and a GPT, from scratch
#
# InstructGPT starts from GPT-3, a decoder-only transformer reading byte-pair tokens. Ours is the same, shrunk.
# First the tokenizer (`minigpt_rlhf/tokenizer.py`, GPT-2's byte-pair encoding learned from our corpus), then
# the model (`minigpt_rlhf/model.py`): token embeddings, rotary position embeddings, pre-LayerNorm blocks of
# causal self-attention and a GELU MLP, and an output layer tied to the token embedding. Each is one file,
# top to bottom.
#
# Run as a plain script: `python lessons/01_gpt.py` (about half a minute on a 2-core CPU);
# `MINIGPT_RLHF_PRESET=micro` uses the micro preset's model (seconds).

# %%
import dataclasses
import os
import time

import torch

from minigpt_rlhf import world
from minigpt_rlhf.config import load_config
from minigpt_rlhf.model import GPT
from minigpt_rlhf.runtime import setup
from minigpt_rlhf.tokenizer import Tokenizer, format_chat

PRESET = os.environ.get("MINIGPT_RLHF_PRESET", "quick")
cfg = load_config(PRESET)
device = setup(seed=0, device="cpu")

# %% [markdown]
# ## Byte pairs, learned
# The text is first cut into chunks (a word with its leading space, each digit alone, punctuation); then,
# starting from the 96 characters, the most frequent adjacent pair of tokens becomes a new token, again and
# again. The merges, in order, are the tokenizer. Here the first ten, learned from the corpus itself:

# %%
docs = world.load_corpus(cfg.data_dir)
small = Tokenizer.train(docs, vocab_size=110)
for i, (a, b) in enumerate(small.merges[:10]):
    print(f"merge {i + 1:2d}: {small.itos[a]!r} + {small.itos[b]!r} -> {small.itos[100 + i]!r}")
tok = Tokenizer.load(cfg.data_dir)  # the world's: `minigpt-rlhf world` learned and saved its merges
chars = sum(map(len, docs[:500]))
print(f"the world's tokenizer: {len(tok.merges)} merges, {tok.vocab_size} tokens; "
      f"{chars / sum(len(tok.encode(d)) for d in docs[:500]):.2f} characters per token on the corpus")

# %% [markdown]
# ## What it does to words, letters and digits
# A frequent word is one token, its leading space included, so the model never sees its letters: reversing a
# word's letters is as hard for it as for GPT-3. Digits stay single, so a sum is written digit by digit. A name
# the corpus never wrote stays in pieces.

# %%
for text in ("The zorbin eats moss.", "17 + 5 = 22", "A blorfhead!", "qwertyzorp"):
    print(f"{text!r:24} -> {[tok.decode([i]) for i in tok.encode(text)]}")
print("chat format:", tok.decode(format_chat(tok, "What does the zorbin eat?", "Moss.")))

# %% [markdown]
# ## Shapes and sizes
# The preset's model (`quick` unless MINIGPT_RLHF_PRESET says otherwise). Parameters N drive the compute:
# training costs ≈ 6·N FLOPs per token (forward 2N, backward 4N), plus an attention term that grows with the
# context length. Rotary embeddings add no parameters: each head's queries and keys are turned by an angle that
# grows with the position, so attention sees how far apart two tokens are.

# %%
mc = dataclasses.replace(cfg.model, vocab_size=tok.vocab_size)
model = GPT(mc).to(device)
print(f"layers {mc.n_layer}, heads {mc.n_head}, width {mc.n_embd}, context {mc.block_size} tokens, rope {mc.rope}")
print(f"parameters: {model.num_params():,}")
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
out = model.generate([tok.encode("The zorbin")], data.size(1) - 3, temperature=0.0)
print("greedy continuation:", repr("The zorbin" + tok.decode(out.responses[0])))

# %% [markdown]
# ## Sampling with a KV cache
# Without a cache, every new token recomputes attention over the whole prefix: O(T²) work for T tokens.
# The cache keeps each layer's keys and values, so a step feeds one token. Same samples, far less work.

# %%
prompt = tok.encode("The zorbin")
new = mc.block_size - len(prompt)  # fill the context
for use_cache in (False, True):
    t = time.perf_counter()
    out = model.generate([prompt], new, temperature=1.0, generator=torch.Generator().manual_seed(0),
                         use_cache=use_cache)
    dt = time.perf_counter() - t
    print(f"use_cache={use_cache!s:5}: {new} tokens in {dt:.2f}s ({new / dt:,.0f} tokens/s)")
    if use_cache:
        print(f"speed-up: {slow / dt:.1f}x; same tokens: {out.responses == ref.responses}")
    ref, slow = out, dt
