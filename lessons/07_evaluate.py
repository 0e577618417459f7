# %% [markdown]
# # Lesson 07 — evaluation: the paper's findings, measured
#
# Everything before this lesson trained models. Here we ask the paper's questions of them: do labelers prefer
# the aligned models (even to a larger base model)? Are they more truthful, less toxic? What did alignment cost
# on the pretraining task (the "alignment tax")? And how much compute did it take next to pretraining?
# Read `minigpt_rlhf/evaluate.py` beside this lesson (with `stats.py` and `compute.py`), then `report.py`,
# `stages.py` and `pipeline.py`.
#
# Run as a plain script on a run folder: `python lessons/07_evaluate.py` uses `runs/quick` (made by
# `minigpt-rlhf run --preset quick`: 18 minutes for seed 1337 on a 2-core CPU, stages side by side
# (1,088 s; critical path 954 s: pretrain, SFT, RM, PPO, evaluation); the README shows seed 1337
# and two more);
# `MINIGPT_RLHF_PRESET=balanced` reads `runs/balanced` (26-33 minutes to make: fewer demonstrations, more
# rankings, a longer RL loop), where PPO, PPO-ptx and GRPO win more than half of their comparisons with SFT;
# `MINIGPT_RLHF_PRESET=micro python lessons/07_evaluate.py`
# runs the tiny `micro` recipe first (about a minute; its models are too small to show the findings).
# A missing or unfinished run folder is (re)made by the pipeline, which skips every finished stage.

# %%
import json
import os
import random
from pathlib import Path

from minigpt_rlhf import pipeline
from minigpt_rlhf.compute import PFS_DAY
from minigpt_rlhf.config import load_config
from minigpt_rlhf.evaluate import win_flags
from minigpt_rlhf.report import pct
from minigpt_rlhf.sampling import Answer
from minigpt_rlhf.stats import proportion, wilson

PRESET = os.environ.get("MINIGPT_RLHF_PRESET", "quick")
RUN = Path(os.environ.get("MINIGPT_RLHF_RUN", f"runs/{PRESET}"))

# %% [markdown]
# ## A number is not a finding without its interval
# Twelve comparisons, eight wins: is that model better than SFT? The textbook interval p ± 1.96·sqrt(p(1−p)/n)
# misbehaves at small n (at 0/12 it is [0, 0], certainty from nothing); Wilson's interval does not.

# %%
for k, n in [(8, 12), (0, 12), (80, 120)]:
    p = k / n
    se = (p * (1 - p) / n) ** 0.5
    lo, hi = wilson(k, n)
    print(f"{k:3d}/{n:<3d} = {p:.2f}   normal approx [{p - 1.96 * se:+.2f}, {p + 1.96 * se:+.2f}]   "
          f"Wilson [{lo:.2f}, {hi:.2f}]")


# %% [markdown]
# A win rate is the mean of "did the labeler prefer A to B?" flags. A toy labeler that likes long answers:

# %%
class LikesLength:
    def prefers(self, prompt, a, b, rng, finished=(True, True)):
        return len(a) > len(b)


ours = [Answer(t, True) for t in ("a long answer", "no", "yes indeed", "ok")]
theirs = [Answer(t, True) for t in ("short", "hello", "hi", "fine")]
flags = win_flags([LikesLength()], ["q"] * 4, ours, theirs, random.Random(0))
print(flags, "->", pct(proportion(flags)))

# %% [markdown]
# ## Run the recipe (or resume it)
# `pipeline.run` is `minigpt-rlhf run`: world check → pretrain → pretrain_large → SFT → RM → PPO → PPO-ptx →
# the biased-labeler experiment → evaluate → plots → report. Finished stages are skipped. An evaluated run
# folder is read as it is (whatever settings made it).

# %%
if not (RUN / "eval" / "results.json").is_file():
    pipeline.run(load_config(PRESET), RUN)
res = json.loads((RUN / "eval" / "results.json").read_text())
M = res["models"]
print(f"{res['n_prompts']} eval answers per model; win rates against {res['reference']}")

# %% [markdown]
# ## Findings 1 and 2: who wins, by whose judgement
# Each model answered the same eval prompts; a labeler compared each answer with SFT's. Held-out labelers wrote
# none of the training data: if they agree with the training labelers, the models did not overfit to the
# particular people who trained them (the paper's finding 2). Paper: 175B InstructGPT beats 175B GPT-3 85 ± 3%.

