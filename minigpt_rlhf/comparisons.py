"""Comparison data for step 2: K responses per prompt from several policies, ranked best first by a
labeler.

For each prompt: K ~ U{k_min..k_max} responses, most sampled from the SFT model at several
temperatures and a share from the base model prompted in plain text (the paper drew from several
policies, so that a ranking compares answers of different quality); one labeler of a pool ranks
them. Validation prompts are ranked twice, by a labeler of the same pool and by a held-out labeler.
Every ranking of K responses holds C(K,2) comparisons "y_w is preferred to y_l" (`ranking_pairs`),
and a scorer r of the K responses is judged by the ranking loss over all of them (`ranking_loss`,
the RM's loss; DPO's with its implicit reward). One line of comparisons.jsonl is one `Comparison`;
the reward model learns from them, and so can any method that learns from preferences.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import random
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from minigpt_rlhf import world
from minigpt_rlhf.config import RewardConfig, parse_temperatures
from minigpt_rlhf.model import GPT
from minigpt_rlhf.runtime import UserError, autocast, read_jsonl
from minigpt_rlhf.tokenizer import Tokenizer, chat_response, format_chat, format_plain

SPLITS = (
    "train",
    "val",
    "val_heldout",
)  # val: ranked by the pool that ranked train; val_heldout: held-out labelers
LABELER_POOLS = {
    "train": world.labelers.training_labelers,
    "biased": world.labelers.biased_labelers,
}


# ---- rankings ------------------------------------------------------------------------------------
class RankingError(UserError):
    """A ranking that is not a strict order of the responses."""


def check_ranking(ranking, k: int) -> None:
    """A ranking lists every one of the k responses exactly once, best first: no ties, no
    repeats."""
    if k < 2:
        raise RankingError(f"a ranking needs at least 2 responses to compare, got {k}")
    if any(not isinstance(i, int) or isinstance(i, bool) for i in ranking):
        raise RankingError(
            f"ranking {ranking} holds a non-index (a tie such as [1, 2]?): list each response's "
            f"index once, best first, with no ties"
        )
    if sorted(ranking) != list(range(k)):
        raise RankingError(
            f"ranking {ranking} is not an order of the {k} responses 0..{k - 1}: each index "
            f"exactly once (no ties, no repeats)"
        )


def ranking_pairs(k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(w, l): every pair of positions in a best-first order with w ranked above l, C(k,2) of
    them."""
    return tuple(torch.triu_indices(k, k, 1))


# ---- the loss of a ranking under a scorer --------------------------------------------------------


def ranking_loss(rewards: torch.Tensor, ranking: list[int]) -> torch.Tensor:
    """−1/C(K,2) · Σ_(w above l) log σ(r_w − r_l) for one prompt's K rewards, ranking = indices best
    first."""
    check_ranking(ranking, len(rewards))
    r = rewards[torch.tensor(ranking, device=rewards.device)]  # r[0] is the best response's reward
    w, l = ranking_pairs(len(ranking))
    return -F.logsigmoid(r[w] - r[l]).mean()


def pairwise_accuracy(rewards, ranking: list[int]) -> float:
    """How many of the ranking's C(K,2) pairs the rewards order the same way (a tie counts half)."""
    r = torch.as_tensor(rewards, dtype=torch.float)[torch.tensor(ranking)]
    w, l = ranking_pairs(len(ranking))
    d = r[w] - r[l]
    return float(((d > 0).float() + 0.5 * (d == 0).float()).mean())


# ---- sampling and ranking ------------------------------------------------------------------------
@dataclass
class Comparison:
    """One labeler's ranking of one prompt's K responses (a line of comparisons.jsonl)."""

    # "train"; "val" (ranked by the same pool as train) or "val_heldout" (by a held-out labeler)
    split: str
    prompt_id: str
    labeler: str
    responses: list[str]  # decoded, without special tokens
    finished: list[bool]  # whether each response ended with <|end|>
    sources: list[
        str
    ]  # which model wrote each response at which temperature, e.g. "sft@0.7", "base@1.0"
    ranking: list[int]  # indices into responses, best first


