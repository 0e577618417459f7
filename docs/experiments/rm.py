"""Experiment: train a reward stage RUN/NAME from RUN/sft (+ RUN/pretrain) with --set overrides, then its report
card on SFT's own samples of the eval prompts (8 per prompt, temperature 1, cached): correlation with gold, and
the best of 8 by r_theta against the mean and the gold judge's best of 8. Not part of the package."""
import argparse, time
from pathlib import Path
import torch
from minigpt_rlhf import preflight, reward
from minigpt_rlhf.config import load_config
from minigpt_rlhf.evaluate import eval_prompts, at_temperature_1, headroom
from minigpt_rlhf.runtime import setup, load_reward_model, load_checkpoint, build_model, tokenizer_from
from samples import sft_samples

ap = argparse.ArgumentParser()
ap.add_argument("run"); ap.add_argument("name"); ap.add_argument("--set", action="append", default=[])
ap.add_argument("--labelers", default="train")
a = ap.parse_args()
torch.set_num_threads(1)
cfg = load_config("quick", a.set)
preflight.check_world(cfg)  # as the CLI checks: e.g. reward.n_prompts + val_prompts within the RM split
run = Path(a.run)
t0 = time.time()
reward.run(cfg, run / a.name, run / "sft", run / "pretrain", labelers=a.labelers)
t = time.time() - t0
dev = setup(cfg.seed)
cache = run / "sft_eval_samples8.pt"
sft_ckpt = load_checkpoint(run / "sft" / "ckpt.pt")
sft, tok = build_model(sft_ckpt).eval(), tokenizer_from(sft_ckpt)
prompts = eval_prompts(cfg)
rm = load_reward_model(run / a.name / "ckpt.pt")
if not cache.exists():
    torch.save(at_temperature_1(sft, sft, rm, tok, prompts, cfg, cfg.seed + 4, 8), cache)
prompts, bon, tok, ids, ys = sft_samples(run, cfg)
h = headroom(dict(bon, rm=rm.score(ids, ys).double().view(len(prompts), 8)), prompts, 8)["all"]
s = load_checkpoint(run / a.name / "ckpt.pt")["summary"]
print(f"== {a.name} {a.set} train {t:.0f}s (sample {s['t_sample']}, train {s['t_train']:.0f}) rankings {s['train_rankings']}")
print(f"  val_acc {s['val_acc']:.3f} (agree {s['agreement']:.3f})  heldout {s['val_acc_heldout']:.3f} (agree {s['agreement_heldout']:.3f})  val_gold_corr {s['gold_corr']:.3f}")
print(f"  eval SFT samples: corr {h['corr']:.3f}  gold mean {h['one']:.3f}  best8 by RM {h['by_rm']:.3f}  by gold {h['by_gold']:.3f}  captured {h['captured']:.2f}")
