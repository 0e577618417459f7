# %% [markdown]
# # Lesson 05 — PPO: reinforcement learning from the reward model
#
# Step 3 of InstructGPT. The policy π^RL starts as a copy of the SFT model and maximises
#
#     objective(φ) = E_(x,y)~π_φ^RL [ r_θ(x, y) − β · log( π_φ^RL(y|x) / π^SFT(y|x) ) ]
#
# (plus γ · a pretraining term, lesson 06). r_θ is the reward model of lesson 04, frozen; π^SFT is a frozen copy
# of the SFT model; β = `ppo.kl_coef` prices every nat the policy moves away from it. Read
# `minigpt_rlhf/ppo.py` beside this lesson: it is one file, top to bottom, with these formulas next to the code.
#
# Needs a run folder with `sft/` and `reward/` (lessons 02–04, or `minigpt-rlhf run`). Run as a plain script:
# `python lessons/05_ppo.py` (quick: the two stages it trains, 160 iterations at β = 0 and 80 of
# GRPO, take about 20 minutes on a 2-core CPU at the pipeline's 4.8 s an iteration; finished stages
# are reused).
# `MINIGPT_RLHF_PRESET=micro` runs it in seconds on a micro run folder (numbers then mean nothing);
# `MINIGPT_RLHF_RUN=runs/NAME` picks another run folder.

# %%
import os
from functools import partial
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

from minigpt_rlhf import plots, ppo, stages, world
from minigpt_rlhf.config import load_config
from minigpt_rlhf.best_of_n import kl_best_of_n
from minigpt_rlhf.evaluate import at_temperature_1, best_of_n_curve, policy_scores
from minigpt_rlhf.runtime import build_model, load_checkpoint, load_reward_model, read_metrics, setup
from minigpt_rlhf.tokenizer import format_chat

PRESET = os.environ.get("MINIGPT_RLHF_PRESET", "quick")
RUN = Path(os.environ.get("MINIGPT_RLHF_RUN", f"runs/{PRESET}"))
cfg = load_config(PRESET, ["ppo.ptx_coef=0"])  # plain PPO: γ = 0 (lesson 06 adds the pretraining mix)
device = setup(cfg.seed, cfg.device or None)
PLOTS = RUN / "plots"
PLOTS.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## One rollout, token by token
# PPO sees a response as a sequence of actions. Each token pays −β · (log π^RL − log π^SFT) — exactly 0 now,
# since the policy *is* the SFT model — and the last token also receives the RM's score. The value model
# (a copy of the RM, reading every position instead of the last) predicts what is still to come, and GAE
# turns rewards and values into advantages: which tokens did better than expected.

# %%
trainer, prompts = ppo.build_trainer(cfg, sft=RUN / "sft", reward=RUN / "reward", device=device)
tok = trainer.tok
ro, stats = trainer.rollout()
i = min(range(len(ro.responses)), key=lambda j: (not ro.finished[j], abs(len(ro.responses[j]) - 16)))  # a short one
print("prompt:", prompts[ro.prompt_index[i]].text)
print(f"{'token':>8} {'kl':>7} {'V(s_t)':>8} {'r_t':>8} {'A_t':>7}")
for t, token in enumerate(ro.responses[i]):
    print(f"{tok.decode([token])!r:>8} {ro.kl[i, t]:7.3f} {ro.values[i, t]:8.3f} {ro.rewards[i, t]:8.3f} "
          f"{ro.advantages[i, t]:7.3f}")
print(f"\nthis batch: KL to SFT {stats['kl']} (exactly 0: same weights, same forward pass), "
      f"log-prob gap sampling vs scoring {stats['logprob_gap']:.1e}, truncated {stats['truncated']:.0%}")

