"""PPO against the gold judge with its rollouts and updates under bf16 autocast, the variant the recipe rejected:
python docs/experiments/bf16_ppo.py RUN NAME [--fp32 | --bf16-logits]  (RUN has sft/ and reward/; writes RUN/NAME)

Prints the largest gap between the log-probs sampled with the KV cache and their recomputation (logprob_gap) and
the rollouts' gold score, first and last 5 iterations. --fp32: the same stage as the recipe runs it;
--bf16-logits: the logits and value head in bf16 too (model.fp32_linear replaced by the plain layer).
"""
import json
import statistics
import sys
from pathlib import Path

import torch

from minigpt_rlhf import model, ppo
from minigpt_rlhf.config import load_config

run, name = Path(sys.argv[1]), sys.argv[2]
torch.set_num_threads(1)
if "--bf16-logits" in sys.argv:
    model.fp32_linear = lambda layer, x: layer(x)
if "--fp32" not in sys.argv:
    for method in ("rollout", "update"):
        plain = getattr(ppo.PPOTrainer, method)

        def in_bf16(self, *args, _plain=plain):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return _plain(self, *args)
        setattr(ppo.PPOTrainer, method, in_bf16)
ppo.run(load_config("quick", ["ppo.ptx_coef=0"]), run / name, run / "sft", run / "reward", oracle=True)
rows = [r for r in map(json.loads, open(run / name / "metrics.jsonl")) if "gold" in r]
print(f"logprob_gap max {max(r['logprob_gap'] for r in rows):.2e}; rollouts' gold "
      f"{statistics.mean(r['gold'] for r in rows[:5]):.3f} -> {statistics.mean(r['gold'] for r in rows[-5:]):.3f}")
