# %% [markdown]
# # Lesson 04 — the reward model: K-wise rankings and a ranking loss
#
# Step 2 of InstructGPT. Labelers rank K = 4..9 responses to a prompt, best first. A ranking of K responses
# holds C(K,2) comparisons "y_w is better than y_l", and a reward model r_θ(x, y) — the SFT model with its
# unembedding replaced by a scalar head — learns them with
#
#     loss(θ) = −1/C(K,2) · E_(x, y_w, y_l) [ log σ( r_θ(x, y_w) − r_θ(x, y_l) ) ]
#
# All C(K,2) comparisons of a prompt are ONE batch element: K forward passes, then every pairwise difference.
# Read `minigpt_rlhf/reward.py` beside this lesson, top to bottom.
#
# What this lesson measures, with the paper's numbers beside ours: does the RM predict the preferences of
# labelers it never saw as well as those of the labelers who trained it, and how close does it come to how often
# labelers agree with each other (the paper: training labelers 72.6 ± 1.5%, held-out 77.3 ± 1.3%)? And does
# shuffling the comparisons into independent pairs overfit, as the paper warns?
#
# Needs a run folder with `sft/` and `pretrain/` (lessons 02-03, or `minigpt-rlhf sft`). Run as a plain script:
# `python lessons/04_reward.py` (quick: about 3 minutes for the reward model, 144 s in a quick
# pipeline run, and a few more for the report card and the ablation; a finished stage is reused).
# `MINIGPT_RLHF_PRESET=micro` runs it in seconds on a micro run folder (numbers then mean little);
# `MINIGPT_RLHF_RUN=runs/NAME` picks another run folder.

# %%
import dataclasses
import math
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch

from minigpt_rlhf import reward, world
from minigpt_rlhf.comparisons import encode, ranking_loss, read_comparisons, write_comparisons
from minigpt_rlhf.config import load_config
from minigpt_rlhf.evaluate import at_temperature_1, headroom
from minigpt_rlhf.runtime import build_model, load_checkpoint, load_reward_model, read_metrics, tokenizer_from
from minigpt_rlhf.tokenizer import chat_response, format_chat

PRESET = os.environ.get("MINIGPT_RLHF_PRESET", "quick")
RUN = Path(os.environ.get("MINIGPT_RLHF_RUN", f"runs/{PRESET}"))
cfg = load_config(PRESET)
PLOTS = RUN / "plots"
PLOTS.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## Train it
# `reward.run` (comparisons.py holds the data's half) samples K responses per RM-split prompt — from the SFT model at several temperatures and, for
# a share, from the base model prompted in plain text (the paper drew from several policies, so that the
# rankings compare answers of different quality) — has one training labeler rank each set, trains
# for `reward.epochs` epochs (4 on quick) and centres the scores. Everything lands in `RUN/reward/`;
# a finished stage is reused.

# %%
ckpt_path = reward.run(cfg, RUN / "reward", sft=RUN / "sft", base=RUN / "pretrain")
ckpt = load_checkpoint(ckpt_path, "reward")
summary, tok = ckpt["summary"], tokenizer_from(ckpt)
rm = load_reward_model(ckpt_path)
comparisons = read_comparisons(RUN / "reward" / "comparisons.jsonl")
prompts = {p.id: p for p in world.load_prompts(cfg.data_dir, "rm")}

# %% [markdown]
# ## One ranking of K responses
# One labeler's ranking of one prompt's responses, best first, beside the gold judge's overall score (the
# experimenters' ground truth, which no model trains on) and the trained RM's reward.

# %%
c = next(c for c in comparisons if c.split == "val" and len(c.responses) >= 5)
prompt = prompts[c.prompt_id]
data = encode(tok, c, prompts)
r = rm.score_sequences(data.seqs)
print(f"prompt: {prompt.text!r}   ranked by {c.labeler}, K = {len(c.responses)}, C(K,2) = {math.comb(len(c.responses), 2)}")
print(f"{'rank':>4} {'source':>9} {'gold':>5} {'r_θ':>6}  response")
for pos, i in enumerate(c.ranking):
    gold = world.judge(prompt, c.responses[i], c.finished[i]).overall
    end = "" if c.finished[i] else " [no <|end|>]"
    print(f"{pos + 1:>4} {c.sources[i]:>9} {gold:5.2f} {r[i]:6.2f}  {c.responses[i][:70]!r}{end}")

