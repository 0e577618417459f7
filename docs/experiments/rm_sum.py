"""Experiment: rm.py with a reward model that sums a per-token score over the whole sequence instead of reading the
last token's state (the paper's). The prompt's tokens score the same for each of a prompt's K responses (causal
attention), so within a ranking only the response's tokens count: a wrong fact can be scored where it is read.
`python docs/experiments/rm_sum.py SCRIPT ARGS...` runs SCRIPT of this folder (rm.py, rm_card.py) with it.
Not part of the package."""
import runpy, sys
from pathlib import Path
from minigpt_rlhf import model


def forward(self, idx, real=None):
    h = self.trunk.hidden_states(idx, real)
    per_token = model.fp32_linear(self.head, h).squeeze(-1) - self.head.bias  # the bias is added once, below
    if real is not None:
        per_token = per_token * real
    return per_token.sum(1) + self.head.bias


model.RewardModel.forward = forward
sys.argv = [str(Path(__file__).with_name(sys.argv[1]))] + sys.argv[2:]
runpy.run_path(sys.argv[0], run_name="__main__")