def sample_responses(
    models: dict[str, GPT],
    tok: Tokenizer,
    prompts: list,
    rc: RewardConfig,
    max_new_tokens: int,
    seed: int,
):
    """K ~ U{k_min..k_max} responses per prompt: round(base_share·K) from models["base"] prompted in
    plain text, the rest from models["sft"] in the chat format, temperatures cycled. Returns
    (responses, finished, sources) per prompt. Batched KV-cache sampling, jobs grouped by model and
    temperature, similar lengths together."""
    rng, temps = random.Random(seed), parse_temperatures(rc.temperatures)  # checked by config
    gen = torch.Generator(device=next(models["sft"].parameters()).device).manual_seed(seed)
    jobs = []  # (prompt index, model name, temperature)
    for i in range(len(prompts)):
        k = rng.randint(rc.k_min, rc.k_max)
        n_base = round(rc.base_share * k) if "base" in models else 0
        jobs += [(i, "base" if j < n_base else "sft", temps[j % len(temps)]) for j in range(k)]
    encode = {
        "sft": lambda p: format_chat(tok, p.text),
        "base": lambda p: format_plain(tok, p.text),
    }
    jobs.sort(key=lambda j: (j[1], j[2], len(prompts[j[0]].text)))
    out = [([], [], []) for _ in prompts]
    bar = tqdm(total=len(jobs), desc="sampling responses", unit="resp")
    for (name, temp), group in itertools.groupby(
        jobs, key=lambda j: j[1:]
    ):  # one model and temperature
        group = list(group)
        for b in range(0, len(group), rc.sample_batch):
            chunk = group[b : b + rc.sample_batch]
            with autocast(gen.device):
                g = models[name].generate(
                    [encode[name](prompts[i]) for i, _, _ in chunk],
                    max_new_tokens,
                    temp,
                    stop_id=tok.end_id,
                    pad_id=tok.pad_id,
                    generator=gen,
                )
            for (i, _, _), resp, done in zip(chunk, g.responses, g.finished):
                out[i][0].append(tok.decode(resp, skip_special=True))
                out[i][1].append(done)
                out[i][2].append(f"{name}@{temp:g}")
            bar.update(len(chunk))
    bar.close()
    return out


def rank(prompts: list, sampled: list, n_train: int, pool: list, seed: int) -> list[Comparison]:
    """Labelers rank each prompt's sampled (responses, finished, sources): train prompt i (i <
    n_train) by pool[i mod |pool|]; each validation prompt by a labeler of the pool and by a
    held-out labeler."""
    heldout = world.labelers.heldout_labelers()
    rng = random.Random(seed + 1)  # the labelers' noise
    out = []
    for n, (prompt, (responses, finished, sources)) in enumerate(zip(prompts, sampled)):
        raters = (
            [("val", pool[n % len(pool)]), ("val_heldout", heldout[n % len(heldout)])]
            if n >= n_train
            else [("train", pool[n % len(pool)])]
        )
        for split, lab in raters:
            out.append(
                Comparison(
                    split,
                    prompt.id,
                    lab.id,
                    responses,
                    finished,
                    sources,
                    lab.rank(prompt, responses, rng, finished),
                )
            )
    return out


def make_comparisons(
    models: dict[str, GPT],
    tok: Tokenizer,
    train_prompts: list,
    val_prompts: list,
    pool: list,
    rc: RewardConfig,
    max_new_tokens: int,
    seed: int,
) -> list[Comparison]:
    """Sample responses (`sample_responses`), then have labelers rank them (`rank`)."""
    sampled = sample_responses(models, tok, train_prompts + val_prompts, rc, max_new_tokens, seed)
    return rank(train_prompts + val_prompts, sampled, len(train_prompts), pool, seed)


# ---- comparisons.jsonl ---------------------------------------------------------------------------
def write_comparisons(path, comparisons: list[Comparison]) -> None:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps(dataclasses.asdict(c)) + "\n" for c in comparisons))
    tmp.replace(path)


def read_comparisons(path) -> list[Comparison]:
    """comparisons.jsonl, each line checked: the fields, and a ranking that strictly orders the
    responses."""
    path, out, fix = Path(path), [], "delete the file to sample and rank again"
    fields = [f.name for f in dataclasses.fields(Comparison)]
    for n, row in read_jsonl(path, fix):
        try:
            c = Comparison(**{k: row[k] for k in fields})
        except KeyError as e:
            raise UserError(f"{path}, line {n}: not a comparison (no field {e}); {fix}") from None
        lists = (c.responses, c.finished, c.sources, c.ranking)
        if (
            c.split not in SPLITS
            or not all(isinstance(x, list) for x in lists)
            or not len(c.responses) == len(c.finished) == len(c.sources)
        ):
            raise UserError(
                f"{path}, line {n}: unknown split {c.split!r}, or fields that are not "
                f"lists of equal length; {fix}"
            )
        try:
            check_ranking(c.ranking, len(c.responses))
        except RankingError as e:
            raise RankingError(f"{path}, line {n}: {e}") from None
        out.append(c)
    return out


# ---- as the models see them ----------------------------------------------------------------------
@dataclass
class Encoded:
    """A comparison as the model sees it: K token sequences (prompt + response) and the ranking."""

    seqs: list[list[int]]
    ranking: list[int]


def response_ids(tok: Tokenizer, response: str, finished: bool) -> list[int]:
    """A response's tokens as the chat format writes them (" response" <|end|>); <|end|> only where
    the model emitted it, as PPO's policy samples will be scored."""
    return chat_response(tok, response) if finished else tok.encode(response)


def encode_response(tok: Tokenizer, prompt: str, response: str, finished: bool) -> list[int]:
    """Prompt and response in the chat format."""
    return format_chat(tok, prompt) + response_ids(tok, response, finished)


def encode(tok: Tokenizer, c: Comparison, prompts: dict) -> Encoded:
    text = prompts[c.prompt_id].text
    return Encoded(
        [encode_response(tok, text, r, f) for r, f in zip(c.responses, c.finished)], c.ranking
    )
