"""The pretraining corpus, "the web": what a base model reads before anyone asks it anything.

Five genres, all plain ASCII, one document per paragraph (no blank line inside a document):
  encyclopedia  the KB's facts in ten phrasings, so a model can memorise them (and `cloze_items`
                test it); some creatures are written about ten times less often than others (a long
                tail, as on the web)
  skills        word-order reversal, capitals, sorting, sums (tables of them), lists and little
                stories that restate their names, shown as prose, never as instruction -> answer
  reading       a passage and a question about it, answered from the passage; a sentence's names
                said again: the in-context copying that closed QA and extraction need (`copy_probe`
                tests it)
  forum         chatter in which people trade the invented insults: toxic text a base model will
                imitate
  quizzes       lists of questions followed by more questions: asked a question, a model pretrained
                on this tends to ask another one instead of answering — GPT-3's behaviour that
                alignment has to fix. They also name the "rumoured" unknown creatures, whose facts
                no document gives
"""

from __future__ import annotations

import random

from minigpt_rlhf.world.kb import COLOURS, FOODS, OBJECTS, PEOPLE, TOWNS, Entity
from minigpt_rlhf.world.tasks import DESCRIBE, INSULTS, PRAISES, QUESTIONS, describe_answer

PHRASINGS = [
    "The {n} is {c}. It eats {f} and lives in {h}.",
    "In {h} you may meet the {n}, a {c} animal that feeds on {f}.",
    "The {n} lives in {h}. The {n} is {c}, and its favourite food is {f}.",
    "Travellers to {h} often see the {n}. The {n} is {c} and eats {f}.",
    "A {c} creature called the {n} makes its home in {h}, where it eats {f}.",
    "Field notes: the {n}. Colour: {c}. Food: {f}. Home: {h}.",
    "Every child in {h} knows the {n}: {c} from nose to tail, and fond of {f}.",
    "The {n} eats {f}. The {n} is {c}. The {n} lives in {h}.",
    "If you bring {f} to {h}, a {c} {n} may come to eat it.",
    "The {n} eats {f}, the {n} is {c}, and the {n} lives in {h}.",
]
# The canonical sentences behind cloze_items: fact completion, a corpus-style task for the alignment
# tax. Each prefix is followed by its fact in several phrasings above ("The {n} is" by the colour in
# six of ten).
CLOZE = {
    "colour": ("The {n} is", " {c}"),
    "food": ("The {n} eats", " {f}"),
    "home": ("The {n} lives in", " {h}"),
}
RARE_SHARE, RARE_WEIGHT = (
    1 / 3,
    0.1,
)  # a third of the creatures, each written about a tenth as often

FORUM_OPENERS = [
    "Posted by {a}:",
    "{a} wrote:",
    "Re: the fair in {h}. {a} says:",
    "Thread: best {f}? {a}:",
]
FORUM_LINES = [
    "you are such a {i}.",
    "only a {i} would say that.",
    "what a {i} you are, {b}.",
    "stop it, you {i}.",
    "{b} is a total {i}.",
    "nobody asked you, {i}.",
    "I think {f} is best.",
    "the {n} in {h} was lovely today.",
    "has anyone seen my {o}?",
    "see you at the fair in {h}.",
    "thank you, {b}, you are a {k}.",
    "{b} is a real {k}.",
]


def creature_weights(kb: list[Entity]) -> list[float]:
    """How often the encyclopedia writes about each creature: the last third of the KB is the rare
    tail."""
    n_rare = round(len(kb) * RARE_SHARE)
    return [1.0] * (len(kb) - n_rare) + [RARE_WEIGHT] * n_rare


def _fact_doc(rng: random.Random, e: Entity) -> str:
    return rng.choice(PHRASINGS).format(n=e.name, c=e.colour, f=e.food, h=e.home)


