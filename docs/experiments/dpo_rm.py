"""Experiment: DPO on the policy's own answers ranked by a reward model (RM-labelled DPO; RSO, Liu et al. 2023;
online DPO): the SFT model answers every PPO-split prompt n times, the reward model RUN/REWARD ranks each prompt's
n answers (an unfinished one last), and `minigpt_rlhf.dpo.run` trains on those rankings: all C(n,2) pairs of a
prompt in one batch element, as the recipe's DPO does on the labelers' comparisons. A way to turn the RM's best of
n into a policy without RL. Validation: RUN/REWARD's own validation rankings (training and held-out labelers).
Writes RUN/NAME (a "dpo" checkpoint); measure it with `rl.py RUN NAME --eval-only`. Not part of the package.

    python docs/experiments/dpo_rm.py RUN NAME --reward rm27k --data /tmp/data_rm33k [--n 8] [--temperature 1]
"""
import argparse, dataclasses, json, shutil, tempfile
from pathlib import Path
import torch
from minigpt_rlhf import dpo, world
from minigpt_rlhf.comparisons import read_comparisons
from minigpt_rlhf.config import load_config
from minigpt_rlhf.runtime import build_model, load_checkpoint, load_reward_model, setup, tokenizer_from
from minigpt_rlhf.sampling import prompt_ids, sample

ap = argparse.ArgumentParser()
ap.add_argument("run"); ap.add_argument("name"); ap.add_argument("--set", action="append", default=[])
ap.add_argument("--reward", default="reward"); ap.add_argument("--data", default="data")
ap.add_argument("--n", type=int, default=8); ap.add_argument("--temperature", type=float, default=1.0)
ap.add_argument("--preset", default="balanced")
a = ap.parse_args()
torch.set_num_threads(1)
run, out = Path(a.run), Path(a.run) / a.name
cfg = load_config(a.preset, a.set)
setup(cfg.seed)
sft_ckpt = load_checkpoint(run / "sft" / "ckpt.pt", "sft")
tok = tokenizer_from(sft_ckpt)
policy, rm = build_model(sft_ckpt), load_reward_model(run / a.reward / "ckpt.pt")
prompts = world.load_prompts(cfg.data_dir, "ppo")
ids = [prompt_ids(tok, p.text) for p in prompts for _ in range(a.n)]
g = sample(policy, tok, ids, cfg.max_new_tokens, a.temperature, 64, torch.Generator().manual_seed(cfg.seed + 11))
fin = torch.tensor(g.finished)
with torch.no_grad():
    score = rm.score(ids, g.responses).double().masked_fill(~fin, float("-inf")).view(len(prompts), a.n)
texts = [tok.decode(y, skip_special=True) for y in g.responses]
gold = torch.tensor([world.judge(prompts[i // a.n], t, f).overall for i, (t, f) in enumerate(zip(texts, g.finished))])
gold = gold.view(len(prompts), a.n)
best = score.argmax(1)
print(f"sampled {len(texts)} at T {a.temperature}: gold one {gold.mean():.3f}, "
      f"RM's best {gold[range(len(prompts)), best].mean():.3f}, gold's best {gold.max(1).values.mean():.3f}")

# a data folder whose RM split also holds the PPO prompts (dpo.run looks prompts up there), the rest linked
data = Path(tempfile.mkdtemp(prefix="dpo_rm_"))
for f in Path(a.data).iterdir():
    (data / f.name).symlink_to(f.resolve())
(data / "prompts_rm.jsonl").unlink()
shutil.copy(Path(a.data) / "prompts_rm.jsonl", data / "prompts_rm.jsonl")
with open(data / "prompts_rm.jsonl", "a") as f, open(Path(cfg.data_dir) / "prompts_ppo.jsonl") as ppo:
    f.write(ppo.read())
val = [c for c in read_comparisons(run / a.reward / "comparisons.jsonl") if c.split != "train"]
comp = out / "comparisons"
comp.mkdir(parents=True, exist_ok=True)
with open(comp / "comparisons.jsonl", "w") as f:
    for i, p in enumerate(prompts):
        rows = range(i * a.n, (i + 1) * a.n)
        f.write(json.dumps(dict(split="train", prompt_id=p.id, labeler=a.reward, responses=[texts[j] for j in rows],
                                finished=[g.finished[j] for j in rows], sources=[f"sft@{a.temperature:g}"] * a.n,
                                ranking=sorted(range(a.n), key=lambda k: -float(score[i, k])))) + "\n")
    for c in val:
        f.write(json.dumps(dataclasses.asdict(c)) + "\n")
try:
    dpo.run(dataclasses.replace(cfg, data_dir=str(data)), out, run / "sft", comp)
finally:  # the temporary data folder goes, whether DPO finished or not
    shutil.rmtree(data)
