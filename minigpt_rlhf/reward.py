"""Step 2 of the recipe: a reward model learns the labelers' rankings.

For a prompt x, labelers rank K responses (K = 4..9) best first. Every response ranked above another is a
comparison (y_w preferred to y_l), C(K,2) of them per prompt, and the reward model is trained with

    loss(θ) = −1/C(K,2) · E_(x, y_w, y_l)~D [ log σ( r_θ(x, y_w) − r_θ(x, y_l) ) ]

    r_θ(x, y)   the scalar reward: the SFT trunk's final hidden state at the response's last token through a
                linear head (the unembedding is not used)                           `RewardModel`
    σ           the logistic function; −log σ(r_w − r_l) is small when y_w out-scores y_l by a margin
    1/C(K,2)    all pairs of one prompt are ONE batch element: K forward passes, then the C(K,2) differences
                of those K scores, averaged. The paper found that shuffling the pairs into one dataset (2 passes
                per pair, a response seen K−1 times per epoch) overfits within an epoch; `pairs=True` is that
                ablation.                                                            `ranking_loss`

The loss sees only differences, so it cannot fix r_θ's offset: after training, a bias is set so that the
labelers' demonstrations score 0 on average (the paper does this before RL), and the head's bias is exactly
that normalisation.

Comparison data: for each RM-split prompt, K responses sampled from the SFT model at several temperatures plus a
share from the base model prompted in plain text (the paper drew from several policies), each prompt ranked by
one labeler. Validation prompts are ranked twice, by a training labeler and by a held-out one; a second labeler
of the same pool ranking the same responses gives the labelers' own agreement, the ceiling to compare with.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from minigpt_rlhf import world
from minigpt_rlhf.config import Config, RewardConfig
from minigpt_rlhf.model import GPT, left_pad
from minigpt_rlhf.runtime import (MetricsLogger, UserError, autocast, build_model, check_finite, load_checkpoint,
                                  save_checkpoint, setup, tokenizer_from)
from minigpt_rlhf.tokenizer import Tokenizer, format_chat, format_plain

PAD_ID = Tokenizer().pad_id
SPLITS = ("train", "val", "val_heldout")  # val: ranked by the pool that ranked train; val_heldout: held-out labelers
LABELER_POOLS = {"train": world.labelers.training_labelers, "biased": world.labelers.biased_labelers}


# ---- the loss -------------------------------------------------------------------------------------------------
class RankingError(UserError):
    """A ranking that is not a strict order of the responses."""


def check_ranking(ranking, k: int) -> None:
    """A ranking lists every one of the k responses exactly once, best first: no ties, no repeats."""
    if k < 2:
        raise RankingError(f"a ranking needs at least 2 responses to compare, got {k}")
    if any(not isinstance(i, int) or isinstance(i, bool) for i in ranking):
        raise RankingError(f"ranking {ranking} holds a non-index (a tie such as [1, 2]?): list each response's "
                           f"index once, best first, with no ties")
    if sorted(ranking) != list(range(k)):
        raise RankingError(f"ranking {ranking} is not an order of the {k} responses 0..{k - 1}: each index exactly "
                           f"once (no ties, no repeats)")


def ranking_pairs(k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(w, l): every pair of positions in a best-first order with w ranked above l, C(k,2) of them."""
    return tuple(torch.triu_indices(k, k, 1))


def ranking_loss(rewards: torch.Tensor, ranking: list[int]) -> torch.Tensor:
    """−1/C(K,2) · Σ_(w above l) log σ(r_w − r_l) for one prompt's K rewards, ranking = indices best first."""
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


