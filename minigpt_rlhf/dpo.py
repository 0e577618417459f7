"""Beside the recipe: direct preference optimisation (DPO, Rafailov et al., 2023) — RLHF's objective
without a reward model and without sampling.

The optimum of the KL-regularised objective max_π E[r(x, y)] − β·KL(π ‖ π_ref) is π*(y|x) ∝
π_ref(y|x)·e^{r(x,y)/β}, so a reward is implied by a policy, r̂(x, y) = β · log(π(y|x) / π_ref(y|x))
(+ a constant per prompt). Put r̂ into the reward model's ranking loss and the policy itself is
trained on the labelers' comparisons:

    loss(π) = −log σ( β · [ (log π(y_w|x) − log π_ref(y_w|x)) − (log π(y_l|x) − log π_ref(y_l|x)) ]
    )

    π          the policy, initialised from SFT                     π_ref   the SFT model, frozen
    β          `dpo.beta`: how far from π_ref the implied optimum lies (small β = far)
    y_w, y_l   a preferred and a rejected response to x

The data are the reward stage's comparisons: K = 4..9 ranked responses per prompt. As the reward
model does, all C(K,2) pairs of a prompt form ONE batch element (`comparisons.ranking_loss` on the K
implicit rewards r̂): K forward passes, every pair's loss averaged. We chose this over the
Plackett-Luce form of the DPO paper's appendix because it is exactly the RM's loss with r̂ in place
of r_θ, so the two steps differ only in what is trained; it also keeps the paper's warning in force
(pairs shuffled apart overfit).
"""

from __future__ import annotations

import math
import random
from pathlib import Path

import torch
from tqdm.auto import tqdm

from minigpt_rlhf import world
from minigpt_rlhf.comparisons import (
    Comparison,
    pairwise_accuracy,
    ranking_loss,
    read_comparisons,
    response_ids,
)
from minigpt_rlhf.compute import Compute
from minigpt_rlhf.config import Config
from minigpt_rlhf.runtime import (
    MetricsLogger,
    build_model,
    check_finite,
    load_checkpoint,
    save_checkpoint,
    setup,
    tokenizer_from,
)
from minigpt_rlhf.sampling import response_logprobs
from minigpt_rlhf.tokenizer import Tokenizer, format_chat
from minigpt_rlhf.training import finished_checkpoint, lr_at, make_optimizer, stage_payload


def dpo_loss(
    logp: torch.Tensor, ref_logp: torch.Tensor, ranking: list[int], beta: float
) -> torch.Tensor:
    """One prompt's DPO loss: the ranking loss of its K implicit rewards r̂ = β·(log π(y|x) − log
    π_ref(y|x))."""
    return ranking_loss(beta * (logp - ref_logp), ranking)


def encode(tok: Tokenizer, c: Comparison, prompts: dict) -> tuple[list[int], list[list[int]]]:
    """A comparison as token lists: the chat prompt, and each response (with <|end|> where the model
    emitted it)."""
    return format_chat(tok, prompts[c.prompt_id].text), [
        response_ids(tok, y, f) for y, f in zip(c.responses, c.finished)
    ]


def logprobs(model, tok: Tokenizer, data: list[tuple], batch_size: int = 64) -> list[torch.Tensor]:
    """log π(y|x) of every response of every comparison, one tensor of K per comparison (in batches
    of similar length)."""
    flat = [(x, y) for x, ys in data for y in ys]
    order = sorted(range(len(flat)), key=lambda i: len(flat[i][0]) + len(flat[i][1]))
    lp = response_logprobs(
        model, tok, [flat[i][0] for i in order], [flat[i][1] for i in order], batch_size
    )
    lp = lp[torch.tensor(order, device=lp.device).argsort()]
    return list(lp.split([len(ys) for _, ys in data]))


@torch.no_grad()
def validate(policy, ref_lp, tok, val, rankings, beta) -> dict:
    """Pairwise accuracy and loss of the implicit reward against each validation ranking (the pool's
    labelers: val_acc, val_loss; the held-out ones: val_acc_heldout, val_loss_heldout), and the mean
    margin r̂(y_w) − r̂(y_l)."""
    policy.eval()
    r = [beta * (lp - ref) for lp, ref in zip(logprobs(policy, tok, val), ref_lp)]
    out = {}
    for split, ranks in rankings.items():
        suffix = split[3:]
        out[f"val_acc{suffix}"] = sum(
            pairwise_accuracy(x.cpu(), k) for x, k in zip(r, ranks)
        ) / len(ranks)
        out[f"val_loss{suffix}"] = sum(float(ranking_loss(x, k)) for x, k in zip(r, ranks)) / len(
            ranks
        )
    return out


