"""The knowledge base: invented creatures with a colour, a food and a home town, plus creatures that
do not exist in it ("unknown"). Invented names keep real-world knowledge out: everything a model
knows about a zorbin it read in our corpus.

Size: DESIGN.md measured a 0.8M-parameter character model learning ~150 facts in ~9 CPU minutes.
With byte pairs a name is one token and a fact a few, and the quick base model completed all 108
facts of a 36-creature KB (issue 16, run A): no headroom left for open QA. So the KB holds N_KNOWN
creatures x 3 attributes, a third of them a rare tail (corpus.RARE_WEIGHT), sized so that fact
completion stays high but not perfect.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

COLOURS = ["red", "blue", "green", "yellow", "purple", "orange", "grey", "pink", "white", "black"]
FOODS = [
    "moss",
    "berries",
    "seeds",
    "honey",
    "fish",
    "leaves",
    "mushrooms",
    "nuts",
    "roots",
    "clover",
]
TOWNS = [
    "Glimmerdale",
    "Tull",
    "Brackenford",
    "Ozmere",
    "Pimbly",
    "Quarrow",
    "Fennick",
    "Drumlin",
    "Wispwater",
    "Harrowgate",
]
ATTRIBUTES = {"colour": COLOURS, "food": FOODS, "home": TOWNS}

# People for the passages of closed QA and extraction (never KB entities). Twenty-four of them, so
# that a passage's person cannot be guessed from a handful of usual suspects: the model has to copy
# it from the prompt.
PEOPLE = [
    "Mira",
    "Tobb",
    "Anka",
    "Jory",
    "Wren",
    "Pell",
    "Suki",
    "Dov",
    "Lune",
    "Kess",
    "Orrin",
    "Tamsin",
    "Bram",
    "Cleo",
    "Fenn",
    "Hale",
    "Ivo",
    "Juna",
    "Lark",
    "Nim",
    "Oska",
    "Rue",
    "Sten",
    "Vell",
]
OBJECTS = ["kite", "hat", "boat", "lamp", "drum", "cart", "scarf", "bell", "kettle", "flute"]

_ONSETS = [
    "z",
    "gl",
    "qu",
    "m",
    "fl",
    "sn",
    "br",
    "tr",
    "v",
    "dr",
    "pl",
    "sk",
    "w",
    "gr",
    "bl",
    "h",
    "k",
    "p",
]
_VOWELS = ["a", "e", "i", "o", "u", "oo", "ee"]
_CODAS = [
    "rbin",
    "zzik",
    "mkin",
    "pplor",
    "ndix",
    "fflet",
    "rgon",
    "skel",
    "vvet",
    "bbix",
    "nquo",
    "rrith",
]


@dataclass(frozen=True)
class Entity:
    name: str  # e.g. "zorbin"; prose writes "the zorbin"
    colour: str
    food: str
    home: str

    def value(self, attribute: str) -> str:
        return getattr(self, attribute)


def make_names(rng: random.Random, n: int) -> list[str]:
    names: set[str] = set()
    while len(names) < n:
        names.add(rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS))
    return sorted(names)


N_KNOWN, N_UNKNOWN = 72, 24


def make_kb(
    rng: random.Random, n_known: int = N_KNOWN, n_unknown: int = N_UNKNOWN
) -> tuple[list[Entity], list[str]]:
    """Known entities with attributes, and names of unknown entities (no fact of theirs is ever
    written)."""
    names = make_names(rng, n_known + n_unknown)
    rng.shuffle(names)
    known = [
        Entity(name, rng.choice(COLOURS), rng.choice(FOODS), rng.choice(TOWNS))
        for name in names[:n_known]
    ]
    return known, sorted(names[n_known:])


def rumoured(unknown: list[str]) -> list[str]:
    """Half of the unknown creatures are named in the corpus's quiz questions ("What does the vorbix
    eat?") but no document ever says what they are like. With byte pairs a name the corpus never
    wrote stays in pieces, which gives an unknown creature away by its spelling; a rumoured one is a
    token like any known name, so the model has to know whether it knows a fact, not whether it
    knows a word (the hallucination problem proper)."""
    return unknown[::2]
