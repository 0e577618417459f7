"""Experiment: several reward models RUN/NAME... trained from the same SFT trunk on the same comparisons (only the
seed differs: data order and dropout; the head starts at zero in every one), combined two ways, each scored like
rm.py's report card on its cached SFT samples (RUN/sft_eval_samples8.pt):
- the ensemble: the mean of the members' scores (N forward passes; what rl.py's --reward A+B+C optimises);
- the weight average ("WARM", Ramé et al. 2024): one model whose every weight is the members' mean, its bias reset
  so that the demonstrations score 0 (one forward pass; fine-tuned from one start, the members stay in one basin).
`python docs/experiments/rm_soup.py RUN OUT NAME... [--set ...]` (the members' settings: data_dir) writes the weight average to RUN/OUT/ckpt.pt, a "reward"
checkpoint rl.py takes with --reward OUT. Not part of the package."""
import argparse
from pathlib import Path
import torch
from minigpt_rlhf import world
from minigpt_rlhf.comparisons import response_ids
from minigpt_rlhf.config import load_config
from minigpt_rlhf.evaluate import eval_prompts, headroom
from minigpt_rlhf.reward import normalise, save_reward_model
from minigpt_rlhf.runtime import build_reward_model, load_checkpoint, tokenizer_from
from minigpt_rlhf.tokenizer import chat_response, format_chat

torch.set_num_threads(1)
ap = argparse.ArgumentParser()
ap.add_argument("run"); ap.add_argument("out"); ap.add_argument("names", nargs="+")
ap.add_argument("--set", action="append", default=[])
a = ap.parse_args()
run, out, names = Path(a.run), a.out, a.names
ckpts = [load_checkpoint(run / n / "ckpt.pt", "reward") for n in names]
cfg = load_config("quick", a.set)
prompts = eval_prompts(cfg)
bon = torch.load(run / "sft_eval_samples8.pt", weights_only=False)
tok = tokenizer_from(ckpts[0])
ids = [format_chat(tok, p.text) for p in prompts for _ in range(8)]
ys = [response_ids(tok, x.text, x.finished) for x in bon["answers"]]


def card(label, scores):
    g = bon["gold"]
    corr = float(torch.corrcoef(torch.stack([scores.flatten(), g.flatten()]))[0, 1])
    h = headroom(dict(bon, rm=scores), prompts, 8)
    print(f"== {label}: corr {corr:.3f} captured {h['all']['captured']:+.2f} (best of 8 by r {h['all']['by_rm']:.3f}, "
          f"one {h['all']['one']:.3f}, by gold {h['all']['by_gold']:.3f})")
    print("   ", {f: round(v["captured"], 2) for f, v in h.items() if f != "all"})


members = [build_reward_model(c).score(ids, ys).double().view(len(prompts), 8) for c in ckpts]
for n, s in zip(names, members):
    card(n, s)
card(f"ensemble of {len(names)}", sum(members) / len(members))

soup = build_reward_model(ckpts[0])
with torch.no_grad():
    for key, tensor in soup.state_dict().items():
        if tensor.is_floating_point():
            part, name = key.split(".", 1)  # "trunk.…" is a checkpoint's "model", "head.…" its "head"
            tensor.copy_(sum(c["model" if part == "trunk" else "head"][name].float() for c in ckpts) / len(ckpts))
demos = {p.id: p for p in world.load_prompts(cfg.data_dir, "rm")}
pairs = [(format_chat(tok, demos[d.prompt_id].text), chat_response(tok, d.response))
         for d in world.load_demonstrations(cfg.data_dir) if d.prompt_id in demos]
soup.head.bias.zero_()
normalise(soup, [x for x, _ in pairs], [y for _, y in pairs])
card(f"weight average of {len(names)}", soup.score(ids, ys).double().view(len(prompts), 8))
save_reward_model(run / out / "ckpt.pt", soup, tok, cfg, step=ckpts[0]["step"], finished=True,
                  summary=dict(members=names), labelers="train")
print(f"wrote {run / out / 'ckpt.pt'}")
