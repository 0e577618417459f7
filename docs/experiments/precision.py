"""Pretrain quick in float32 or bf16: python docs/experiments/precision.py OUT fp32|bf16|bf16_logits [seed] [steps].

bf16 is the recipe's (float32 attention, logits and scalar heads); bf16_logits also runs the unembedding in bf16
(model.fp32_linear replaced by the plain layer), the variant the recipe measured and rejected.
"""
import sys
from pathlib import Path

import torch

from minigpt_rlhf import model as M, pretrain
from minigpt_rlhf.config import load_config

out, variant = Path(sys.argv[1]), sys.argv[2]
seed = sys.argv[3] if len(sys.argv) > 3 else "1337"
steps = sys.argv[4] if len(sys.argv) > 4 else "1200"
torch.set_num_threads(1)
if variant == "bf16_logits":
    M.fp32_linear = lambda layer, x: layer(x)
cfg = load_config("quick", [f"seed={seed}", f"precision={'fp32' if variant == 'fp32' else 'bf16'}",
                            f"pretrain.steps={steps}"])
pretrain.run(cfg, out)