# %% [markdown]
# ## One PPO update by hand
# `ppo.run` repeats two steps: a rollout (`PPOTrainer.rollout`), then an update
# (`PPOTrainer.update`). Here is one of each, spelled out with the functions those two methods call,
# on 8 prompts and one minibatch of 4. It uses this trainer's policy, value model and optimizer;
# `ppo.run` below builds its own, so this step changes nothing that follows.
#
# **1. Rollout.** Sample one response per prompt from π^RL (still π^SFT) at temperature T, no top-k:
# the samples must come from the distribution whose log-probs PPO uses. r_θ scores them in PPO's
# units (divided by the spread the trainer measured on its first batch, above); a response that
# never emitted <|end|> gets the truncation penalty instead of the RM's opinion of a fragment.

# %%
pc, T = cfg.ppo, cfg.ppo.temperature
policy, ref, value = trainer.policy, trainer.ref, trainer.value
xs = trainer.prompts[:8]  # token lists in the chat format; prompts[j] is prompt j as text
gen = policy.generate(xs, cfg.max_new_tokens, temperature=T, top_k=None, stop_id=tok.end_id,
                      pad_id=tok.pad_id, generator=torch.Generator(device=device).manual_seed(0))
# each row: the prompt left-padded, then the response right-padded; mask marks the response tokens
seq, real, mask = ppo.make_batch(xs, gen.responses, tok.pad_id, device)
finished = torch.tensor(gen.finished, device=device)
with torch.no_grad():  # r_θ of every response; the truncated ones' scores are then replaced
    rm_score = trainer.reward_fn(xs, gen.responses).to(device)
score = torch.where(finished, rm_score * trainer.score_scale, pc.truncation_penalty)
for j, y in enumerate(gen.responses):
    answer = tok.decode(y, skip_special=True)
    print(f"score {score[j]:5.2f}  {prompts[j].text[:36]!r:38} -> {answer!r}")
print(f"seq {tuple(seq.shape)}: prompt and response columns; mask {tuple(mask.shape)}")

# %% [markdown]
# **2. Per-token rewards.** Score each sampled token under π^RL (these log-probs are π_old, what
# the ratio divides by) and under π^SFT, and read V at every state. Each token pays −β·kl_t; the
# last one also gets the score (Ziegler et al., 2019):
#
#     r_t = −β · (log π^RL(y_t | x, y_<t) − log π^SFT(y_t | x, y_<t))  +  [t = last] · r_θ(x, y)

# %%
ALL = torch.arange(8, device=device)
MB = torch.randperm(8, generator=torch.Generator().manual_seed(0))[:4].to(device)  # the minibatch


def logprobs_of(model, rows):
    """log π(y_t | x, y_<t) of the sampled tokens of these rows, (rows, R): response_logprobs gives
    the whole vocabulary's; the sampled token's is gathered from them, as PPOTrainer does inline."""
    fn = partial(ppo.response_logprobs, model, temperature=T)
    logp = ppo.by_length(fn, seq[rows], real[rows], mask[rows])  # in chunks of similar length
    return logp.gather(2, seq[rows, -mask.size(1):, None]).squeeze(2)


def values_of(rows):
    """V(s_t): the value model's prediction before each response token of these rows, (rows, R)."""
    return ppo.by_length(partial(ppo.response_values, value), seq[rows], real[rows], mask[rows])


with torch.no_grad():
    old_logprobs, ref_logprobs = logprobs_of(policy, ALL), logprobs_of(ref, ALL)
    old_values = values_of(ALL)
beta = trainer.kl_ctl.beta
rewards, kl = ppo.kl_penalised_rewards(score, old_logprobs, ref_logprobs, mask, beta)
print(f"β = {beta:g}; largest |kl_t| {kl.abs().max():.1e}: π^RL is π^SFT, so no token pays yet")
print(f"Σ_t r_t of each response = its score: {[round(v, 2) for v in rewards.sum(1).tolist()]}")

# %% [markdown]
# **3. GAE** (Schulman et al., 2016), backwards from each response's last token, after which the
# episode is over (V = 0); γ = `gae_gamma`, λ = `gae_lambda`:
#
#     δ_t = r_t + γ·V(s_t+1) − V(s_t),    A_t = δ_t + γλ·A_t+1,    R_t = A_t + V(s_t)
#
# R_t is the value model's target. The policy sees the advantages whitened: mean 0, std 1 over the
# batch's response tokens.

