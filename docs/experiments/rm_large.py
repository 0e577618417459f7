"""Experiment: does an RM on the larger base model serve better? SFT from RUN/pretrain_large, then an RM from it
on the same responses and rankings as RUN/reward (then: rm.py RUN reward_large, which finds it finished and prints its
report card; rl.py RUN NAME --reward reward_large). Not part of the package."""
import sys
from pathlib import Path
import torch
from minigpt_rlhf import reward, sft
from minigpt_rlhf.config import load_config
torch.set_num_threads(1)
run = Path(sys.argv[1])
cfg = load_config("quick", ["ppo.ptx_coef=0"])
sft.run(cfg, run / "sft_large", run / "pretrain_large")
reward.run(cfg, run / "reward_large", run / "sft_large", run / "pretrain", responses=run / "reward")
