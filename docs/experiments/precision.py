"""Pretrain quick in float32 or bf16: python docs/experiments/precision.py OUT fp32|bf16|head32 [seed] [steps].

bf16 is the recipe's (float32 logits and heads, model.fp32_linear); head32 patches the same float32 unembedding
in by hand (written before fp32_linear existed, when it was the experiment against bf16 logits).
"""
import sys, torch, torch.nn.functional as F
from pathlib import Path
from minigpt_rlhf import model as M, pretrain
from minigpt_rlhf.config import load_config
out, variant = Path(sys.argv[1]), sys.argv[2]
seed = sys.argv[3] if len(sys.argv) > 3 else "1337"
steps = sys.argv[4] if len(sys.argv) > 4 else "1200"
torch.set_num_threads(1)
if variant == "head32":
    def forward(self, idx, targets=None, loss_mask=None, real=None):
        h = self.hidden_states(idx, real)
        with torch.autocast("cpu", enabled=False):
            logits = F.linear(h.float(), self.lm_head.weight)
        if targets is None:
            return logits, None
        if loss_mask is not None:
            targets = targets.masked_fill(loss_mask == 0, -100)
        return logits, F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=-100)
    M.GPT.forward = forward
prec = "fp32" if variant == "fp32" else "bf16"
cfg = load_config("quick", [f"seed={seed}", f"precision={prec}", f"pretrain.steps={steps}"])
pretrain.run(cfg, out)
