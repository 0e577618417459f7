"""Fact completion (the evaluation's 100 items of a seed, and all 216) and the copy probe of base models:
SEED=N python docs/experiments/probe.py CKPT..."""
import sys, random, os, torch
from minigpt_rlhf import world
from minigpt_rlhf.evaluate import cloze_correct
from minigpt_rlhf.runtime import build_model, load_checkpoint, tokenizer_from
torch.set_num_threads(1)
seed = int(os.environ.get("SEED", "1337"))
cloze, copy_probe = world.cloze_items("data"), world.copy_probe_items("data")
cloze_s = random.Random(seed).sample(cloze, 100)
for path in sys.argv[1:]:
    ck = load_checkpoint(path); tok = tokenizer_from(ck); m = build_model(ck, torch.device("cpu")).eval()
    a = cloze_correct(m, tok, cloze_s, 48); b = cloze_correct(m, tok, copy_probe, 48); c = cloze_correct(m, tok, cloze, 48)
    print(path, f"cloze100 {sum(a)/len(a):.2f} cloze_all {sum(c)/len(c):.3f} ({len(c)}) copy {sum(b)/len(b):.3f} ({len(b)})")