def run(cfg: Config, out: Path, sft: Path, comparisons: Path) -> Path:
    """DPO from the SFT model in folder `sft` on the comparisons of the reward stage in folder
    `comparisons`. Writes out/{ckpt.pt, metrics.jsonl}; a finished checkpoint is returned as is, an
    unfinished one resumed."""
    dc, out = cfg.dpo, Path(out)
    ckpt_path = out / "ckpt.pt"
    if finished_checkpoint(ckpt_path):
        print(f"{out.name}: {ckpt_path} is finished, skipping")
        return ckpt_path
    device = setup(cfg.seed, cfg.device or None)
    init = load_checkpoint(Path(sft) / "ckpt.pt", "sft")
    tok = tokenizer_from(init)
    init["model_config"] = {
        **init["model_config"],
        "dropout": 0.0,
    }  # log π must not be noisy: no dropout
    policy, ref = build_model(init, device), build_model(init, device).eval().requires_grad_(False)
    prompts = {p.id: p for p in world.load_prompts(cfg.data_dir, "rm")}
    comps = read_comparisons(Path(comparisons) / "comparisons.jsonl")
    train = [encode(tok, c, prompts) for c in comps if c.split == "train"]
    val_comps = [c for c in comps if c.split == "val"]
    val = [encode(tok, c, prompts) for c in val_comps]
    train_rank = [c.ranking for c in comps if c.split == "train"]
    rankings = {s: [c.ranking for c in comps if c.split == s] for s in ("val", "val_heldout")}
    with torch.no_grad():  # π_ref never changes: its log-probs once
        ref_train, ref_val = logprobs(ref, tok, train), logprobs(ref, tok, val)

    per_epoch = math.ceil(len(train) / dc.batch_size)
    # the batches of every epoch, in order: a prompt's whole ranking is one batch element
    steps = []
    for epoch in range(dc.epochs):
        order = list(range(len(train)))
        random.Random(cfg.seed + epoch).shuffle(order)
        steps += [order[b : b + dc.batch_size] for b in range(0, len(order), dc.batch_size)]
    opt = make_optimizer(policy, dc)
    n_params = policy.num_params()
    compute = Compute(params=n_params)
    compute.forward(
        n_params, sum(len(x) + len(y) for x, ys in train + val for y in ys)
    )  # π_ref, once
    log = MetricsLogger(out / "metrics.jsonl", fresh=not ckpt_path.exists())
    start = 0
    if ckpt_path.exists():
        state = load_checkpoint(ckpt_path, "dpo")
        policy.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        start, compute = state["step"], Compute(**state["compute"])
        log.truncate("step", start)
    payload = stage_payload("dpo", policy, tok, cfg)

    def save(step: int, finished: bool) -> None:
        save_checkpoint(
            ckpt_path,
            **payload(),
            model=policy.state_dict(),
            optimizer=opt.state_dict(),
            step=step,
            compute=compute.row(),
            finished=finished,
        )

    if start == 0:
        log.log(step=0, epoch=0.0, **validate(policy, ref_val, tok, val, rankings, dc.beta))
    bar = tqdm(range(start, len(steps)), desc=out.name, initial=start, total=len(steps))
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = lr_at(step, dc, len(steps))
        batch = [train[i] for i in steps[step]]
        policy.train()
        lp = logprobs(policy, tok, batch)
        loss = torch.stack(
            [dpo_loss(x, ref_train[i], train_rank[i], dc.beta) for x, i in zip(lp, steps[step])]
        ).mean()
        check_finite(loss.item(), step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), dc.grad_clip)
        opt.step()
        compute.train(n_params, sum(len(x) + len(y) for x, ys in batch for y in ys))
        acc = sum(
            pairwise_accuracy((x.detach() - ref_train[i]).cpu(), train_rank[i])
            for x, i in zip(lp, steps[step])
        )
        row = dict(
            step=step + 1, epoch=(step + 1) / per_epoch, loss=loss.item(), acc=acc / len(batch)
        )
        evaluate = (step + 1) % dc.eval_every == 0 or step + 1 == len(steps)
        if evaluate:
            row |= validate(policy, ref_val, tok, val, rankings, dc.beta)
        log.log(**row)
        if evaluate:  # after the log, so that a resumed run's metrics hold this step once
            save(step + 1, finished=False)
        bar.set_postfix(
            loss=f"{loss.item():.3f}",
            **{k: f"{v:.2f}" for k, v in row.items() if k.startswith("val_acc")},
        )
    log.log(step=len(steps), compute=compute.row())
    save(len(steps), finished=True)
    return ckpt_path
