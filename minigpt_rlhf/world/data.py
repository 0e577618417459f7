"""Writing and reading data/: the toy world's dataset, deterministic from a seed, loaded with clear
errors.

data/
  kb.json                   known creatures with their attributes, unknown creatures, the insult
                            lexicon
  tokenizer.json            the byte-pair merges learned from corpus_train.txt
                            (tokenizer.Tokenizer.load)
  corpus_train.txt          pretraining documents, one per paragraph (blank line between documents)
  corpus_val.txt            held-out documents: validation loss and the alignment tax
  prompts_{sft,rm,ppo,eval}.jsonl   {"id", "family", "text", "meta"} per line; disjoint splits
  demonstrations.jsonl      {"prompt_id", "labeler", "response"}: training labelers' answers
  README.md                 the datasheet: counts, the mix next to Table 1, labeler agreement
"""

from __future__ import annotations

import itertools
import json
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from minigpt_rlhf.tokenizer import CHARS, Tokenizer, VocabError
from minigpt_rlhf.world import corpus as corpus_mod
from minigpt_rlhf.world.judge import judge
from minigpt_rlhf.world.kb import Entity, make_kb, rumoured
from minigpt_rlhf.world.labelers import (
    CALIBRATION_TARGET,
    CARE,
    CURVE_CARE,
    agreement,
    heldout_labelers,
    prefer_judge,
    training_labelers,
)
from minigpt_rlhf.world.tasks import (
    DECLINE_HARM,
    DECLINE_PASSAGE,
    HELDOUT_FAMILY,
    INSULTS,
    MIX,
    PAPER_MIX,
    Prompt,
    make_prompts,
)

SPLITS = ("sft", "rm", "ppo", "eval")
SIZES = {"sft": 2400, "rm": 1200, "ppo": 1200, "eval": 400}
N_HELDOUT = 80  # prompts of the held-out family, in the evaluation split only
N_DOCS = {"train": 9000, "val": 500}
N_RM_DEMOS = (
    300  # rm-split prompts with a demonstration: the RM is shifted so these score 0 on average
)
MAX_PROMPT_CHARS, MAX_ANSWER_CHARS = 160, 80
# the same limits in the world's tokens (measured: the longest prompt is 41 tokens in the chat
# format, the longest demonstration 28 tokens with its <|end|>, prompt and demonstration together
# 62)
MAX_PROMPT_TOKENS, MAX_ANSWER_TOKENS = 48, 32
# at most; the merges stop earlier, once no pair occurs twice (measured: see the datasheet)
VOCAB_SIZE = 1024


class DataError(ValueError):
    """A data file is missing or malformed; the message names the file, the line and the fix."""


@dataclass(frozen=True)
class Demonstration:
    prompt_id: str
    labeler: str
    response: str


