"""Experiment: Gao et al. (2022)'s figure for PPO stages of a run folder trained with rl.py: the gold score and r_θ of
their rollouts against sqrt(KL), smoothed over 8 iterations (the package's plots.plot_overoptimisation), beside
best-of-n by the reward model REWARD (evaluate.best_of_n_curve, n = 1, 2, 4, 8) on the samples rm.py cached
(RUN/sft_eval_samples8.pt: SFT's 8 samples per eval prompt at temperature 1), at best-of-n's analytic KL.
`python docs/experiments/overopt.py RUN REWARD OUT.png LABEL=STAGE ...`. Not part of the package."""
import sys
from pathlib import Path
import torch
from minigpt_rlhf.evaluate import best_of_n_curve
from minigpt_rlhf.plots import plot_overoptimisation
from minigpt_rlhf.runtime import load_reward_model, read_metrics
from samples import sft_samples

torch.set_num_threads(1)
run, reward, out, stages = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), sys.argv[4:]
prompts, bon, tok, ids, ys = sft_samples(run)
scores = load_reward_model(run / reward / "ckpt.pt").score(ids, ys).double().view(len(prompts), 8)
curve = best_of_n_curve(dict(bon, rm=scores))
for row in curve:
    print(" ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))
curves = {label: read_metrics(run / stage / "metrics.jsonl") for label, stage in (s.split("=", 1) for s in stages)}
print(plot_overoptimisation(curves, out, dict(best_of_n=curve, policies={}), window=8))
