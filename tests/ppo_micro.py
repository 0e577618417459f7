"""Shared by test_05_ppo.py and test_06_ppo_ptx.py: a micro "SFT" policy and a reward whose optimum is known.

The policy is a micro GPT trained for a few seconds on a mix like its big brother's: "pretraining" text (random
sequences of 64 made-up words) and "demonstrations" (a chat prompt, one of those words, answered with 3-8
random lowercase letters and <|end|>). The known reward is the fraction of the letter "a" in the answer:
about 1/26 for this policy, 1 at the optimum.
"""

import copy
import dataclasses
import functools
import random

import pytest
import torch
import torch.nn as nn

from minigpt_rlhf.config import load_config
from minigpt_rlhf.model import GPT, GPTConfig
from minigpt_rlhf.model import ValueModel
from minigpt_rlhf.ppo import PPOTrainer
from minigpt_rlhf.tokenizer import Tokenizer, format_chat

TOK = Tokenizer()
LETTERS = "abcdefghijklmnopqrstuvwxyz"
A = TOK.encode("a")[0]


def _words(rng, n):
    return ["".join(rng.choice(LETTERS) for _ in range(rng.randint(3, 8))) for _ in range(n)]


WORDS = _words(random.Random(0), 64)
PROMPTS = [format_chat(TOK, w) for w in WORDS]
CORPUS_WINDOW = 32


def corpus_text(seed: int, n_words: int = 200) -> str:
    """A "pretraining" document: n_words random words of the 64."""
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) for _ in range(n_words))


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Micro models gain nothing from a second thread, and on a busy shared CPU two threads wait for each other
    (measured here: a micro PPO run took 19 s on two threads, 4 s on one). Imported by both PPO test files."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@functools.lru_cache(maxsize=1)
def _trained_policy() -> GPT:
    rng = random.Random(1)
    torch.manual_seed(0)
    m = GPT(GPTConfig(vocab_size=TOK.vocab_size, block_size=64, n_layer=2, n_head=2, n_embd=32))
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    for step in range(300):
        docs = [TOK.encode(corpus_text(1000 * step + i, 12))[:40] for i in range(8)]
        seqs = docs + [format_chat(TOK, rng.choice(WORDS), r) for r in _words(rng, 16)]
        x = torch.full((len(seqs), max(map(len, seqs))), TOK.pad_id)
        for i, s in enumerate(seqs):
            x[i, : len(s)] = torch.tensor(s)
        y = x[:, 1:].masked_fill(x[:, 1:] == TOK.pad_id, -100)
        loss = m(x[:, :-1], y)[1]
        opt.zero_grad()
        loss.backward()
        opt.step()
    return m.eval()


def micro_policy() -> GPT:
    """A fresh copy of the micro "SFT" policy (trained once per test session, about 3 s)."""
    return copy.deepcopy(_trained_policy())


def a_fraction(prompts, responses) -> torch.Tensor:
    """The known reward: the fraction of "a" among the response's letters (<|end|> excluded)."""
    return torch.tensor([sum(t == A for t in r[:-1]) / max(len(r) - 1, 1) for r in responses])


def make_trainer(policy=None, reward_fn=a_fraction, ptx_coef=0.0, corpus=None, seed=0, max_new_tokens=16, **overrides):
    """PPO on the micro policy: π^SFT is a frozen copy, V a copy of the trunk with a zero head (V = 0 at start);
    PPO-ptx windows are CORPUS_WINDOW tokens, like the policy's "pretraining" documents."""
    policy = policy or micro_policy()
    pc = dataclasses.replace(load_config("micro").ppo, **overrides)
    value = None
    if pc.baseline == "value":  # GRPO has none
        head = nn.Linear(policy.config.n_embd, 1)
        nn.init.zeros_(head.weight)
        nn.init.zeros_(head.bias)
        value = ValueModel(copy.deepcopy(policy), head)
    return PPOTrainer(policy, copy.deepcopy(policy), value, reward_fn, PROMPTS, pc, TOK, max_new_tokens, ptx_coef,
                      corpus, CORPUS_WINDOW, seed)


def mean_reward(trainer, batches=4) -> float:
    """The known reward of fresh samples from the trainer's current policy."""
    total = 0.0
    for _ in range(batches):
        ro, _ = trainer.rollout()
        total += float(a_fraction(None, ro.responses).mean())
    return total / batches
