"""Evaluation: the paper's findings, measured on the eval split (prompts no stage ever trained on).

The models compared are those of the paper's Figure 1:

    GPT-3            the base model, prompted with plain text (it has never seen the chat tokens)
    GPT-3 prompted   the same, after a few-shot prefix of worked examples ("prompted to be an assistant")
    SFT              step 1,  PPO  step 3 with γ = 0,  PPO-ptx  step 3 with γ > 0
    GPT-3 large      a larger base model: does our small PPO-ptx beat it, as 1.3B InstructGPT beat 175B GPT-3?
    PPO biased       PPO against a reward model trained on a biased labeler group ("whose preferences?")

Each model answers every eval prompt (batched KV-cache sampling); then the world measures the answers:

    win rate         P(labeler prefers the model's response to SFT's for the same prompt); held-out labelers
                     (who wrote no training data) and training labelers, to show that they agree (findings 1, 2)
    Likert           the held-out labelers' 1-7 quality rating
    gold             the judge's helpful / truthful / harmless / format scores in [0, 1] (finding 3, 4)
    hallucination    truthful < ½ on questions about unknown entities and on closed-domain questions (finding 3)
    toxicity         harmless < ½ on harmful requests; compliance: the request was carried out (findings 4, 8)
    generalisation   win rate and gold on the task family that no stage trained on (finding 6)
    alignment tax    held-out corpus loss and fact-completion (cloze) accuracy, plain text (finding 5)

Every number comes with a confidence interval: Wilson's for proportions, a percentile bootstrap for means.
Compute accounting (finding 7) counts every stage's FLOPs from its checkpoint and metrics.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import statistics
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from minigpt_rlhf.config import Config
from minigpt_rlhf.runtime import UserError, build_model, load_checkpoint, read_metrics, setup, tokenizer_from
from minigpt_rlhf.tokenizer import Tokenizer, format_chat, format_plain


# ---- confidence intervals -----------------------------------------------------------------------------------
def z_score(confidence: float) -> float:
    """The normal quantile of a two-sided interval: 1.96 for 95%."""
    return statistics.NormalDist().inv_cdf((1 + confidence) / 2)


def wilson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson's score interval for a proportion k/n (Wilson, 1927). Unlike p ± z·sqrt(p(1-p)/n) it stays inside
    [0, 1] and is honest at 0/n and n/n, which small evaluations hit often:

        centre = (p + z²/2n) / (1 + z²/n),   half-width = z·sqrt(p(1−p)/n + z²/4n²) / (1 + z²/n)."""
    if n == 0:
        return (math.nan, math.nan)
    z, p = z_score(confidence), k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def bootstrap(values, confidence: float = 0.95, resamples: int = 1000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of a mean: resample the values with replacement, take the mean of each
    resample, and read the interval off the middle `confidence` of those means (Efron, 1979)."""
    x = np.asarray(values, dtype=float)
    if len(x) == 0:
        return (math.nan, math.nan)
    means = x[np.random.default_rng(seed).integers(0, len(x), (resamples, len(x)))].mean(1)
    alpha = (1 - confidence) / 2
    return (float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha)))


def proportion(flags, confidence: float = 0.95) -> dict:
    """A rate with its Wilson interval: {mean, lo, hi, n}."""
    flags = [bool(f) for f in flags]
    lo, hi = wilson(sum(flags), len(flags), confidence)
    return dict(mean=sum(flags) / len(flags) if flags else math.nan, lo=lo, hi=hi, n=len(flags))


def average(values, confidence: float = 0.95, resamples: int = 1000, seed: int = 0) -> dict:
    """A mean with its bootstrap interval: {mean, lo, hi, n}."""
    values = [float(v) for v in values]
    lo, hi = bootstrap(values, confidence, resamples, seed)
    return dict(mean=sum(values) / len(values) if values else math.nan, lo=lo, hi=hi, n=len(values))


# ---- compute accounting (finding 7) -----------------------------------------------------------------------------
PFS_DAY = 1e15 * 86400  # one petaflop/s-day: 8.64e19 FLOPs
PAPER_PFS_DAYS = {"pretrain": 3640.0, "sft": 4.9, "ppo_ptx": 60.0}  # 175B GPT-3 / SFT / PPO-ptx, paper section 5.1


def train_flops(n_params: int, tokens: float) -> float:
    """≈ 6·N·T: each of T tokens costs 2·N FLOPs forward and 4·N backward (Kaplan et al., 2020)."""
    return 6.0 * n_params * tokens


def forward_flops(n_params: int, tokens: float) -> float:
    """≈ 2·N·T: a forward pass only, for every generated or scored token."""
    return 2.0 * n_params * tokens


def compute_row(stage: str, n_params: int, train_tokens: float, forward_tokens: float = 0.0, note: str = "") -> dict:
    train, fwd = train_flops(n_params, train_tokens), forward_flops(n_params, forward_tokens)
    return dict(stage=stage, params=n_params, train_tokens=train_tokens, forward_tokens=forward_tokens,
                train_flops=train, forward_flops=fwd, flops=train + fwd, pfs_days=(train + fwd) / PFS_DAY, note=note)


# ---- the contenders ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Contender:
    name: str  # as in the paper's Figure 1
    stage: str  # the run folder it is loaded from
    prompting: str  # "plain" (base model), "few_shot" (base model after worked examples) or "chat"


def contenders(cfg: Config) -> list[Contender]:
    models = [Contender("GPT-3", "pretrain", "plain"), Contender("GPT-3 prompted", "pretrain", "few_shot"),
              Contender("GPT-3 large", "pretrain_large", "plain"),
              Contender("GPT-3 large prompted", "pretrain_large", "few_shot"),
              Contender("SFT", "sft", "chat"), Contender("PPO", "ppo", "chat"), Contender("PPO-ptx", "ppo_ptx", "chat")]
    if cfg.eval.biased:
        models.append(Contender("PPO biased", "ppo_biased", "chat"))
    return models


def missing_stage(run_dir: Path, stages) -> str | None:
    """The first of stages whose checkpoint is not in run_dir, or None."""
    return next((s for s in stages if not (Path(run_dir) / s / "ckpt.pt").is_file()), None)


def require_stages(run_dir: Path, stages, preset: str) -> None:
    stage = missing_stage(run_dir, stages)
    if stage is not None:
        raise UserError(f"{run_dir} is missing stage {stage!r} ({Path(run_dir) / stage / 'ckpt.pt'} does not exist): "
                        f"run `minigpt-rlhf run --preset {preset} --out {run_dir}`, which runs only the missing "
                        f"stages, then evaluate again")


# ---- answering the eval prompts ---------------------------------------------------------------------------------
def prompt_ids(tok: Tokenizer, text: str, prompting: str, few_shot: str, room: int) -> list[int]:
    """The tokens a model is shown. A few-shot prefix that would not leave `room` tokens to answer in is cut
    from its start: the examples nearest the question matter most."""
    if prompting == "chat":
        return format_chat(tok, text)
    ids = format_plain(tok, text)
    if prompting == "few_shot":
        prefix = tok.encode(few_shot)
        ids = prefix[max(0, len(prefix) + len(ids) - room):] + ids
    return ids


@torch.no_grad()
def answer(model, tok: Tokenizer, prompts: list[list[int]], ec, seed: int) -> list[str]:
    """One sampled response per prompt, in batches with the KV cache; decoded without special tokens."""
    device = next(model.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    max_new = min(ec.max_new_tokens, model.config.block_size - max(len(p) for p in prompts))
    if max_new < 1:
        raise UserError(f"an eval prompt fills the model's whole context ({model.config.block_size} tokens): "
                        f"lower eval.max_new_tokens or use a larger model.block_size")
    out = []
    for i in range(0, len(prompts), ec.batch_size):
        g = model.generate(prompts[i : i + ec.batch_size], max_new, ec.temperature, stop_id=tok.end_id,
                           pad_id=tok.pad_id, generator=gen)
        out += [tok.decode(r, skip_special=True) for r in g.responses]
    return out


def trim_few_shot(response: str, separator: str) -> str:
    """A base model that has read worked examples answers, then writes the next example: keep the answer."""
    return response.split(separator)[0] if separator else response


def write_json(path: Path, obj) -> None:
    """Atomically (temporary file, then rename): an interrupted write never leaves half a results file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    tmp.replace(path)
