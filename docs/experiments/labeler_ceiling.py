"""Experiment: how well could a perfect reward model of these labelers track the gold judge? On the SFT samples of
a reward stage's comparisons (RUN/reward/comparisons.jsonl), the correlation of the gold score with the mean of
the 12 training labelers' noise-free utilities, over all samples and within prompts. Not part of the package."""
import json, statistics as st, sys
from pathlib import Path
from minigpt_rlhf import world
from minigpt_rlhf.world.judge import judge
from minigpt_rlhf.world.labelers import training_labelers

run, data = Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "data"
prompts = {p.id: p for p in world.load_prompts(data, "rm")}
labelers = training_labelers()
gold, util, gold_c, util_c = [], [], [], []
for line in open(run / "reward" / "comparisons.jsonl"):
    c = json.loads(line)
    p = prompts[c["prompt_id"]]
    rows = [(judge(p, r, f).overall, st.mean(lab.utility(p, r, f) for lab in labelers))
            for r, f, s in zip(c["responses"], c["finished"], c["sources"]) if s.startswith("sft")]
    if len(rows) < 2:
        continue
    g, u = zip(*rows)
    gold += g; util += u
    gold_c += [x - st.mean(g) for x in g]; util_c += [x - st.mean(u) for x in u]
print(f"corr(gold, mean labeler utility) over {len(gold)} SFT samples: {st.correlation(gold, util):.3f}, "
      f"within prompts {st.correlation(gold_c, util_c):.3f}")
