"""Answering prompts: batched KV-cache sampling, and the way each kind of model is prompted. Every
stage that samples a model for its own measurements, and the evaluation, answers through here.

    chat       <|user|> prompt <|assistant|>             SFT, PPO and every aligned model
    plain      prompt                                   a base model, which never saw the chat
               tokens (GPT-3)
    few_shot   worked examples, then the plain prompt    a base model "prompted to be an assistant"
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from minigpt_rlhf import world
from minigpt_rlhf.model import GPT, Generation, left_pad
from minigpt_rlhf.runtime import UserError
from minigpt_rlhf.tokenizer import Tokenizer, format_chat, format_plain

PROMPTINGS = ("chat", "plain", "few_shot")


class Answer(NamedTuple):
    text: str  # decoded, without special tokens
    finished: bool  # the model ended it with <|end|>; the judge's format score reads it


@torch.no_grad()
def sample(
    model: GPT,
    tok: Tokenizer,
    prompts: list[list[int]],
    max_new_tokens: int,
    temperature: float = 0.0,
    batch_size: int = 64,
    generator=None,
) -> Generation:
    """Responses to many token-list prompts, batch_size at a time with the KV cache, max_new_tokens
    capped to the context the longest prompt leaves: the token lists (<|end|> included when
    emitted), their log-probs under the model itself (temperature 1) and whether each ended."""
    room = model.config.block_size - max(map(len, prompts))
    if room < 1:
        raise UserError(
            f"a prompt fills the model's whole context ({model.config.block_size} tokens): shorten "
            f"it or use a model with a larger model.block_size"
        )
    out = Generation(responses=[])
    for i in range(0, len(prompts), batch_size):
        g = model.generate(
            prompts[i : i + batch_size],
            min(max_new_tokens, room),
            temperature,
            stop_id=tok.end_id,
            pad_id=tok.pad_id,
            generator=generator,
        )
        out.responses += g.responses
        out.logprobs += g.logprobs
        out.finished += g.finished
    return out


def prompt_ids(
    tok: Tokenizer, text: str, prompting: str = "chat", examples: list[str] = (), room: int = 0
) -> list[int]:
    """The tokens a model is shown. Few-shot examples are documents, each ended by <|end|> as in
    pretraining; those that would not leave `room` tokens for the answer are dropped from the first
    one on: those nearest the question stay."""
    if prompting == "chat":
        return format_chat(tok, text)
    ids = format_plain(tok, text)
    if prompting == "few_shot":
        shots = [tok.encode(e) + [tok.end_id] for e in examples]
        while shots and sum(map(len, shots)) + len(ids) > room:
            shots = shots[1:]
        ids = [t for shot in shots for t in shot] + ids
    return ids


def answer(
    model: GPT,
    tok: Tokenizer,
    texts: list[str],
    max_new_tokens: int,
    temperature: float = 0.0,
    prompting: str = "chat",
    examples: list[str] = (),
    batch_size: int = 64,
    generator=None,
) -> list[Answer]:
    """One answer per prompt text, prompted as `prompting` says (examples: the few-shot prefix)."""
    room = model.config.block_size - max_new_tokens
    ids = [prompt_ids(tok, t, prompting, examples, room) for t in texts]
    g = sample(model, tok, ids, max_new_tokens, temperature, batch_size, generator)
    return [Answer(tok.decode(r, skip_special=True), f) for r, f in zip(g.responses, g.finished)]


def gold_score(
    model: GPT,
    tok: Tokenizer,
    prompts: list[world.Prompt],
    max_new_tokens: int,
    prompting: str = "chat",
) -> float:
    """Mean overall gold score of greedy answers: the experimenters' measurement, never a training
    signal."""
    answers = answer(model, tok, [p.text for p in prompts], max_new_tokens, prompting=prompting)
    return sum(world.judge(p, a.text, a.finished).overall for p, a in zip(prompts, answers)) / len(
        prompts
    )


def response_logprobs(
    model: GPT,
    tok: Tokenizer,
    prompts: list[list[int]],
    responses: list[list[int]],
    batch_size: int = 64,
) -> torch.Tensor:
    """log π(y | x) = Σ_t log π(y_t | x, y_<t) of given responses y to prompts x (token lists),
    (B,), at temperature 1; differentiable (wrap in torch.no_grad() to only measure). Batches are
    left-padded, so every response ends in the last column."""
    dev, out = model.wte.weight.device, []
    for i in range(0, len(prompts), batch_size):
        xs, ys = prompts[i : i + batch_size], responses[i : i + batch_size]
        idx, real = left_pad([x + y for x, y in zip(xs, ys)], tok.pad_id, dev)
        lp = model.token_logprobs(idx, real)  # (B, T-1): the log-prob of token t+1
        keep = (
            torch.arange(lp.size(1), device=dev)[None, :]
            >= lp.size(1) - torch.tensor([len(y) for y in ys], device=dev)[:, None]
        )
        out.append(torch.where(keep, lp, 0.0).sum(1))
    return torch.cat(out)
