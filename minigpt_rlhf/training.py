"""The training loop that pretraining and SFT share, with its optimizer, schedule, checkpoints and
DDP.

    AdamW (Loshchilov & Hutter, 2019) with weight decay on matrices only; the learning rate warms up
    linearly for `warmup` steps, then follows a cosine from `lr` down to `min_lr` at the last step;
    gradients are clipped to norm `grad_clip`; `grad_accum` micro-batches make one step.

Resuming: a checkpoint holds the model, the optimizer, the step, the tokens trained on and the
random state of the data sampler and of dropout, so stopping and resuming gives the same numbers as
not stopping (on CPU; a test checks this). Under `torchrun --nproc_per_node=N` the same code trains
with DistributedDataParallel: every rank draws its own batches, gradients are averaged, and rank 0
alone writes checkpoints and logs.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist
from tqdm import tqdm

from minigpt_rlhf.compute import Compute
from minigpt_rlhf.config import Config, Optim
from minigpt_rlhf.model import GPT
from minigpt_rlhf.runtime import (
    MetricsLogger,
    autocast,
    check_finite,
    check_shape,
    load_checkpoint,
    measure_matmul_flops,
    mfu,
    save_checkpoint,
    uses_bf16,
)
from minigpt_rlhf.tokenizer import Tokenizer


# ---- distributed (torchrun) ----------------------------------------------------------------------
def dist_setup(device: torch.device) -> tuple[int, int]:
    """(rank, world size); joins the process group when launched by torchrun (WORLD_SIZE > 1)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return (dist.get_rank(), size) if size > 1 else (0, 1)


def is_main() -> bool:
    return not dist.is_initialized() or dist.get_rank() == 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def check_ranks_agree(model: GPT, logger: MetricsLogger) -> None:
    """DDP keeps every rank's weights identical; record that it did (the DDP test reads it)."""
    total = torch.stack([p.detach().double().sum() for p in model.parameters()]).sum().reshape(1)
    gathered = [torch.zeros_like(total) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, total)
    if is_main():
        logger.log(
            ranks=len(gathered), ranks_agree=all(torch.equal(g, gathered[0]) for g in gathered)
        )
    dist.barrier()


