"""Lesson 00: the toy world — dataset, gold judge and simulated labelers."""

import json
import random
from pathlib import Path

import pytest

from conftest import run_lesson
from minigpt_rlhf import world
from minigpt_rlhf.cli import main
from minigpt_rlhf.tokenizer import CHARS, Tokenizer, format_chat
from minigpt_rlhf.world import labelers
from minigpt_rlhf.world.data import (MAX_ANSWER_CHARS, MAX_ANSWER_TOKENS, MAX_PROMPT_CHARS, MAX_PROMPT_TOKENS,
                                     SPLITS, measure_agreement)
from minigpt_rlhf.world.judge import words
from minigpt_rlhf.world.kb import ATTRIBUTES
from minigpt_rlhf.world.tasks import GENERATORS, HELDOUT_FAMILY, INSULTS

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="module")
def prompts():
    return {s: world.load_prompts(DATA, s) for s in SPLITS}


def test_regeneration_reproduces_data_byte_for_byte(tmp_path):
    assert main(["world", "--out", str(tmp_path), "--seed", "0"]) == 0
    committed = sorted(p.name for p in DATA.iterdir())
    assert committed == sorted(p.name for p in tmp_path.iterdir())
    for name in committed:
        assert (tmp_path / name).read_bytes() == (DATA / name).read_bytes(), name
    other = tmp_path / "other"
    world.generate(other, seed=1)
    assert (other / "prompts_sft.jsonl").read_bytes() != (DATA / "prompts_sft.jsonl").read_bytes()


def test_splits_are_disjoint_and_the_heldout_family_is_eval_only(prompts):
    texts = {s: {p.text for p in rows} for s, rows in prompts.items()}
    for a in SPLITS:
        for b in SPLITS:
            if a < b:
                assert not texts[a] & texts[b], (a, b)
    assert all(p.family != HELDOUT_FAMILY for s in ("sft", "rm", "ppo") for p in prompts[s])
    assert sum(p.family == HELDOUT_FAMILY for p in prompts["eval"]) >= 50
    assert {p.family for p in prompts["sft"]} == set(GENERATORS) - {HELDOUT_FAMILY}


def test_no_fact_of_an_unknown_creature_is_in_the_corpus():
    docs = [d.lower() for d in world.load_corpus(DATA, "train") + world.load_corpus(DATA, "val")]
    corpus = " ".join(docs)
    known, unknown = world.load_kb(DATA)
    rumoured = set(json.loads((DATA / "kb.json").read_text())["rumoured"])
    assert len(unknown) >= 20 and 0 < len(rumoured) < len(unknown) and rumoured <= set(unknown)
    assert not [u for u in unknown if u not in rumoured and u in corpus]  # never written: stays in pieces
    assert all(r in corpus for r in rumoured)  # named in quiz questions, so a token like a known name
    values = {v.lower() for vs in ATTRIBUTES.values() for v in vs}
    for d in docs:  # but never in a document that states a colour, a food or a town
        if any(r in d for r in rumoured):
            assert not set(words(d)) & values, d
    assert all(e.name in corpus for e in known)


def test_insults_in_the_corpus_but_not_in_demonstrations():
    corpus = " ".join(world.load_corpus(DATA, "train")).lower()
    assert all(i in corpus for i in INSULTS)
    demos = " ".join(d.response for d in world.load_demonstrations(DATA)).lower()
    assert not [i for i in INSULTS if i in demos]


def test_every_character_of_data_is_in_the_vocabulary():
    for path in DATA.iterdir():
        bad = set(path.read_text(encoding="ascii")) - set(CHARS)
        assert not bad, (path.name, bad)


def test_prompts_and_answers_fit_a_small_context(prompts):
    for rows in prompts.values():
        assert max(len(p.text) for p in rows) <= MAX_PROMPT_CHARS
        assert max(len(p.meta["answer"]) for p in rows) <= MAX_ANSWER_CHARS
    assert max(len(d.response) for d in world.load_demonstrations(DATA)) <= MAX_ANSWER_CHARS + 20
    tok = Tokenizer.load(DATA)  # and in tokens, which is what a model's context holds
    assert max(len(format_chat(tok, p.text)) for rows in prompts.values() for p in rows) <= MAX_PROMPT_TOKENS
    assert max(len(tok.encode(d.response)) + 1 for d in world.load_demonstrations(DATA)) <= MAX_ANSWER_TOKENS
    assert max(len(d) for d in world.load_corpus(DATA)) <= 250


def one_per_family(prompts):
    rng = random.Random(0)
    by_family = {}
    for p in prompts["eval"] + prompts["sft"]:
        by_family.setdefault((p.family, p.meta["task"], p.meta.get("target") is None), []).append(p)
    return [rng.choice(v) for v in by_family.values()]


def test_judge_scores_the_good_answer_above_every_bad_one(prompts):
    cases = one_per_family(prompts)
    assert len(cases) >= 14
    for p in cases:
        good = world.judge(p, p.meta["answer"]).overall
        assert good >= 0.9, (p.text, good)
        bads = {"ramble": "What does the creature eat? Where does it live? What colour is it?",
                "rude": f"You are a {INSULTS[0]}.", "unfinished": (p.meta["answer"], False),
                "wrong": "The answer is purple fish from Tull, 99."}
        for name, bad in bads.items():
            text, finished = bad if isinstance(bad, tuple) else (bad, True)
            assert world.judge(p, text, finished).overall < good, (p.family, p.text, name)


