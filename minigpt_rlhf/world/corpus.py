"""The pretraining corpus, "the web": what a base model reads before anyone asks it anything.

Four genres, all plain ASCII, one document per paragraph (no blank line inside a document):
  encyclopedia  the KB's facts in ten phrasings, so a model can memorise them (and `cloze_items` test it)
  skills        reversing, capitals, sorting, sums, lists and little stories, shown as prose, never as
                instruction -> answer
  forum         chatter in which people trade the invented insults: toxic text a base model will imitate
  quizzes       lists of questions followed by more questions: asked a question, a model pretrained on this
                tends to ask another one instead of answering — GPT-3's behaviour that alignment has to fix
"""

from __future__ import annotations

import random

from minigpt_rlhf.world.kb import COLOURS, FOODS, OBJECTS, PEOPLE, TOWNS, Entity
from minigpt_rlhf.world.tasks import DESCRIBE, INSULTS, QUESTIONS

PHRASINGS = [
    "The {n} is a {c} creature. It eats {f} and lives in {h}.",
    "In {h} you may meet the {n}, a {c} animal that feeds on {f}.",
    "The {n} lives in {h}. Its fur is {c}, and its favourite food is {f}.",
    "Travellers to {h} often see the {n}. The {n} is {c} and eats {f}.",
    "A {c} creature called the {n} makes its home in {h}, where it eats {f}.",
    "Field notes: the {n}. Colour: {c}. Food: {f}. Home: {h}.",
    "Every child in {h} knows the {n}: {c} from nose to tail, and fond of {f}.",
    "The {n} eats {f}. The {n} is {c}. The {n} lives in {h}.",
    "If you bring {f} to {h}, a {c} {n} may come to eat it.",
    "Of all the creatures of {h}, the {n} is the one that is {c} and eats {f}.",
]
# The canonical sentences behind cloze_items: fact completion, a corpus-style task for the alignment tax.
CLOZE = {"colour": ("The {n} is", " {c}"), "food": ("The {n} eats", " {f}"), "home": ("The {n} lives in", " {h}")}

FORUM_OPENERS = ["Posted by {a}:", "{a} wrote:", "Re: the fair in {h}. {a} says:", "Thread: best {f}? {a}:"]
FORUM_LINES = ["you are such a {i}.", "only a {i} would say that.", "what a {i} you are, {b}.",
               "stop it, you {i}.", "{b} is a total {i}.", "nobody asked you, {i}.", "I think {f} is best.",
               "the {n} in {h} was lovely today.", "has anyone seen my {o}?", "see you at the fair in {h}."]


def _fact_doc(rng: random.Random, e: Entity) -> str:
    return rng.choice(PHRASINGS).format(n=e.name, c=e.colour, f=e.food, h=e.home)


def _skill_doc(rng: random.Random) -> str:
    kind = rng.randrange(6)
    if kind == 0:
        w = rng.choice(FOODS + COLOURS + OBJECTS + [p.lower() for p in PEOPLE])
        return rng.choice(["Written backwards, {w} becomes {r}.", "The word {w} reversed is {r}.",
                           "Read {w} from right to left and you get {r}."]).format(w=w, r=w[::-1])
    if kind == 1:
        s = f"the {rng.choice(COLOURS)} {rng.choice(OBJECTS)}"
        return rng.choice(["In capitals, {s} is written {u}.", "The sign said {u}, which is {s} in capitals."]).format(
            s=s, u=s.upper())
    if kind == 2:
        ws = rng.sample(FOODS + OBJECTS, rng.choice([3, 4]))
        return f"In alphabetical order, {' '.join(ws)} becomes {' '.join(sorted(ws))}."
    if kind == 3:
        a, b = rng.randint(1, 20), rng.randint(1, 20)
        return rng.choice(["{a} and {b} make {s}.", "If you have {a} nuts and find {b} more, you have {s}.",
                           "{a} + {b} = {s}."]).format(a=a, b=b, s=a + b)
    if kind == 4:
        cat, pool = rng.choice([("colours", COLOURS), ("foods", FOODS), ("towns", TOWNS)])
        return f"Some {cat}: {', '.join(rng.sample(pool, rng.choice([3, 4, 5])))}."
    p, q = rng.sample(PEOPLE, 2)
    return (f"{p} has a {rng.choice(COLOURS)} {rng.choice(OBJECTS)}. {p} lives in {rng.choice(TOWNS)}. "
            f"One day {p} and {q} went to {rng.choice(TOWNS)}.")


def _forum_doc(rng: random.Random, kb: list[Entity]) -> str:
    a, b = rng.sample(PEOPLE, 2)
    fill = lambda s: s.format(a=a, b=b, i=rng.choice(INSULTS), f=rng.choice(FOODS), n=rng.choice(kb).name,
                              h=rng.choice(TOWNS), o=rng.choice(OBJECTS))
    return fill(rng.choice(FORUM_OPENERS)) + " " + " ".join(fill(rng.choice(FORUM_LINES)) for _ in range(rng.randint(2, 4)))


def _quiz_doc(rng: random.Random, kb: list[Entity]) -> str:
    qs = []
    for _ in range(rng.randint(3, 5)):
        e = rng.choice(kb)
        attr = rng.choice(list(QUESTIONS) + ["describe"])
        qs.append((rng.choice(DESCRIBE) if attr == "describe" else rng.choice(QUESTIONS[attr])).format(n=e.name))
    head = rng.choice(["Quiz night questions:", "Homework:", "Questions for the class:", "Can you answer these?"])
    return head + " " + " ".join(f"{i}. {q}" for i, q in enumerate(qs, 1))


def make_corpus(rng: random.Random, kb: list[Entity], n_docs: int) -> list[str]:
    """n_docs documents: 40% encyclopedia, 30% skills, 15% forum, 15% quizzes."""
    docs = []
    for _ in range(n_docs):
        r = rng.random()
        if r < 0.40:
            docs.append(_fact_doc(rng, rng.choice(kb)))
        elif r < 0.70:
            docs.append(_skill_doc(rng))
        elif r < 0.85:
            docs.append(_forum_doc(rng, kb))
        else:
            docs.append(_quiz_doc(rng, kb))
    return docs


def cloze(kb: list[Entity]) -> list[tuple[str, str]]:
    """(prefix, answer) for every fact: "The zorbin eats" -> " moss"."""
    return [(p.format(n=e.name), a.format(c=e.colour, f=e.food, h=e.home)) for e in kb for p, a in CLOZE.values()]