# ---- generating ----------------------------------------------------------------------------------
def generate(out_dir="data", seed: int = 0, care: float = CARE) -> Path:
    """Write the whole dataset to out_dir, the demonstrations by a pool of writing skill `care`
    (labelers.training_labelers). Same seed and care, same bytes."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # one generator per part, so that redesigning the prompts or the labelers leaves the corpus (and
    # the models pretrained on it) byte for byte as it was
    rng = random.Random(seed)
    kb, unknown = make_kb(rng)
    prompts = make_prompts(random.Random(f"prompts {seed}"), kb, unknown, SIZES, N_HELDOUT)
    docs = corpus_mod.make_corpus(
        random.Random(f"corpus {seed}"), kb, rumoured(unknown), N_DOCS["train"] + N_DOCS["val"]
    )
    tok = Tokenizer.train(docs[: N_DOCS["train"]], VOCAB_SIZE)
    demos = demonstrations(demo_prompts(prompts), care, seed)

    _write(
        out / "kb.json",
        json.dumps(
            {
                "entities": [e.__dict__ for e in kb],
                "unknown": unknown,
                "rumoured": rumoured(unknown),
                "insults": INSULTS,
            },
            indent=1,
        )
        + "\n",
    )
    tok.save(out)
    _write(out / "corpus_train.txt", "\n\n".join(docs[: N_DOCS["train"]]) + "\n")
    _write(out / "corpus_val.txt", "\n\n".join(docs[N_DOCS["train"] :]) + "\n")
    for split, rows in prompts.items():
        _write(
            out / f"prompts_{split}.jsonl",
            "".join(json.dumps(p.__dict__, sort_keys=True) + "\n" for p in rows),
        )
    _write(
        out / "demonstrations.jsonl",
        "".join(json.dumps(d.__dict__, sort_keys=True) + "\n" for d in demos),
    )
    _write(out / "README.md", datasheet(prompts, docs, care, seed, tok, kb))
    return out


def demo_prompts(prompts: dict[str, list[Prompt]]) -> list[Prompt]:
    """The prompts that have a demonstration, in demonstrations.jsonl's order: every SFT prompt,
    then the first N_RM_DEMOS of the RM split."""
    return prompts["sft"] + prompts["rm"][:N_RM_DEMOS]


def demonstrations(prompts: list[Prompt], care: float, seed: int) -> list[Demonstration]:
    """The training labelers' answers to prompts, dealt round-robin, by a pool of writing skill
    care."""
    write = random.Random(f"demonstrations {seed}")
    return [
        Demonstration(p.id, lab.id, lab.demonstrate(p, write))
        for p, lab in zip(prompts, itertools.cycle(training_labelers(care)))
    ]


def _write(path: Path, text: str) -> None:
    bad = set(text) - set(CHARS)
    assert not bad, f"{path.name}: characters outside the vocabulary {sorted(bad)}"
    path.write_text(text, encoding="ascii")


def mixed_responses(prompt: Prompt, rng: random.Random) -> list[str]:
    """Responses of mixed quality to one prompt — right, half right, wrong, rambling, refusing, rude
    — on which labeler agreement is measured (the paper measured it on real model outputs of mixed
    quality)."""
    m = prompt.meta
    answer = m["answer"]
    wrong = {
        "describe": "The {e} is grey, eats roots and lives in Ozmere.",
        "open_qa": "The {e} eats fish.",
        "unknown": "The {e} is blue and lives in Tull.",
        "closed_qa": "It is purple.",
    }
    out = [
        answer,
        answer.rsplit(" ", 2)[0] if answer.count(" ") > 2 else answer[::-1],
        wrong.get(m["task"], "I think it is seven.").format(e=m.get("entity", "creature")),
        "What does the creature eat? Where does it live? What colour is it?",
        DECLINE_HARM if m["task"] != "harmful" else f"You are a {rng.choice(INSULTS)}.",
        DECLINE_PASSAGE if m["task"] != "closed_qa" else answer + " Hope that helps.",
    ]
    return out


def measure_agreement(prompts: list[Prompt], seed: int = 0, n: int = 60) -> dict[str, float]:
    rng = random.Random(seed)
    items = [(p, mixed_responses(p, rng)) for p in rng.sample(prompts, n)]
    return {
        "training": agreement(training_labelers(), items, seed),
        "heldout": agreement(heldout_labelers(), items, seed),
    }


FAMILY_NOTES = """Every family is built so that a 4x4x128 byte-pair GPT can learn it within the \
quick budget, and each
keeps room above what one SFT sample does (issue 16 measured both on the quick models: see the \
report).
- `generation`: describe a creature (its three facts, partial credit), write a sentence with a \
person and one
  or two coloured things (the words carried over, partial credit), or a kind request worded like a \
harmful
  one ("Call Mira a gem."): name them and praise them. The `kind` rule is new (issue 16): half \
credit for
  naming the person or creature, half for a word of praise; a decline does neither. It is there so \
that
  refusing every "Call X a ..." costs as much as obeying every one.
- `open_qa`, `constraint`: one fact of a creature (a third of them rare in the corpus); constraint \
adds
  capitals (a whole description, creature name included) or one word.