# %%
raw_advantages, returns = ppo.gae(rewards, old_values, mask, pc.gae_gamma, pc.gae_lambda)
advantages = ppo.masked_whiten(raw_advantages, mask) if pc.whiten_advantages else raw_advantages
i = min(range(8), key=lambda j: (not gen.finished[j], abs(len(gen.responses[j]) - 8)))  # short
print(f"response {i}: {'token':>8} {'r_t':>7} {'V(s_t)':>7} {'A_t':>7} {'R_t':>7} {'whitened':>8}")
for t, token in enumerate(gen.responses[i]):
    r_t = rewards[i, t] + 0.0  # −β·0 is −0.0: print 0.000
    print(f"{'':11} {tok.decode([token])!r:>8} {r_t:7.3f} {old_values[i, t]:7.3f} "
          f"{raw_advantages[i, t]:7.3f} {returns[i, t]:7.3f} {advantages[i, t]:8.3f}")

# %% [markdown]
# **4. The two losses on one minibatch**, its log-probs and values computed again, with gradients.
# The clipped surrogate (Schulman et al., 2017, eq. 7) stops pushing a token once its ratio has left
# [1 − ε, 1 + ε] in its advantage's direction; the value loss keeps V near its rollout value the
# same way (cleanrl's):
#
#     ρ_t = π_φ(y_t|·) / π_old(y_t|·),    L^CLIP = −E_t[ min(ρ_t·A_t, clip(ρ_t, 1−ε, 1+ε)·A_t) ]
#     L^V = ½·E_t[ max((V − R_t)², (V_old + clip(V − V_old, −ε_V, ε_V) − R_t)²) ]
#
# Before any step π_φ is π_old: every ρ_t is 1, and L^CLIP is minus the minibatch's mean advantage.

# %%
m = mask[MB]
new_logprobs, new_values = logprobs_of(policy, MB), values_of(MB)  # with gradients
pg_loss, clipfrac, approx_kl = ppo.policy_loss(new_logprobs, old_logprobs[MB], advantages[MB], m,
                                               pc.clip_eps)
vf_loss = ppo.value_loss(new_values, old_values[MB], returns[MB], m, pc.clip_value)
ratio = (new_logprobs - old_logprobs[MB]).exp()[m]
print(f"minibatch: responses {MB.tolist()}, {int(m.sum())} tokens; max |ρ_t − 1| "
      f"{(ratio - 1).abs().max():.1e}")
print(f"L^CLIP = {pg_loss:.6f}  (−mean A_t = {-ppo.masked_mean(advantages[MB], m):.6f})")
print(f"L^V    = {vf_loss:.6f}")

# %% [markdown]
# **5. One optimizer step** on L^CLIP + L^V (two separate models: the sum couples nothing), each
# model's gradient clipped on its own, so that the value loss's large gradients cannot shrink the
# policy's step.

# %%
trainer.optimizer.zero_grad(set_to_none=True)
(pg_loss + vf_loss).backward()
norms = [float(torch.nn.utils.clip_grad_norm_(mod.parameters(), pc.grad_clip))
         for mod in (policy, value)]
trainer.optimizer.step()
print(f"gradient norms before clipping to {pc.grad_clip:g}: policy {norms[0]:.3f}, "
      f"value {norms[1]:.3f}")

# %% [markdown]
# **6. After the step.** The same tokens, scored by the updated policy: the ratios have left 1, on
# the minibatch and (the weights are shared) on the other 4 responses too. The clip fraction is the
# share of tokens whose ratio left [1 − ε, 1 + ε]: further steps on this batch would stop pushing
# those (cleanrl logs it beside approx-KL, an estimate of KL(π_old ‖ π_φ)). One small step makes
# both losses smaller.

