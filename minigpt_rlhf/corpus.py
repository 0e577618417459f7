"""The pretraining corpus as tokens: its training windows and the held-out corpus loss, one
definition each.

stream    every document followed by <|end|> (GPT's <|endoftext|>), one long token tensor
window    T = pretrain.seq_len tokens (at most the block): pretraining trains on random windows of
          this length, PPO-ptx's term draws the same, and positions beyond it are never trained
loss      the mean next-token cross-entropy on `pretrain.eval_windows` evenly spaced held-out
          windows of T tokens: the same windows for every model, so pretraining's val_loss, PPO's
          logged corpus_loss and the evaluation's alignment tax are one measure
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from minigpt_rlhf import world
from minigpt_rlhf.config import Config
from minigpt_rlhf.model import GPT
from minigpt_rlhf.tokenizer import Tokenizer


def tokenizer(cfg: Config) -> Tokenizer:
    """The tokenizer of a run's models, fixed when its base model is pretrained (every later stage
    reads it from its checkpoint): the world's byte pairs, data/tokenizer.json, or with
    tokenizer=chars one token per character (the comparison the README measures)."""
    return Tokenizer() if cfg.tokenizer == "chars" else Tokenizer.load(cfg.data_dir)


def encode_corpus(docs: list[str], tok: Tokenizer) -> torch.Tensor:
    """All documents as one stream, each followed by <|end|>."""
    ids = []
    for d in docs:
        ids += tok.encode(d) + [tok.end_id]
    return torch.tensor(ids, dtype=torch.long)


def load_tokens(data_dir, split: str, tok: Tokenizer) -> torch.Tensor:
    """The corpus split ("train" or "val") of data_dir as one token stream."""
    return encode_corpus(world.load_corpus(data_dir, split), tok)


def window(cfg: Config, model: GPT) -> int:
    """T, the window length pretraining trains on."""
    return min(cfg.pretrain.seq_len, model.config.block_size)


def random_windows(
    data: torch.Tensor, n: int, T: int, generator=None
) -> tuple[torch.Tensor, torch.Tensor]:
    """n random windows of T+1 tokens: inputs (n,T) and their next tokens (n,T)."""
    starts = torch.randint(0, len(data) - T - 1, (n,), generator=generator)
    x = torch.stack([data[s : s + T + 1] for s in starts.tolist()])
    return x[:, :-1], x[:, 1:]


@torch.no_grad()
def window_losses(
    model: GPT, data: torch.Tensor, T: int, n_windows: int, batch_size: int = 16
) -> list[float]:
    """Next-token loss on each of n_windows evenly spaced windows of T tokens (their mean is the
    corpus loss; the evaluation bootstraps its interval over them)."""
    starts = torch.linspace(0, len(data) - T - 1, n_windows).long().tolist()
    x = torch.stack([data[s : s + T + 1] for s in starts]).to(model.wte.weight.device)
    model.eval()
    losses = []
    for b in x.split(batch_size):
        logits = model(b[:, :-1])[0].float()
        losses += (
            F.cross_entropy(logits.transpose(1, 2), b[:, 1:], reduction="none").mean(1).tolist()
        )
    return losses


def corpus_loss(cfg: Config, model: GPT, data: torch.Tensor) -> float:
    """The corpus loss of model on data (held-out: the alignment tax's measure) at cfg's window and
    count."""
    losses = window_losses(model, data, window(cfg, model), cfg.pretrain.eval_windows)
    return sum(losses) / len(losses)
