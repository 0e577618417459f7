# %% [markdown]
# # Lesson 00 — the toy world
#
# InstructGPT's findings need a world in which a language model can be *unaligned*: continue a question with
# more questions, make facts up, be rude. Ours is small enough to read in full (`minigpt_rlhf/world/`):
#
# - a knowledge base of invented creatures (so no real-world knowledge leaks in), and unknown creatures;
# - "the web": a corpus of encyclopedia prose, skill prose, rude forum chatter and quizzes;
# - instruction prompts in task families that mirror the paper's Table 1;
# - a gold judge of helpful / truthful / harmless: the experimenters' ground truth, never trained on;
# - simulated labelers who write demonstrations and rank responses, noisy and disagreeing as people do.
#
# Run as a plain script: `python lessons/00_world.py` (a few seconds).

# %%
import random
from collections import Counter

from minigpt_rlhf import world
from minigpt_rlhf.world import labelers
from minigpt_rlhf.world.data import measure_agreement, writing_quality

DATA = "data"  # regenerate with `minigpt-rlhf world --out data`
known, unknown = world.load_kb(DATA)
print(f"{len(known)} creatures, e.g. {known[0]}")
print(f"{len(unknown)} unknown creatures (never in the corpus), e.g. {unknown[:3]}")

# %% [markdown]
# ## The web
# A base model learns what it reads. Quizzes teach it that a question is followed by another question.

# %%
docs = world.load_corpus(DATA)
print(f"{len(docs)} documents, {sum(map(len, docs)):,} characters")
for d in random.Random(1).sample(docs, 6):
    print("  |", d)

# %% [markdown]
# ## Prompts, demonstrations and the gold judge
# One example per family, with a training labeler's demonstration and the judge's scores of a good and a bad
# (rambling) answer.

# %%
splits = {s: world.load_prompts(DATA, s) for s in ("sft", "rm", "ppo", "eval")}
print({s: len(v) for s, v in splits.items()})
print("families of the training splits:", dict(Counter(p.family for p in splits["sft"])))
rng = random.Random(0)
ramble = "What does the creature eat? Where does it live? What colour is it?"
shown = set()
for p in splits["eval"]:
    if p.family in shown:
        continue
    shown.add(p.family)
    good, bad = world.judge(p, p.meta["answer"]), world.judge(p, ramble, finished=False)
    demo = labelers.training_labelers()[len(shown) % 12].demonstrate(p, rng)
    print(f"[{p.family}] {p.text}\n   demonstration: {demo}")
    print(f"   judge: good {good.overall:.2f} (h {good.helpful:.1f} t {good.truthful:.1f} s {good.harmless:.1f}) | "
          f"ramble {bad.overall:.2f}")

# %% [markdown]
# ## Graded answers, and demonstrators weaker than judges
# RLHF can only beat SFT where there is something to learn that the demonstrations did not show. Two things
# make room for it here, as in the paper's world (data/README.md argues both):
#
# - **answers differ by degree**: the judge counts the parts a reader can see (two of a creature's three
#   facts, a list with an item missing, two words swapped), so two answers rarely tie;
# - **people recognise a good answer more reliably than they write one** (Llama 2 §5.1; Stiennon et al. 2020):
#   each training labeler has a writing care, the chance that a demonstration is complete rather than
#   hurried (`labelers.hurried`), while they rank with the same eyes whatever they write. The pool's care is
#   calibrated so that held-out labelers prefer the judge's own answer to a demonstration as often as
#   Stiennon et al.'s labelers preferred RLHF summaries to human-written ones (61-70%).

# %%
hasty = labelers.training_labelers(care=0.0)[0]
for p in splits["sft"][:8]:
    form = labelers.hurried(p, rng)
    if form:
        best, hurried = world.judge(p, p.meta["answer"]).helpful, world.judge(p, form).helpful
        print(f"{p.text}\n   judge's answer {best:.2f}: {p.meta['answer']}\n   hurried        {hurried:.2f}: {form}")
print(f"writing care of the pool: {[lab.care for lab in labelers.training_labelers()]}")
demos = world.load_demonstrations(DATA)
by_id = {p.id: p for p in splits["sft"]}
said = [(by_id[d.prompt_id], d.response) for d in demos if d.prompt_id in by_id]
helpful, prefer = writing_quality(*map(list, zip(*said)))
print(f"the demonstrations' gold helpful: {helpful:.1%} (perfect writers: 100%); held-out labelers prefer the "
      f"judge's own answer to them {prefer:.1%} of the time (the calibration target: 65%)")
# Try `minigpt-rlhf world --care 1.0 --out data_care1` (perfect writers) and `minigpt-rlhf curve`, which
# runs the whole recipe at several writing cares: when does RLHF beat SFT? (docs/results.md)

# %% [markdown]
# ## Labelers disagree, as people do
# The paper: training labelers agree with each other 72.6 ± 1.5% of the time, held-out labelers 77.3 ± 1.3%.
# An RM cannot predict a labeler's choice better than another labeler does: this agreement is its ceiling.

# %%
agree = measure_agreement(splits["eval"])
print(f"agreement: training {agree['training']:.1%} (paper 72.6%), held-out {agree['heldout']:.1%} (paper 77.3%)")
p = splits["eval"][0]
responses = world.mixed_responses(p, rng)
print(p.text)
for lab in labelers.training_labelers()[:4]:
    print(f"  {lab.id} ranks best first: {[responses[i][:30] for i in lab.rank(p, responses, rng)[:3]]}")
