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
from minigpt_rlhf.world.data import measure_agreement

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