# %% [markdown]
# ## The loss of this ranking, by hand
# Sort the rewards best first; every pair (w above l) contributes −log σ(r_w − r_l); average over the C(K,2)
# pairs. `ranking_loss` (comparisons.py, shared with DPO) does the same with two index tensors instead of a loop.

# %%
ordered = r[torch.tensor(c.ranking)]
terms = []
for w in range(len(ordered)):
    for l in range(w + 1, len(ordered)):
        d = float(ordered[w] - ordered[l])
        terms.append(-math.log(1 / (1 + math.exp(-d))))
        if len(terms) <= 4:
            print(f"rank {w + 1} vs rank {l + 1}: r_w - r_l = {d:+.3f}, -log σ = {terms[-1]:.3f}")
print(f"... {len(terms)} pairs; mean = {sum(terms) / len(terms):.4f}; "
      f"ranking_loss = {ranking_loss(r, c.ranking).item():.4f}")
print(f"adding 5 to every reward changes nothing: {ranking_loss(r + 5, c.ranking).item():.4f}")

# %% [markdown]
# ## Training curves
# The loss starts at log 2 = 0.693 (the head starts at zero: every pair is a coin flip) and validation accuracy
# is measured on prompts the RM never trained on, ranked by a training labeler and by a held-out one.

# %%
rows = read_metrics(RUN / "reward" / "metrics.jsonl")
train_rows = [x for x in rows if "loss" in x]
val_rows = [x for x in rows if "val_acc" in x and "epoch" in x]
fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 3.8))
a1.plot([x["step"] for x in train_rows], [x["loss"] for x in train_rows], lw=0.8)
a1.axhline(math.log(2), ls=":", c="grey", label="chance (log 2)")
a1.set(xlabel="step", ylabel="ranking loss", title="training loss (a batch of prompts per step)")
a1.legend()
for key, name in (("val_acc", "training labelers"), ("val_acc_heldout", "held-out labelers")):
    a2.plot([x["step"] for x in val_rows], [x[key] for x in val_rows], marker="o", ms=3, label=name)
for key, ls in (("agreement", "--"), ("agreement_heldout", ":")):
    a2.axhline(summary[key], ls=ls, c="grey", lw=1, label=f"{key.replace('_', ' ')} (ceiling)")
a2.set(xlabel="step", ylabel="pairwise accuracy", title="validation accuracy")
a2.legend(fontsize=8)
fig.tight_layout()
fig.savefig(PLOTS / "reward_training.png", dpi=120)
print(f"wrote {PLOTS / 'reward_training.png'}")

# %% [markdown]
# ## As good as the labelers?
# A second labeler from the same pool ranks the same validation responses: how often two labelers agree on a
# pair is the ceiling an RM can be expected to reach. The paper's RMs reached 72.4 ± 0.4% on their training
# labelers' held-out comparisons and 69.6 ± 0.9% on held-out labelers' (a cross-validation over labeler groups).

# %%
print(f"{'':28} {'RM accuracy':>12} {'labeler agreement':>18} {'paper agreement':>16}")
print(f"{'training labelers':28} {summary['val_acc']:12.1%} {summary['agreement']:18.1%} {'72.6 ± 1.5%':>16}")
print(f"{'held-out labelers':28} {summary['val_acc_heldout']:12.1%} {summary['agreement_heldout']:18.1%} {'77.3 ± 1.3%':>16}")
print(f"\nagainst the gold judge: the RM orders {summary['gold_acc']:.1%} of the pairs the judge tells apart as the judge "
      f"does (the labelers' own rankings: {summary['labelers_gold_acc']:.1%}); correlation of r_θ with the gold "
      f"score {summary['gold_corr']:.2f}")

# %%
val = [c for c in comparisons if c.split == "val"]
scores = torch.cat(reward.score_all(rm, [encode(tok, c, prompts) for c in val]))
gold = [world.judge(prompts[c.prompt_id], y, f).overall for c in val for y, f in zip(c.responses, c.finished)]
sources = [s.split("@")[0] for c in val for s in c.sources]
fig, ax = plt.subplots(figsize=(5.5, 4))
for src, colour in (("sft", "tab:blue"), ("base", "tab:orange")):
    pts = [(g, float(s)) for g, s, o in zip(gold, scores, sources) if o == src]
    if pts:
        ax.scatter(*zip(*pts), s=8, alpha=0.5, c=colour, label=f"{src} samples")
ax.set(xlabel="gold judge: overall score", ylabel="r_θ (demonstrations = 0)",
       title=f"reward vs gold, r = {summary['gold_corr']:.2f}")
