"""Best-of-n (rejection sampling against the reward model): draw n responses from the policy, keep
the one the RM scores highest. No training at all, and yet a point on the same curve as PPO
(Stiennon et al., 2020; Gao et al., 2022): its distribution's KL to the policy it samples from has a
closed form,

    KL(π_bon ‖ π) = log n − (n − 1) / n   nats

(exact for a continuous reward; for a discrete one an upper bound), so best-of-n and PPO can share
one x axis, d = sqrt(KL). Choosing by the gold judge instead of the RM gives the ceiling any method
could reach from the same samples (the oracle).

Measuring best-of-n for every n ≤ N from one set of N samples per prompt: the expected score of the
best of a random n-subset has an unbiased estimator over the N samples sorted by the RM (ascending,
rank i = 1..N): the i-th is the subset's argmax with probability C(i−1, n−1) / C(N, n)
(`expected_best`).
"""

from __future__ import annotations

import math

import torch

from minigpt_rlhf.model import GPT, RewardModel
from minigpt_rlhf.sampling import Answer, prompt_ids, sample
from minigpt_rlhf.tokenizer import Tokenizer


def kl_best_of_n(n: int) -> float:
    """KL(π_bon ‖ π) = log n − (n − 1)/n nats: 0 for n = 1, growing like log n."""
    return math.log(n) - (n - 1) / n


def pick(scores: torch.Tensor) -> torch.Tensor:
    """The chosen response of each prompt: argmax over the last dimension of scores (P, n)."""
    return scores.argmax(-1)


def expected_best(scores: torch.Tensor, values: torch.Tensor, n: int) -> torch.Tensor:
    """E[value of the highest-scoring of n responses drawn without replacement from the N given],
    per prompt: scores, values (P, N) -> (P,). With n = N it is the value of the argmax; with n = 1
    the plain mean."""
    N = scores.size(-1)
    order = scores.argsort(-1)  # ascending: rank i = 1..N
    i = torch.arange(1, N + 1, dtype=torch.float64)
    weights = torch.tensor(
        [math.comb(int(k) - 1, n - 1) for k in i], dtype=torch.float64
    ) / math.comb(N, n)
    return (values.double().gather(-1, order) * weights).sum(-1)


@torch.no_grad()
def best_of_n(
    model: GPT,
    rm: RewardModel,
    tok: Tokenizer,
    texts: list[str],
    n: int,
    max_new_tokens: int,
    temperature: float = 1.0,
    generator=None,
    batch_size: int = 64,
) -> tuple[list[Answer], torch.Tensor, list[Answer]]:
    """For each prompt text, n chat answers sampled from model and scored by r_θ: (the chosen answer
    per prompt, the (P, n) scores, all P·n answers in prompt order). An unfinished answer (no
    <|end|>) is scored -inf: like PPO's truncation penalty, a fragment never wins."""
    ids = [prompt_ids(tok, t) for t in texts for _ in range(n)]
    g = sample(model, tok, ids, max_new_tokens, temperature, batch_size, generator)
    scores = (
        rm.score(ids, g.responses)
        .float()
        .masked_fill(~torch.tensor(g.finished), float("-inf"))
        .view(len(texts), n)
    )
    answers = [Answer(tok.decode(y, skip_special=True), f) for y, f in zip(g.responses, g.finished)]
    return [answers[p * n + k] for p, k in enumerate(pick(scores).tolist())], scores, answers
