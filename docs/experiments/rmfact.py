"""Experiment: can the reward model's architecture check a fact? Pairs that differ only in one attribute of a
creature ("The zorbin eats moss." vs "... eats honey."), the right one first; an RM from RUN/sft trained on 2,000
such pairs and validated on 300 more. usage: rmfact.py RUN. Not part of the package."""
import sys
from pathlib import Path
import random, torch, dataclasses
from minigpt_rlhf import world
from minigpt_rlhf.config import load_config
from minigpt_rlhf.comparisons import Encoded, encode_response
from minigpt_rlhf.model import RewardModel
from minigpt_rlhf.reward import train
from minigpt_rlhf.runtime import load_checkpoint, build_model, tokenizer_from
from minigpt_rlhf.world.kb import COLOURS, FOODS, TOWNS
torch.set_num_threads(1); torch.manual_seed(0)
cfg = load_config("quick")
ck = load_checkpoint(Path(sys.argv[1]) / "sft" / "ckpt.pt"); tok = tokenizer_from(ck)
kb, _ = world.load_kb("data")
rng = random.Random(0)
def item(e):
    attr = rng.choice(["colour", "food", "home"]); v = e.value(attr)
    pool = {"colour": COLOURS, "food": FOODS, "home": TOWNS}[attr]
    wrong = rng.choice([x for x in pool if x != v])
    q = {"colour": f"What colour is the {e.name}?", "food": f"What does the {e.name} eat?", "home": f"Where does the {e.name} live?"}[attr]
    a = {"colour": "The {n} is {v}.", "food": "The {n} eats {v}.", "home": "The {n} lives in {v}."}[attr]
    return Encoded([encode_response(tok, q, a.format(n=e.name, v=v), True), encode_response(tok, q, a.format(n=e.name, v=wrong), True)], [0, 1])
train_set = [item(rng.choice(kb)) for _ in range(2000)]
val = [item(rng.choice(kb)) for _ in range(300)]
rc = dataclasses.replace(cfg.reward, lr=1e-3, min_lr=1e-4, warmup=20, epochs=2, eval_every=100)
rm = RewardModel(build_model(ck), tok.pad_id)
m = train(rm, train_set, val, {"val": [e.ranking for e in val]}, rc, 0)
print("clean fact pairs: val acc", m["val_acc"])
