"""Byte-pair encoding (BPE), as GPT-2 and GPT-3 use it, learned from our own corpus; special tokens;
the chat format.

The recipe (Sennrich et al. 2016; Radford et al. 2019, "GPT-2", section 2.2):
  1. Pre-split the text with a regex into chunks: a word with its leading space (" zorbin"), each
     digit on its own ("1", "9"), a run of punctuation (". "), whitespace. Merges never cross a
     chunk boundary, so a token is never "dog." or "e t".
  2. Start from a base alphabet, one token per character, and repeatedly merge the most frequent
     adjacent pair of tokens into a new token, recording the merge. The merges, in order, ARE the
     tokenizer.
  3. Encode a new text by pre-splitting it and applying the learned merges to each chunk, earliest
     merge first.
GPT-2 works on the 256 bytes of UTF-8; every character of our world is newline or printable ASCII,
so our base alphabet is those 96 characters (an ASCII regex replaces GPT-2's \\p{L} and \\p{N},
which Python's `re` lacks). One change from GPT-2: digits are split one by one (as LLaMA and GPT-4
do), so "17" is always "1" "7" and a sum is written digit by digit instead of with whatever number
tokens the corpus happened to contain.

Training counts pairs over the *distinct* chunks, each weighted by how often it occurs. The corpus's
~206k chunks are only a few hundred distinct strings, so learning all the merges takes well under a
second (Karpathy's minbpe re-counts the raw text at every merge, which is the same result, much
slower).

Token ids: 0..95 the characters, 96..99 the special tokens, 100.. the merges in the order they were
learned. Keeping the specials right after the alphabet gives them the same ids in every tokenizer of
the project, with or without merges (GPT-2 appends its one <|endoftext|> at the end instead). The
chat format is

    <|user|> prompt <|assistant|> response <|end|>

and pretraining documents are joined with <|end|> (GPT's <|endoftext|>), so a base model learns to
stop at a document's end but has never seen <|user|>/<|assistant|>: like GPT-3, it is prompted with
plain text.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

CHARS = "\n" + "".join(chr(c) for c in range(32, 127))
SPECIALS = ("<|pad|>", "<|user|>", "<|assistant|>", "<|end|>")
# GPT-2's pattern, r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+|
# ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""", in ASCII, with single digits: contractions; a word with its
# leading space; one digit; punctuation with its leading space; whitespace (a run of spaces leaves
# its last one to the word that follows it).
PATTERN = r"""'(?:s|t|re|ve|m|ll|d)| ?[A-Za-z]+|[0-9]| ?[^\sA-Za-z0-9]+|\s+(?!\S)|\s+"""
FILE = "tokenizer.json"


class VocabError(ValueError):
    """A character that is not in the vocabulary."""


