"""Experiment: a second round of comparisons (iterated RLHF). Labelers rank, on new RM prompts, responses of the
round-1 RL policy beside the SFT model's; the RM is retrained from SFT on both rounds. Not part of the package.
usage: iter.py RUN POLICY_STAGE OUT_REWARD [--policy-k 4 --sft-k 4] [--preset quick] [--reuse] [--offset 20] [--set ...]
--reuse: round 2 ranks new answers to round 1's training prompts (balanced's round 1 holds the whole split)."""
import argparse, dataclasses, random
from pathlib import Path
import torch
from minigpt_rlhf import reward, world
from minigpt_rlhf.config import load_config
from minigpt_rlhf.comparisons import sample_responses, rank, read_comparisons, write_comparisons, LABELER_POOLS
from minigpt_rlhf.runtime import setup, load_checkpoint, build_model, tokenizer_from

ap = argparse.ArgumentParser()
ap.add_argument("run"); ap.add_argument("policy"); ap.add_argument("out")
ap.add_argument("--policy-k", type=int, default=4); ap.add_argument("--sft-k", type=int, default=4)
ap.add_argument("--round1", default="reward"); ap.add_argument("--n2", type=int, default=480)
ap.add_argument("--set", action="append", default=[])
ap.add_argument("--preset", default="quick"); ap.add_argument("--reuse", action="store_true")
ap.add_argument("--offset", type=int, default=20)  # the sampling and ranking seeds: cfg.seed + offset + 0, 1, 2
a = ap.parse_args()
torch.set_num_threads(1)
cfg = load_config(a.preset, a.set)
run = Path(a.run)
r1 = read_comparisons(run / a.round1 / "comparisons.jsonl")
n1 = sum(c.split == "train" for c in r1)
dev = setup(cfg.seed)
prompts = world.load_prompts(cfg.data_dir, "rm")
new = prompts[: a.n2] if a.reuse else prompts[n1 : n1 + a.n2]
assert a.n2 <= n1 if a.reuse else n1 + a.n2 <= len(prompts) - cfg.reward.val_prompts
sft_ckpt = load_checkpoint(run / "sft" / "ckpt.pt")
tok = tokenizer_from(sft_ckpt)
pol = build_model(load_checkpoint(run / a.policy / "ckpt.pt")).eval()
sft = build_model(sft_ckpt).eval()
rc = dataclasses.replace(cfg.reward, base_share=0.0)
got = []
for model, k, seed in ((pol, a.policy_k, cfg.seed + a.offset), (sft, a.sft_k, cfg.seed + a.offset + 1)):
    s = sample_responses({"sft": model}, tok, new, dataclasses.replace(rc, k_min=k, k_max=k), cfg.max_new_tokens, seed)
    got.append(s)
sampled = []
for (pr, pf, ps), (sr, sf, ss) in zip(*got):
    sampled.append((pr + sr, pf + sf, ps + ss))
pool = LABELER_POOLS["train"]()
r2 = rank(new, sampled, len(new), pool, cfg.seed + a.offset + 2)
out = run / a.out
out.mkdir(exist_ok=True)
train = [c for c in r1 if c.split == "train"] + r2
write_comparisons(out / "comparisons.jsonl", train + [c for c in r1 if c.split != "train"])
# how do the labelers rank the policy's answers against SFT's? (share of pairs where the policy's is higher)
wins = n = 0
for c in r2:
    pos = {i: p for p, i in enumerate(c.ranking)}
    for i in range(a.policy_k):
        for j in range(a.policy_k, a.policy_k + a.sft_k):
            wins += pos[i] < pos[j]; n += 1
print(f"round 2: {len(r2)} rankings; labelers prefer the policy's answer to SFT's in {wins / n:.3f} of pairs")
cfg2 = load_config(a.preset, a.set + [f"reward.n_prompts={n1 + a.n2}"])
reward.run(cfg2, out, run / "sft", run / "pretrain")
