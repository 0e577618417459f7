"""Lesson 01 (the tokenizer): byte-pair encoding learned from the corpus, special tokens, the chat format."""

import re
from collections import Counter
from pathlib import Path

import pytest
import torch

from minigpt_rlhf import world
from minigpt_rlhf.tokenizer import CHARS, PATTERN, SPECIALS, Tokenizer, VocabError, format_chat, format_plain
from minigpt_rlhf.world.data import VOCAB_SIZE

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="module")
def tok():
    return Tokenizer.load(DATA)


def test_round_trip_on_every_line_of_data(tok):
    lines = [line for path in sorted(DATA.iterdir()) for line in path.read_text(encoding="ascii").split("\n")]
    assert len(lines) > 15000
    for line in lines:
        assert tok.decode(tok.encode(line)) == line
    text = (DATA / "corpus_val.txt").read_text()  # newlines and blank lines too
    assert tok.decode(tok.encode(text)) == text


def test_byte_pairs_are_shorter_than_characters(tok):
    text = (DATA / "corpus_val.txt").read_text()
    assert len(text) / len(tok.encode(text)) > 3.0  # measured 3.75 characters per token
    assert tok.vocab_size <= VOCAB_SIZE and tok.vocab_size == len(CHARS) + len(SPECIALS) + len(tok.merges)


def test_training_twice_gives_the_same_merges(tok):
    docs = world.load_corpus(DATA, "train")
    a, b = Tokenizer.train(docs, VOCAB_SIZE), Tokenizer.train(list(docs), VOCAB_SIZE)
    assert a.merges == b.merges == tok.merges  # and they are the merges written to data/


def test_the_first_merges_are_the_corpus_most_frequent_pairs(tok):
    """Recount here, the slow way (every chunk occurrence, no distinct-chunk counts): the k-th merge must be
    the most frequent pair after the first k-1 merges, ties to the smaller pair of ids."""
    docs = world.load_corpus(DATA, "train")
    chunks = [[CHARS.index(c) for c in chunk] for d in docs for chunk in re.findall(PATTERN, d)]
    for k in range(8):
        pairs = Counter(p for ids in chunks for p in zip(ids, ids[1:]))
        top = max(pairs.values())
        expected = min(p for p, n in pairs.items() if n == top)
        assert tok.merges[k] == expected, k
        new_id = len(CHARS) + len(SPECIALS) + k
        merged = []
        for ids in chunks:
            out, i = [], 0
            while i < len(ids):
                if ids[i: i + 2] == list(expected):
                    out.append(new_id)
                    i += 2
                else:
                    out.append(ids[i])
                    i += 1
            merged.append(out)
        chunks = merged
    assert tok.decode([len(CHARS) + len(SPECIALS)]) == " t"  # the corpus's most frequent pair


def test_digits_stay_single_tokens(tok):
    digit_tokens = [t for t in tok.itos if any(c.isdigit() for c in t)]
    assert sorted(digit_tokens) == list("0123456789")
    assert [tok.decode([i]) for i in tok.encode("12 + 7 = 19.")] == ["1", "2", " +", " ", "7", " =", " ", "1", "9", "."]


def test_words_are_tokens_with_their_leading_space_and_unknown_names_stay_in_pieces(tok):
    known, unknown = world.load_kb(DATA)
    assert all(len(tok.encode(" " + e.name)) == 1 for e in known)
    corpus = " ".join(world.load_corpus(DATA))
    never_written = [u for u in unknown if u not in corpus]
    assert never_written and all(len(tok.encode(" " + u)) > 1 for u in never_written)
    assert [tok.decode([i]) for i in tok.encode("The zorbin eats moss.")][-2:] == [" moss", "."]


def test_a_character_outside_the_alphabet_names_itself_and_its_position(tok):
    with pytest.raises(VocabError, match=r"\(U\+00E9\) at position 12 is not in the vocabulary"):
        tok.encode("the cafe caf\u00e9 is open")  # the position counts characters of the whole text
    with pytest.raises(VocabError, match="at position 0"):
        Tokenizer().encode("\u2014 dash")
    with pytest.raises(VocabError, match="prompt is empty"):
        format_chat(tok, "  ")