# %%
print(f"{'model':22s} {'params':>8s}  {'held-out':>16s}  {'training':>16s}  Likert")
for name, m in M.items():
    print(f"{name:22s} {m['params']:8,d}  {pct(m['win_rate']['heldout']):>16s}  {pct(m['win_rate']['training']):>16s}"
          f"  {m['likert']['mean']:.2f}")
for pair, est in res["head_to_head"].items():
    print(f"{pair:34s} {pct(est)}")

# %% [markdown]
# ## Findings 3 and 4: truthful and harmless
# Closed-domain hallucination: asked about a short passage, an answer the passage does not contain (paper:
# 41% → 21%). On creatures the corpus never mentions, the truthful answer is "I don't know"; any attribute
# is invented. Toxicity: asked for an insult, the model uses one (paper: about 25% fewer toxic outputs than
# GPT-3); complies: it does not decline (the paper: InstructGPT still follows harmful instructions).

# %%
for name in ("GPT-3", "GPT-3 prompted", "SFT", "PPO", "PPO-ptx"):
    m = M[name]
    print(f"{name:15s} hallucinates {pct(m['hallucination']):>15s}  invents {pct(m['invention']):>15s}  "
          f"toxic {pct(m['toxicity']):>15s}  complies {pct(m['compliance']):>15s}")

# %% [markdown]
# ## Finding 5: the alignment tax
# RLHF optimises for the reward model and drifts from the pretraining distribution; PPO-ptx mixes pretraining
# gradients back in. Measured in plain text, as the paper measured public NLP tasks: held-out corpus loss and
# fact completion ("The zorbin eats ..." → the memorised fact).

# %%
for name in ("GPT-3", "SFT", "PPO", "PPO-ptx"):
    m = M[name]
    print(f"{name:8s} corpus loss {m['corpus_loss']['mean']:.3f}  fact completion {pct(m['cloze'])}")

# %% [markdown]
# ## Finding 7: compute
# Training costs ≈ 6·N FLOPs per token, a forward pass ≈ 2·N. One petaflop/s-day is 8.64·10¹⁹ FLOPs.
# The paper: SFT 4.9 + PPO-ptx 60 petaflop/s-days against 3,640 for pretraining GPT-3 — under 2%.
# In miniature the ratio need not hold: our pretraining is tiny, and RL samples every token it learns from.

# %%
for r in res["compute"]["rows"]:
    print(f"{r['stage']:15s} N={r['params']:>9,d}  {r['flops']:.2e} FLOPs = {r['flops'] / PFS_DAY:.2e} pfs-days")
C = res["compute"]
print(f"(SFT + PPO-ptx) / pretraining = {100 * C['ratio']:.1f}%   (paper {100 * C['paper_ratio']:.1f}%)")

# %% [markdown]
# ## Finding 8: whose preferences?
# The paper's own limitation: InstructGPT is aligned to *its* labelers and researchers, not to "human values".
# We make that concrete. A group of labelers who share a taste (the phrase "Happy to help!" and long answers)
# ranks the RM's comparisons (the same responses the main RM's labelers ranked); PPO optimises
# against that RM. If the policy inherits the bias, the biased group's win rate rises while the held-out
# labelers' and the gold judge's do not: the model learned what *those* people like.

# %%
if "PPO biased" in M:
    for name in ("SFT", "PPO", "PPO biased"):
        w = M[name]["win_rate"]
        print(f"{name:11s} biased group {pct(w['biased']):>15s}  held-out {pct(w['heldout']):>15s}  "
              f"gold {pct(M[name]['gold']['overall']):>15s}  pet phrase {pct(M[name]['pet_phrase']):>15s}  "
              f"length {M[name]['response_chars']['mean']:.0f} chars")
else:
    print("the biased-labeler experiment was switched off (pipeline.biased = false)")

# %% [markdown]
# ## Every method on one axis: distance from SFT
# PPO, PPO-ptx, DPO (and GRPO, a stage of balanced) all trade distance from SFT for reward;
# best-of-n does it without training. Each trained policy's KL(π ‖ π^SFT) is estimated on samples at
# temperature 1, best-of-n's is log n − (n − 1)/n. Against the same labelers, a method that lands
# far from SFT without winning more has found the RM's blind spots; the gold judge's best of 8 is
# the ceiling of what SFT's own samples hold. And "SFT (T=0)" is SFT with no training at all, at its
# best temperature on held-out SFT prompts: a win that it matches is sharpening.

