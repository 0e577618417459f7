"""Step 0: pretraining — the base model ("GPT-3") learns to continue the corpus.

Objective: next-token cross-entropy over random windows x of T tokens of the corpus ("the web"),

    L(θ) = −1/T · Σ_t log p_θ(x_t+1 | x_≤t)

minimised with the shared training loop (training.fit: AdamW, warmup and cosine decay, clipping,
resume, DDP). Every `eval_every` steps the held-out corpus loss (corpus.corpus_loss, the same
measure as the alignment tax's) is logged as val_loss, and the same measure on the training corpus
as train_eval_loss: the two fall together while the model does not overfit.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
import torch.distributed as dist

from minigpt_rlhf.config import Config
from minigpt_rlhf.corpus import corpus_loss, load_tokens, random_windows, tokenizer, window
from minigpt_rlhf.model import GPT
from minigpt_rlhf.runtime import MetricsLogger, setup
from minigpt_rlhf.tokenizer import Tokenizer
from minigpt_rlhf.training import (
    check_ranks_agree,
    dist_setup,
    finished_checkpoint,
    fit,
    is_main,
    stage_payload,
)


def run(cfg: Config, out: Path) -> Path:
    """Pretrain a base model of shape cfg.model on data/corpus_train.txt into out/ckpt.pt."""
    out = Path(out)
    ckpt_path = out / "ckpt.pt"
    if finished_checkpoint(ckpt_path):
        print(f"{out.name}: {ckpt_path} is finished, skipping")
        return ckpt_path
    device = setup(cfg.seed, cfg.device or None, cfg.precision)
    rank, _ = dist_setup(device)
    c, tok = cfg.pretrain, tokenizer(cfg)
    model = GPT(dataclasses.replace(cfg.model, vocab_size=tok.vocab_size)).to(device)
    train, val = load_tokens(cfg.data_dir, "train", tok), load_tokens(cfg.data_dir, "val", tok)
    T = window(cfg, model)
    g = torch.Generator().manual_seed(cfg.seed + 1000 * rank)  # each rank reads its own windows
    logger = MetricsLogger(out / "metrics.jsonl", fresh=not ckpt_path.exists() and is_main())
    if is_main():
        print(
            f"{out.name}: {model.num_params():,} parameters, {len(train):,} training tokens, "
            f"{c.steps} steps x {c.batch_size * c.grad_accum} x {T} tokens"
        )

    def evaluate(step: int) -> dict:
        return dict(
            val_loss=round(corpus_loss(cfg, model, val), 4),
            train_eval_loss=round(corpus_loss(cfg, model, train), 4),
        )

    fit(
        model,
        lambda: (*random_windows(train, c.batch_size, T, g), None),
        c,
        c.steps,
        ckpt_path=ckpt_path,
        logger=logger,
        payload=stage_payload("pretrain", model, tok, cfg),
        evaluate=evaluate,
        eval_every=c.eval_every,
        desc=out.name,
        generator=g,
        device=device,
    )
    if dist.is_initialized():
        check_ranks_agree(model, logger)
    return ckpt_path