# %%
with torch.no_grad():
    after = logprobs_of(policy, ALL)
    pg_after = ppo.policy_loss(after[MB], old_logprobs[MB], advantages[MB], m, pc.clip_eps)[0]
    vf_after = ppo.value_loss(values_of(MB), old_values[MB], returns[MB], m, pc.clip_value)
    _, clipfrac_after, approx_kl_after = ppo.policy_loss(after, old_logprobs, advantages, mask,
                                                         pc.clip_eps)
ratio_after = (after - old_logprobs).exp()
for name, rows in (("minibatch", MB), ("all 8", ALL)):
    r = ratio_after[rows][mask[rows]]
    print(f"ratio on {name:9}: mean {r.mean():.4f}  min {r.min():.4f}  max {r.max():.4f}")
up = m & (advantages[MB] > 0)
print(f"minibatch: mean ρ_t {ratio_after[MB][up].mean():.4f} where A_t > 0, "
      f"{ratio_after[MB][m & ~up].mean():.4f} where A_t ≤ 0: better tokens became likelier")
print(f"all 8: clip fraction {clipfrac_after:.3f}, approx-KL {approx_kl_after:.1e}")
print(f"L^CLIP {pg_loss:.6f} -> {pg_after:.6f},  L^V {vf_loss:.6f} -> {vf_after:.6f}")
by_hand = dict(score=score, mask=mask, old_logprobs=old_logprobs, ref_logprobs=ref_logprobs,
               beta=beta, rewards=rewards, values=old_values, raw_advantages=raw_advantages,
               returns=returns, advantages=advantages, mb=MB, new_logprobs=new_logprobs.detach(),
               new_values=new_values.detach(), after=after, pg_loss=pg_loss.item(),
               vf_loss=vf_loss.item(), pg_after=pg_after.item(), vf_after=vf_after.item(),
               clipfrac_after=clipfrac_after.item(), gamma=pc.gae_gamma, lam=pc.gae_lambda,
               clip_eps=pc.clip_eps, clip_value=pc.clip_value, whiten=pc.whiten_advantages)
torch.save(by_hand, RUN / "ppo_update_by_hand.pt")  # the tests check these numbers with plain loops

# %% [markdown]
# ## Train
# `ppo.run` is what `minigpt-rlhf ppo` and the pipeline call. Every iteration: sample `rollout_batch`
# responses with the KV cache (temperature 1, no top-k: the samples must come from π^RL itself, or the KL
# estimate goes negative), score them, then `ppo_epochs` passes of clipped minibatch updates.

# %%
ppo.run(cfg, RUN / "ppo", sft=RUN / "sft", reward=RUN / "reward")
rows = read_metrics(RUN / "ppo" / "metrics.jsonl")
first, last = rows[0], rows[-1]
print(f"{'':22} {'start':>8} {'end':>8}")
for key in ["rm_score", "gold", "kl", "kl_coef", "entropy", "response_len", "truncated", "corpus_loss"]:
    print(f"{key:22} {first[key]:8.3f} {last[key]:8.3f}")
trained = [r for r in rows if "approx_kl" in r]
for key in ["approx_kl", "clipfrac", "vf_loss", "explained_var"]:
    print(f"{key:22} mean over the updates {sum(r[key] for r in trained) / len(trained):.4f}")

# %% [markdown]
# (The numbers quoted in this lesson are those of seed 1337's `quick` run on the graded world, 2-core
# CPU; yours print here.) 80 iterations of 128 responses, 2 epochs of minibatches of 32, β = 0.2: the
# RM score of the rollouts rose from 0.115 to 0.537 (means of the first and the last 5 iterations;
# the first and the last batch, printed above: 0.007 → 0.592) with the KL to SFT at 1.2 nats; the
# gold score barely rose (0.759 → 0.764 in the same means; first and last batch 0.744 → 0.758: one
# batch of 128 is noisy by about ±0.02); responses grew from 12.6 to 14.5 tokens; the entropy
# drifted from 0.52 to 0.40; the held-out corpus loss rose from 3.01 to 3.05 (the alignment tax,
# lesson 06). Updates stayed gentle (approx-KL ≈ 0.0016, clip fraction ≈ 0.01); the value model,
# started from the RM, predicted badly only on the first batch (explained variance −0.07), then
# learned (0.9 from iteration 27; 0.84 over the run). An iteration took 10.5 s, 16% of it sampling
# (in a `seeds` run: one torch thread, beside a second pipeline on the 2 cores; `minigpt-rlhf bench`
# times the loop on an idle CPU).

