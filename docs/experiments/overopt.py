"""Experiment: Gao et al. (2022)'s figure for PPO stages of a run folder trained with rl.py: the gold score and r_θ of
their rollouts against sqrt(KL), smoothed over 8 iterations (the package's plots.plot_overoptimisation), beside
best-of-n by the reward model REWARD for n = 1, 2, 4, 8 on the samples rm.py cached (RUN/sft_eval_samples8.pt:
SFT's 8 samples per eval prompt at temperature 1), at best-of-n's analytic KL.
`python docs/experiments/overopt.py RUN REWARD OUT.png LABEL=STAGE ...`. Not part of the package."""
import math
import sys
from pathlib import Path
import torch
from minigpt_rlhf.best_of_n import expected_best, kl_best_of_n
from minigpt_rlhf.comparisons import response_ids
from minigpt_rlhf.config import load_config
from minigpt_rlhf.evaluate import eval_prompts
from minigpt_rlhf.plots import plot_overoptimisation
from minigpt_rlhf.runtime import load_checkpoint, load_reward_model, read_metrics, tokenizer_from
from minigpt_rlhf.tokenizer import format_chat

torch.set_num_threads(1)
run, reward, out, stages = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), sys.argv[4:]
prompts = eval_prompts(load_config("quick", []))
bon = torch.load(run / "sft_eval_samples8.pt", weights_only=False)
tok = tokenizer_from(load_checkpoint(run / "sft" / "ckpt.pt"))
ids = [format_chat(tok, p.text) for p in prompts for _ in range(8)]
ys = [response_ids(tok, x.text, x.finished) for x in bon["answers"]]
r = load_reward_model(run / reward / "ckpt.pt").score(ids, ys).double().view(len(prompts), 8)
choose, g = r.masked_fill(~bon["finished"], float("-inf")), bon["gold"]
curve = [dict(n=n, sqrt_kl=math.sqrt(kl_best_of_n(n)), gold=float(expected_best(choose, g, n).mean()),
              gold_oracle=float(expected_best(g, g, n).mean()), rm=float(expected_best(choose, r, n).mean()))
         for n in (1, 2, 4, 8)]
for row in curve:
    print(" ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))
curves = {label: read_metrics(run / stage / "metrics.jsonl") for label, stage in (s.split("=", 1) for s in stages)}
print(plot_overoptimisation(curves, out, dict(best_of_n=curve, policies={}), window=8))
