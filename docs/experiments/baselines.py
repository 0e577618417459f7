"""Experiment: the evaluation's two SFT baselines for a run folder with only pretrain/ and sft/: SFT at its best
sampling temperature and the gold judge's best of eval.oracle_of SFT samples (the ceiling), each judged as rl.py
judges (held-out labelers against a second SFT sample). --reward NAME (repeatable): also the best of the same
samples by RUN/NAME's r_θ (finished answers only), best-of-n as a policy. --policy STAGE (repeatable): that stage's
model at each of the same temperatures too, judged against the second SFT sample and head to head against SFT at
the same temperature (held-out labelers): is RL's gain more than sharpening, when both are sharpened alike?
Not part of the package."""
import argparse
import random
from pathlib import Path
import torch
from minigpt_rlhf import preflight
from minigpt_rlhf.config import load_config, parse_temperatures
from minigpt_rlhf.evaluate import (Answerer, answer, eval_prompts, judge_answers, labeler_pools, oracle_best, best_of,
                                   win_flags)
from minigpt_rlhf.stats import proportion
from minigpt_rlhf.runtime import setup, load_checkpoint, build_model, tokenizer_from, load_reward_model
from minigpt_rlhf.tokenizer import chat_response, format_chat

ap = argparse.ArgumentParser()
ap.add_argument("run"); ap.add_argument("--set", action="append", default=[])
ap.add_argument("--reward", action="append", default=[])
ap.add_argument("--policy", action="append", default=[]); ap.add_argument("--preset", default="quick")
a = ap.parse_args()
torch.set_num_threads(1)
cfg = load_config(a.preset, a.set)
preflight.check_world(cfg)
ec, dev, run = cfg.eval, setup(cfg.seed), Path(a.run)
prompts, pools = eval_prompts(cfg), labeler_pools(False)
texts = [p.text for p in prompts]
ref = Answerer(cfg, run, dev)("sft", "chat", prompts, cfg.seed + 1)
ckpt = load_checkpoint(run / "sft" / "ckpt.pt")
sft, tok = build_model(ckpt, dev).eval(), tokenizer_from(ckpt)
rows = {}
temps = parse_temperatures(ec.temperatures, "eval.temperatures", True)
for name, model in [("SFT", sft)] + [(s, build_model(load_checkpoint(run / s / "ckpt.pt"), dev).eval()) for s in a.policy]:
    for t in temps:
        rows[f"{name} T={t:g}"] = answer(model, tok, texts, cfg.max_new_tokens, t, "chat", (), ec.batch_size,
                                         torch.Generator(device=dev).manual_seed(cfg.seed))
pool = answer(sft, tok, [t for t in texts for _ in range(ec.oracle_of)], cfg.max_new_tokens, ec.temperature, "chat",
              (), ec.batch_size, torch.Generator(device=dev).manual_seed(cfg.seed + 5))
rows[f"best of {ec.oracle_of} (gold)"] = oracle_best(pool, prompts, ec.oracle_of)
xs = [format_chat(tok, t) for t in texts for _ in range(ec.oracle_of)]
ys, shape = [chat_response(tok, x.text) for x in pool], (len(prompts), ec.oracle_of)
for name in a.reward:  # evaluate.best_of: the finished answer r_θ scores highest
    bon = dict(rm=load_reward_model(run / name / "ckpt.pt").score(xs, ys).view(shape), answers=pool,
               finished=torch.tensor([x.finished for x in pool]).view(shape))
    rows[f"best of {ec.oracle_of} ({name})"] = best_of(bon, ec.oracle_of)
for name, ans in rows.items():
    m = judge_answers(prompts, ans, ref, pools, ec, cfg.seed)
    w = m["win_rate"]["heldout"]
    print(f"{name:18} win {w['mean']:.3f} [{w['lo']:.3f},{w['hi']:.3f}] helpful {m['gold']['helpful']['mean']:.3f} "
          f"gold {m['gold']['overall']['mean']:.3f}")
for name in a.policy:  # head to head at the same temperature: the policy's answers against SFT's
    for t in temps:
        w = proportion(win_flags(pools["heldout"], prompts, rows[f"{name} T={t:g}"], rows[f"SFT T={t:g}"],
                                 random.Random(cfg.seed + 2)), ec.confidence)
        print(f"{name} vs SFT, both at T={t:g}: {w['mean']:.3f} [{w['lo']:.3f},{w['hi']:.3f}]")
