"""A data dir like data/ but with a bigger RM split (its own random stream, no text of another split)."""
import json, random, shutil, sys, itertools
from pathlib import Path
from minigpt_rlhf import world
from minigpt_rlhf.world.tasks import GENERATORS, MIX, Prompt
from minigpt_rlhf.world.labelers import training_labelers
src, out, n = Path("data"), Path(sys.argv[1]), int(sys.argv[2])
shutil.copytree(src, out, dirs_exist_ok=True)
kb, unknown = world.load_kb(src)
seen = {p.text for s in ("sft", "ppo", "eval") for p in world.load_prompts(src, s)}
rng = random.Random(12345)
rows = []
fams, w = list(MIX), list(MIX.values())
for f in rng.choices(fams, w, k=n):
    for _ in range(1000):
        text, meta = GENERATORS[f](rng, kb, unknown)
        if text not in seen:
            seen.add(text); rows.append(Prompt(f"rm-{len(rows):05d}", f, text, meta)); break
(out / "prompts_rm.jsonl").write_text("".join(json.dumps(p.__dict__, sort_keys=True) + "\n" for p in rows))
demos = [d for d in world.load_demonstrations(src) if not d.prompt_id.startswith("rm-")]
labs = training_labelers()
drng = random.Random(6789)
for p, lab in zip(rows[:300], itertools.cycle(labs)):
    demos.append(world.Demonstration(p.id, lab.id, lab.demonstrate(p, drng)))
(out / "demonstrations.jsonl").write_text("".join(json.dumps(d.__dict__, sort_keys=True) + "\n" for d in demos))
print(len(rows), len(demos))
