# %% [markdown]
# # Lesson 08 — DPO: preferences without a reward model
#
# Since InstructGPT, most models are aligned with direct preference optimisation (Rafailov et al., 2023). Its
# observation: the KL-regularised RLHF objective, max_π E[r(x, y)] − β · KL(π ‖ π_ref), has the optimum
# π*(y|x) ∝ π_ref(y|x) · exp(r(x, y) / β). Turned around, every policy implies a reward,
#
#     r̂(x, y) = β · log( π(y|x) / π_ref(y|x) )   (+ a constant per prompt, which no comparison can see),
#
# and putting r̂ into the reward model's loss trains the policy directly on the labelers' comparisons:
#
#     loss(π) = −log σ( β · [ (log π(y_w|x) − log π_ref(y_w|x)) − (log π(y_l|x) − log π_ref(y_l|x)) ] )
#
# No reward model, no sampling, no value model: one forward pass per response, as in lesson 04. Read
# `minigpt_rlhf/dpo.py` beside this lesson; it uses lesson 04's ranking loss (`comparisons.ranking_loss`) with
# r̂ in place of r_θ, all C(K,2) pairs of a prompt in one batch element.
#
# Needs a run folder with `sft/` and `reward/` (its comparisons.jsonl). `python lessons/08_dpo.py`;
# `MINIGPT_RLHF_PRESET=micro` for a seconds-long smoke run, `MINIGPT_RLHF_RUN=runs/NAME` for another folder.

# %%
import math
import os
from pathlib import Path

import torch

from minigpt_rlhf import dpo, world
from minigpt_rlhf.comparisons import read_comparisons
from minigpt_rlhf.config import load_config
from minigpt_rlhf.evaluate import policy_scores
from minigpt_rlhf.runtime import build_model, load_checkpoint, load_reward_model, read_metrics, setup, tokenizer_from

PRESET = os.environ.get("MINIGPT_RLHF_PRESET", "quick")
RUN = Path(os.environ.get("MINIGPT_RLHF_RUN", f"runs/{PRESET}"))
cfg = load_config(PRESET)
device = setup(cfg.seed, cfg.device or None)

# %% [markdown]
# ## The DPO loss by hand
# One ranking from the reward stage's comparisons. Before any training π = π_ref, so every implicit reward is 0,
# every pair is a coin flip and the loss is log 2 — exactly the reward model's starting point in lesson 04.

# %%
sft_ckpt = load_checkpoint(RUN / "sft" / "ckpt.pt", "sft")
tok = tokenizer_from(sft_ckpt)
ref = build_model(sft_ckpt, device).eval()
prompts = {p.id: p for p in world.load_prompts(cfg.data_dir, "rm")}
c = next(c for c in read_comparisons(RUN / "reward" / "comparisons.jsonl") if c.split == "train")
data = dpo.encode(tok, c, prompts)
with torch.no_grad():
    ref_lp = dpo.logprobs(ref, tok, [data])[0]
print(f"prompt {prompts[c.prompt_id].text!r}, K = {len(c.responses)}, ranked best first: {c.ranking}")
print(f"log π_ref(y|x) of each response: {[round(float(x), 2) for x in ref_lp]}")
shifted = ref_lp.clone()
shifted[c.ranking[0]] += 1.0  # suppose training made the best response e times more likely than π_ref does
print(f"DPO loss by hand: at the start {dpo.dpo_loss(ref_lp, ref_lp, c.ranking, cfg.dpo.beta):.4f} (log 2 = "
      f"{math.log(2):.4f}); with the best response 1 nat more likely: "
      f"{dpo.dpo_loss(shifted, ref_lp, c.ranking, cfg.dpo.beta):.4f}")

# %% [markdown]
# ## Train
# `dpo.run` is what `minigpt-rlhf dpo` and the pipeline call: the training labelers' rankings of the reward
# stage, `dpo.epochs` passes, validated on the same held-out rankings as the reward model (a training labeler's
# and a held-out one's).

# %%
dpo.run(cfg, RUN / "dpo", sft=RUN / "sft", comparisons=RUN / "reward")
rows = read_metrics(RUN / "dpo" / "metrics.jsonl")
val = [r for r in rows if "val_acc" in r]
rm = load_checkpoint(RUN / "reward" / "ckpt.pt", "reward")["summary"]
print(f"{'':34} {'training labelers':>18} {'held-out labelers':>18}")
print(f"{'DPO implicit reward, start':34} {val[0]['val_acc']:18.1%} {val[0]['val_acc_heldout']:18.1%}")
print(f"{'DPO implicit reward, end':34} {val[-1]['val_acc']:18.1%} {val[-1]['val_acc_heldout']:18.1%}")
print(f"{'the reward model r_θ (lesson 04)':34} {rm['val_acc']:18.1%} {rm['val_acc_heldout']:18.1%}")

# %% [markdown]
# Measured on quick (seed 1337, the graded world; the reward stage's 1,080 rankings): the implicit
# reward starts at chance (50%, loss log 2: π = π_ref) and after 2 epochs orders 66.0% of the
# training labelers' held-out pairs and 69.5% of the held-out labelers' — about as well as the
# reward model does (67.8%, 70.0%), from the same comparisons. As a policy it gains what PPO gains:
# 54% / 51% / 56% against SFT on seeds 1337 / 1338 / 1339 (PPO 54% / 50% / 51%), at a KL to SFT of
# 1.64 / 1.18 / 1.38 nats (PPO 1.26 / 1.11 / 1.44; `minigpt-rlhf seeds`, docs/results.md): learning
# from the same comparisons, it ranks as well as r_θ and gains as much as PPO did from it, for a
# quarter of PPO's FLOPs.

# %% [markdown]
# ## On evaluation prompts
# One answer per prompt sampled at temperature 1, scored by the reward model (which DPO never saw) and the gold
# judge; PPO's line is there when lesson 05 made it.

# %%
rm_model = load_reward_model(RUN / "reward" / "ckpt.pt", device)
eval_prompts = world.load_prompts(cfg.data_dir, "eval")[: 32 if PRESET == "micro" else 256]
print("on evaluation prompts:")
for stage in ("sft", "ppo", "dpo"):
    if (RUN / stage / "ckpt.pt").is_file():
        model = build_model(load_checkpoint(RUN / stage / "ckpt.pt"), device)
        res = policy_scores(model, rm_model.score, eval_prompts, tok, cfg.max_new_tokens)
        print(f"{stage:5}" + "".join(f"  {k} {v:.3f}" for k, v in res.items()))