def test_judge_knows_each_h(prompts):
    by_task = {p.meta["task"]: p for p in prompts["sft"]}
    unknown = by_task["unknown"]
    s = world.judge(unknown, "It is blue and eats fish.")
    assert s.truthful == 0.0 and s.helpful == 0.0  # inventing a creature's attributes is a hallucination
    assert world.judge(unknown, "I don't know that creature.").truthful == 1.0
    closed = next(p for p in prompts["sft"] if p.meta["task"] == "closed_qa" and p.meta["target"] is None)
    assert world.judge(closed, "The passage does not say.").helpful == 1.0
    assert world.judge(closed, "They eat honey.").truthful == 0.0  # closed-domain hallucination
    harmful = by_task["harmful"]
    assert world.judge(harmful, f"Fine: you {INSULTS[1]}.").harmless == 0.0
    assert world.judge(harmful, "I won't say unkind things.").harmless == 1.0
    qa = next(p for p in prompts["sft"] if p.meta["task"] == "open_qa" and not p.meta.get("constraint"))
    wrong = next(c for c in ("red", "blue") if c != qa.meta["facts"]["colour"])
    assert world.judge(qa, f"It is {wrong}.").truthful == 0.0


def test_a_perfect_writer_writes_the_judges_optimum_on_every_family(prompts):
    rng, pool = random.Random(0), labelers.training_labelers(care=1.0)
    assert {lab.care for lab in pool} == {1.0}
    families = set()
    for i, p in enumerate(prompts["sft"]):
        demo = pool[i % len(pool)].demonstrate(p, rng)
        scores = world.judge(p, demo)
        assert scores == world.judge(p, p.meta["answer"]) == world.Scores(1.0, 1.0, 1.0, 1.0), (p.text, demo)
        families.add(p.family)
    assert families == set(GENERATORS) - {HELDOUT_FAMILY}


def test_a_hurried_writer_leaves_out_what_the_judge_counts(prompts):
    rng, hasty = random.Random(0), labelers.training_labelers(care=0.0)[0]
    assert hasty.care == 0.0
    hurried = set()
    for p in prompts["sft"]:
        demo, form = hasty.demonstrate(p, rng), labelers.hurried(p, random.Random(1))
        if form is None:  # sums, labels, declines: written whole
            assert demo == p.meta["answer"], (p.text, demo)
            continue
        hurried.add(p.meta["task"])
        assert demo != p.meta["answer"]
        assert world.judge(p, demo).overall < world.judge(p, p.meta["answer"]).overall, (p.text, demo)
    assert hurried == {"describe", "compose", "kind", "open_qa", "brainstorm", "rewrite", "closed_qa", "extract",
                       "unknown", "harmful"}


def test_answers_of_different_completeness_score_differently(prompts):
    """Every graded family tells apart the whole answer, a part of it and less: no all-or-nothing."""
    def helpful(p, text):
        return world.judge(p, text).helpful

    by = {}
    for p in prompts["sft"]:
        by.setdefault((p.meta["task"], p.meta.get("kind"), p.meta.get("constraint")), p)
    d = by[("describe", None, None)]
    e, f = d.meta["entity"], d.meta["facts"]
    three = [f"The {e} is {f['colour']}, eats {f['food']} and lives in {f['home']}.",
             f"The {e} is {f['colour']} and eats {f['food']}.", f"The {e} is {f['colour']}.", f"The {e}."]
    assert [helpful(d, t) for t in three] == sorted({helpful(d, t) for t in three}, reverse=True)
    b = next(p for p in prompts["sft"] if p.meta["task"] == "brainstorm" and p.meta["n"] >= 3)
    items = b.meta["answer"].rstrip(".").split(", ")
    lists = [", ".join(items[:k]) + "." for k in range(len(items), 0, -1)]
    assert [helpful(b, t) for t in lists] == sorted({helpful(b, t) for t in lists}, reverse=True)
    for kind in ("reverse", "sort"):
        r = by[("rewrite", kind, None)]
        t = r.meta["target"].split()
        one_swap, two_swaps = t[:2][::-1] + t[2:], t[:2][::-1] + t[2:][::-1]
        assert helpful(r, " ".join(t)) > helpful(r, " ".join(one_swap)) > helpful(r, " ".join(two_swaps))
    qa = by[("open_qa", None, None)]
    v = qa.meta["target"]
    assert helpful(qa, qa.meta["answer"]) > helpful(qa, f"{v}.") > helpful(qa, "I am not sure.")
    ramble = qa.meta["answer"] + " It is a creature that I have read about in many books, long ago."
    assert helpful(qa, qa.meta["answer"]) > helpful(qa, ramble) > helpful(qa, f"{v}.") - 0.3
    one = by[("open_qa", None, "one_word")]
    assert helpful(one, one.meta["answer"]) > helpful(one, f"It is {one.meta['target']}.") > 0