ax.axhline(0, c="grey", lw=0.8)
ax.legend()
fig.tight_layout()
fig.savefig(PLOTS / "reward_vs_gold.png", dpi=120)
print(f"wrote {PLOTS / 'reward_vs_gold.png'}")

# %% [markdown]
# ## The report card: can it pick the best of 8?
# Accuracy on the labelers' pairs is one test; the one RL cares about is whether r_θ can tell SFT's good answers
# from its bad ones. Sample 8 answers per evaluation prompt from SFT (temperature 1, as PPO samples), and
# compare, per task family, the gold score of one answer, of the best of 8 as r_θ ranks them, and of the best of
# 8 as the gold judge ranks them. The gap between the first and the last is the headroom; the RM's share of it
# is what best-of-n, and PPO, can hope to get from this RM. (The evaluation prints the same card for 16
# samples per prompt, in report.md's "Over-optimisation".)

# %%
sft_model = build_model(load_checkpoint(RUN / "sft" / "ckpt.pt")).eval()
eval_set = world.load_prompts(cfg.data_dir, "eval")[: 24 if PRESET == "micro" else 480]
card = headroom(at_temperature_1(sft_model, sft_model, rm, tok, eval_set, cfg, seed=4, n=8), eval_set, n=8)
print(f"{'family':15} {'prompts':>7} {'one':>6} {'by r_θ':>7} {'by gold':>8} {'captured':>9} {'corr':>6}")
for family, h in card.items():
    print(f"{family:15} {h['n_prompts']:7d} {h['one']:6.3f} {h['by_rm']:7.3f} {h['by_gold']:8.3f} "
          f"{h['captured']:9.0%} {h['corr']:6.2f}")

# %% [markdown]
# ## Normalisation
# The loss sees only differences, so r_θ's offset is arbitrary. Before RL, a bias is added so that the
# labelers' demonstrations score 0 on average: a positive reward then means "better than a typical
# demonstration". Here the head's bias is exactly that shift.

# %%
demos = [d for d in world.load_demonstrations(cfg.data_dir) if d.prompt_id in prompts]
demo_scores = rm.score([format_chat(tok, prompts[d.prompt_id].text) for d in demos],
                       [chat_response(tok, d.response) for d in demos])
print(f"mean demonstration score before the shift {summary['demo_mean_before']:+.3f}, bias {summary['bias']:+.3f}, "
      f"after: {demo_scores.mean():+.4f} over {len(demos)} demonstrations")
for src in ("sft", "base"):
    mine = [float(s) for s, o in zip(scores, sources) if o == src]
    if mine:
        print(f"the {src} model's validation samples score {sum(mine) / len(mine):+.3f} on average")

# %% [markdown]
# ## Ablation: independent shuffled pairs
# The same comparisons shuffled into one dataset of pairs, batch_size pairs a step (each pair a K = 2 ranking:
# two forward passes). An epoch then takes C(K,2) times as many steps, and each response takes part in K − 1 of
# them: the paper found that this overfits within one epoch, while the K-wise batch costs one forward pass per
# response and does not. Both run EPOCHS epochs on the first ABLATION_PROMPTS rankings and are validated on
# ABLATION_VAL prompts (the pairs cost K − 1 times the forward passes of the K-wise run: a subset keeps the
# lesson short).