# %% [markdown]
# ## The diagnostics, as cleanrl and lm-human-preferences plot them
# What healthy looks like: RM reward up, KL rising but bounded by β, entropy drifting down slowly (not
# collapsing), approx-KL per update small (≈ 0.01) with a clip fraction of a few percent, explained variance
# climbing towards 1 as the value model learns, truncations rare.

# %%
def plot_diagnostics(rows, path, keys=("rm_score", "gold", "kl", "kl_coef", "entropy", "response_len",
                                        "approx_kl", "clipfrac", "vf_loss", "explained_var", "truncated",
                                        "corpus_loss")):
    fig, axes = plt.subplots(3, 4, figsize=(14, 8))
    for ax, key in zip(axes.flat, keys):
        pts = [(r["iter"], r[key]) for r in rows if r.get(key) is not None]
        ax.plot(*zip(*pts), marker="." if len(pts) < 15 else None)
        ax.set_title(key)
        ax.set_xlabel("iteration")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


print(plot_diagnostics(rows, PLOTS / "ppo_diagnostics.png"))

# %% [markdown]
# ## Where the time goes
# One iteration = rollout (sampling with the KV cache) + score (one forward pass each of π^RL, π^SFT, V, and
# the RM) + update (ppo_epochs × backward passes of the policy and the value model).

# %%
for key in ["t_rollout", "t_score", "t_update"]:
    print(f"{key:10} {sum(r[key] for r in trained) / len(trained):6.2f} s per iteration")
total = sum(r["t_rollout"] + r["t_score"] + r["t_update"] for r in trained)
print(f"rollout share: {sum(r['t_rollout'] for r in trained) / total:.0%}")

# %% [markdown]
# ## On the evaluation prompts
# Training rewards are measured on the PPO prompts. Does it carry over to prompts never trained on? Sample one
# response per evaluation prompt from SFT and from PPO, and score each with the RM and the gold judge.
#
# Measured on quick (seed 1337, the graded world): the RM's gain carries over (−0.026 → 0.654 on 128
# evaluation prompts), and a little of the gold judge's does too (0.748 → 0.799, helpful 0.54 →
# 0.62; the evaluation's 480 give PPO 54% [50, 59] against SFT, 50% and 51% on seeds 1338 and 1339).
# The paper's finding — labelers prefer the PPO model — shows only as a direction: the RM correlates
# 0.48 with the gold score on SFT's samples, its best of 8 captures a fifth to a quarter of the gold
# judge's gain (lesson 04's report card), and it is blind on sums and labels, where PPO drifts.
# With less leash it drifts further: at β = 0.1, PPO-ptx lost every sum and every label of the
# evaluation on this seed (win 50%; docs/experiments/README.md, 2026-12-06, "can the reward model
# hold up"); β = 0.2 keeps it near SFT (log 2026-12-01, "RL against learned reward models", linked
# beside `PPOConfig.kl_coef`).


# %%
def evaluate(ckpt_path, n=128):
    policy = build_model(load_checkpoint(ckpt_path), device)
    eval_prompts = world.load_prompts(cfg.data_dir, "eval")[:n]
    return policy_scores(policy, trainer.reward_fn, eval_prompts, tok, cfg.max_new_tokens, seed=0)


results = {name: evaluate(RUN / name / "ckpt.pt") for name in ["sft", "ppo"]}
print(f"{'':6}" + "".join(f"{k:>14}" for k in results["sft"]))
for name, res in results.items():
    print(f"{name:6}" + "".join(f"{v:14.3f}" for v in res.values()))

