"""Step 0: pretraining — the base model ("GPT-3") learns to continue the corpus.

Objective: next-token cross-entropy over windows of the corpus,

    L(θ) = −1/T · Σ_t log p_θ(x_t+1 | x_≤t)

with AdamW (weight decay on matrices only), linear warmup then cosine decay of the learning rate, gradient
clipping and gradient accumulation. The loop here (`fit`) is shared with SFT, which changes only the batches.

Resuming: a checkpoint holds the model, the optimizer, the step and the random state of the data sampler and
of dropout, so stopping and resuming gives the same numbers as not stopping (on CPU; a test checks this).
Under `torchrun --nproc_per_node=N` the same code trains with DistributedDataParallel: every rank draws its
own batches, gradients are averaged, and rank 0 alone writes checkpoints and logs.
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

from minigpt_rlhf.config import Config, ModelConfig
from minigpt_rlhf.model import GPT, GPTConfig
from minigpt_rlhf.runtime import (MetricsLogger, autocast, check_finite, load_checkpoint, measure_matmul_flops, mfu,
                                  save_checkpoint, setup)
from minigpt_rlhf.tokenizer import Tokenizer
from minigpt_rlhf import world


# ---- distributed (torchrun) ---------------------------------------------------------------------------------------
def dist_setup(device: torch.device) -> tuple[int, int]:
    """(rank, world size); joins the process group when launched by torchrun (WORLD_SIZE > 1)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return (dist.get_rank(), size) if size > 1 else (0, 1)


def is_main() -> bool:
    return not dist.is_initialized() or dist.get_rank() == 0