# ---- optimisation --------------------------------------------------------------------------------
def make_optimizer(model: torch.nn.Module, c: Optim) -> torch.optim.AdamW:
    """AdamW; weight decay on matrices (weights of Linear/Embedding), not on biases and LayerNorm
    gains."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": c.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=c.lr, betas=(c.beta1, c.beta2), foreach=True)


def lr_at(step: int, c: Optim, total: int) -> float:
    """Linear warmup to c.lr over c.warmup steps, then cosine decay to c.min_lr at the last step."""
    if step < c.warmup:
        return c.lr * (step + 1) / c.warmup
    progress = min(1.0, (step - c.warmup) / max(1, total - c.warmup))
    return c.min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (c.lr - c.min_lr)


# ---- checkpoints of a stage ----------------------------------------------------------------------
def stage_payload(
    kind: str, model: GPT, tok: Tokenizer, cfg: Config, **extra
) -> Callable[[], dict]:
    """What every model checkpoint carries besides weights and optimizer: kind, shapes, vocabulary,
    config."""
    return lambda: dict(
        kind=kind,
        model_config=dataclasses.asdict(model.config),
        tokenizer=tok.state_dict(),
        config=dataclasses.asdict(cfg),
        **extra,
    )


def finished_checkpoint(path: Path) -> bool:
    """True if path holds a checkpoint its stage completed (the pipeline and stages skip those)."""
    return path.exists() and bool(load_checkpoint(path).get("finished"))


# ---- the loop ------------------------------------------------------------------------------------
def fit(
    model: GPT,
    batch: Callable[[], tuple],
    c: Optim,
    total: int,
    *,
    ckpt_path: Path,
    logger: MetricsLogger,
    payload: Callable[[], dict],
    evaluate: Callable[[int], dict] | None = None,
    eval_every: int = 0,
    desc: str = "train",
    generator: torch.Generator | None = None,
    device=torch.device("cpu"),
) -> None:
    """Train `total` steps of c's optimizer and schedule, resumably.

    batch() -> (idx, targets, loss_mask or None): one micro-batch; targets are -100 on padding.
    Every `eval_every` steps and at the end, evaluate(step) adds metrics and a checkpoint
    {payload(), model, optimizer, rng states, step, trained} is written; the checkpoint at
    ckpt_path, if any, is resumed from. The last metrics row holds the stage's `compute`: 6·N per
    real token trained on (see compute.py)."""
    train_model = model
    if dist.is_initialized():
        train_model = torch.nn.parallel.DistributedDataParallel(model)
    opt = make_optimizer(model, c)
    step, trained = 0, 0  # trained: real (non-pad) tokens of every rank, for the compute accounting
    if ckpt_path.exists():
        ckpt = load_checkpoint(ckpt_path)
        if "optimizer" in ckpt:
            check_shape(ckpt, model.config, ckpt_path)
            model.load_state_dict(ckpt["model"])
            opt.load_state_dict(ckpt["optimizer"])
            torch.set_rng_state(ckpt["torch_rng"])
            if generator is not None:
                generator.set_state(ckpt["data_rng"])
            step, trained = ckpt["step"], ckpt["trained"]
            logger.truncate("step", step)
            print(f"{desc}: resuming from {ckpt_path} at step {step}")

    def save(finished: bool) -> None:
        if is_main():
            save_checkpoint(
                ckpt_path,
                **payload(),
                model=model.state_dict(),
                optimizer=opt.state_dict(),
                torch_rng=torch.get_rng_state(),
                step=step,
                trained=trained,
                finished=finished,
                data_rng=generator.get_state() if generator is not None else None,
            )

    tokens_per_step = None
    # MFU against the peak of the precision the matrix products run in
    peak = (
        measure_matmul_flops(
            device, dtype=torch.bfloat16 if uses_bf16(device) else torch.float32, seconds=0.3
        )
        if is_main()
        else 1.0
    )
    bar = tqdm(total=total, initial=step, desc=desc, disable=not is_main(), dynamic_ncols=True)
    train_model.train()
    t0, tokens = time.perf_counter(), 0
    while step < total:
        lr = lr_at(step, c, total)
        for group in opt.param_groups:
            group["lr"] = lr
        loss_sum = 0.0
        for _ in range(c.grad_accum):
            idx, targets, mask = batch()
            with autocast(device):
                _, loss = train_model(
                    idx.to(device), targets.to(device), None if mask is None else mask.to(device)
                )
            (loss / c.grad_accum).backward()
            loss_sum += loss.item() / c.grad_accum
            tokens += idx.numel()
            trained += int((targets != -100).sum()) * world_size()
            tokens_per_step = tokens_per_step or idx.shape[1]
        check_finite(loss_sum, step)
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), c.grad_clip)
        check_finite(norm, step, "gradient norm")
        opt.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        bar.update(1)
        if step % c.log_every == 0 or step == total:
            dt = time.perf_counter() - t0
            tps = tokens * world_size() / dt
            row = dict(
                step=step,
                loss=round(loss_sum, 4),
                lr=lr,
                grad_norm=round(float(norm), 4),
                tokens=trained,
                tokens_per_s=round(tps),
                mfu=round(mfu(tps, model.flops_per_token(tokens_per_step), peak), 3),
            )
            bar.set_postfix(loss=f"{loss_sum:.3f}", tok_s=f"{tps:,.0f}", mfu=f"{row['mfu']:.0%}")
            if is_main():
                logger.log(**row)
            t0, tokens = time.perf_counter(), 0
        if (eval_every and step % eval_every == 0) or step == total:
            if evaluate is not None and is_main():
                logger.log(step=step, **evaluate(step))
                train_model.train()
            if step == total and is_main():
                compute = Compute(params=model.num_params())
                compute.train(compute.params, trained)
                logger.log(step=step, compute=compute.row())
            save(finished=step == total)
    bar.close()
