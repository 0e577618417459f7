"""Experiment: train a PPO-step stage into RUN/NAME (from RUN/sft, RUN/reward) and measure it as the evaluation
does (480 eval prompts, T=0.7, held-out labelers vs a second SFT sample). --reward A+B+C: the mean of those reward
models' r_θ (an ensemble; PPO's value model starts from A's). --train-seed S: train with seed S, measure with the
config's seed (the same reference answers and labeler noise): one RM, several PPO runs. It trains with the config's
ppo.ptx_coef (PPO-ptx, γ > 0 in every preset): pass --set ppo.ptx_coef=0 for the pipeline's PPO, GRPO and gold-judge
stages.
Not part of the package."""
import argparse, json, time, dataclasses, statistics, sys
from pathlib import Path
import torch
from minigpt_rlhf import preflight, ppo, world
from minigpt_rlhf.config import load_config
from minigpt_rlhf.evaluate import Answerer, eval_prompts, judge_answers, labeler_pools, at_temperature_1
from minigpt_rlhf.runtime import setup, load_reward_model

ap = argparse.ArgumentParser()
ap.add_argument("run"); ap.add_argument("name"); ap.add_argument("--set", action="append", default=[])
ap.add_argument("--oracle", action="store_true"); ap.add_argument("--eval-only", action="store_true")
ap.add_argument("--threads", type=int, default=1); ap.add_argument("--reward", default="reward")
ap.add_argument("--preset", default="quick"); ap.add_argument("--train-seed", type=int, default=None)
a = ap.parse_args()
torch.set_num_threads(a.threads)
cfg = load_config(a.preset, a.set)
preflight.check_world(cfg)  # as the CLI checks: e.g. reward.n_prompts + val_prompts within the RM split
run = Path(a.run)
if "+" in a.reward:  # an ensemble: ppo.build_trainer loads RUN/A+B+C/ckpt.pt, which is read as its members
    class MeanReward(torch.nn.Module):
        def __init__(self, members):
            super().__init__()
            self.members, self.trunk, self.head = torch.nn.ModuleList(members), members[0].trunk, members[0].head

        def score(self, prompts, responses):
            return sum(m.score(prompts, responses) for m in self.members) / len(self.members)

    ppo.load_reward_model = lambda path, device="cpu": MeanReward(
        [load_reward_model(run / n / "ckpt.pt", device) for n in Path(path).parent.name.split("+")])
t0 = time.time()
if not a.eval_only:
    train_cfg = cfg if a.train_seed is None else dataclasses.replace(cfg, seed=a.train_seed)
    ppo.run(train_cfg, run / a.name, run / "sft", run / a.reward, oracle=a.oracle)
t_train = time.time() - t0
dev = setup(cfg.seed)
prompts = eval_prompts(cfg)
pools = labeler_pools(False)
ask = Answerer(cfg, run, dev)
ref = ask("sft", "chat", prompts, cfg.seed + 1)
out = {}
for stage in ("sft", a.name):
    ans = ask(stage, "chat", prompts, cfg.seed)
    m = judge_answers(prompts, ans, ref, pools, cfg.eval, cfg.seed)
    out[stage] = dict(win=m["win_rate"]["heldout"], helpful=m["gold"]["helpful"]["mean"], gold=m["gold"]["overall"]["mean"],
                      med=m["median_chars"], non=m["non_answer"]["mean"],
                      fam={f: round(v["helpful"]["mean"], 2) for f, v in m["families"].items()})
rows = [json.loads(l) for l in open(run / a.name / "metrics.jsonl")]
last = ([r for r in rows if "kl" in r] or [{"kl": float("nan"), "gold": float("nan")}])[-1]  # none for an SFT stage
print(f"== {a.name} {a.set} oracle={a.oracle} train {t_train:.0f}s  final rollout kl {last['kl']:.2f} gold {last['gold']:.3f}")
for k, v in out.items():
    w = v["win"]
    print(f"{k:12} win {w['mean']:.3f} [{w['lo']:.3f},{w['hi']:.3f}] helpful {v['helpful']:.3f} gold {v['gold']:.3f} med {v['med']:.0f} non {v['non']:.3f}")
    print("    ", v["fam"])
