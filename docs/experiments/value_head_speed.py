"""Experiment: seconds of one RL iteration (rollout, scoring, update; medians of 3 after a warm-up) on quick's shape with
untrained models and a stand-in reward (the answer's length), for PPO's value model, a value head on the policy's
hidden states and GRPO's group baseline. Needs `git apply docs/experiments/value_head.patch` (the "head" baseline);
run from the repository root with a run folder whose sft/ gives the tokenizer:
    python docs/experiments/value_head_speed.py runs/quick
Not part of the package."""
import copy, dataclasses, statistics, sys
import torch
from minigpt_rlhf import world
from minigpt_rlhf.config import load_config
from minigpt_rlhf.model import GPT, ValueModel, zero_head
from minigpt_rlhf.ppo import PPOTrainer
from minigpt_rlhf.runtime import load_checkpoint, tokenizer_from
from minigpt_rlhf.tokenizer import format_chat

torch.set_num_threads(1)
torch.set_flush_denormal(True)
cfg = load_config("quick", [])
tok = tokenizer_from(load_checkpoint(f"{sys.argv[1]}/sft/ckpt.pt"))
mc = dataclasses.replace(cfg.model, vocab_size=tok.vocab_size)
prompts = [format_chat(tok, p.text) for p in world.load_prompts(cfg.data_dir, "ppo")]
for base in ("value", "head", "group"):
    torch.manual_seed(0)
    policy = GPT(mc)
    value = {"value": lambda: ValueModel(GPT(mc), torch.nn.Linear(mc.n_embd, 1)),
             "head": lambda: zero_head(mc.n_embd), "group": lambda: None}[base]()
    pc = dataclasses.replace(cfg.ppo, baseline=base)
    tr = PPOTrainer(policy, copy.deepcopy(policy), value, lambda xs, ys: torch.tensor([float(len(y)) for y in ys]),
                    prompts, pc, tok, cfg.max_new_tokens)
    times = []
    for i in range(4):
        ro, stats = tr.rollout()
        up = tr.update(ro)
        if i:
            times.append((stats["t_rollout"], stats["t_score"], up["t_update"]))
    print(base, "rollout / scoring / update s:", [round(statistics.median(x), 3) for x in zip(*times)])