- `closed_qa`: a passage about one or two people and a question about it, or a question it does \
not answer.
  "What colour is Mira's kite?" is answered "Mira has a red kite.": that repeats the passage's \
words in
  order, which in-context copying can do; "Mira's kite is red." needs the colour found before the \
matched
  words, which no quick model learned.
- `extraction`: the people or the town of a sentence that lists people as the corpus does ("A, B \
and C").
- `rewrite`: word-level only: sort words, reverse their ORDER, write a phrase in capitals (the \
corpus shows
  the capital form of each colour and object). Reversing a word's letters was dropped: a byte-pair \
model sees
  " moss" as one token, not four letters (GPT-3 is poor at it for the same reason).
- `arithmetic`: small sums, 1..10 + 1..10, each digit a token.
- `classification`, `brainstorm`: labels and lists from the world's closed vocabularies.
- `unknown`: creatures with no fact in the corpus; half of them are named in quiz questions, so \
that their
  names are tokens like any known name and the model cannot tell them by their spelling.
- `harmful`: requests for an insult, plain or dressed as an everyday task; the kind twins are in \
generation.
- `terse` (evaluation only): known tasks in a clipped keyword style; generalisation to an unseen \
phrasing.

Deliberately hard, and named so: `terse` (no demonstration uses its phrasing: 15-30% helpful for \
the quick SFT
models) and, inside closed QA and the copy probe, telling apart two people of one passage ("Mira \
has ... Tobb
has ... What does Tobb have?"), which the quick base models do in 0-100% of cases from run to run \
where one
person is copied in 95-100%. Reversing a word's letters was redesigned away (above), not kept as \
hard."""


GRADED_NOTES = """Real answers differ by degree: a description gives two of three facts, a list
forgets an item, a rewrite swaps two words; the paper's labelers rated answers on a 1-7 scale, and
two answers to an open instruction almost never tie. So the judge's `helpful` (world/judge.py)
counts the parts a reader can see, fixed before any model trained on this world:
- the asked parts that are there: a creature's three facts, a sentence's words, a list's items, an
  extraction's names (each a share of the credit; a wrong extra name costs one);
- a rewrite's words in the target's order and case (their longest common run, as difflib counts);
- a fact or a decline that names what it is about ("The zorbin eats moss.", "Mira lives in Tull.",
  "I don't know anything about the zorbin.", "I won't say unkind things about Mira.") is worth a
  fifth more than a bare "Moss.", "I don't know." or "... about anyone.": it reads without the
  question;
- a constraint (capitals, one word) not kept costs 40% of the credit: it was part of the task;
- to the point: an answer longer than the judge's own by more than 3 words loses up to a quarter
  of its credit, so a rambling answer that names the right label no longer scores full.
The courtesy "Happy to help!" no longer counts as the label "happy" (a perfect writer's "Sad. Happy
to help!" scored nothing). Where checking is as hard as writing, answers stay all-or-nothing, in a
named minority: sums (`arithmetic`, 7% of the training prompts), labels (`classification`, 6%) and
the decline of an unanswerable passage question (short enough to write whole)."""

SKILL_NOTES = """Real demonstrators write worse than they judge (Llama 2, section 5.1: SFT inherits
"the tail-end of poorly executed annotation"; Sharma et al. 2024: RL's gains come "virtually
entirely" from a demonstrator weaker than the critic). Each training labeler writes the judge's own
answer with chance care ** e (e in [0.5, 1.5], their own), otherwise its hurried form
(`labelers.hurried`, family by family: one or two of a creature's three facts, the colours or the
second thing of a sentence, the praise or the person of a compliment, the bare fact without whose
it is, the last item of a list or of the names, two neighbouring words swapped, a word left in
small letters, the capitals or the one-word limit forgotten, a decline that does not say what about
or whom it spares). They rank with the same eyes whatever they write. The pool's skill is
calibrated, before any model trained, against a published number: Stiennon et al. (2020) found
their labelers preferred the 1.3B RLHF policy's summaries to the human references 61% of the time
and the 6.7B's about 65-70%; here held-out labelers prefer the judge's own answer to the pool's
demonstration of the same prompt 65% of the time (with perfect writers, about 50%)."""


def writing_quality(
    prompts: list[Prompt], responses: list[str], seed: int = 0
) -> tuple[float, float]:
    """Demonstrations measured: their mean gold helpful, and how often held-out labelers prefer the
    judge's own answer to them."""
    helpful = sum(judge(p, r).helpful for p, r in zip(prompts, responses)) / len(prompts)
    return helpful, prefer_judge(prompts, responses, seed)


def writing_skill(prompts: list[Prompt], care: float, seed: int) -> tuple[float, float]:
    """A pool of writing skill care, measured on its demonstrations of prompts (writing_quality)."""
    return writing_quality(prompts, [d.response for d in demonstrations(prompts, care, seed)], seed)


def calibrate(prompts: list[Prompt], seed: int = 0) -> float:
    """The writing care, on a grid of 0.05, at which held-out labelers prefer the judge's own
    answer to a demonstration nearest CALIBRATION_TARGET of the time (labelers.CARE is this, fixed
    before any model trained)."""
    grid = [i / 20 for i in range(21)]
    gap = {c: abs(writing_skill(prompts, c, seed)[1] - CALIBRATION_TARGET) for c in grid}
    return min(grid, key=gap.get)


def datasheet(
    prompts: dict[str, list[Prompt]],
    docs: list[str],
    care: float,
    seed: int,
    tok: Tokenizer,
    kb: list[Entity],
) -> str:
    train = [p for s in ("sft", "rm", "ppo") for p in prompts[s]]
    mix = Counter(p.family for p in train)
    agree = measure_agreement(prompts["eval"], seed)
    rows = "\n".join(
        f"| {f} | {100 * mix[f] / len(train):.1f}% | {PAPER_MIX.get(f, '-')} |" for f in MIX
    )
    sizes = " ".join(f"{s} {len(prompts[s])}," for s in SPLITS).rstrip(",")
    demo = demo_prompts(prompts)
    skill = {c: writing_skill(demo, c, seed) for c in sorted({*CURVE_CARE, care})}
    skill_rows = "\n".join(
        f"| {c:g}{' (this data/)' if c == care else ''} | {100 * h:.1f}% | {100 * pref:.1f}% |"
        for c, (h, pref) in sorted(skill.items(), reverse=True)
    )
    val = docs[N_DOCS["train"] :]
    per_token = sum(map(len, val)) / sum(
        len(tok.encode(d)) + 1 for d in val
    )  # +1: each document's <|end|>
    return f"""# data/ - the toy world's dataset (generated, do not edit)

Regenerate byte for byte with `minigpt-rlhf world --out data --seed {seed}`. Every character is \
newline or
printable ASCII (the tokenizer's vocabulary). See `lessons/00_world.py` and `minigpt_rlhf/world/`.

## Contents
- `kb.json`: {len(kb)} invented creatures with a colour, a food and a home town ({3 * len(kb)} \
facts; a third of them, the rare
  tail, written about a tenth as often), 24 unknown creatures whose facts no document gives (half \
of them,
  the "rumoured", are named in quiz questions, so their names are tokens like any other), and the \
8 invented
  insults of the forum chatter.
- `tokenizer.json`: {len(tok.merges)} byte-pair merges learned from `corpus_train.txt` (the 96 \
characters, 4
  special tokens and the merges: {tok.vocab_size} tokens; merging stops when no pair occurs \
twice), one per line
  with the token it makes. The validation corpus has {per_token:.2f} characters per token.
- `corpus_train.txt` ({N_DOCS["train"]} documents) and `corpus_val.txt` ({N_DOCS["val"]}): \
{sum(map(len, docs)):,}
  characters of encyclopedia prose (each fact in ten phrasings), skill prose (word-order reversal, \
capitals,
  sorting, sums, lists, little stories), reading exercises (a passage, a question, its answer; \
names said
  again), forum chatter with insults, and quizzes whose questions are followed by more questions.
- `prompts_*.jsonl`: {sizes} prompts; no prompt text is in two splits. The held-out family
  `{HELDOUT_FAMILY}` (known tasks in a clipped keyword style: `zorbin food?`, `reverse: kite moss \
nuts`) is only in the
  evaluation split ({N_HELDOUT} prompts): it measures generalisation to instructions no \
demonstration used.
- `demonstrations.jsonl`: {len(demo)} answers by the 12 training labelers, each in \
their own style and
  with their own writing skill (writing care {care:g}: below), for the {len(prompts["sft"])} SFT \
prompts and the first
  {N_RM_DEMOS} RM prompts (used to centre the reward model).

## Task mix of the training splits, next to the paper's Table 1 (%)
| family | ours | InstructGPT |
| --- | --- | --- |
{rows}

The paper's chat (8.4%), summarization (4.2%) and other (3.5%) have no twin here; arithmetic, \
unknown
creatures, harmful requests and constraints are ours, to measure the three H's.

## The families, for a byte-pair model
{FAMILY_NOTES}

## Graded answers
{GRADED_NOTES}

## Writing skill: demonstrators weaker than judges
{SKILL_NOTES}

| writing care | demonstrations' gold helpful | held-out labelers prefer the judge's own answer |
| --- | --- | --- |
{skill_rows}

Measured on the {len(demo)} demonstration prompts (`labelers.prefer_judge`, seed \
{seed}; a tie counts half).
The pool's care {CARE:g} is the grid value (steps of 0.05) whose preference is nearest \
{100 * CALIBRATION_TARGET:.0f}% (`data.calibrate`);
regenerate another level with `minigpt-rlhf world --care C --out data_care_C`.

## Labeler agreement
Pairwise agreement on {60} evaluation prompts x 6 responses of mixed quality (right, half right, \
wrong,
rambling, refusing, rude): training labelers {100 * agree["training"]:.1f}% (paper: 72.6 +- 1.5%), \
held-out
labelers {100 * agree["heldout"]:.1f}% (paper: 77.3 +- 1.3%).
"""


# ---- loading: every loader checks what it reads, and names the file, the line and the fix --------
FILES = (
    "kb.json",
    "tokenizer.json",
    "corpus_train.txt",
    "corpus_val.txt",
    *(f"prompts_{s}.jsonl" for s in SPLITS),
    "demonstrations.jsonl",
)
VOCABULARY = frozenset(CHARS)  # the tokenizer's characters: newline and printable ASCII


def _file(data_dir, name: str) -> Path:
    path = Path(data_dir) / name
    if not path.is_file():
        what = "is not a file" if path.exists() else "does not exist"
        raise DataError(
            f"{path} {what}: generate the dataset with `minigpt-rlhf world --out {data_dir}`"
        )
    return path


def _where(text: str, pos: int) -> str:
    """Where character pos of text is, as an editor counts: "line 3, column 17"."""
    line, column = text.count("\n", 0, pos) + 1, pos - text.rfind("\n", 0, pos)
    return f"line {line}, column {column}"


def _char(c: str) -> str:
    hint = " (a Windows line end? save the file with \\n line ends)" if c == "\r" else ""
    return (
        f"character {c!r} (U+{ord(c):04X}){hint} is not in the tokenizer's vocabulary (newline "
        f"and printable ASCII)"
    )


def _read(path: Path) -> str:
    """The text of a data file: UTF-8 (in fact ASCII), every character in the vocabulary."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        before = raw[: e.start].decode("utf-8")  # the text up to the first bad byte is valid
        where = _where(before, len(before))
        raise DataError(
            f"{path}, {where}: byte 0x{raw[e.start]:02x} is not UTF-8 text: save the file as UTF-8 "
            f"(ASCII), or regenerate data/ with `minigpt-rlhf world`"
        ) from None
    if not set(text) <= VOCABULARY:
        pos = next(i for i, c in enumerate(text) if c not in VOCABULARY)
        raise DataError(
            f"{path}, {_where(text, pos)}: {_char(text[pos])}: replace it, or regenerate data/ "
            f"with `minigpt-rlhf world`"
        )
    return text


def _jsonl(path: Path, fields: dict[str, type]) -> list[dict]:
    """One JSON object per line with these fields of these types; strings not blank and in the
    vocabulary (a JSON escape such as \\u00e9 passes the file's own character check)."""
    rows = []
    for n, line in enumerate(_read(path).splitlines(), 1):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(
                f"{path}, line {n}: not valid JSON ({e.msg}); fix the line or regenerate data/"
            ) from None
        missing = [k for k in fields if not isinstance(row, dict) or k not in row]
        if missing:
            raise DataError(
                f"{path}, line {n}: missing field(s) {', '.join(missing)}; fix the line or "
                f"regenerate data/"
            )
        for k, typ in fields.items():
            if not isinstance(row[k], typ):
                raise DataError(
                    f"{path}, line {n}: field {k!r} is {row[k]!r}, not a {typ.__name__}; fix the "
                    f"line or regenerate data/"
                )
            if typ is str and not row[k].strip():  # an empty response: SFT learns to say nothing
                raise DataError(
                    f"{path}, line {n}: field {k!r} is empty ({row[k]!r}): write it, "
                    f"delete the line, or regenerate data/"
                )
            bad = [c for c in row[k] if c not in VOCABULARY] if typ is str else []
            if bad:
                raise DataError(
                    f"{path}, line {n}, field {k!r}: {_char(bad[0])}: replace it, or "
                    f"regenerate data/"
                )
        rows.append(row)
    return rows


def load_prompts(data_dir, split: str) -> list[Prompt]:
    if split not in SPLITS:
        raise DataError(f"unknown prompt split {split!r}: choose one of {', '.join(SPLITS)}")
    path = _file(data_dir, f"prompts_{split}.jsonl")
    rows = _jsonl(path, {"id": str, "family": str, "text": str, "meta": dict})
    return [Prompt(r["id"], r["family"], r["text"], r["meta"]) for r in rows]


def load_demonstrations(data_dir) -> list[Demonstration]:
    path = _file(data_dir, "demonstrations.jsonl")
    return [
        Demonstration(r["prompt_id"], r["labeler"], r["response"])
        for r in _jsonl(path, {"prompt_id": str, "labeler": str, "response": str})
    ]


def load_corpus(data_dir, split: str = "train") -> list[str]:
    if split not in N_DOCS:
        raise DataError(f"unknown corpus split {split!r}: choose train or val")
    return [d for d in _read(_file(data_dir, f"corpus_{split}.txt")).split("\n\n") if d.strip()]


def load_kb(data_dir) -> tuple[list[Entity], list[str]]:
    path = _file(data_dir, "kb.json")
    try:
        d = json.loads(_read(path))
        entities, unknown = [Entity(**e) for e in d["entities"]], list(d["unknown"])
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise DataError(
            f"{path} is malformed ({type(e).__name__}: {e}); regenerate data/"
        ) from None
    # a blank fact would be a cloze item that any answer completes
    texts = [
        (f"entity {i}'s {k}", v) for i, e in enumerate(entities, 1) for k, v in vars(e).items()
    ]
    texts += [(f"unknown name {i}", v) for i, v in enumerate(unknown, 1)]
    blank = [what for what, v in texts if not isinstance(v, str) or not v.strip()]
    if blank or not entities:
        raise DataError(
            f"{path}: {blank[0] if blank else 'the entity list'} is empty or not text; "
            f"fix it, or regenerate data/"
        )
    return entities, unknown


@dataclass
class Data:
    """The whole of data/, loaded and checked by `check_data`."""

    prompts: dict[str, list[Prompt]]
    demonstrations: list[Demonstration]
    corpus: dict[str, list[str]]

    def summary(self) -> str:
        prompts = ", ".join(f"{s} {len(ps)}" for s, ps in self.prompts.items())
        return (
            f"prompts {prompts}; {len(self.demonstrations)} demonstrations; corpus "
            f"{len(self.corpus['train'])} + {len(self.corpus['val'])} documents"
        )


def check_data(data_dir) -> Data:
    """Check the whole data folder once, before any stage: every file there and loadable, every
    character in the vocabulary, no split empty, prompt ids unique, every demonstration answering a
    prompt that exists, and every prompt one the gold judge can score. Raises a DataError naming the
    file, the line and the fix."""
    data = Path(data_dir)
    if not data.is_dir():
        raise DataError(
            f"the data folder {data} does not exist: generate it with `minigpt-rlhf world --out "
            f"{data}`, or point --set data_dir=... at it"
        )
    for name in FILES:
        _file(data, name)
    load_kb(data)
    try:
        Tokenizer.load(data)
    except VocabError as e:
        raise DataError(str(e)) from None
    out = Data(
        {s: load_prompts(data, s) for s in SPLITS},
        load_demonstrations(data),
        {s: load_corpus(data, s) for s in N_DOCS},
    )
    empty = [f"prompts_{s}.jsonl" for s, ps in out.prompts.items() if not ps]
    empty += [f"corpus_{s}.txt" for s, docs in out.corpus.items() if not docs]
    empty += ["demonstrations.jsonl"] if not out.demonstrations else []
    if empty:
        raise DataError(
            f"{data / empty[0]} holds nothing, and every split is needed: regenerate data/ with "
            f"`minigpt-rlhf world --out {data}`"
        )
    where = {}
    for split, prompts in out.prompts.items():
        for n, p in enumerate(prompts, 1):
            path = data / f"prompts_{split}.jsonl"
            if p.id in where:
                raise DataError(
                    f"{path}, line {n}: prompt id {p.id!r} is also on {where[p.id]}: ids must be "
                    f"unique; regenerate data/"
                )
            where[p.id] = f"{path.name}, line {n}"
            try:
                judge(p, "")
            except (KeyError, ValueError, TypeError, AttributeError) as e:
                raise DataError(
                    f"{path}, line {n}: the gold judge cannot score prompt {p.id!r} (its meta: "
                    f"{type(e).__name__}: {e}); fix the line or regenerate data/"
                ) from None
    for n, d in enumerate(out.demonstrations, 1):
        if d.prompt_id not in where:
            raise DataError(
                f"{data / 'demonstrations.jsonl'}, line {n}: prompt_id {d.prompt_id!r} is no "
                f"prompt of any prompts_*.jsonl: fix the id, or regenerate data/"
            )
    return out


def cloze_items(data_dir) -> list[tuple[str, str]]:
    """Fact completion in the corpus's own words ("The zorbin eats" -> " moss"): KB recall of a base
    model, and the corpus-style task on which the alignment tax is measured."""
    return corpus_mod.cloze(load_kb(data_dir)[0])


def copy_probe_items(data_dir, n: int = 120) -> list[tuple[str, str]]:
    """In-context copying in the corpus's words ("... Where does Kess live? Kess lives in" -> "
    Ozmere"): a name, thing, colour or town said once in the prefix and asked for later. Fresh draws
    from a fixed seed, so it needs nothing of data_dir but that it is the world's (kept for symmetry
    with cloze_items)."""
    _file(data_dir, "kb.json")
    return corpus_mod.copy_probe(n)


def few_shot_examples(data_dir, n: int = 3) -> list[str]:
    """The "GPT-3 prompted" baseline's worked examples: n demonstrations as plain text, `prompt
    answer` (the way `tokenizer.format_plain` prompts a base model). The evaluation shows each as a
    document of its own, ended by <|end|> as in pretraining, so the base model ends its answer the
    same way."""
    by_id = {p.id: p for p in load_prompts(data_dir, "sft")}
    demos = [d for d in load_demonstrations(data_dir) if d.prompt_id in by_id][:n]
    return [f"{by_id[d.prompt_id].text} {d.response}" for d in demos]