def test_writing_skill_is_calibrated_as_the_datasheet_says(prompts):
    from minigpt_rlhf.world.data import calibrate, demo_prompts as with_demonstrations, writing_skill

    demo_prompts = with_demonstrations(prompts)
    helpful, prefer = writing_skill(demo_prompts, labelers.CARE, seed=0)
    row = f"| {labelers.CARE:g} (this data/) | {100 * helpful:.1f}% | {100 * prefer:.1f}% |"
    assert row in (DATA / "README.md").read_text()
    assert 0.61 <= prefer <= 0.70  # Stiennon et al.: RLHF summaries over the references, 61-70%
    assert writing_skill(demo_prompts, 1.0, seed=0)[1] < 0.55  # perfect writers: about a tie
    assert calibrate(demo_prompts) == labelers.CARE
    demos = {d.prompt_id: d.response for d in world.load_demonstrations(DATA)}
    assert sum(world.judge(p, demos[p.id]).helpful for p in demo_prompts) / len(demo_prompts) == helpful


def test_labeler_agreement_lies_in_the_papers_band(prompts):
    agree = measure_agreement(prompts["eval"])
    # paper: 72.6 +- 1.5% (training), 77.3 +- 1.3% (held-out); ours must land within a few points
    assert 0.68 <= agree["training"] <= 0.78, agree
    assert 0.72 <= agree["heldout"] <= 0.82, agree
    assert agree["heldout"] > agree["training"]
    assert len(labelers.training_labelers()) >= 10 and len(labelers.heldout_labelers()) >= 5


def test_labelers_rank_better_answers_higher_but_disagree_sometimes(prompts):
    rng = random.Random(0)
    pool = labelers.training_labelers()
    top = disagreements = 0
    for p in prompts["eval"][:100]:
        responses = world.mixed_responses(p, rng)
        ranks = [lab.rank(p, responses, rng) for lab in pool[:3]]
        assert all(sorted(r) == list(range(len(responses))) for r in ranks)  # a permutation: no ties
        top += ranks[0][0] in (0, 5) or world.judge(p, responses[ranks[0][0]]).overall >= 0.9
        disagreements += len({r[0] for r in ranks}) > 1
    assert top >= 70 and disagreements >= 10
    lab = pool[0]
    assert 1 <= lab.likert(p, p.meta["answer"], rng) <= 7


def test_malformed_line_names_file_and_line(tmp_path):
    world.generate(tmp_path)
    path = tmp_path / "prompts_rm.jsonl"
    lines = path.read_text().splitlines()
    lines[6] = lines[6][:-5]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(world.DataError, match=r"prompts_rm.jsonl, line 7: not valid JSON"):
        world.load_prompts(tmp_path, "rm")
    lines[6] = json.dumps({"id": "x"})
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(world.DataError, match=r"line 7: missing field\(s\) family, text, meta"):
        world.load_prompts(tmp_path, "rm")
    with pytest.raises(world.DataError, match="minigpt-rlhf world"):
        world.load_prompts(tmp_path / "nowhere", "sft")


def test_cloze_items_and_few_shot_examples():
    items = world.cloze_items(DATA)
    assert len(items) == 3 * len(world.load_kb(DATA)[0])
    docs = world.load_corpus(DATA)
    corpus = " ".join(docs)
    # the canonical sentence itself for most facts (a rare creature may only have other phrasings: 189 of 216) ...
    assert sum(prefix + answer in corpus for prefix, answer in items) >= 0.8 * len(items)
    for e in world.load_kb(DATA)[0]:  # ... and every fact stated somewhere: the model can learn each one
        stated = [d for d in docs if f" {e.name}" in d and e.colour in d and e.food in d and e.home in d]
        assert stated, e.name
    examples = world.few_shot_examples(DATA)
    demos = {d.response for d in world.load_demonstrations(DATA)}
    assert len(examples) == 3 and all(any(e.endswith(" " + r) for r in demos) for e in examples)


def test_copy_probe_asks_for_what_its_prefix_said_once():
    items = world.copy_probe_items(DATA)
    assert len(items) == 120 and items == world.copy_probe_items(DATA)  # fixed draws
    corpus = " ".join(world.load_corpus(DATA))
    for prefix, answer in items:
        assert answer.startswith(" ") and prefix.count(answer.strip()) >= 1, (prefix, answer)
    # fresh combinations, not sentences the base model could have memorised
    assert sum(prefix + answer in corpus for prefix, answer in items) <= 0.05 * len(items)
    # every answer kind is there: a town, a colour, an object, a person
    from minigpt_rlhf.world.kb import COLOURS, OBJECTS, PEOPLE, TOWNS
    kinds = {next(k for k, pool in (("town", TOWNS), ("colour", COLOURS), ("object", OBJECTS), ("person", PEOPLE))
                  if a.strip() in pool) for _, a in items}
    assert kinds == {"town", "colour", "object", "person"}


def test_the_lesson_runs_on_micro(tmp_path):
    out = run_lesson("00_world", tmp_path)
    assert "agreement: training" in out and "ranks best first" in out
