"""The GPT, written here: token embeddings, rotary position embeddings (or GPT-2's learned table),
pre-LayerNorm blocks of causal self-attention and a GELU MLP, weight tying, GPT-2 initialisation,
and batched KV-cache sampling that returns per-token log-probs; and the two scalar-head models built
on its trunk: the reward model r_θ (step 2) and PPO's value model V (step 3).

Shapes: B batch, T time (tokens), C = n_embd channels, H heads, D = C / H head size.

Padding convention: prompts of different lengths are LEFT-padded so that every sequence's newest
token sits in the last column (one KV-cache step serves the whole batch). An attention mask hides
the pads and position ids count from each sequence's first real token, so a padded sequence gives
the same logits as the same sequence alone (a test checks this).
"""

from __future__ import annotations

import contextlib
import copy
import math
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class GPTConfig:
    """The GPT's shape (the `model` section of the run's config)."""

    vocab_size: int = 0  # set from the tokenizer when a model is built
    # tokens of context: the longest few-shot prompt (96 byte-pair tokens) + a response (32)
    block_size: int = 128
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    bias: bool = True
    # rotary position embeddings (Su et al., 2021; as LLaMA) instead of GPT-2's learned table:
    # measured on quick, in-context copying after pretraining 80% with them, 42-62% without
    rope: bool = True


def fp32_linear(layer: nn.Linear, x):
    """layer(x) in float32 even under bf16 autocast: for the outputs that are read as numbers, the
    logits and the scalar heads. A bf16 logit keeps 8 bits of mantissa (a logit of 10 is off by up
    to 0.04); measured on quick (docs/experiments/precision.py, seed 1337), pretraining with bf16
    logits ended at a held-out loss of 1.056, with these float32 ones at 1.037, as in plain float32
    (1.037), for 0.011 s more a step (bf16_step.py)."""
    with torch.autocast(x.device.type, enabled=False):
        return layer(x.float())


def rope_tables(pos, head_dim: int):
    """cos, sin (B,1,T,D/2) of rotary embeddings for position ids pos (B,T): channel pair i of a
    head turns by angle pos · 10000^(−2i/D), so q·k depends on the distance between two positions,
    not on where they are."""
    inv = 1.0 / (10000 ** (torch.arange(0, head_dim, 2, device=pos.device).float() / head_dim))
    ang = pos[:, None, :, None].float() * inv
    return ang.cos(), ang.sin()


def rotate(x, cos, sin):
    """Rotate channel pairs (i, i + D/2) of q or k by their position's angles (the "rotate half"
    layout)."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], -1)


class CausalSelfAttention(nn.Module):
    """softmax(Q Kᵀ / √D + mask) V over H heads, with an optional KV cache for incremental
    decoding."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        assert cfg.n_embd % cfg.n_head == 0, "n_embd must be divisible by n_head"
        assert not cfg.rope or cfg.n_embd // cfg.n_head % 2 == 0, "rope needs an even head size"
        self.n_head = cfg.n_head
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=cfg.bias)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.proj.residual = True  # scaled init, see GPT._init_weights
        self.dropout = cfg.dropout
        self.resid_drop = nn.Dropout(cfg.dropout)
        self.use_sdpa = True  # False: the plain-math reference path below (tests compare the two)

    def forward(self, x, mask=None, cache=None, rope=None):
        """x (B,T,C). mask: bool (B,1,T,S) True = may attend, or None for plain causal attention.
        cache: a LayerCache to read past keys/values from and append to, or None."""
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (
            t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v)
        )  # (B,H,T,D)
        if rope is not None:
            q, k = rotate(q, *rope), rotate(k, *rope)
        if cache is not None:
            k, v = cache.append(k, v)  # (B,H,S,D): S = past + T
        drop = self.dropout if self.training else 0.0
        if self.use_sdpa:
            # a single new query (a cached step) may see every key: no mask needed when there are no
            # pads. Under bf16 autocast on a CPU attention stays float32: torch's bf16 attention
            # kernel there took 2.6x as long as the float32 one at head size 32 (forward + backward;
            # docs/experiments/bf16_step.py)
            fp32 = x.device.type == "cpu" and torch.is_autocast_enabled("cpu")
            with torch.autocast("cpu", enabled=False) if fp32 else contextlib.nullcontext():
                if fp32:
                    q, k, v = q.float(), k.float(), v.float()
                y = F.scaled_dot_product_attention(
                    q, k, v, attn_mask=mask, dropout_p=drop, is_causal=mask is None and T > 1
                )
        else:
            att = (q @ k.transpose(-2, -1)) / math.sqrt(k.size(-1))  # (B,H,T,S)
            if mask is None:
                mask = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
            att = att.masked_fill(~mask, float("-inf")).softmax(dim=-1)
            y = F.dropout(att, drop, self.training) @ v
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_drop(self.proj(y))