# ---- the reward model --------------------------------------------------------------------------------------------
class RewardModel(nn.Module):
    """r_θ(x, y): the GPT trunk's final hidden state at the last token, through Linear(n_embd, 1).

    Batches are left-padded (`model.left_pad`), so the last column holds every sequence's last real token: the
    response's <|end|> when it ended, the state that has read the whole prompt and response. The head's bias
    gets no gradient (the loss cannot see a constant); `normalise` sets it."""

    def __init__(self, trunk: GPT):
        super().__init__()
        self.trunk = trunk
        self.head = nn.Linear(trunk.config.n_embd, 1)
        nn.init.zeros_(self.head.weight)  # r = 0 for everything at the start: the loss starts at log 2
        nn.init.zeros_(self.head.bias)
        self.head.bias.requires_grad_(False)

    def forward(self, idx, real=None) -> torch.Tensor:
        """Rewards (B,) of left-padded token sequences idx (B,T); real marks the non-pad tokens."""
        return self.head(self.trunk.hidden_states(idx, real)[:, -1]).squeeze(-1).float()

    def score(self, prompts: list[list[int]], responses: list[list[int]]) -> torch.Tensor:
        """r_θ(x, y) for token lists: prompt x (chat format), response y (with <|end|> if it ended). (B,) on CPU."""
        return self.score_sequences([p + r for p, r in zip(prompts, responses)])

    def rewards(self, seqs: list[list[int]], batch: int = 64) -> torch.Tensor:
        """r_θ of whole token sequences (B,), in the given order, computed in batches of similar length: a batch
        pads only to its own longest sequence, far less than one batch of all of them would."""
        dev = self.head.weight.device
        order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
        out = []
        for b in range(0, len(seqs), batch):
            with autocast(dev):
                out.append(self(*left_pad([seqs[i] for i in order[b : b + batch]], PAD_ID, dev)))
        return torch.cat(out)[torch.tensor(order, device=dev).argsort()]

    @torch.no_grad()
    def score_sequences(self, seqs: list[list[int]], batch: int = 64) -> torch.Tensor:
        """r_θ of whole token sequences in eval mode, on the CPU."""
        was_training = self.training
        self.eval()
        out = self.rewards(seqs, batch).cpu()
        self.train(was_training)
        return out


def save_reward_model(path, rm: RewardModel, tok: Tokenizer, cfg: Config, **extra) -> Path:
    """Checkpoint kind "reward": the trunk like any GPT checkpoint (model_config, model), plus the head."""
    return save_checkpoint(path, "reward", model_config=dataclasses.asdict(rm.trunk.config),
                           model=rm.trunk.state_dict(), head=rm.head.state_dict(), bias=float(rm.head.bias),
                           tokenizer=tok.state_dict(), config=dataclasses.asdict(cfg), **extra)


def load_reward_model(path, device="cpu") -> RewardModel:
    """The reward model of a "reward" checkpoint, in eval mode on device."""
    return reward_model_from(load_checkpoint(path, "reward"), device)


def reward_model_from(ckpt: dict, device="cpu") -> RewardModel:
    rm = RewardModel(build_model(ckpt))
    rm.head.load_state_dict(ckpt["head"])
    return rm.to(device).eval()


# ---- comparison data ------------------------------------------------------------------------------------------------
@dataclass
class Comparison:
    """One labeler's ranking of one prompt's K responses (a line of comparisons.jsonl)."""

    split: str  # "train"; "val" (ranked by the same pool as train) or "val_heldout" (by a held-out labeler)
    prompt_id: str
    labeler: str
    responses: list[str]  # decoded, without special tokens
    finished: list[bool]  # whether each response ended with <|end|>
    sources: list[str]  # which model wrote each response at which temperature, e.g. "sft@0.7", "base@1.0"
    ranking: list[int]  # indices into responses, best first


def temperatures(rc: RewardConfig) -> list[float]:
    try:
        temps = [float(t) for t in rc.temperatures.split(",")]
    except ValueError:
        temps = []
    if not temps or any(t <= 0 for t in temps):
        raise UserError(f"reward.temperatures={rc.temperatures!r}: expected positive numbers separated by commas, "
                        f"e.g. --set reward.temperatures=0.7,1.0")
    return temps


