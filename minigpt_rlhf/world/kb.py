"""The knowledge base: invented creatures with a colour, a food and a home town, plus creatures that do not
exist in it ("unknown"). Invented names keep real-world knowledge out: everything a model knows about a
zorbin it read in our corpus.

Size: DESIGN.md measured a 0.8M-parameter character model learning ~150 facts in ~9 CPU minutes; the quick
budget is smaller, so the KB holds 36 creatures x 3 attributes = 108 facts, and the tasks that need no
memorised fact (closed QA, extraction, rewrites, sums) carry most of the instruction-following signal.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

COLOURS = ["red", "blue", "green", "yellow", "purple", "orange", "grey", "pink", "white", "black"]
FOODS = ["moss", "berries", "seeds", "honey", "fish", "leaves", "mushrooms", "nuts", "roots", "clover"]
TOWNS = ["Glimmerdale", "Tull", "Brackenford", "Ozmere", "Pimbly", "Quarrow", "Fennick", "Drumlin", "Wispwater",
         "Harrowgate"]
ATTRIBUTES = {"colour": COLOURS, "food": FOODS, "home": TOWNS}

# People for the passages of closed QA and extraction (never KB entities).
PEOPLE = ["Mira", "Tobb", "Anka", "Jory", "Wren", "Pell", "Suki", "Dov", "Lune", "Kess", "Orrin", "Tamsin"]
OBJECTS = ["kite", "hat", "boat", "lamp", "drum", "cart", "scarf", "bell", "kettle", "flute"]

_ONSETS = ["z", "gl", "qu", "m", "fl", "sn", "br", "tr", "v", "dr", "pl", "sk", "w", "gr", "bl", "h", "k", "p"]
_VOWELS = ["a", "e", "i", "o", "u", "oo", "ee"]
_CODAS = ["rbin", "zzik", "mkin", "pplor", "ndix", "fflet", "rgon", "skel", "vvet", "bbix", "nquo", "rrith"]


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


def make_kb(rng: random.Random, n_known: int = 36, n_unknown: int = 24) -> tuple[list[Entity], list[str]]:
    """Known entities with attributes, and names of unknown entities (never in the corpus)."""
    names = make_names(rng, n_known + n_unknown)
    rng.shuffle(names)
    known = [Entity(name, rng.choice(COLOURS), rng.choice(FOODS), rng.choice(TOWNS)) for name in names[:n_known]]
    return known, sorted(names[n_known:])
