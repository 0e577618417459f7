"""Experiment: several reward models RUN/NAME... trained from the same SFT trunk on the same comparisons (only the
seed differs: data order and dropout; the head starts at zero in every one), combined two ways, each given the
report card of rm_card.py on the samples rm.py cached (RUN/sft_eval_samples8.pt):
- the ensemble: the mean of the members' scores (N forward passes; what rl.py's --reward A+B+C optimises);
- the weight average ("WARM", Ramé et al. 2024): one model whose every weight is the members' mean, its bias reset
  so that the demonstrations score 0 (one forward pass; fine-tuned from one start, the members stay in one basin).
`python docs/experiments/rm_soup.py RUN OUT NAME... [--set ...]` (the members' settings: data_dir) writes the
weight average to RUN/OUT/ckpt.pt, a "reward" checkpoint rl.py takes with --reward OUT. Not part of the package."""
import argparse
from pathlib import Path
import torch
from minigpt_rlhf import world
from minigpt_rlhf.config import load_config
from minigpt_rlhf.reward import normalise, save_reward_model
from minigpt_rlhf.runtime import build_reward_model, load_checkpoint
from minigpt_rlhf.tokenizer import chat_response, format_chat
from samples import print_card, sft_samples

torch.set_num_threads(1)
ap = argparse.ArgumentParser()
ap.add_argument("run"); ap.add_argument("out"); ap.add_argument("names", nargs="+")
ap.add_argument("--set", action="append", default=[])
a = ap.parse_args()
run, cfg = Path(a.run), load_config("quick", a.set)
ckpts = [load_checkpoint(run / n / "ckpt.pt", "reward") for n in a.names]
prompts, bon, tok, ids, ys = sft_samples(run, cfg)
members = [build_reward_model(c).score(ids, ys).double().view(len(prompts), 8) for c in ckpts]
for name, scores in zip(a.names, members):
    print_card(name, scores, bon, prompts)
print_card(f"ensemble of {len(members)}", sum(members) / len(members), bon, prompts)

soup = build_reward_model(ckpts[0])
with torch.no_grad():
    for key, tensor in soup.state_dict().items():
        if tensor.is_floating_point():
            part, name = key.split(".", 1)  # "trunk.…" is a checkpoint's "model", "head.…" its "head"
            tensor.copy_(sum(c["model" if part == "trunk" else "head"][name].float() for c in ckpts) / len(ckpts))
rm_prompts = {p.id: p for p in world.load_prompts(cfg.data_dir, "rm")}  # as the reward stage normalises
pairs = [(format_chat(tok, rm_prompts[d.prompt_id].text), chat_response(tok, d.response))
         for d in world.load_demonstrations(cfg.data_dir) if d.prompt_id in rm_prompts]
soup.head.bias.zero_()
normalise(soup, [x for x, _ in pairs], [y for _, y in pairs])
print_card(f"weight average of {len(ckpts)}", soup.score(ids, ys).double().view(len(prompts), 8), bon, prompts)
save_reward_model(run / a.out / "ckpt.pt", soup, tok, cfg, step=ckpts[0]["step"], finished=True,
                  summary=dict(members=a.names), labelers="train")
print(f"wrote {run / a.out / 'ckpt.pt'}")