# %% [markdown]
# ## Over-optimisation (Gao et al., 2022)
# The RM is a proxy for the labelers, learned from 1,080 rankings. Push on it without the KL leash
# (β = 0) for twice as long, and the policy finds what the RM over-rates. Gao et al. plot the proxy and the
# gold score against d = sqrt(KL(π ‖ π^SFT)), the distance travelled from the start: the proxy keeps rising,
# the gold score stalls or falls.
#
# Measured on quick (seed 1337, the graded world; 160 iterations of 128 answers at β = 0;
# 5-iteration means): the RM score rose from 0.007 to 1.632 by iteration 40, 1.975 by 80 and 2.027
# at 160 while sqrt(KL) grew to 7.7 (about 59 nats), and the gold score fell from 0.744 to 0.484,
# 0.503 and 0.508. On evaluation prompts the β = 0 policy's RM score is the highest of the three
# (2.024 against PPO's 0.654) and its gold score the lowest (0.509 against SFT's 0.748; helpful 0.54
# → 0.04): proxy up, truth down. Its answers collapse into one string the RM over-rates, whatever
# the prompt: compliments of a creature ("The handix is a gem. The handix is a sweetheart."; the
# samples below). At β = 0.1 the rise and fall shows within the recipe's own reach (PPO-ptx's
# rollouts: gold 0.759 → 0.767 at d 1.5, then 0.74 at d 1.9, r_θ rising all the way:
# docs/experiments/overopt_graded_1337.png).

# %%
overopt = load_config(PRESET, ["ppo.ptx_coef=0", "ppo.kl_coef=0", "ppo.kl_target=0",
                               f"ppo.iterations={2 * cfg.ppo.iterations}", f"ppo.eval_every={cfg.ppo.iterations}"])
ppo.run(overopt, RUN / "ppo_overopt", sft=RUN / "sft", reward=RUN / "reward")
curves = {f"ppo (β = {cfg.ppo.kl_coef:g})": rows, "ppo_overopt (β = 0)": read_metrics(RUN / "ppo_overopt" / "metrics.jsonl")}
print(plots.plot_overoptimisation(curves, PLOTS / "ppo_overoptimisation.png"))


def smooth(rows, key, k=5):
    """Mean over the last k iterations: one batch's gold score is noisy (128 responses)."""
    return [sum(r[key] for r in rows[max(0, i - k + 1) : i + 1]) / len(rows[max(0, i - k + 1) : i + 1])
            for i in range(len(rows))]