# ---- optimisation ---------------------------------------------------------------------------------------------------
def make_optimizer(model: torch.nn.Module, c) -> torch.optim.AdamW:
    """AdamW; weight decay on matrices (weights of Linear/Embedding), not on biases and LayerNorm gains."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": c.weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=c.lr, betas=(c.beta1, c.beta2), foreach=True)


def lr_at(step: int, c, total: int) -> float:
    """Linear warmup to c.lr over c.warmup steps, then cosine decay to c.min_lr at the last step."""
    if step < c.warmup:
        return c.lr * (step + 1) / c.warmup
    progress = min(1.0, (step - c.warmup) / max(1, total - c.warmup))
    return c.min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (c.lr - c.min_lr)


def fit(model: GPT, batch: Callable[[], tuple], c, total: int, *, ckpt_path: Path, logger: MetricsLogger,
        payload: Callable[[], dict], evaluate: Callable[[int], dict] | None = None, eval_every: int = 0,
        desc: str = "train", generator: torch.Generator | None = None, device=torch.device("cpu")) -> None:
    """The training loop of pretraining and SFT, resumable.

    batch() -> (idx, targets, loss_mask or None): one micro-batch. Every `eval_every` steps and at the end,
    evaluate(step) adds metrics and a checkpoint {payload(), model, optimizer, rng states, step} is written.
    The checkpoint at ckpt_path, if any, is resumed from."""
    train_model = model
    if dist.is_initialized():
        train_model = torch.nn.parallel.DistributedDataParallel(model)
    opt = make_optimizer(model, c)
    step = 0
    if ckpt_path.exists():
        ckpt = load_checkpoint(ckpt_path)
        if "optimizer" in ckpt:
            model.load_state_dict(ckpt["model"])
            opt.load_state_dict(ckpt["optimizer"])
            torch.set_rng_state(ckpt["torch_rng"])
            if generator is not None:
                generator.set_state(ckpt["data_rng"])
            step = ckpt["step"]
            logger.truncate("step", step)
            print(f"{desc}: resuming from {ckpt_path} at step {step}")

    def save(finished: bool) -> None:
        if is_main():
            save_checkpoint(ckpt_path, **payload(), model=model.state_dict(), optimizer=opt.state_dict(),
                            torch_rng=torch.get_rng_state(), step=step, finished=finished,
                            data_rng=generator.get_state() if generator is not None else None)

    tokens_per_step = None
    peak = measure_matmul_flops(device, seconds=0.3) if is_main() else 1.0
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
                _, loss = train_model(idx.to(device), targets.to(device), None if mask is None else mask.to(device))
            (loss / c.grad_accum).backward()
            loss_sum += loss.item() / c.grad_accum
            tokens += idx.numel()
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
            tps = tokens * (dist.get_world_size() if dist.is_initialized() else 1) / dt
            row = dict(step=step, loss=round(loss_sum, 4), lr=lr, grad_norm=round(float(norm), 4),
                       tokens_per_s=round(tps), mfu=round(mfu(tps, model.flops_per_token(tokens_per_step), peak), 3))
            bar.set_postfix(loss=f"{loss_sum:.3f}", tok_s=f"{tps:,.0f}", mfu=f"{row['mfu']:.0%}")
            if is_main():
                logger.log(**row)
            t0, tokens = time.perf_counter(), 0
        if (eval_every and step % eval_every == 0) or step == total:
            if evaluate is not None and is_main():
                logger.log(step=step, **evaluate(step))
                train_model.train()
            save(finished=step == total)
    bar.close()


# ---- pretraining data -----------------------------------------------------------------------------------------------
def encode_corpus(docs: list[str], tok: Tokenizer) -> torch.Tensor:
    """All documents as one stream, each followed by <|end|> (GPT's <|endoftext|>)."""
    ids = []
    for d in docs:
        ids += tok.encode(d) + [tok.end_id]
    return torch.tensor(ids, dtype=torch.long)


def pretrain_window(cfg: Config, model: GPT) -> int:
    """The window length pretraining trains on (positions beyond it are never trained): PPO-ptx's term and every
    held-out corpus loss use such windows, so the alignment tax compares with pretraining's val_loss."""
    return min(cfg.pretrain.seq_len, model.config.block_size)


def random_windows(data: torch.Tensor, n: int, T: int, generator=None) -> tuple[torch.Tensor, torch.Tensor]:
    """n random windows of T+1 tokens: inputs (n,T) and their next tokens (n,T)."""
    starts = torch.randint(0, len(data) - T - 1, (n,), generator=generator)
    x = torch.stack([data[s: s + T + 1] for s in starts.tolist()])
    return x[:, :-1], x[:, 1:]


@torch.no_grad()
def corpus_loss(model: GPT, data: torch.Tensor, T: int, batches: int, batch_size: int, seed: int = 0) -> float:
    """Mean next-token loss on fixed random windows (the same windows every call, so values compare)."""
    model.eval()
    g = torch.Generator().manual_seed(seed)
    dev = model.wte.weight.device
    losses = [model(*(t.to(dev) for t in random_windows(data, batch_size, T, g)))[1].item() for _ in range(batches)]
    return sum(losses) / len(losses)


def gpt_config(mc: ModelConfig, tok: Tokenizer) -> GPTConfig:
    return GPTConfig(vocab_size=tok.vocab_size, **dataclasses.asdict(mc))


def stage_payload(kind: str, model: GPT, tok: Tokenizer, cfg: Config, **extra) -> Callable[[], dict]:
    """What every model checkpoint carries besides weights and optimizer: kind, shapes, vocabulary, config."""
    return lambda: dict(kind=kind, model_config=dataclasses.asdict(model.config), tokenizer=tok.state_dict(),
                        config=dataclasses.asdict(cfg), **extra)


def finished_checkpoint(path: Path) -> bool:
    """True if path holds a checkpoint its stage completed (the pipeline and stages skip those)."""
    return path.exists() and bool(load_checkpoint(path).get("finished"))


def run(cfg: Config, run_dir, stage: str = "pretrain", model_cfg: ModelConfig | None = None) -> Path:
    """Pretrain a base model on data/corpus_train.txt into run_dir/stage/ckpt.pt."""
    out = Path(run_dir) / stage
    ckpt_path = out / "ckpt.pt"
    if finished_checkpoint(ckpt_path):
        print(f"{stage}: {ckpt_path} is finished, skipping")
        return ckpt_path
    device = setup(cfg.seed, cfg.device or None)
    rank, _ = dist_setup(device)
    c, tok = cfg.pretrain, Tokenizer()
    model = GPT(gpt_config(model_cfg or cfg.model, tok)).to(device)
    train = encode_corpus(world.load_corpus(cfg.data_dir, "train"), tok)
    val = encode_corpus(world.load_corpus(cfg.data_dir, "val"), tok)
    T = pretrain_window(cfg, model)
    g = torch.Generator().manual_seed(cfg.seed + 1000 * rank)  # each rank reads its own windows
    logger = MetricsLogger(out / "metrics.jsonl", fresh=not ckpt_path.exists() and is_main())
    if is_main():
        print(f"{stage}: {model.num_params():,} parameters, {len(train):,} training tokens, {c.steps} steps "
              f"x {c.batch_size * c.grad_accum} x {T} tokens")

    def evaluate(step: int) -> dict:
        return dict(val_loss=round(corpus_loss(model, val, T, c.eval_batches, c.batch_size), 4),
                    train_eval_loss=round(corpus_loss(model, train, T, c.eval_batches, c.batch_size), 4),
                    tokens=step * c.batch_size * c.grad_accum * T)

    fit(model, lambda: (*random_windows(train, c.batch_size, T, g), None), c, c.steps, ckpt_path=ckpt_path,
        logger=logger, payload=stage_payload("pretrain", model, tok, cfg), evaluate=evaluate,
        eval_every=c.eval_every, desc=stage, generator=g, device=device)
    if dist.is_initialized():
        check_ranks_agree(model, logger)
    return ckpt_path


def check_ranks_agree(model: GPT, logger: MetricsLogger) -> None:
    """DDP keeps every rank's weights identical; record that it did (the DDP test reads it)."""
    total = torch.stack([p.detach().double().sum() for p in model.parameters()]).sum().reshape(1)
    gathered = [torch.zeros_like(total) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, total)
    if is_main():
        logger.log(ranks=len(gathered), ranks_agree=all(torch.equal(g, gathered[0]) for g in gathered))
    dist.barrier()
