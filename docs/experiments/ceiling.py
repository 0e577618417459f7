"""Experiment: what bounds the ceiling (issue 16's target: the gold judge's best of 8 SFT samples wins >= 75%
against SFT with the held-out labelers)? For a run folder with pretrain/ and sft/, the evaluation's oracle pool
(eval.oracle_of samples per prompt at eval.temperature, seed + 5) and reference (a second SFT sample, seed + 1):
the ceiling as the held-out labelers judge it; as a noise-free judge of the gold score would (win = P(best
scores higher) + P(tie) / 2); and, per family, how often the reference already scores as high as the best.
Then the binary bound: if every answer were right or wrong and each prompt's samples right with the same
chance p, a perfect judge's ceiling would be (1 - q)(1 - p/2) + q(1 - p)/2, q = (1 - p)^8 (75% at p = 0.5).
    python docs/experiments/ceiling.py RUN --set seed=S
Not part of the package."""
import argparse
import random
from pathlib import Path
import torch
from minigpt_rlhf import preflight, world
from minigpt_rlhf.config import load_config
from minigpt_rlhf.evaluate import Answerer, answer, eval_prompts, labeler_pools, oracle_best, win_flags
from minigpt_rlhf.runtime import build_model, load_checkpoint, setup, tokenizer_from
from minigpt_rlhf.stats import proportion

ap = argparse.ArgumentParser()
ap.add_argument("run"); ap.add_argument("--set", action="append", default=[]); ap.add_argument("--preset", default="quick")
a = ap.parse_args()
torch.set_num_threads(1)
cfg = load_config(a.preset, a.set)
preflight.check_world(cfg)
ec, dev, run = cfg.eval, setup(cfg.seed), Path(a.run)
prompts, k = eval_prompts(cfg), cfg.eval.oracle_of
ref = Answerer(cfg, run, dev)("sft", "chat", prompts, cfg.seed + 1)
ckpt = load_checkpoint(run / "sft" / "ckpt.pt")
sft, tok = build_model(ckpt, dev).eval(), tokenizer_from(ckpt)
pool = answer(sft, tok, [p.text for p in prompts for _ in range(k)], cfg.max_new_tokens, ec.temperature, "chat", (),
              ec.batch_size, torch.Generator(device=dev).manual_seed(cfg.seed + 5))
best = oracle_best(pool, prompts, k)
labelers = win_flags(labeler_pools(False)["heldout"], prompts, best, ref, random.Random(cfg.seed))
gold = lambda p, x: world.judge(p, x.text, x.finished).overall  # noqa: E731
g_best, g_ref = [gold(p, b) for p, b in zip(prompts, best)], [gold(p, r) for p, r in zip(prompts, ref)]
higher = [b > r + 1e-9 for b, r in zip(g_best, g_ref)]
tie = [abs(b - r) <= 1e-9 for b, r in zip(g_best, g_ref)]
perfect = sum(h + t / 2 for h, t in zip(higher, tie)) / len(prompts)
helpful = [[world.judge(p, x.text, x.finished).helpful >= 1 for x in pool[i * k:(i + 1) * k]] for i, p in enumerate(prompts)]
p_right = sum(sum(h) for h in helpful) / (len(prompts) * k)
w = proportion(labelers, ec.confidence)
print(f"seed {cfg.seed}: ceiling, held-out labelers {100 * w['mean']:.1f}% [{100 * w['lo']:.1f}, {100 * w['hi']:.1f}]; "
      f"a noise-free gold judge {100 * perfect:.1f}% (best scores higher {100 * sum(higher) / len(prompts):.1f}%, "
      f"ties {100 * sum(tie) / len(prompts):.1f}%)")
share = lambda flags: sum(won for won, f in zip(labelers, flags) if f) / max(1, sum(flags))  # noqa: E731
print(f"  the labelers prefer the best where it scores higher in {100 * share(higher):.1f}% of cases, "
      f"where it ties in {100 * share(tie):.1f}%")
q = (1 - p_right) ** k
print(f"  one sample fully helpful {100 * p_right:.1f}%; the binary bound at that p: "
      f"{100 * ((1 - q) * (1 - p_right / 2) + q * (1 - p_right) / 2):.1f}%")
for fam in sorted({p.family for p in prompts}):
    idx = [i for i, p in enumerate(prompts) if p.family == fam]
    print(f"  {fam:15} n {len(idx):3}  helpful one {100 * sum(sum(helpful[i]) for i in idx) / (k * len(idx)):5.1f}%  "
          f"ties {100 * sum(tie[i] for i in idx) / len(idx):5.1f}%  higher {100 * sum(higher[i] for i in idx) / len(idx):5.1f}%  "
          f"labelers {100 * sum(labelers[i] for i in idx) / len(idx):5.1f}%")