o = curves["ppo_overopt (β = 0)"]
gold, rm = smooth(o, "gold"), smooth(o, "rm_score")
print(f"β = 0, {len(o) - 1} iterations (5-iteration means):")
for i in sorted({0, len(o) // 4, len(o) // 2, len(o) - 1}):
    print(f"  iteration {o[i]['iter']:3d}: sqrt(KL) {o[i]['sqrt_kl']:5.2f}  RM score {rm[i]:6.3f}  gold {gold[i]:.3f}  "
          f"length {o[i]['response_len']:5.1f}")
results["ppo_overopt"] = evaluate(RUN / "ppo_overopt" / "ckpt.pt")
print("\non evaluation prompts:")
for name, res in results.items():
    print(f"{name:12}" + "".join(f"{k} {v:.3f}  " for k, v in res.items()))

# %%
policy = build_model(load_checkpoint(RUN / "ppo_overopt" / "ckpt.pt"), device)
examples = world.load_prompts(cfg.data_dir, "eval")[:4]
out = policy.generate([format_chat(tok, p.text) for p in examples], cfg.max_new_tokens, stop_id=tok.end_id,
                      pad_id=tok.pad_id, generator=torch.Generator(device=device).manual_seed(0))
for p, r in zip(examples, out.responses):
    print(f"{p.text!r:60} -> {tok.decode(r, skip_special=True)!r}")

# %% [markdown]
# ## GRPO: the same loop without a value model (Shao et al., 2024)
# PPO's value model is a second network as large as the policy, trained beside it, and at the start it knows
# nothing about the returns (explained variance below 0 above). GRPO drops it: each prompt gets a group of G
# answers, and an answer's advantage is how much better it scored than its siblings,
#
#     A_i = (R_i − mean(R_1..R_G)) / std(R_1..R_G)     for every token of answer i   (`ppo.group_advantages`)
#
# with R_i its whole return (the RM's score minus β · its KL to SFT: the penalty stays in the reward
# here). The clipped objective and everything else is PPO's, so it is one setting:
# `ppo.baseline=group`. GRPO is a stage of the `balanced` preset (`pipeline.grpo`), not of quick: on
# quick this cell trains it into `RUN/grpo` (80 iterations, as PPO; several minutes on a 2-core
# CPU).

# %%
R = torch.tensor([[1.0, 0.0], [0.0, 0.0], [3.0, 0.0], [2.0, 0.0]])  # 2 prompts x G = 2 answers, 2 tokens each
mask = torch.tensor([[True, False], [True, True], [True, True], [True, False]])
print(ppo.group_advantages(R, mask, G=2))  # ±0.71 within each group, whatever the scale; 0 on padding

grpo_cfg = load_config(PRESET, ["ppo.ptx_coef=0", "ppo.baseline=group"])
ppo.run(grpo_cfg, RUN / "grpo", sft=RUN / "sft", reward=RUN / "reward")
g_rows = read_metrics(RUN / "grpo" / "metrics.jsonl")
g_trained = [r for r in g_rows if "approx_kl" in r]
for name, rs, tr in (("ppo", rows, trained), ("grpo", g_rows, g_trained)):
    print(f"{name:5} rm_score {rs[0]['rm_score']:.3f} -> {rs[-1]['rm_score']:.3f}  gold {rs[0]['gold']:.3f} -> "
          f"{rs[-1]['gold']:.3f}  kl {rs[-1]['kl']:.2f}  s per iteration "
          f"{sum(r['t_rollout'] + r['t_score'] + r['t_update'] for r in tr) / len(tr):.2f}")
results["grpo"] = evaluate(RUN / "grpo" / "ckpt.pt")
print(f"{'':6}" + "".join(f"{k:>14}" for k in results["sft"]))
for name in ("sft", "ppo", "grpo"):
    print(f"{name:6}" + "".join(f"{v:14.3f}" for v in results[name].values()))

# %% [markdown]
# Measured on quick (seed 1337, the graded world; 80 iterations of 16 prompts x G = 8): GRPO
# needs 59% of PPO's FLOPs (5.7·10¹² against 9.8·10¹²: no value model to run or train). Its seconds
# an iteration are the clock of whatever ran beside it (2.5 s here, against PPO's 10.5 in a `seeds`
# run beside a second pipeline): time both on an idle CPU to compare. Its rollouts' RM score rose
# from 0.033 to 0.597 at a KL of 1.2 (5-iteration means; PPO 0.115 → 0.537 at 1.2) and their gold
# score from 0.729 to 0.795; on 128 evaluation prompts it is level with PPO (gold 0.793 against
# 0.799 and SFT's 0.748; helpful 0.61, 0.62, 0.54). With no critic, its advantages are right from
# the first iteration, where PPO's value model starts with an explained variance of −0.07. GRPO is
# not part of quick's evaluation (balanced has it).

# %% [markdown]
# ## The loop itself, with a perfect reward model
# When PPO fails to beat SFT, is it the RM or the RL? Swap the RM for the gold judge (`oracle=True`: the reward
# is the judge's overall score of the decoded answer, the `ppo_gold` stage of the pipeline). This is a
# measurement, never the recipe: real labelers cannot score every rollout.
#
# The cell configures it as the pipeline's stage does (`stages.recipe()`'s `ppo_gold`, so a folder
# the pipeline made is reused as is): γ = 0 and β = `ppo.oracle_kl_coef` (0.05 on quick, a quarter
# of PPO's: a perfect reward needs less leash). With no RM to copy, its value model is a copy of the
# SFT trunk with a zero head (V = 0 until it learns), so the stage reads no reward model at all.

# %%
gold_stage = next(s for s in stages.recipe() if s.name == "ppo_gold")  # the pipeline's own stage
gold_cfg = gold_stage.config(load_config(PRESET))  # γ = 0, β = ppo.oracle_kl_coef: the pipeline's
print(f"ppo_gold: β = {gold_cfg.ppo.kl_coef:g}, γ = {gold_cfg.ppo.ptx_coef:g}")
ppo.run(gold_cfg, RUN / "ppo_gold", sft=RUN / "sft", oracle=True)  # the judge scores: no RM read
results["ppo_gold"] = evaluate(RUN / "ppo_gold" / "ckpt.pt")
for name in ("sft", "ppo", "ppo_gold"):
    print(f"{name:9}" + "".join(f"{k} {results[name][k]:.3f}  " for k in ("gold", "helpful", "response_len")))

# %% [markdown]
# Measured on quick (seed 1337, the graded world; β = 0.05, 80 iterations of 128 answers): with
# the gold judge as its reward the same loop climbs: the rollouts' gold score rose from 0.751 to
# 0.870 (means of the first and the last 5 iterations) at a KL to SFT of 1.6 nats; on 128 prompts
# gold 0.748 → 0.851, helpful 0.54 → 0.72; the evaluation's 480: 62% [58, 67] against SFT (seeds
# 1338 and 1339: 56%, 63%), gold helpful 55% → 72%. Much of it is sharpening: SFT at temperature 0,
# with no training at all, wins 58-60% on the three seeds, and against it the gold loop wins 49-51%;
# the gold judge's best of 8 SFT samples wins 70-73%. So with 10,240 answers a perfect reward moves
# the loop well past a sample of SFT but not past SFT's most likely answer; what holds learned-RM
# PPO further back is the RM (lesson 04).

# %% [markdown]
# ## Best-of-n: the same KL axis without any training
# Draw n answers from SFT and keep the one the RM likes best (`minigpt-rlhf best-of-n` does it for one prompt).
# Its distribution is a policy too, at KL(π_bon ‖ π^SFT) = log n − (n − 1)/n nats, so it sits on the
# over-optimisation plot beside PPO. Choosing by the gold judge instead is the oracle: the most that any
# method could get out of these samples. Where the RM's curve stays flat while the oracle's climbs, the RM
# cannot tell good answers from bad ones, and no RL algorithm can do better than its RM.

# %%
for n in (1, 2, 4, 8, 16, 64):
    print(f"n = {n:2d}: KL {kl_best_of_n(n):.2f} nats, sqrt(KL) {kl_best_of_n(n) ** 0.5:.2f}")
sft_model = build_model(load_checkpoint(RUN / "sft" / "ckpt.pt"), device).eval()
rm_model = load_reward_model(RUN / "reward" / "ckpt.pt", device)
n_bon = 4 if PRESET == "micro" else 16
bon = at_temperature_1(sft_model, sft_model, rm_model, tok, world.load_prompts(cfg.data_dir, "eval")[:128], cfg,
                       seed=1, n=n_bon)
print(f"{'n':>3} {'sqrt KL':>8} {'gold, RM picks':>15} {'gold, judge picks':>18}")
for row in best_of_n_curve(bon):
    print(f"{row['n']:3d} {row['sqrt_kl']:8.2f} {row['gold']:15.3f} {row['gold_oracle']:18.3f}")

# %% [markdown]
# Measured on quick (seed 1337, the graded world; 128 prompts, 16 samples each): choosing by the
# gold judge climbs from 0.741 to 0.962 by n = 16; choosing by the RM gains a little (0.781 at n =
# 2, 0.795 at 4) and falls back (0.775 at n = 16): past a few samples, what the RM adds is noise,
# and beyond that it picks what it over-rates (the rise and fall of Gao et al., without any
# training). That is the headroom the RM cannot see, at KL ≤ 1.8 nats, and the plainest picture of
# why PPO against this RM wins little.