def sample_responses(models: dict[str, GPT], tok: Tokenizer, prompts: list, rc: RewardConfig, seed: int):
    """K ~ U{k_min..k_max} responses per prompt: round(base_share·K) from models["base"] prompted in plain text,
    the rest from models["sft"] in the chat format, temperatures cycled. Returns (responses, finished, sources)
    per prompt. Batched KV-cache sampling, jobs grouped by model and temperature, similar lengths together."""
    rng, temps = random.Random(seed), temperatures(rc)
    gen = torch.Generator(device=next(models["sft"].parameters()).device).manual_seed(seed)
    jobs = []  # (prompt index, model name, temperature)
    for i in range(len(prompts)):
        k = rng.randint(rc.k_min, rc.k_max)
        n_base = round(rc.base_share * k) if "base" in models else 0
        jobs += [(i, "base" if j < n_base else "sft", temps[j % len(temps)]) for j in range(k)]
    encode = {"sft": lambda p: format_chat(tok, p.text), "base": lambda p: format_plain(tok, p.text)}
    jobs.sort(key=lambda j: (j[1], j[2], len(prompts[j[0]].text)))
    out = [([], [], []) for _ in prompts]
    bar = tqdm(total=len(jobs), desc="sampling responses", unit="resp")
    for (name, temp), group in itertools.groupby(jobs, key=lambda j: j[1:]):  # one model and temperature
        group = list(group)
        for b in range(0, len(group), rc.sample_batch):
            chunk = group[b : b + rc.sample_batch]
            g = models[name].generate([encode[name](prompts[i]) for i, _, _ in chunk], rc.max_new_tokens, temp,
                                      stop_id=tok.end_id, pad_id=tok.pad_id, generator=gen)
            for (i, _, _), resp, done in zip(chunk, g.responses, g.finished):
                out[i][0].append(tok.decode(resp, skip_special=True))
                out[i][1].append(done)
                out[i][2].append(f"{name}@{temp:g}")
            bar.update(len(chunk))
    bar.close()
    return out


def check_fits(rc: RewardConfig, tok: Tokenizer, prompts: list, block_size: int) -> None:
    longest = max(len(format_chat(tok, p.text)) for p in prompts)  # a token longer than format_plain
    if longest + rc.max_new_tokens > block_size:
        raise UserError(f"the longest RM prompt ({longest} tokens) + reward.max_new_tokens={rc.max_new_tokens} "
                        f"exceed the model's block_size {block_size}: lower reward.max_new_tokens")


def make_comparisons(models: dict[str, GPT], tok: Tokenizer, train_prompts: list, val_prompts: list,
                     pool: list, rc: RewardConfig, seed: int) -> list[Comparison]:
    """Sample responses, then have labelers rank them (see `rank`)."""
    sampled = sample_responses(models, tok, train_prompts + val_prompts, rc, seed)
    return rank(train_prompts + val_prompts, sampled, len(train_prompts), pool, seed)


def rank(prompts: list, sampled: list, n_train: int, pool: list, seed: int) -> list[Comparison]:
    """Labelers rank each prompt's sampled (responses, finished, sources): train prompt i (i < n_train) by
    pool[i mod |pool|]; each validation prompt by a labeler of the pool and by a held-out labeler."""
    heldout = world.labelers.heldout_labelers()
    rng = random.Random(seed + 1)  # the labelers' noise
    out = []
    for n, (prompt, (responses, finished, sources)) in enumerate(zip(prompts, sampled)):
        raters = [("val", pool[n % len(pool)]), ("val_heldout", heldout[n % len(heldout)])] if n >= n_train \
            else [("train", pool[n % len(pool)])]
        for split, lab in raters:
            out.append(Comparison(split, prompt.id, lab.id, responses, finished, sources,
                                  lab.rank(prompt, responses, rng, finished)))
    return out


def write_comparisons(path, comparisons: list[Comparison]) -> None:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps(dataclasses.asdict(c)) + "\n" for c in comparisons))
    tmp.replace(path)


def read_comparisons(path) -> list[Comparison]:
    """comparisons.jsonl, each line checked: the fields, and a ranking that strictly orders the responses."""
    path, out = Path(path), []
    fields = [f.name for f in dataclasses.fields(Comparison)]
    for n, line in enumerate(path.read_text().splitlines(), 1):
        try:
            row = json.loads(line)
            c = Comparison(**{k: row[k] for k in fields})
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise UserError(f"{path}, line {n}: not a comparison ({type(e).__name__}: {e}); delete the file to "
                            f"sample and rank again") from None
        if c.split not in SPLITS or not len(c.responses) == len(c.finished) == len(c.sources):
            raise UserError(f"{path}, line {n}: unknown split {c.split!r} or fields of unequal length; delete "
                            f"the file to sample and rank again")
        try:
            check_ranking(c.ranking, len(c.responses))
        except RankingError as e:
            raise RankingError(f"{path}, line {n}: {e}") from None
        out.append(c)
    return out