class MLP(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd, bias=cfg.bias)
        self.proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.proj.residual = True
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x):
        return self.drop(self.proj(F.gelu(self.fc(x))))


class Block(nn.Module):
    """Pre-LayerNorm residual block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.attn = CausalSelfAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.mlp = MLP(cfg)

    def forward(self, x, mask=None, cache=None, rope=None):
        x = x + self.attn(self.ln1(x), mask, cache, rope)
        return x + self.mlp(self.ln2(x))


@dataclass
class LayerCache:
    """Keys and values of one layer for all positions seen so far, preallocated to the final
    length."""

    k: torch.Tensor  # (B,H,S_max,D)
    v: torch.Tensor
    length: int = 0

    def append(self, k, v):
        t = k.size(2)
        self.k[:, :, self.length : self.length + t] = k
        self.v[:, :, self.length : self.length + t] = v
        self.length += t
        return self.k[:, :, : self.length], self.v[:, :, : self.length]


@dataclass
class Generation:
    """What `GPT.generate` returns, one entry per prompt, without padding."""

    responses: list[list[int]]  # sampled tokens, the stop token included when emitted
    logprobs: list[torch.Tensor] = field(
        default_factory=list
    )  # log π(token | prefix), temperature 1, no top-k
    finished: list[bool] = field(default_factory=list)  # True if the stop token was emitted


def left_pad(seqs: list[list[int]], pad_id: int, device=None):
    """Left-pad token lists to one length: returns idx (B,T) and a bool mask (B,T), True on real
    tokens."""
    T = max(len(s) for s in seqs)
    idx = torch.full((len(seqs), T), pad_id, dtype=torch.long)
    real = torch.zeros(len(seqs), T, dtype=torch.bool)
    for i, s in enumerate(seqs):
        idx[i, T - len(s) :] = torch.tensor(s, dtype=torch.long)
        real[i, T - len(s) :] = True
    return idx.to(device), real.to(device)


class GPT(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.config = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.wpe = (
            None if cfg.rope else nn.Embedding(cfg.block_size, cfg.n_embd)
        )  # rope: no position table
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # weight tying (Press & Wolf, 2017), as in GPT-2
        self.apply(self._init_weights)

    def _init_weights(self, m):
        # GPT-2: N(0, 0.02), and residual projections scaled by 1/sqrt(2·n_layer) so that the
        # residual stream's variance does not grow with depth.
        if isinstance(m, nn.Linear):
            std = (
                0.02 / math.sqrt(2 * self.config.n_layer) if getattr(m, "residual", False) else 0.02
            )
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, 0.0, 0.02)

    # ---- sizes -----------------------------------------------------------------------------------
    def num_params(self, non_embedding: bool = True) -> int:
        """Parameters, by default without the position embedding (the token embedding is tied to the
        output layer and does count, as in nanoGPT's convention)."""
        n = sum(p.numel() for p in self.parameters())
        return n - self.wpe.weight.numel() if non_embedding and self.wpe is not None else n

    def flops_per_token(self, seq_len: int | None = None) -> float:
        """Training FLOPs per token (forward + backward): 6·N for the weights (Kaplan et al., 2020)
        plus 6·L·T·C for attention scores and their weighted sum (PaLM, appendix B), T the sequence
        length."""
        c = self.config
        T = seq_len or c.block_size
        return 6 * self.num_params() + 6 * c.n_layer * T * c.n_embd

    # ---- forward ---------------------------------------------------------------------------------
    def _run(self, idx, pos, mask=None, caches=None):
        if self.config.rope:
            x, rope = (
                self.drop(self.wte(idx)),
                rope_tables(pos, self.config.n_embd // self.config.n_head),
            )
        else:
            x, rope = self.drop(self.wte(idx) + self.wpe(pos)), None
        for i, block in enumerate(self.blocks):
            x = block(x, mask, None if caches is None else caches[i], rope)
        return self.ln_f(x)

    def hidden_states(self, idx, real=None):
        """Final (LayerNormed) hidden states (B,T,C). real: bool (B,T) marking non-pad tokens of a
        left-padded batch (see left_pad); None for unpadded input."""
        if idx.size(1) > self.config.block_size:
            raise ValueError(
                f"sequence of {idx.size(1)} tokens exceeds block_size {self.config.block_size}"
            )
        if real is None:
            pos = torch.arange(idx.size(1), device=idx.device).expand_as(idx)
            return self._run(idx, pos)
        pos = (real.long().cumsum(1) - 1).clamp(min=0)
        T = idx.size(1)
        causal = torch.ones(T, T, dtype=torch.bool, device=idx.device).tril()
        # a pad query row would see no key at all (NaN); let it see itself, its output is ignored
        # anyway
        mask = (causal & real[:, None, :]) | torch.eye(T, dtype=torch.bool, device=idx.device)
        return self._run(idx, pos, mask[:, None])

    def forward(self, idx, targets=None, loss_mask=None, real=None):
        """Logits (B,T,V), and the mean cross-entropy if targets are given. Positions whose target
        is -100 or whose loss_mask is 0 are left out of the mean (SFT masks the prompt this way)."""
        logits = fp32_linear(self.lm_head, self.hidden_states(idx, real))
        if targets is None:
            return logits, None
        if loss_mask is not None:
            targets = targets.masked_fill(loss_mask == 0, -100)
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100)
        return logits, loss

    def token_logprobs(self, idx, real=None):
        """log π(idx[:, t+1] | idx[:, :t+1]) for every t: (B, T-1). What PPO scores sequences
        with."""
        logits = self(idx, real=real)[0][:, :-1]
        return torch.gather(logits.log_softmax(-1), 2, idx[:, 1:, None]).squeeze(2)

    # ---- sampling --------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(
        self,
        prompts,
        max_new_tokens,
        temperature=1.0,
        top_k=None,
        stop_id=None,
        pad_id=0,
        generator=None,
        use_cache=True,
        callback=None,
    ) -> Generation:
        """Sample continuations of a batch of token lists with a KV cache.

        Each step feeds only the newest token and attends to cached keys/values: O(T) work per token
        instead of O(T²) for recomputing the prefix. Sampling uses softmax(logits / temperature)
        restricted to the top_k tokens; the returned log-probs are of the model itself (temperature
        1, no top-k), the quantity PPO's ratio and KL need. A sequence stops at stop_id; sampling
        ends when all have stopped. use_cache=False recomputes the whole prefix at every step (the
        slow reference the cache must equal). callback(tokens) is called with each step's sampled
        tokens (B,), e.g. to stream them to a terminal.
        """
        if not prompts or any(len(p) == 0 for p in prompts):
            raise ValueError("generate needs at least one non-empty prompt")
        P = max(len(p) for p in prompts)
        if P + max_new_tokens > self.config.block_size:
            raise ValueError(
                f"prompt ({P} tokens) + max_new_tokens ({max_new_tokens}) exceeds block_size "
                f"{self.config.block_size}: shorten the prompt or ask for fewer tokens"
            )
        dev = self.wte.weight.device
        was_training = self.training
        self.eval()
        B, S = len(prompts), P + max_new_tokens
        idx, real = left_pad(prompts, pad_id, dev)
        c = self.config
        shape = (B, c.n_head, S, c.n_embd // c.n_head)
        caches = [
            LayerCache(
                torch.empty(shape, device=dev, dtype=self.wte.weight.dtype),
                torch.empty(shape, device=dev, dtype=self.wte.weight.dtype),
            )
            for _ in self.blocks
        ]
        keys_real = torch.ones(B, S, dtype=torch.bool, device=dev)
        keys_real[:, :P] = real
        pos = (real.long().cumsum(1) - 1).clamp(min=0)
        causal = torch.ones(P, P, dtype=torch.bool, device=dev).tril()
        mask = ((causal & real[:, None, :]) | torch.eye(P, dtype=torch.bool, device=dev))[:, None]
        pad_free = bool(
            real.all()
        )  # equal-length prompts: plain causal attention, no mask per step
        if pad_free:
            mask = None
        h = self._run(idx, pos, mask, caches if use_cache else None)[:, -1]
        seq = torch.cat(
            [idx, torch.full((B, max_new_tokens), pad_id, dtype=torch.long, device=dev)], 1
        )
        next_pos = real.sum(1)
        out = torch.full((B, max_new_tokens), pad_id, dtype=torch.long, device=dev)
        logps = torch.zeros(B, max_new_tokens, device=dev)
        done = torch.zeros(B, dtype=torch.bool, device=dev)
        n = 0
        for t in range(max_new_tokens):
            logits = fp32_linear(self.lm_head, h)
            logp = logits.log_softmax(-1)
            scaled = logits / max(temperature, 1e-6)
            if top_k is not None and top_k < scaled.size(-1):
                kth = scaled.topk(top_k, dim=-1).values[:, -1:]
                scaled = scaled.masked_fill(scaled < kth, float("-inf"))
            if temperature <= 0:
                tok = scaled.argmax(-1)
            else:
                tok = torch.multinomial(scaled.softmax(-1), 1, generator=generator).squeeze(1)
            tok = tok.masked_fill(done, pad_id)
            out[:, t] = tok
            if callback is not None:
                callback(tok)
            logps[:, t] = logp.gather(1, tok[:, None]).squeeze(1)
            n = t + 1
            if stop_id is not None:
                done |= tok == stop_id
            if t == max_new_tokens - 1 or (stop_id is not None and bool(done.all())):
                break
            # one cached step: the new token attends to every real key so far (pads of done rows are
            # ignored)
            keys_real[:, P + t] = True
            seq[:, P + t] = tok
            if use_cache:
                step_mask = None if pad_free else keys_real[:, None, None, : P + t + 1]
                h = self._run(tok[:, None], next_pos[:, None] + t, step_mask, caches)
            else:
                h = self.hidden_states(seq[:, : P + t + 1], keys_real[:, : P + t + 1])
            h = h[:, -1]
        if was_training:
            self.train()
        gen = Generation(responses=[], logprobs=[], finished=[])
        out, logps = out[:, :n].cpu(), logps[:, :n].cpu()
        for i in range(B):
            row = out[i].tolist()
            end = row.index(stop_id) + 1 if stop_id is not None and stop_id in row else n
            gen.responses.append(row[:end])
            gen.logprobs.append(logps[i, :end])
            gen.finished.append(stop_id is not None and stop_id in row)
        return gen


# ---- scalar heads on the trunk: the reward model (step 2) and the value model (step 3) -----------
class RewardModel(nn.Module):
    """r_θ(x, y): the GPT trunk's final hidden state at the last token, through Linear(n_embd, 1);
    the unembedding is not used.

    Batches are left-padded (`left_pad`), so the last column holds every sequence's last real token:
    the response's <|end|> when it ended, the state that has read the whole prompt and response. The
    head's bias gets no gradient (the ranking loss cannot see a constant); the reward stage sets it
    so that the labelers' demonstrations score 0 on average. pad_id is the trunk's tokenizer's."""

    def __init__(self, trunk: GPT, pad_id: int):
        super().__init__()
        self.trunk, self.pad_id = trunk, pad_id
        self.head = nn.Linear(trunk.config.n_embd, 1)
        nn.init.zeros_(
            self.head.weight
        )  # r = 0 for everything at the start: the loss starts at log 2
        nn.init.zeros_(self.head.bias)
        self.head.bias.requires_grad_(False)

    def forward(self, idx, real=None) -> torch.Tensor:
        """Rewards (B,) of left-padded token sequences idx (B,T); real marks the non-pad tokens."""
        return fp32_linear(self.head, self.trunk.hidden_states(idx, real)[:, -1]).squeeze(-1)

    def rewards(self, seqs: list[list[int]], batch: int = 64) -> torch.Tensor:
        """r_θ of whole token sequences (B,), in the given order, computed in batches of similar
        length: a batch pads only to its own longest sequence, far less than one batch of all of
        them would."""
        dev = self.head.weight.device
        order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
        out = [
            self(*left_pad([seqs[i] for i in order[b : b + batch]], self.pad_id, dev))
            for b in range(0, len(seqs), batch)
        ]
        return torch.cat(out)[torch.tensor(order, device=dev).argsort()]

    @torch.no_grad()
    def score_sequences(self, seqs: list[list[int]], batch: int = 64) -> torch.Tensor:
        """r_θ of whole token sequences in eval mode, on the CPU."""
        was_training = self.training
        self.eval()
        out = self.rewards(seqs, batch).cpu()
        self.train(was_training)
        return out

    def score(self, prompts: list[list[int]], responses: list[list[int]]) -> torch.Tensor:
        """r_θ(x, y) for token lists: prompt x (chat format), response y (with <|end|> if it ended).
        (B,) on CPU."""
        return self.score_sequences([p + r for p, r in zip(prompts, responses)])


class ValueModel(nn.Module):
    """V(s_t) at every position: a GPT trunk and a scalar head, like the reward model, which reads
    only the last token. Initialised from the RM (as in the paper), so the baseline starts out
    knowing what scores well."""

    def __init__(self, trunk: GPT, head: nn.Linear):
        super().__init__()
        self.trunk, self.head = trunk, head

    def forward(self, idx, real=None):
        return fp32_linear(self.head, self.trunk.hidden_states(idx, real)).squeeze(-1)

    @classmethod
    def from_reward_model(cls, rm: RewardModel) -> "ValueModel":
        """A trainable copy of the RM's trunk and scalar head (the RM itself stays frozen)."""
        value = cls(copy.deepcopy(rm.trunk), copy.deepcopy(rm.head))
        return value.requires_grad_(True)

    @classmethod
    def from_trunk(cls, trunk: GPT) -> "ValueModel":
        """A trainable copy of a GPT trunk with a zero head (V = 0 everywhere at the start): the
        baseline of a loop whose reward no reward model gives (the gold judge)."""
        head = nn.Linear(trunk.config.n_embd, 1)
        nn.init.zeros_(head.weight)
        nn.init.zeros_(head.bias)
        return cls(copy.deepcopy(trunk), head).requires_grad_(True)