# %%
EPOCHS, ABLATION_PROMPTS, ABLATION_VAL = 3, min(96, cfg.reward.n_prompts), min(60, cfg.reward.val_prompts)
train_subset = [c for c in comparisons if c.split == "train"][:ABLATION_PROMPTS]
val_ids = {p.id for p in list(prompts.values())[-ABLATION_VAL:]}
subset = train_subset + [c for c in comparisons if c.split != "train" and c.prompt_id in val_ids]
curves = {}
for mode, pairs in (("K-wise", False), ("pairs", True)):
    stage = f"reward_ablation_{'pairs' if pairs else 'kwise'}"
    (RUN / stage).mkdir(exist_ok=True)
    write_comparisons(RUN / stage / "comparisons.jsonl", subset)
    elements = sum(math.comb(len(c.responses), 2) for c in train_subset) if pairs else ABLATION_PROMPTS
    # a constant rate and no warmup: both orders of the same comparisons take steps of one size
    rc = dataclasses.replace(cfg.reward, n_prompts=ABLATION_PROMPTS, rankings_per_prompt=1,  # the subset's rankings
                             val_prompts=ABLATION_VAL, pairs=pairs, epochs=EPOCHS, lr=3e-4, min_lr=3e-4, warmup=0,
                             eval_every=max(1, elements // cfg.reward.batch_size // 2))
    reward.run(dataclasses.replace(cfg, reward=rc), RUN / stage, sft=RUN / "sft", base=RUN / "pretrain")
    rows = read_metrics(RUN / stage / "metrics.jsonl")
    curves[mode] = ([x for x in rows if "loss" in x], [x for x in rows if "val_acc" in x and "epoch" in x])
fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
for mode, (train_pts, val_pts) in curves.items():
    window = max(1, len(train_pts) // (10 * EPOCHS))  # a running mean over a tenth of an epoch
    smooth = np.convolve([x["loss"] for x in train_pts], np.ones(window) / window, mode="valid")
    axes[0].plot([x["epoch"] for x in train_pts][window - 1 :], smooth, label=mode)
    axes[1].plot([x["epoch"] for x in val_pts], [x["val_loss"] for x in val_pts], marker="o", ms=3, label=mode)
    axes[2].plot([x["epoch"] for x in val_pts], [x["val_acc"] for x in val_pts], marker="o", ms=3, label=mode)
for ax, what in zip(axes, ("training loss (running mean)", "validation loss", "validation accuracy (training labelers)")):
    ax.set(xlabel="epoch", title=what)
    ax.legend()
fig.tight_layout()
fig.savefig(PLOTS / "reward_ablation.png", dpi=120)
for mode, (_, pts) in curves.items():
    one = min(pts, key=lambda x: abs(x["epoch"] - 1))
    best = max(pts, key=lambda x: x["val_acc"])
    print(f"{mode:7}: val accuracy {one['val_acc']:.1%} after 1 epoch, {pts[-1]['val_acc']:.1%} after {EPOCHS} "
          f"(best {best['val_acc']:.1%} at epoch {best['epoch']:.2f}); val loss {one['val_loss']:.3f} after 1, "
          f"{pts[-1]['val_loss']:.3f} after {EPOCHS}")
print(f"wrote {PLOTS / 'reward_ablation.png'}")

# %% [markdown]
# ## What we measured on `quick`
# Measured on quick (seed 1337, the graded world; 2-core CPU): 1,080 rankings (21,506 pairs), 4
# epochs (540 steps): the RM reached 67.8% pairwise accuracy on training labelers' held-out rankings
# and 70.0% on held-out labelers' — as in the paper, no worse on labelers it never saw (72.4% vs
# 69.6%) — but 5 and 14 points under the labelers' own agreement (73.0%, 83.8%). Against the gold
# judge it orders 74.3% of the pairs the judge tells apart as the judge does (the labelers: 87.5%).
# The report card is the sobering part: on SFT's samples of the eval prompts its correlation with
# the gold score is 0.48, and its best of 8 gains a little over one sample (0.760 against 0.724; the
# gold judge's best of 8: 0.917): it captures 19% of the headroom. Per family it gains most on
# brainstorm, generation and constraints (43-56%) and nothing on sums, labels and rewrites (−21% to
# −3%; correlations 0.03-0.28: there checking an answer is as hard as writing it); per family the
# numbers are noisy (15-96 prompts): the evaluation's card, the same RM on other samples
# (report.md), gives 25% overall. PPO can only climb what the RM sees (lesson 05).
#
# Why 4 epochs where the paper trained one: the paper's RM saw about 33k prompts, each ranking 4-9
# responses, so one pass held tens of thousands of distinct comparisons; ours holds 21,506 pairs
# from 1,080 prompts, and the held-out loss kept falling after one epoch (training labelers'
# rankings: 0.606 after one, lowest 0.570 at epoch 3, 0.577 after four; held-out labelers' 0.592,
# 0.540 after four). Ten epochs, twice the rankings, a trunk three times the size and the labeler's
# own demonstration among the ranked answers each left the card about where it was (23-29%
# captured, against 21% and 26% for two training seeds of this RM: docs/experiments/README.md,
# 2026-12-06, "can the reward model hold up").
#
# The ablation (96 rankings, 3 epochs, a constant rate of 3e-4) showed the paper's warning in the
# validation loss: independent pairs drove it from 0.689 after one epoch to 0.771 after three while
# K-wise batches kept lowering it (0.666 → 0.631). Accuracy on this small validation set only
# moved within its noise of about ±4 points (K-wise 60.8% after one epoch, 63.5% after three; pairs
# 62.2% then 65.4%).