# ---- training ---------------------------------------------------------------------------------------------------------
@dataclass
class Encoded:
    """A comparison as the model sees it: K token sequences (prompt + response) and the ranking."""

    seqs: list[list[int]]
    ranking: list[int]


def encode_response(tok: Tokenizer, prompt: str, response: str, finished: bool) -> list[int]:
    """Chat format; <|end|> only where the model emitted it, as PPO's policy samples will be scored."""
    return format_chat(tok, prompt, response) if finished else format_chat(tok, prompt) + tok.encode(response)


def encode(tok: Tokenizer, c: Comparison, prompts: dict) -> Encoded:
    text = prompts[c.prompt_id].text
    return Encoded([encode_response(tok, text, r, f) for r, f in zip(c.responses, c.finished)], c.ranking)


def as_pairs(data: list[Encoded]) -> list[Encoded]:
    """The ablation's dataset: every comparison of every ranking as its own K = 2 ranking (y_w first)."""
    return [Encoded([e.seqs[e.ranking[w]], e.seqs[e.ranking[l]]], [0, 1])
            for e in data for w, l in zip(*(t.tolist() for t in ranking_pairs(len(e.ranking))))]


def batches(data: list[Encoded], rc: RewardConfig, seed: int):
    """The steps of training, in order, and the steps per epoch. A step is batch_size batch elements: a prompt's
    whole ranking each (K-wise), or with pairs=True one comparison each, the comparisons of all rankings shuffled
    into one dataset: C(K,2) times as many steps per epoch, in each of which a response may reappear."""
    elements = as_pairs(data) if rc.pairs else data
    out = []
    for epoch in range(rc.epochs):
        order = list(range(len(elements)))
        random.Random(seed + epoch).shuffle(order)
        out += [[elements[i] for i in order[b : b + rc.batch_size]] for b in range(0, len(order), rc.batch_size)]
    return out, math.ceil(len(elements) / rc.batch_size)


def batch_loss(rm: RewardModel, batch: list[Encoded], chunk: int = 16) -> tuple[torch.Tensor, float]:
    """Mean ranking loss over the batch's elements, from ONE forward pass per response (in chunks of similar
    length: the quick preset's batches were 63% real tokens as one padded block, 88% in chunks of 16)."""
    r = rm.rewards([s for e in batch for s in e.seqs], chunk)
    parts = r.split([len(e.seqs) for e in batch])
    loss = torch.stack([ranking_loss(p, e.ranking) for p, e in zip(parts, batch)]).mean()
    acc = sum(pairwise_accuracy(p.detach().cpu(), e.ranking) for p, e in zip(parts, batch)) / len(batch)
    return loss, acc


def validate(rm: RewardModel, val: list[Encoded], rankings: dict[str, list[list[int]]]) -> dict[str, float]:
    """Pairwise accuracy and log loss of r_θ against each validation ranking of the same responses (scored once):
    val_acc / val_loss for the pool's labelers, val_acc_heldout / val_loss_heldout for the held-out ones."""
    scores = score_all(rm, val)
    out = {}
    for split, ranks in rankings.items():
        suffix = split[3:]  # "" or "_heldout"
        out[f"val_acc{suffix}"] = sum(map(pairwise_accuracy, scores, ranks)) / len(ranks)
        out[f"val_loss{suffix}"] = sum(float(ranking_loss(s, r)) for s, r in zip(scores, ranks)) / len(ranks)
    return out


def score_all(rm: RewardModel, data: list[Encoded]) -> list[torch.Tensor]:
    """r_θ of every response of every comparison, one tensor of K rewards per comparison."""
    return list(rm.score_sequences([s for e in data for s in e.seqs]).split([len(e.seqs) for e in data]))