# %%
O = res["over_optimisation"]
print(f"{'model':24s} {'KL to SFT':>9s} {'win vs SFT, held-out':>22s} {'gold helpful':>13s} {'median chars':>13s}")
for name, m in M.items():
    if name in O["policies"] or name.startswith(("SFT", "Best-of")):
        kl = f"{O['policies'][name]['kl']:.2f}" if name in O["policies"] else ""
        print(f"{name:24s} {kl:>9s} {pct(m['win_rate']['heldout']):>22s} {m['gold']['helpful']['mean']:13.2f} "
              f"{m['median_chars']:13.0f}")
print(f"SFT at its best temperature: T = {O['sft_temperature']['best']:g}")
print(f"\nbest-of-n from SFT's samples at T = 1: {'n':>3s} {'sqrt KL':>8s} {'gold, RM picks':>15s} {'gold, judge picks':>18s}")
for row in O["best_of_n"]:
    print(f"{'':39s}{row['n']:3d} {row['sqrt_kl']:8.2f} {row['gold']:15.3f} {row['gold_oracle']:18.3f}")

# %% [markdown]
# ## Read the answers yourself
# Numbers summarise; the answers are the thing. One eval prompt per task family, every model's answer:

# %%
for ex in res["examples"][:3]:
    print(f"[{ex['family']}] {ex['prompt']!r}")
    for name, r in ex["responses"].items():
        print(f"   {name:22s} {r[:100]!r}")

# %% [markdown]
# ## Figure 1 across model sizes: the sweep
# The paper's Figure 1 has three sizes per method (1.3B, 6B, 175B). `minigpt-rlhf sweep --preset quick` takes
# three of ours (`pipeline.sweep_sizes`) through pretraining, SFT, PPO and PPO-ptx with one reward model, and judges
# every model against the largest SFT model (six RL runs at quick's 80 iterations of 128
# answers: longer than the quick run itself, so this lesson does not start it). It has not been
# measured since quick's RL loop and reward model were re-planned; when `runs/sweep_quick`
# exists, its table prints below.

# %%
SWEEP = Path(os.environ.get("MINIGPT_RLHF_SWEEP", f"runs/sweep_{PRESET}"))
if (SWEEP / "eval" / "sweep.json").is_file():
    rows = json.loads((SWEEP / "eval" / "sweep.json").read_text())["rows"]
    sizes = list(dict.fromkeys(r["size"] for r in rows))
    print(f"{'method':15s}" + "".join(f"{s:>17s}" for s in sizes))
    for method in dict.fromkeys(r["method"] for r in rows):
        cells = {r["size"]: pct(r["win_rate"]) for r in rows if r["method"] == method}
        print(f"{method:15s}" + "".join(f"{cells[s]:>17s}" for s in sizes))
else:
    print(f"no sweep in {SWEEP}: `minigpt-rlhf sweep --preset {PRESET}` makes one")

# %% [markdown]
# ## When does RLHF beat SFT? The demonstrators' writing skill
# RLHF wins where people recognise a good answer more reliably than they write one (lesson 00). `minigpt-rlhf
# curve --preset quick` runs the whole recipe on worlds that differ only in the demonstrators' writing care
# (perfect writers, the calibrated pool, hurried writers; the same prompts, judge and rankings), three seeds
# each (a seed's base model is pretrained once), and writes `runs/curve_quick/report.md` with `curve.png`:
# each method's win rate against SFT by the demonstrations' quality. It takes nine quick runs, so this lesson
# does not start it; docs/results.md has the measured curve. When the folder exists, its table prints below.

# %%
CURVE = Path(os.environ.get("MINIGPT_RLHF_CURVE", f"runs/curve_{PRESET}"))
if (CURVE / "report.md").is_file():
    print("\n".join(line for line in (CURVE / "report.md").read_text().splitlines() if line.startswith("|")))
else:
    print(f"no curve in {CURVE}: `minigpt-rlhf curve --preset {PRESET}` makes one")

# %% [markdown]
# The figures (`plots/`) and `report.md` — every finding with the paper's number beside ours and a verdict —
# are in the run folder. `minigpt-rlhf plot RUN` and `minigpt-rlhf report RUN` redraw them from the files alone.

# %%
print(f"report: {RUN / 'report.md'}")
print("figures:", ", ".join(sorted(p.name for p in (RUN / "plots").glob("*.png"))))
