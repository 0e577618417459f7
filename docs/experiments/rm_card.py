"""Experiment: the report card of finished reward models RUN/NAME... on the samples rm.py cached (RUN/
sft_eval_samples8.pt: SFT's 8 samples per eval prompt at temperature 1), per task family as the evaluation's
headroom() computes it, and the correlation within prompts (each prompt's mean subtracted from r_θ and from gold:
the ranking loss cannot learn a prompt's level). Not part of the package."""
import sys
from pathlib import Path
import torch
from minigpt_rlhf.runtime import load_reward_model
from samples import print_card, sft_samples

torch.set_num_threads(1)
run, names = Path(sys.argv[1]), sys.argv[2:]
prompts, bon, tok, ids, ys = sft_samples(run)
for name in names:
    scores = load_reward_model(run / name / "ckpt.pt").score(ids, ys).double().view(len(prompts), 8)
    print_card(name, scores, bon, prompts)
