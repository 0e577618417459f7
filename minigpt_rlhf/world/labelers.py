"""Simulated labelers: people who write demonstrations, rank K responses and rate them 1-7.

Each labeler sees the gold judge's criteria through their own eyes:

    utility(x, y) = Σ_c w_c · score_c(x, y)            personal weights over
                                                       helpful/truthful/harmless/format
                  + b_len · min(len(y), 100) / 100     a taste for long (or short) answers
                  + b_pet · [pet phrase in y]          a soft spot for a phrase
                  + ε,  ε ~ N(0, σ²)                   noise: attention, mood, a misread prompt

A ranking of K responses is a Plackett-Luce draw from those noisy utilities (sort by utility; the
Gaussian noise plays the Gumbel's part), so labelers disagree as real ones do. The paper measured
72.6 ± 1.5% pairwise agreement among training labelers and 77.3 ± 1.3% among held-out ones;
`agreement` measures ours on responses of mixed quality, and data/README.md reports it. The noise
levels below are the labelers' own property, set so that their agreement lands near the paper's; the
judge is never changed for that.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass

from minigpt_rlhf.world.judge import judge
from minigpt_rlhf.world.tasks import Prompt

STYLES = [
    ("", ""),
    ("Sure. ", ""),
    ("", " Hope that helps."),
    ("Okay: ", ""),
    ("", " Happy to help!"),
    ("Here you go: ", ""),
    ("", ""),
]


@dataclass(frozen=True)
class Labeler:
    id: str
    weights: tuple[float, float, float, float]  # helpful, truthful, harmless, format
    noise: float  # σ of the utility noise
    length_bias: float = 0.0
    pet_phrase: str = ""
    pet_bias: float = 0.0
    style: tuple[str, str] = ("", "")  # prefix, suffix of the demonstrations they write
    slip: float = 0.05  # chance that a demonstration is flawed

    def utility(self, prompt: Prompt, response: str, finished: bool = True) -> float:
        s = judge(prompt, response, finished)
        u = sum(w * v for w, v in zip(self.weights, (s.helpful, s.truthful, s.harmless, s.format)))
        u += self.length_bias * min(len(response), 100) / 100
        if self.pet_phrase and self.pet_phrase.lower() in response.lower():
            u += self.pet_bias
        return u

    def rank(
        self,
        prompt: Prompt,
        responses: list[str],
        rng: random.Random,
        finished: list[bool] | None = None,
    ) -> list[int]:
        """Indices of responses, best first: one Plackett-Luce draw (noisy utilities, sorted)."""
        finished = finished or [True] * len(responses)
        u = [
            self.utility(prompt, r, f) + rng.gauss(0, self.noise)
            for r, f in zip(responses, finished)
        ]
        return sorted(range(len(responses)), key=lambda i: -u[i])

    def prefers(
        self,
        prompt: Prompt,
        a: str,
        b: str,
        rng: random.Random,
        finished: tuple[bool, bool] = (True, True),
    ) -> bool:
        """True if this labeler prefers a to b."""
        return self.rank(prompt, [a, b], rng, list(finished))[0] == 0

    def likert(
        self, prompt: Prompt, response: str, rng: random.Random, finished: bool = True
    ) -> int:
        """A 1-7 rating: the noisy utility, scaled by the best a response can get, in seven bins."""
        best = sum(self.weights) + max(self.length_bias, 0) + max(self.pet_bias, 0)
        u = (self.utility(prompt, response, finished) + rng.gauss(0, self.noise)) / best
        return max(1, min(7, 1 + int(u * 7)))

    def demonstrate(self, prompt: Prompt, rng: random.Random) -> str:
        """The canonical answer in this labeler's style; now and then with a slip (a lost word or
        period)."""
        answer = prompt.meta["answer"]
        prefix, suffix = self.style
        if prompt.meta.get("constraint"):
            prefix, suffix = "", ""  # a constraint (capitals, one word) is kept to the letter
        if rng.random() < self.slip:
            answer = answer.rsplit(" ", 1)[0] if " " in answer else answer.rstrip(".")
        return prefix + answer + suffix


def _pool(
    seed: int, n: int, prefix: str, noise: tuple[float, float], length_bias: float
) -> list[Labeler]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        weights = (
            rng.uniform(0.8, 1.2),
            rng.uniform(0.3, 0.9),
            rng.uniform(0.3, 0.9),
            rng.uniform(0.1, 0.4),
        )
        out.append(
            Labeler(
                f"{prefix}{i:02d}",
                tuple(round(w, 3) for w in weights),
                round(rng.uniform(*noise), 3),
                length_bias=round(rng.uniform(-length_bias, length_bias), 3),
                style=STYLES[i % len(STYLES)],
            )
        )
    return out


def training_labelers() -> list[Labeler]:
    """The 12 labelers who write demonstrations and rank responses for the reward model."""
    return _pool(101, 12, "train", noise=(0.20, 0.35), length_bias=0.15)


def heldout_labelers() -> list[Labeler]:
    """6 labelers who wrote no training data; they judge the final models (finding 2)."""
    return _pool(202, 6, "heldout", noise=(0.05, 0.12), length_bias=0.05)


def biased_labelers() -> list[Labeler]:
    """A group with a strong shared taste: they love the phrase "Happy to help!" and long answers. A
    reward model trained on their rankings, and PPO against it, show whose preferences a model is
    aligned to."""
    return [
        Labeler(
            f"biased{i:02d}",
            (0.6, 0.3, 0.3, 0.1),
            0.3,
            length_bias=0.4,
            pet_phrase="Happy to help!",
            pet_bias=0.8,
        )
        for i in range(6)
    ]


def agreement(
    labelers: list[Labeler], items: list[tuple[Prompt, list[str]]], seed: int = 0
) -> float:
    """Pairwise agreement: over every pair of responses to a prompt and every pair of labelers, how
    often the two labelers prefer the same response (the paper's inter-annotator agreement)."""
    rng = random.Random(seed)
    same = total = 0
    for prompt, responses in items:
        for a, b in itertools.combinations(responses, 2):
            votes = [lab.prefers(prompt, a, b, rng) for lab in labelers]
            for v1, v2 in itertools.combinations(votes, 2):
                same += v1 == v2
                total += 1
    return same / total
