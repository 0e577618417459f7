"""Experiment: an RL stage's rollouts, 10 iterations at a time, from its metrics.jsonl: the mean gold (or r_θ)
score and KL of iterations 1-10, 11-20, ... (the "rollouts' gold" of docs/experiments/README.md). Not part of the
package.    python docs/experiments/curve.py RUN/STAGE [RUN/STAGE ...]"""
import json, sys
from pathlib import Path

for stage in sys.argv[1:]:
    rows = [json.loads(line) for line in open(Path(stage) / "metrics.jsonl")]
    rows = [r for r in rows if "pg_loss" in r]  # the training iterations (the last row only measures the policy)
    key = "gold" if "gold" in rows[0] else "rm_score"
    cells = [f"{i}: {sum(r[key] for r in rows[i - 10:i]) / 10:.3f} / KL {sum(r['kl'] for r in rows[i - 10:i]) / 10:.1f}"
             for i in range(10, len(rows) + 1, 10)]
    print(stage, key, "  ".join(cells))