def train(rm: RewardModel, data: list[Encoded], val: list[Encoded], rankings: dict, rc: RewardConfig, seed: int,
          log: MetricsLogger | None = None, state: dict | None = None, save=None) -> dict:
    """Train r_θ on ranked comparisons (rc.epochs epochs, K-wise or, with rc.pairs, as independent pairs).
    Validation (see `validate`) every rc.eval_every steps, the curves, goes to log; save(step, optimizer) is
    called there too. state: a checkpoint's {"step", "optimizer", "torch_rng"} to resume from. Returns the last validation,
    the number of steps and of tokens trained on."""
    opt = torch.optim.AdamW([p for p in rm.parameters() if p.requires_grad], lr=rc.lr, weight_decay=0.0)
    steps, per_epoch = batches(data, rc, seed)
    start = state["step"] if state else 0
    if state:  # the optimizer and the dropout masks' random state: resuming gives the numbers of not stopping
        opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
    metrics = validate(rm, val, rankings)
    if log and start == 0:
        log.log(step=0, epoch=0.0, **metrics)
    rm.train()
    bar = tqdm(range(start, len(steps)), desc="reward model" + (" (pairs)" if rc.pairs else ""), unit="step",
               initial=start, total=len(steps))
    for step in bar:
        loss, acc = batch_loss(rm, steps[step])
        check_finite(loss.item(), step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(rm.parameters(), rc.grad_clip)
        opt.step()
        row = dict(step=step + 1, epoch=(step + 1) / per_epoch, loss=loss.item(), acc=acc)
        evaluate = (step + 1) % rc.eval_every == 0 or step + 1 == len(steps)
        if evaluate:
            metrics = validate(rm, val, rankings)
            rm.train()
            row.update(metrics)
        if log:
            log.log(**row)
        if evaluate and save:  # after the log, so that a resumed run's metrics hold this step once
            save(step + 1, opt)
        bar.set_postfix(loss=f"{row['loss']:.3f}", acc=f"{acc:.2f}",
                        **{k: f"{v:.2f}" for k, v in metrics.items() if k.startswith("val_acc")})
    rm.eval()
    return dict(step=len(steps), train_tokens=sum(len(s) for batch in steps for e in batch for s in e.seqs), **metrics)


# ---- normalisation and the gold judge -----------------------------------------------------------------------------------
@torch.no_grad()
def normalise(rm: RewardModel, prompts: list[list[int]], demonstrations: list[list[int]]) -> float:
    """Shift r_θ so that the demonstrations score 0 on average: head bias −= mean r_θ(x, y_demo). Returns the
    mean before the shift."""
    mean = float(rm.score(prompts, demonstrations).double().mean())
    rm.head.bias -= mean
    return mean


def labeler_agreement(comparisons: list[Comparison], pools: dict[str, list], prompts: dict, seed: int) -> dict:
    """The ceiling: a second labeler of the same pool ranks the same responses; how often do the two agree on a
    pair? agreement (the pool's labelers), agreement_heldout. (The paper: training labelers 72.6 ± 1.5%,
    held-out ones 77.3 ± 1.3%.)"""
    rng, out = random.Random(seed + 2), {}
    for split, pool in pools.items():
        accs = []
        for c in (c for c in comparisons if c.split == split):
            second = rng.choice([lab for lab in pool if lab.id != c.labeler] or pool)
            order = second.rank(prompts[c.prompt_id], c.responses, rng, c.finished)
            as_reward = [0.0] * len(order)
            for pos, i in enumerate(order):
                as_reward[i] = -pos  # ranked higher = larger
            accs.append(pairwise_accuracy(as_reward, c.ranking))
        out["agreement" + split[3:]] = sum(accs) / len(accs)
    return out


def gold_metrics(rm_scores: list[torch.Tensor], comparisons: list[Comparison], prompts: dict) -> dict:
    """Against the gold judge (never a training signal), over pairs of responses the judge scores differently:
    gold_acc, how often r_θ orders them as the judge's overall score does; labelers_gold_acc, the same for the
    labelers' rankings; gold_corr, Pearson's correlation of r_θ with the gold score over all responses."""
    rm_right = lab_right = n = 0
    xs, ys = [], []
    for r, c in zip(rm_scores, comparisons):
        gold = [world.judge(prompts[c.prompt_id], y, f).overall for y, f in zip(c.responses, c.finished)]
        position = {i: pos for pos, i in enumerate(c.ranking)}
        for a in range(len(gold)):
            for b in range(a + 1, len(gold)):
                if gold[a] != gold[b]:
                    hi, lo = (a, b) if gold[a] > gold[b] else (b, a)
                    rm_right += float(r[hi] > r[lo]) + 0.5 * float(r[hi] == r[lo])
                    lab_right += position[hi] < position[lo]
                    n += 1
        xs += r.tolist()
        ys += gold
    corr = float(torch.corrcoef(torch.tensor([xs, ys], dtype=torch.double))[0, 1])
    return dict(gold_acc=rm_right / max(n, 1), labelers_gold_acc=lab_right / max(n, 1), gold_corr=corr)


# ---- the stage -------------------------------------------------------------------------------------------------------------
def _load_world(data_dir):
    try:
        return world.load_prompts(data_dir, "rm"), world.load_demonstrations(data_dir)
    except world.DataError as e:
        raise UserError(str(e)) from None


def _comparisons(path: Path, rc: RewardConfig, pool: list, labelers: str, sample) -> list[Comparison]:
    """The stage's comparisons: read from path if a previous run wrote them (checked against the settings), else
    sample() and write them."""
    if not path.exists():
        comparisons = sample()
        write_comparisons(path, comparisons)
        return comparisons
    comparisons = read_comparisons(path)
    counts = {s: sum(c.split == s for c in comparisons) for s in SPLITS}
    expected = {"train": rc.n_prompts, "val": rc.val_prompts, "val_heldout": rc.val_prompts}
    if counts != expected or not {c.labeler for c in comparisons if c.split == "train"} <= {lab.id for lab in pool}:
        raise UserError(f"{path} holds {counts} comparisons, expected {expected} ranked by the {labelers!r} pool: "
                        f"it was written with other settings; delete it to sample and rank again")
    print(f"reusing {path} ({len(comparisons)} rankings)")
    return comparisons


def run(cfg: Config, run_dir, stage: str = "reward", sft_stage: str = "sft", labelers: str = "train") -> Path:
    """Train the reward model from run_dir/sft_stage on rankings by the `labelers` pool ("train" or "biased").
    Writes run_dir/stage/{comparisons.jsonl, ckpt.pt, metrics.jsonl} and returns the checkpoint path; a finished
    checkpoint is returned as is, an unfinished one resumed, an existing comparisons.jsonl reused."""
    rc, run_dir = cfg.reward, Path(run_dir)
    if labelers not in LABELER_POOLS:
        raise UserError(f"unknown labeler pool {labelers!r}: choose one of {', '.join(LABELER_POOLS)}")
    if not 2 <= rc.k_min <= rc.k_max:
        raise UserError(f"reward.k_min={rc.k_min}, reward.k_max={rc.k_max}: need 2 <= k_min <= k_max")
    out_dir = run_dir / stage
    ckpt_path = out_dir / "ckpt.pt"
    resume = load_checkpoint(ckpt_path, "reward") if ckpt_path.exists() else None
    if resume and resume.get("finished"):
        print(f"{ckpt_path} is finished: delete it to train again")
        return ckpt_path
    device = setup(cfg.seed, cfg.device or None)
    sft = load_checkpoint(run_dir / sft_stage / "ckpt.pt", "sft")
    tok = tokenizer_from(sft)
    all_prompts, demos = _load_world(cfg.data_dir)
    if rc.n_prompts < 1 or rc.val_prompts < 1 or rc.n_prompts + rc.val_prompts > len(all_prompts):
        raise UserError(f"reward.n_prompts={rc.n_prompts} + reward.val_prompts={rc.val_prompts}: need at least 1 "
                        f"each and at most the {len(all_prompts)} RM-split prompts of {cfg.data_dir} together")
    train_prompts, val_prompts = all_prompts[: rc.n_prompts], all_prompts[len(all_prompts) - rc.val_prompts :]
    prompts = {p.id: p for p in all_prompts}
    pool = LABELER_POOLS[labelers]()
    out_dir.mkdir(parents=True, exist_ok=True)

    # 1. comparison data: K responses per prompt from several policies, ranked by labelers; sampled once
    # another pool ranks the main RM's responses when they exist: then the two RMs differ only in whose preferences
    shared = run_dir / "reward" / "comparisons.jsonl"
    borrow = labelers != "train" and shared.exists()

    def sample():
        if borrow:
            first = {}
            for c in read_comparisons(shared):
                first.setdefault(c.prompt_id, (c.responses, c.finished, c.sources))
            ps = train_prompts + val_prompts
            if not all(p.id in first for p in ps):
                raise UserError(f"{shared} was sampled with other reward.n_prompts/val_prompts: rerun the reward "
                                f"stage with these settings (minigpt-rlhf run --from reward)")
            print(f"the {labelers!r} labelers rank the responses of {shared}")
            return rank(ps, [first[p.id] for p in ps], len(train_prompts), pool, cfg.seed)
        check_fits(rc, tok, train_prompts + val_prompts, sft["model_config"]["block_size"])
        models = {"sft": build_model(sft, device).eval()}
        if rc.base_share > 0:
            base = load_checkpoint(run_dir / "pretrain" / "ckpt.pt", "pretrain")
            models["base"] = build_model(base, device).eval()
        return make_comparisons(models, tok, train_prompts, val_prompts, pool, rc, cfg.seed)

    t0, reused = time.time(), (out_dir / "comparisons.jsonl").exists()
    comparisons = _comparisons(out_dir / "comparisons.jsonl", rc, pool, labelers, sample)
    t_sample = None if reused else time.time() - t0

    # 2. the reward model: the SFT trunk and a scalar head, trained on the rankings
    data = [encode(tok, c, prompts) for c in comparisons if c.split == "train"]
    val = [encode(tok, c, prompts) for c in comparisons if c.split == "val"]
    rankings = {s: [c.ranking for c in comparisons if c.split == s] for s in SPLITS[1:]}
    rm = reward_model_from(resume, device) if resume else RewardModel(build_model(sft, device))
    log = MetricsLogger(out_dir / "metrics.jsonl", fresh=resume is None)
    if resume:
        log.truncate("step", resume["step"])

    def save(step, opt):
        save_reward_model(ckpt_path, rm, tok, cfg, step=step, optimizer=opt.state_dict(),
                          torch_rng=torch.get_rng_state(), finished=False, labelers=labelers)

    t0 = time.time()
    metrics = train(rm, data, val, rankings, rc, cfg.seed, log, resume, save)
    t_train = time.time() - t0

    # 3. normalisation: the labelers' demonstrations score 0 on average
    demo = [(format_chat(tok, prompts[d.prompt_id].text), tok.encode(d.response) + [tok.end_id])
            for d in demos if d.prompt_id in prompts]
    if not demo:
        raise UserError(f"no demonstration in {cfg.data_dir} answers an RM-split prompt: regenerate data/")
    demo_mean = normalise(rm, [x for x, _ in demo], [y for _, y in demo])

    # 4. how good is it: accuracy next to the labelers' own agreement, and against the gold judge
    val_comps = [c for c in comparisons if c.split == "val"]
    pools = {"val": pool, "val_heldout": world.labelers.heldout_labelers()}
    n_params = rm.trunk.num_params()
    sample_tokens = 0 if borrow else sum(len(tok.encode(y)) + f for c in comparisons if c.split != "val_heldout"
                                         for y, f in zip(c.responses, c.finished))
    summary = dict(**metrics, **labeler_agreement(comparisons, pools, prompts, cfg.seed),
                   **gold_metrics(score_all(rm, val), val_comps, prompts),
                   demo_mean_before=demo_mean, bias=float(rm.head.bias), train_rankings=len(data),
                   train_pairs=sum(math.comb(len(e.seqs), 2) for e in data), sample_tokens=sample_tokens,
                   flops=2 * n_params * sample_tokens + 6 * n_params * metrics["train_tokens"],
                   t_sample=t_sample, t_train=t_train)
    log.log(final=True, **summary)
    save_reward_model(ckpt_path, rm, tok, cfg, step=metrics["step"], finished=True, summary=summary,
                      labelers=labelers)
    print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in summary.items()))
    return ckpt_path
