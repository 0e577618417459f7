"""The compute of every stage (finding 7: alignment is cheap next to pretraining), counted as the
stage runs.

    training     ≈ 6·N FLOPs per token: 2·N forward, 4·N backward (Kaplan et al., 2020)
    forward only ≈ 2·N FLOPs per token: sampling (prompt and response) and scoring

N is a model's parameter count without position embeddings (`GPT.num_params`); a token is a real
token that went through the model (padding is not counted). Each stage counts the FLOPs of every
model it runs (PPO: the policy, π^SFT, the value model and the RM) and logs them in its last metrics
row as `compute`, with the tokens of its own model; `accounting` adds those rows up. Measurements
that choose or watch a model (validation losses, held-out gold scores) are not counted: the paper
counts training.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from minigpt_rlhf.runtime import UserError, read_metrics, rebuild

PFS_DAY = 1e15 * 86400  # one petaflop/s-day: 8.64e19 FLOPs
PAPER_PFS_DAYS = {
    "pretrain": 3640.0,
    "sft": 4.9,
    "ppo_ptx": 60.0,
}  # 175B GPT-3 / SFT / PPO-ptx, paper section 5.1


@dataclass
class Compute:
    """A stage's running count. `own` marks the stage's own model, whose tokens the table shows."""

    params: int = 0  # N of the stage's own model
    train_tokens: float = 0.0
    forward_tokens: float = 0.0
    flops: float = 0.0

    def train(self, n_params: int, tokens: float, own: bool = True) -> None:
        self.flops += 6.0 * n_params * tokens
        self.train_tokens += tokens if own else 0.0

    def forward(self, n_params: int, tokens: float, own: bool = True) -> None:
        self.flops += 2.0 * n_params * tokens
        self.forward_tokens += tokens if own else 0.0

    def row(self) -> dict:
        """The `compute` entry of a stage's last metrics row."""
        return asdict(self)


def logged(run_dir: Path, stage: str) -> dict:
    """The `compute` a stage logged (its last such row)."""
    path = Path(run_dir) / stage / "metrics.jsonl"
    rows = [r["compute"] for r in read_metrics(path) if "compute" in r]
    if not rows:
        raise UserError(f"{path} logs no compute (cut short?): {rebuild(path)}")
    return rows[-1]


def accounting(run_dir: Path, stages: list[str]) -> dict:
    """Every stage's logged FLOPs (in the recipe's order), and alignment's share of pretraining's
    beside the paper's (4.9 + 60) / 3,640 petaflop/s-days."""
    rows = [
        dict(stage=s, **logged(run_dir, s))
        for s in stages
        if (Path(run_dir) / s / "metrics.jsonl").is_file()
    ]
    for r in rows:
        r["pfs_days"] = r["flops"] / PFS_DAY
    flops = {r["stage"]: r["flops"] for r in rows}
    aligned = flops["sft"] + flops["ppo_ptx"]
    return dict(
        rows=rows,
        ratio=aligned / flops["pretrain"],
        ratio_with_rm=(aligned + flops["reward"]) / flops["pretrain"],
        paper_ratio=(PAPER_PFS_DAYS["sft"] + PAPER_PFS_DAYS["ppo_ptx"])
        / PAPER_PFS_DAYS["pretrain"],
    )
