"""Experiment: the labeler's own demonstration among the responses they rank. Copies RUN/SRC/comparisons.jsonl to
RUN/NAME/comparisons.jsonl with, in every training ranking, one more response: a demonstration written by that
ranking's labeler (their style, their slips; source "sft@demo", chat-formatted), ranked with the others by the
same labeler. Validation rankings are left as they are, so accuracies stay comparable. Then `rm.py RUN NAME ...`
(the settings of SRC) trains on it.
    python docs/experiments/rm_demo.py RUN SRC NAME [--set data_dir=...]
Not part of the package."""
import argparse, random
from pathlib import Path
from minigpt_rlhf import world
from minigpt_rlhf.comparisons import Comparison, read_comparisons, write_comparisons
from minigpt_rlhf.config import load_config

ap = argparse.ArgumentParser()
ap.add_argument("run"); ap.add_argument("src"); ap.add_argument("name"); ap.add_argument("--set", action="append", default=[])
a = ap.parse_args()
cfg = load_config("quick", a.set)
run = Path(a.run)
prompts = {p.id: p for p in world.load_prompts(cfg.data_dir, "rm")}
labelers = {lab.id: lab for lab in world.labelers.training_labelers()}
rng = random.Random(cfg.seed + 11)
out = []
for c in read_comparisons(run / a.src / "comparisons.jsonl"):
    if c.split == "train":
        p, lab = prompts[c.prompt_id], labelers[c.labeler]
        responses, finished = c.responses + [lab.demonstrate(p, rng)], c.finished + [True]
        c = Comparison(c.split, c.prompt_id, c.labeler, responses, finished, c.sources + ["sft@demo"],
                       lab.rank(p, responses, rng, finished))
    out.append(c)
(run / a.name).mkdir(parents=True, exist_ok=True)
write_comparisons(run / a.name / "comparisons.jsonl", out)
firsts = [c.ranking[0] == len(c.responses) - 1 for c in out if c.split == "train"]
print(f"wrote {run / a.name / 'comparisons.jsonl'}: the demonstration ranked first in {sum(firsts) / len(firsts):.0%}")
