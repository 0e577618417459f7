"""Experiment: the report card of the RM in RUN/NAME on SFT's 8 cached samples per eval prompt (written by rm.py):
correlation with the gold score, the best of 8 by r_θ against the mean and the gold judge's best of 8. Not part
of the package."""
import sys
from pathlib import Path
import torch
from minigpt_rlhf.best_of_n import expected_best
from minigpt_rlhf.comparisons import response_ids
from minigpt_rlhf.config import load_config
from minigpt_rlhf.evaluate import eval_prompts
from minigpt_rlhf.runtime import load_checkpoint, load_reward_model, tokenizer_from
from minigpt_rlhf.tokenizer import format_chat
torch.set_num_threads(1)
run, name = Path(sys.argv[1]), sys.argv[2]
cfg = load_config("quick")
tok = tokenizer_from(load_checkpoint(run / "sft" / "ckpt.pt"))
prompts = eval_prompts(cfg)
rm = load_reward_model(run / name / "ckpt.pt")
bon = torch.load(run / "sft_eval_samples8.pt", weights_only=False)
ids = [format_chat(tok, p.text) for p in prompts for _ in range(8)]
ys = [response_ids(tok, x.text, x.finished) for x in bon["answers"]]
scores = rm.score(ids, ys).double().view(len(prompts), 8)
choose = scores.masked_fill(~bon["finished"], float("-inf"))
g = bon["gold"]
corr = float(torch.corrcoef(torch.stack([scores.flatten(), g.flatten()]))[0, 1])
mean, rmbest, goldbest = float(g.mean()), float(expected_best(choose, g, 8).mean()), float(g.max(1).values.mean())
print(f"{name}: eval SFT samples corr {corr:.3f} gold mean {mean:.3f} best8 by RM {rmbest:.3f} by gold {goldbest:.3f} captured {(rmbest-mean)/(goldbest-mean):.2f}")
