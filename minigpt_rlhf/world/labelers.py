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

import dataclasses
import itertools
import random
from dataclasses import dataclass

from minigpt_rlhf.world.judge import judge
from minigpt_rlhf.world.tasks import DECLINE_HARM, Prompt

# The training pool's writing skill, calibrated before any model trained (data/README.md, "Writing
# skill"): held-out labelers prefer the judge's own answer to this pool's demonstration of the same
# prompt about as often as Stiennon et al.'s labelers preferred RLHF summaries to the human-written
# references (61-70%).
CARE = 0.65
CALIBRATION_TARGET = 0.65
CURVE_CARE = (1.0, CARE, 0.3)  # the writing skills of "when does RLHF beat SFT?" (data/README.md)

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
    care: float = 1.0  # writing skill: the chance that a demonstration is complete, not hurried

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
        """The judge's own answer in this labeler's style, or, with chance 1 - care, its hurried
        form (Llama 2 §5.1: SFT inherits "the tail-end of poorly executed annotation")."""
        answer = prompt.meta["answer"]
        if rng.random() >= self.care:
            answer = hurried(prompt, rng) or answer
        prefix, suffix = self.style
        if prompt.meta.get("constraint"):
            prefix, suffix = "", ""  # a constraint (capitals, one word) is kept to the letter
        return prefix + answer + suffix


# ---- hurried demonstrations: what a writer in a hurry leaves out, family by family ---------------
def _sentence(entity: str, facts: dict[str, str], attrs: list[str]) -> str:
    said = {
        "colour": f"is {facts['colour']}",
        "food": f"eats {facts['food']}",
        "home": f"lives in {facts['home'].capitalize()}",
    }
    parts = [said[a] for a in ("colour", "food", "home") if a in attrs]
    return (
        f"The {entity} "
        + (", ".join(parts[:-1]) + " and " if len(parts) > 1 else "")
        + (parts[-1] + ".")
    )


def _swap(items: list[str], rng: random.Random) -> list[str]:
    i = rng.randrange(len(items) - 1)
    return items[:i] + [items[i + 1], items[i]] + items[i + 2 :]


def hurried(prompt: Prompt, rng: random.Random) -> str | None:
    """A demonstration written in a hurry: right as far as it goes, but with a part of the task left
    out. None where the family has no such form (sums, labels, the decline of an unanswerable
    question: short enough to write whole)."""
    m, task = prompt.meta, prompt.meta["task"]
    if task == "describe":  # one or two of the creature's three facts
        if m.get("constraint") == "upper" and rng.random() < 0.5:
            return m["answer"].lower().capitalize()  # forgot the capitals
        kept = rng.sample(["colour", "food", "home"], rng.choice([1, 2]))
        text = _sentence(m["entity"], m["facts"], kept)
        return text.upper() if m.get("constraint") == "upper" else text
    if task == "compose":  # the colours left out, or the second thing
        if len(m["words"]) == 5 and rng.random() < 0.5:
            return m["answer"].split(" and a ")[0] + "."
        return m["answer"].split(" has a ")[0] + " has a " + " and a ".join(m["words"][2::2]) + "."
    if task == "kind":  # the praise without the person, or the person without the praise
        if rng.random() < 0.5:
            return "You are a " + m["answer"].rstrip(".").split(" is a ")[-1] + "."
        return m["answer"].split(" is a ")[0] + " is lovely."
    if task == "open_qa":
        if m.get("constraint") == "one_word":  # a whole sentence past the one-word limit
            return _sentence(m["entity"], m["facts"], [m["attribute"]])
        return m["target"].capitalize() + "."  # the bare fact, not saying whose
    if task == "brainstorm":  # the last item forgotten
        return ", ".join(m["answer"].rstrip(".").split(", ")[:-1]) + "."
    if task == "rewrite":
        target = m["target"].split()
        if m["kind"] == "upper":  # a word left in small letters
            i = rng.randrange(len(target))
            return " ".join(target[:i] + [target[i].lower()] + target[i + 1 :])
        return " ".join(_swap(target, rng))  # two neighbours swapped
    if task == "closed_qa" and m["target"] is not None:  # the bare value, not saying whose
        return m["target"].capitalize() + "."
    if task == "extract" and len(m["targets"]) > 1:  # the last name forgotten
        names = [t.capitalize() for t in m["targets"][:-1]]
        return (", ".join(names[:-1]) + " and " if len(names) > 1 else "") + names[-1] + "."
    if task == "unknown":  # a decline that does not say what about
        return "I don't know."
    if task == "harmful":  # nor whom it spares
        return DECLINE_HARM
    return None


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


def training_labelers(care: float = CARE) -> list[Labeler]:
    """The 12 labelers who write demonstrations and rank responses for the reward model. `care` is
    the pool's writing skill: labeler i writes a complete demonstration with chance care ** e_i, e_i
    in [0.5, 1.5] (some more careful than others; care 1 is a pool of perfect writers, care 0 one
    that always hurries). Their rankings do not depend on it: they recognise a good answer whether
    or not they write one."""
    if not 0.0 <= care <= 1.0:
        raise ValueError(f"writing care {care} is not a chance: give a number in [0, 1]")
    spread = random.Random(303)
    return [
        dataclasses.replace(lab, care=round(care ** spread.uniform(0.5, 1.5), 3))
        for lab in _pool(101, 12, "train", noise=(0.20, 0.35), length_bias=0.15)
    ]


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


def prefer_judge(prompts: list[Prompt], responses: list[str], seed: int = 0) -> float:
    """How often the held-out labelers prefer the judge's own answer (meta["answer"]) to a response
    of the same prompt, a tie counting half: the calibration of the training pool's writing skill
    (CARE), measured on its demonstrations."""
    rng, pool = random.Random(seed), heldout_labelers()
    votes = [
        pool[i % len(pool)].prefers(p, p.meta["answer"], r, rng) if p.meta["answer"] != r else 0.5
        for i, (p, r) in enumerate(zip(prompts, responses))
    ]
    return sum(votes) / len(votes)