class Tokenizer:
    """Characters + special tokens + learned merges. Tokenizer() alone is the plain character
    tokenizer."""

    def __init__(
        self,
        chars: str = CHARS,
        specials: tuple[str, ...] = SPECIALS,
        merges: list[tuple[int, int]] = (),
        pattern: str = PATTERN,
    ):
        self.chars, self.specials, self.pattern = chars, tuple(specials), pattern
        self.split = re.compile(pattern)
        self.stoi = {c: i for i, c in enumerate(chars)}
        n = len(chars)
        self.pad_id, self.user_id, self.assistant_id, self.end_id = (n + i for i in range(4))
        self.special_ids = set(range(n, n + len(self.specials)))
        self.itos = list(chars) + list(self.specials)  # id -> text
        self.merges = [tuple(m) for m in merges]
        self.ranks = {}  # (a, b) -> id of the merged token; a lower id was learned earlier
        for a, b in self.merges:
            self.ranks[(a, b)] = len(self.itos)
            self.itos.append(self.itos[a] + self.itos[b])
        self.cache: dict[str, list[int]] = {}  # chunk -> ids: the world has few distinct chunks

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    # ---- encoding --------------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        ids = []
        for chunk in self.split.findall(text):
            if chunk not in self.cache:
                self.cache[chunk] = self._merge(self._chars(chunk, text))
            ids += self.cache[chunk]
        return ids

    def _chars(self, chunk: str, text: str) -> list[int]:
        try:
            return [self.stoi[c] for c in chunk]
        except KeyError:
            pos = next(i for i, c in enumerate(text) if c not in self.stoi)
            raise VocabError(
                f"character {text[pos]!r} (U+{ord(text[pos]):04X}) at position {pos} is not in the "
                f"vocabulary (newline and printable ASCII only): replace it, e.g. with a plain "
                f"ASCII equivalent"
            ) from None

    def _merge(self, ids: list[int]) -> list[int]:
        """Apply the merges to one chunk: always the earliest-learned pair present, as GPT-2's
        `bpe()` does."""
        while len(ids) > 1:
            pair = min(zip(ids, ids[1:]), key=lambda p: self.ranks.get(p, float("inf")))
            if pair not in self.ranks:
                break
            ids = merge(ids, pair, self.ranks[pair])
        return ids

    def decode(self, ids, skip_special: bool = False) -> str:
        return "".join(self.itos[i] for i in ids if not (skip_special and i in self.special_ids))

    # ---- training --------------------------------------------------------------------------------
    @classmethod
    def train(cls, texts: list[str], vocab_size: int, min_count: int = 2) -> "Tokenizer":
        """Learn merges from texts until the vocabulary has vocab_size tokens or no pair occurs
        min_count times. Each step merges the most frequent pair over all chunk occurrences; a tie
        goes to the smaller pair of ids (the earlier-learned tokens), so the same texts always give
        the same merges."""
        tok = cls()
        chunks = Counter(c for t in texts for c in tok.split.findall(t))
        words = {
            c: tok._chars(c, c) for c in chunks
        }  # each distinct chunk as a list of ids, merged in place
        merges = []
        while tok.vocab_size + len(merges) < vocab_size:
            pairs = Counter()
            for c, ids in words.items():
                for p in zip(ids, ids[1:]):
                    pairs[p] += chunks[c]
            if not pairs:
                break
            best = min(pairs, key=lambda p: (-pairs[p], p))
            if pairs[best] < min_count:
                break
            new_id = tok.vocab_size + len(merges)
            merges.append(best)
            words = {c: merge(ids, best, new_id) for c, ids in words.items()}
        return cls(merges=merges)

    # ---- saving ----------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Plain strings and lists of ints: a checkpoint carries its tokenizer and loads with
        weights_only=True."""
        return {
            "chars": self.chars,
            "specials": list(self.specials),
            "pattern": self.pattern,
            "merges": [list(m) for m in self.merges],
        }

    @classmethod
    def from_state_dict(cls, state: dict) -> "Tokenizer":
        # a checkpoint of the character tokenizer has no merges and no pattern
        return cls(
            state["chars"],
            tuple(state["specials"]),
            [tuple(m) for m in state.get("merges", [])],
            state.get("pattern", PATTERN),
        )

    def save(self, data_dir) -> Path:
        """data_dir/tokenizer.json: the state, one merge per line with the token it makes, for
        reading."""
        s = self.state_dict()
        head = {k: s[k] for k in ("chars", "specials", "pattern")}
        lines = [
            json.dumps([a, b, self.itos[i]])
            for i, (a, b) in enumerate(self.merges, len(self.chars) + 4)
        ]
        text = json.dumps(head)[:-1] + ', "merges": [\n' + ",\n".join(lines) + "\n]}\n"
        path = Path(data_dir) / FILE
        path.write_text(text, encoding="ascii")
        return path

    @classmethod
    def load(cls, data_dir) -> "Tokenizer":
        """The world's tokenizer, data_dir/tokenizer.json (written by `minigpt-rlhf world`)."""
        path = Path(data_dir) / FILE
        if not path.is_file():
            raise VocabError(
                f"{path} does not exist: generate the dataset with `minigpt-rlhf world --out "
                f"{data_dir}`"
            )
        try:
            s = json.loads(path.read_text(encoding="ascii"))
            tok = cls(
                s["chars"], tuple(s["specials"]), [(a, b) for a, b, _ in s["merges"]], s["pattern"]
            )
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, IndexError) as e:
            raise VocabError(
                f"{path} is malformed ({type(e).__name__}: {e}); regenerate data/"
            ) from None
        bad = [
            t
            for (_, _, t), i in zip(s["merges"], range(len(tok.chars) + 4, tok.vocab_size))
            if tok.itos[i] != t
        ]
        if bad:
            raise VocabError(
                f"{path}: merges do not make the tokens written beside them ({bad[0]!r}); "
                f"regenerate data/"
            )
        return tok


def merge(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Replace every occurrence of pair in ids, left to right, by new_id."""
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def format_chat(tok: Tokenizer, prompt: str, response: str | None = None) -> list[int]:
    """<|user|> prompt <|assistant|> [response <|end|>]; the prompt part is len(format_chat(tok,
    prompt)). The response is encoded with a leading space (" moss."), as OpenAI's GPT-3 fine-tuning
    guide asked of every completion: a word inside the corpus's sentences is " moss", and a response
    that began with "moss" would begin with a token the corpus has barely seen (measured: one-word
    answers at 10% helpful without the space). So the decoded response starts with a space; strip it
    for display."""
    if not prompt.strip():
        raise VocabError("the prompt is empty: write an instruction or a question")
    ids = [tok.user_id] + tok.encode(prompt) + [tok.assistant_id]
    return ids if response is None else ids + chat_response(tok, response)


def chat_response(tok: Tokenizer, response: str) -> list[int]:
    """The response part of format_chat: " response" <|end|> (the reward model scores demonstrations
    so)."""
    return tok.encode(" " + response.lstrip(" ")) + [tok.end_id]


def format_plain(tok: Tokenizer, prompt: str) -> list[int]:
    """How a base model (never trained on chat tokens) is prompted: the plain text, nothing after
    it. Not a trailing space: with byte pairs a space belongs to the word after it (" moss"), so a
    lone trailing " " is a token the corpus almost never has before a word, and the model's next
    token carries its own space. Not a newline: every corpus document is one paragraph, so a base
    model has never read one, and one derails it."""
    if not prompt.strip():
        raise VocabError("the prompt is empty: write an instruction or a question")
    return tok.encode(prompt)