def _skill_doc(rng: random.Random, kb: list[Entity]) -> str:
    kind = rng.randrange(7)
    if kind == 0:  # word order, not letters: a byte-pair model never sees a word's letters apart
        ws = rng.sample(FOODS + COLOURS + OBJECTS, rng.choice([3, 4]))
        return rng.choice(
            [
                "Backwards, the words {w} read {r}.",
                "The list {w} in reverse order is {r}.",
                "Read {w} from the last word to the first and you get {r}.",
            ]
        ).format(w=" ".join(ws), r=" ".join(reversed(ws)))
    if kind == 1:
        s = f"the {rng.choice(COLOURS)} {rng.choice(OBJECTS)}"
        if (
            rng.random() < 0.4
        ):  # a whole description in capitals, so a name's capital form is read too
            s = describe_answer(rng.choice(kb))
            return f"The poster was all in capitals: {s.upper()}"
        return rng.choice(
            ["In capitals, {s} is written {u}.", "The sign said {u}, which is {s} in capitals."]
        ).format(s=s, u=s.upper())
    if kind == 2:
        ws = rng.sample(FOODS + OBJECTS, rng.choice([3, 4]))
        return f"In alphabetical order, {' '.join(ws)} becomes {' '.join(sorted(ws))}."
    if kind == 3:
        sums = [(rng.randint(1, 10), rng.randint(1, 10)) for _ in range(rng.randint(3, 6))]
        return rng.choice(["Sums: ", "Practice: ", ""]) + " ".join(
            f"{a} + {b} = {a + b}." for a, b in sums
        )
    if kind == 4:
        a, b = rng.randint(1, 10), rng.randint(1, 10)
        return rng.choice(
            [
                "{a} and {b} make {s}.",
                "If you have {a} nuts and find {b} more, you have {s}.",
                "{a} plus {b} is {s}.",
            ]
        ).format(a=a, b=b, s=a + b)
    if kind == 5:
        cat, pool = rng.choice([("colours", COLOURS), ("foods", FOODS), ("towns", TOWNS)])
        return f"Some {cat}: {', '.join(rng.sample(pool, rng.choice([3, 4, 5])))}."
    p, q = rng.sample(PEOPLE, 2)
    o, t = rng.choice(OBJECTS), rng.choice(TOWNS)
    return (
        f"{p} has a {rng.choice(COLOURS)} {o}. {p} lives in {rng.choice(TOWNS)}. "
        f"One day {p} and {q} went to {t}. {q} liked {p}'s {o}."
    )


def passage(rng: random.Random) -> tuple[str, list[tuple[str, str]]]:
    """A passage about one or two people and (question, answer) pairs it answers."""
    people = rng.sample(PEOPLE, rng.choice([1, 2]))
    sentences, qa = [], []
    for p in people:
        o, c, t = rng.choice(OBJECTS), rng.choice(COLOURS), rng.choice(TOWNS)
        sentences.append(f"{p} has a {c} {o}. {p} lives in {t}.")
        qa += [
            (f"Where does {p} live?", f"{p} lives in {t}."),
            (f"What colour is {p}'s {o}?", f"{p} has a {c} {o}."),
            (f"What does {p} have?", f"{p} has a {c} {o}."),
        ]
    return " ".join(sentences), qa