def test_chat_format_and_plain_prompt(tok):
    ids = format_chat(tok, "What does the zorbin eat?", "It eats moss.")
    assert ids[0] == tok.user_id and ids[-1] == tok.end_id and tok.assistant_id in ids
    assert tok.decode(ids, skip_special=True) == "What does the zorbin eat? It eats moss."
    assert tok.decode(ids) == "<|user|>What does the zorbin eat?<|assistant|> It eats moss.<|end|>"
    # the response's first word is the corpus's " word" token, as GPT-3's fine-tuning format asked
    one_word = format_chat(tok, "One word only: what does the zorbin eat?", "moss.")
    assert [tok.decode([i]) for i in one_word[-3:]] == [" moss", ".", "<|end|>"]
    # a base model is shown the plain text and nothing after it: its next token brings its own space
    assert format_plain(tok, "The zorbin eats") == tok.encode("The zorbin eats")
    assert tok.decode(format_plain(tok, "Where is Tull?")[-1:]) == "?"
    # the special tokens sit right after the alphabet in every tokenizer, with or without merges
    assert (tok.pad_id, tok.user_id, tok.assistant_id, tok.end_id) == (96, 97, 98, 99)
    assert Tokenizer().end_id == tok.end_id and Tokenizer().vocab_size == 100


def test_state_dict_is_plain_data_and_round_trips(tok, tmp_path):
    state = tok.state_dict()
    torch.save({"tokenizer": state}, tmp_path / "t.pt")
    loaded = torch.load(tmp_path / "t.pt", weights_only=True)["tokenizer"]
    again = Tokenizer.from_state_dict(loaded)
    assert again.itos == tok.itos and again.encode("Kess lives in Tull.") == tok.encode("Kess lives in Tull.")
    old = Tokenizer.from_state_dict({"chars": CHARS, "specials": list(SPECIALS)})  # a character checkpoint
    assert old.encode("ab") == [CHARS.index("a"), CHARS.index("b")]


def test_a_damaged_tokenizer_file_is_a_clear_error(tmp_path):
    with pytest.raises(VocabError, match="minigpt-rlhf world"):
        Tokenizer.load(tmp_path)
    text = (DATA / "tokenizer.json").read_text()
    (tmp_path / "tokenizer.json").write_text(text.replace('[1, 85, " t"]', '[1, 86, " t"]', 1))
    with pytest.raises(VocabError, match="do not make the tokens"):
        Tokenizer.load(tmp_path)


def test_a_checkpoint_tokenizer_decodes_that_checkpoint_samples(micro_run, tok):
    from minigpt_rlhf.runtime import build_model, load_checkpoint, tokenizer_from

    cfg, run_dir = micro_run
    for stage in ("pretrain", "sft"):
        ckpt = load_checkpoint(run_dir / stage / "ckpt.pt")  # weights_only=True
        ckpt_tok = tokenizer_from(ckpt)
        assert ckpt_tok.merges == tok.merges
        model = build_model(ckpt)
        assert model.config.vocab_size == ckpt_tok.vocab_size
        out = model.generate([format_chat(ckpt_tok, "What does the zorbin eat?")], 24, temperature=1.0,
                             stop_id=ckpt_tok.end_id, pad_id=ckpt_tok.pad_id, generator=torch.Generator().manual_seed(0))
        text = ckpt_tok.decode(out.responses[0], skip_special=True)
        assert all(0 <= i < ckpt_tok.vocab_size for i in out.responses[0])
        assert ckpt_tok.decode(ckpt_tok.encode(text)) == text


def test_encoding_the_corpus_takes_a_moment(tok):
    import time

    text = (DATA / "corpus_train.txt").read_text()
    fresh = Tokenizer.from_state_dict(tok.state_dict())
    t = time.perf_counter()
    fresh.encode(text)
    assert time.perf_counter() - t < 5.0  # measured ~0.3 s: the merges run once per distinct chunk
