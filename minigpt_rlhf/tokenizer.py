"""A character tokenizer with four special tokens for the chat format.

Characters are a fixed alphabet (newline + printable ASCII), not learned from data, so every model of the
project shares one vocabulary and a checkpoint can always be decoded. The chat format is

    <|user|> prompt <|assistant|> response <|end|>

and pretraining documents are joined with <|end|> (GPT's <|endoftext|>), so a base model learns to stop at
a document's end but has never seen <|user|>/<|assistant|>: like GPT-3, it is prompted with plain text.
"""

from __future__ import annotations

CHARS = "\n" + "".join(chr(c) for c in range(32, 127))
SPECIALS = ("<|pad|>", "<|user|>", "<|assistant|>", "<|end|>")


class VocabError(ValueError):
    """A character that is not in the vocabulary."""


class Tokenizer:
    def __init__(self, chars: str = CHARS, specials: tuple[str, ...] = SPECIALS):
        self.chars = chars
        self.specials = tuple(specials)
        self.stoi = {c: i for i, c in enumerate(chars)}
        self.itos = list(chars) + list(self.specials)
        self.pad_id, self.user_id, self.assistant_id, self.end_id = (len(chars) + i for i in range(4))

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> list[int]:
        try:
            return [self.stoi[c] for c in text]
        except KeyError:
            pos = next(i for i, c in enumerate(text) if c not in self.stoi)
            raise VocabError(
                f"character {text[pos]!r} (U+{ord(text[pos]):04X}) at position {pos} is not in the vocabulary "
                f"(newline and printable ASCII only): replace it, e.g. with a plain ASCII equivalent"
            ) from None

    def decode(self, ids, skip_special: bool = False) -> str:
        n = len(self.chars)
        return "".join(self.itos[i] for i in ids if not (skip_special and i >= n))

    def state_dict(self) -> dict:
        return {"chars": self.chars, "specials": list(self.specials)}

    @classmethod
    def from_state_dict(cls, state: dict) -> "Tokenizer":
        return cls(state["chars"], tuple(state["specials"]))


def format_chat(tok: Tokenizer, prompt: str, response: str | None = None) -> list[int]:
    """<|user|> prompt <|assistant|> [response <|end|>]; the prompt part is len(format_chat(tok, prompt))."""
    if not prompt.strip():
        raise VocabError("the prompt is empty: write an instruction or a question")
    ids = [tok.user_id] + tok.encode(prompt) + [tok.assistant_id]
    if response is not None:
        ids += tok.encode(response) + [tok.end_id]
    return ids


def format_plain(tok: Tokenizer, prompt: str) -> list[int]:
    """How a base model (never trained on chat tokens) is prompted: the plain text and a space. Not a newline:
    every corpus document is one paragraph, so a base model has never read one, and one derails it."""
    if not prompt.strip():
        raise VocabError("the prompt is empty: write an instruction or a question")
    return tok.encode(prompt + " ")