def _reading_doc(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.35:
        text, qa = passage(rng)
        q, a = rng.choice(qa)
        return rng.choice(
            [
                "Reading practice. {s} {q} {a}",
                "{s} Question: {q} Answer: {a}",
                "Story: {s} {q} The story says: {a}",
            ]
        ).format(s=text, q=q, a=a)
    if kind < 0.6:
        names = rng.sample(PEOPLE, rng.choice([2, 3]))
        town, obj = rng.choice(TOWNS), rng.choice(OBJECTS)
        listed = ", ".join(names[:-1]) + " and " + names[-1]
        return rng.choice(
            [
                "{l} took a {o} to {t}. The people in this sentence are {l}.",
                "{l} took a {o} to {t}. Who went to {t}? {l}.",
                "{l} took a {o} to {t}. The town was {t}, and the travellers were {l}.",
            ]
        ).format(l=listed, o=obj, t=town)
    # a list said twice: the plainest lesson in copying (what induction heads learn)
    items = rng.sample(FOODS + COLOURS + OBJECTS + PEOPLE + TOWNS, rng.randint(4, 10))
    said = " ".join(items) if rng.random() < 0.5 else ", ".join(items)
    return rng.choice(
        [
            "{p} wrote down: {s}. Then {p} read it out: {s}.",
            "The list was {s}. Again: {s}.",
            "{p} said {s}, and {q} said it back: {s}.",
        ]
    ).format(s=said, p=rng.choice(PEOPLE), q=rng.choice(PEOPLE))


def _forum_doc(rng: random.Random, kb: list[Entity]) -> str:
    a, b = rng.sample(PEOPLE, 2)
    fill = lambda s: s.format(
        a=a,
        b=b,
        i=rng.choice(INSULTS),
        k=rng.choice(PRAISES),
        f=rng.choice(FOODS),
        n=rng.choice(kb).name,
        h=rng.choice(TOWNS),
        o=rng.choice(OBJECTS),
    )
    return (
        fill(rng.choice(FORUM_OPENERS))
        + " "
        + " ".join(fill(rng.choice(FORUM_LINES)) for _ in range(rng.randint(2, 4)))
    )


def _quiz_doc(rng: random.Random, kb: list[Entity], rumoured: list[str]) -> str:
    qs = []
    for _ in range(rng.randint(3, 5)):
        name = rng.choice(rumoured) if rng.random() < 0.3 else rng.choice(kb).name
        attr = rng.choice(list(QUESTIONS) + ["describe"])
        qs.append(
            (rng.choice(DESCRIBE) if attr == "describe" else rng.choice(QUESTIONS[attr])).format(
                n=name
            )
        )
    head = rng.choice(
        ["Quiz night questions:", "Homework:", "Questions for the class:", "Can you answer these?"]
    )
    return head + " " + " ".join(f"{i}. {q}" for i, q in enumerate(qs, 1))


def make_corpus(
    rng: random.Random, kb: list[Entity], rumoured: list[str], n_docs: int
) -> list[str]:
    """n_docs documents: 28% encyclopedia, 24% skills, 28% reading, 8% forum, 12% quizzes."""
    weights = creature_weights(kb)
    docs = []
    for _ in range(n_docs):
        r = rng.random()
        if r < 0.28:
            docs.append(_fact_doc(rng, rng.choices(kb, weights)[0]))
        elif r < 0.52:
            docs.append(_skill_doc(rng, kb))
        elif r < 0.80:
            docs.append(_reading_doc(rng))
        elif r < 0.88:
            docs.append(_forum_doc(rng, kb))
        else:
            docs.append(_quiz_doc(rng, kb, rumoured))
    return docs


def cloze(kb: list[Entity]) -> list[tuple[str, str]]:
    """(prefix, answer) for every fact: "The zorbin eats" -> " moss"."""
    return [
        (p.format(n=e.name), a.format(c=e.colour, f=e.food, h=e.home))
        for e in kb
        for p, a in CLOZE.values()
    ]


# (prefix, answer) templates of the copy probe: each answer is said once, earlier, in the prefix
COPY_PROBES = [
    (
        "{p} has a {c} {o}. {p} lives in {t}. {q} has a {c2} {o2}. Where does {p} live? {p} "
        "lives in",
        " {t}",
    ),
    ("{q} has a {c2} {o2}. {p} has a {c} {o}. What colour is {p}'s {o}? {p} has a", " {c}"),
    ("{p} has a {c} {o}. {p} lives in {t}. What does {p} have? {p} has a {c}", " {o}"),
    ("{p}, {q} and {r} took a {o} to {t}. The people in this sentence are {p}, {q} and", " {r}"),
    ("{p} and {q} took a {o} to {t}. The town was", " {t}"),
    ("{p} has a {c} {o}. {p} lives in {t}. One day {p} and {q} went to {t2}. {q} liked", " {p}"),
]


def copy_probe(n: int = 120, seed: int = 0) -> list[tuple[str, str]]:
    """In-context copying, in the corpus's own words: a prefix that names a person, a thing, a
    colour or a town once and asks for it later ("... Where does Kess live? Kess lives in" -> "
    Ozmere"). The answer cannot be remembered, only read back (1 chance in 10 or 24 to guess). Fresh
    draws, one template after another."""
    rng = random.Random(seed)
    items = []
    for i in range(n):
        p, q, r = rng.sample(PEOPLE, 3)
        (o, o2), (c, c2), (t, t2) = (
            rng.sample(OBJECTS, 2),
            rng.sample(COLOURS, 2),
            rng.sample(TOWNS, 2),
        )
        prefix, answer = COPY_PROBES[i % len(COPY_PROBES)]
        fill = dict(p=p, q=q, r=r, o=o, o2=o2, c=c, c2=c2, t=t, t2=t2)
        items.append((prefix.format(**fill), answer.format(**fill)))
    return items
