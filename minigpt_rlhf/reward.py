"""Step 2 of the recipe: a reward model learns the labelers' rankings.

For a prompt x, labelers rank K responses (K = 4..9) best first. Every response ranked above another
is a comparison (y_w preferred to y_l), C(K,2) of them per prompt, and the reward model is trained
with

    loss(θ) = −1/C(K,2) · E_(x, y_w, y_l)~D [ log σ( r_θ(x, y_w) − r_θ(x, y_l) ) ]

    r_θ(x, y)   the scalar reward: the SFT trunk's final hidden state at the response's last token
                through a linear head (the unembedding is not used)
                `RewardModel`
    σ           the logistic function; −log σ(r_w − r_l) is small when y_w out-scores y_l by a
                margin
    1/C(K,2)    all pairs of one prompt are ONE batch element: K forward passes, then the C(K,2)
                differences of those K scores, averaged. The paper found that shuffling the pairs
                into one dataset (2 passes per pair, a response seen K−1 times per epoch) overfits
                within an epoch; `pairs=True` is that ablation.
                `ranking_loss` (comparisons.py)

The loss sees only differences, so it cannot fix r_θ's offset: after training, a bias is set so that
the labelers' demonstrations score 0 on average (the paper does this before RL), and the head's bias
is exactly that normalisation.

The comparisons (comparisons.py): for each RM-split prompt, K responses from the SFT and the base
model, ranked by one labeler; validation prompts are ranked by a training labeler and by a held-out
one. A second labeler of the same pool ranking the same responses gives the labelers' own agreement,
the ceiling to compare with.
"""

from __future__ import annotations

import dataclasses
import math
import random
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from minigpt_rlhf import world
from minigpt_rlhf.comparisons import (
    LABELER_POOLS,
    SPLITS,
    Comparison,
    Encoded,
    encode,
    make_comparisons,
    pairwise_accuracy,
    rank,
    ranking_loss,
    ranking_pairs,
    read_comparisons,
    write_comparisons,
)
from minigpt_rlhf.compute import Compute
from minigpt_rlhf.config import Config, RewardConfig
from minigpt_rlhf.model import GPTConfig, RewardModel
from minigpt_rlhf.runtime import (
    MetricsLogger,
    UserError,
    autocast,
    build_model,
    build_reward_model,
    check_finite,
    check_shape,
    count_params,
    load_checkpoint,
    save_checkpoint,
    setup,
    tokenizer_from,
)
from minigpt_rlhf.tokenizer import Tokenizer, chat_response, format_chat, format_plain
from minigpt_rlhf.training import lr_at, make_optimizer


# ---- training ------------------------------------------------------------------------------------
def as_pairs(data: list[Encoded]) -> list[Encoded]:
    """The ablation's dataset: every comparison of every ranking as its own K = 2 ranking (y_w
    first)."""
    return [
        Encoded([e.seqs[e.ranking[w]], e.seqs[e.ranking[l]]], [0, 1])
        for e in data
        for w, l in zip(*(t.tolist() for t in ranking_pairs(len(e.ranking))))
    ]


def batches(data: list[Encoded], rc: RewardConfig, seed: int):
    """The steps of training, in order, and the steps per epoch. A step is batch_size batch
    elements: a prompt's whole ranking each (K-wise), or with pairs=True one comparison each, the
    comparisons of all rankings shuffled into one dataset: C(K,2) times as many steps per epoch, in
    each of which a response may reappear."""
    elements = as_pairs(data) if rc.pairs else data
    out = []
    for epoch in range(rc.epochs):
        order = list(range(len(elements)))
        random.Random(seed + epoch).shuffle(order)
        out += [
            [elements[i] for i in order[b : b + rc.batch_size]]
            for b in range(0, len(order), rc.batch_size)
        ]
    return out, math.ceil(len(elements) / rc.batch_size)


def batch_loss(
    rm: RewardModel, batch: list[Encoded], chunk: int = 16
) -> tuple[torch.Tensor, float]:
    """Mean ranking loss over the batch's elements, from ONE forward pass per response (in chunks of
    similar length: the quick preset's batches were 63% real tokens as one padded block, 88% in
    chunks of 16)."""
    with autocast(rm.head.weight.device):
        r = rm.rewards([s for e in batch for s in e.seqs], chunk)
    parts = r.split([len(e.seqs) for e in batch])
    loss = torch.stack([ranking_loss(p, e.ranking) for p, e in zip(parts, batch)]).mean()
    acc = sum(pairwise_accuracy(p.detach().cpu(), e.ranking) for p, e in zip(parts, batch)) / len(
        batch
    )
    return loss, acc


def validate(
    rm: RewardModel, val: list[Encoded], rankings: dict[str, list[list[int]]]
) -> dict[str, float]:
    """Pairwise accuracy and log loss of r_θ against each validation ranking of the same responses
    (scored once): val_acc / val_loss for the pool's labelers, val_acc_heldout / val_loss_heldout
    for the held-out ones."""
    scores = score_all(rm, val)
    out = {}
    for split, ranks in rankings.items():
        suffix = split[3:]  # "" or "_heldout"
        out[f"val_acc{suffix}"] = sum(map(pairwise_accuracy, scores, ranks)) / len(ranks)
        out[f"val_loss{suffix}"] = sum(
            float(ranking_loss(s, r)) for s, r in zip(scores, ranks)
        ) / len(ranks)
    return out


def score_all(rm: RewardModel, data: list[Encoded]) -> list[torch.Tensor]:
    """r_θ of every response of every comparison, one tensor of K rewards per comparison."""
    with autocast(rm.head.weight.device):
        scores = rm.score_sequences([s for e in data for s in e.seqs])
    return list(scores.split([len(e.seqs) for e in data]))


def train(
    rm: RewardModel,
    data: list[Encoded],
    val: list[Encoded],
    rankings: dict,
    rc: RewardConfig,
    seed: int,
    log: MetricsLogger | None = None,
    state: dict | None = None,
    save=None,
) -> dict:
    """Train r_θ on ranked comparisons (rc.epochs epochs, K-wise or, with rc.pairs, as independent
    pairs). Validation (see `validate`) every rc.eval_every steps, the curves, goes to log;
    save(step, optimizer) is called there too. state: a checkpoint's {"step", "optimizer",
    "torch_rng"} to resume from. Returns the last validation, the number of steps and of tokens
    trained on."""
    opt = make_optimizer(rm, rc)
    steps, per_epoch = batches(data, rc, seed)
    start = state["step"] if state else 0
    # the optimizer and the dropout masks' random state: resuming gives the numbers of not stopping
    if state:
        opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
    metrics = validate(rm, val, rankings)
    if log and start == 0:
        log.log(step=0, epoch=0.0, **metrics)
    rm.train()
    bar = tqdm(
        range(start, len(steps)),
        desc="reward model" + (" (pairs)" if rc.pairs else ""),
        unit="step",
        initial=start,
        total=len(steps),
    )
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = lr_at(step, rc, len(steps))
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
        bar.set_postfix(
            loss=f"{row['loss']:.3f}",
            acc=f"{acc:.2f}",
            **{k: f"{v:.2f}" for k, v in metrics.items() if k.startswith("val_acc")},
        )
    rm.eval()
    return dict(
        step=len(steps),
        train_tokens=sum(len(s) for batch in steps for e in batch for s in e.seqs),
        **metrics,
    )


@torch.no_grad()
def normalise(rm: RewardModel, prompts: list[list[int]], demonstrations: list[list[int]]) -> float:
    """Shift r_θ so that the demonstrations score 0 on average: head bias −= mean r_θ(x, y_demo).
    Returns the mean before the shift."""
    mean = float(rm.score(prompts, demonstrations).double().mean())
    rm.head.bias -= mean
    return mean


def labeler_agreement(
    comparisons: list[Comparison], pools: dict[str, list], prompts: dict, seed: int
) -> dict:
    """The ceiling: a second labeler of the same pool ranks the same responses; how often do the two
    agree on a pair? agreement (the pool's labelers), agreement_heldout. (The paper: training
    labelers 72.6 ± 1.5%, held-out ones 77.3 ± 1.3%.)"""
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


def gold_metrics(
    rm_scores: list[torch.Tensor], comparisons: list[Comparison], prompts: dict
) -> dict:
    """Against the gold judge (never a training signal), over pairs of responses the judge scores
    differently: gold_acc, how often r_θ orders them as the judge's overall score does;
    labelers_gold_acc, the same for the labelers' rankings; gold_corr, Pearson's correlation of r_θ
    with the gold score over all responses."""
    rm_right = lab_right = n = 0
    xs, ys = [], []
    for r, c in zip(rm_scores, comparisons):
        gold = [
            world.judge(prompts[c.prompt_id], y, f).overall for y, f in zip(c.responses, c.finished)
        ]
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
    return dict(
        gold_acc=rm_right / max(n, 1), labelers_gold_acc=lab_right / max(n, 1), gold_corr=corr
    )


# ---- the stage -----------------------------------------------------------------------------------
def _comparisons(
    path: Path, rc: RewardConfig, pool: list, labelers: str, sample
) -> list[Comparison]:
    """The stage's comparisons: read from path if a previous run wrote them (checked against the
    settings), else sample() and write them."""
    if not path.exists():
        comparisons = sample()
        write_comparisons(path, comparisons)
        return comparisons
    comparisons = read_comparisons(path)
    counts = {s: sum(c.split == s for c in comparisons) for s in SPLITS}
    expected = {
        "train": rc.n_prompts * rc.rankings_per_prompt,
        "val": rc.val_prompts,
        "val_heldout": rc.val_prompts,
    }
    if counts != expected or not {c.labeler for c in comparisons if c.split == "train"} <= {
        lab.id for lab in pool
    }:
        raise UserError(
            f"{path} holds {counts} comparisons, expected {expected} ranked by the {labelers!r} "
            f"pool: it was written with other settings; delete it to sample and rank again"
        )
    print(f"reusing {path} ({len(comparisons)} rankings)")
    return comparisons


def save_reward_model(path, rm: RewardModel, tok: Tokenizer, cfg: Config, **extra) -> Path:
    """Checkpoint kind "reward": the trunk like any GPT checkpoint (model_config, model), plus the
    head."""
    return save_checkpoint(
        path,
        "reward",
        model_config=dataclasses.asdict(rm.trunk.config),
        model=rm.trunk.state_dict(),
        head=rm.head.state_dict(),
        bias=float(rm.head.bias),
        tokenizer=tok.state_dict(),
        config=dataclasses.asdict(cfg),
        **extra,
    )


def run(
    cfg: Config,
    out: Path,
    sft: Path,
    base: Path | None = None,
    labelers: str = "train",
    responses: Path | None = None,
) -> Path:
    """Train the reward model from the SFT model in folder `sft` on rankings by the `labelers` pool
    ("train" or "biased"). The responses are sampled from the SFT model and (reward.base_share of
    them) the base model in folder `base`, or, with `responses`, taken from that reward stage's
    comparisons (then two RMs differ only in whose preferences they learned). Writes
    out/{comparisons.jsonl, ckpt.pt, metrics.jsonl}; a finished checkpoint is returned as is, an
    unfinished one resumed, an existing comparisons.jsonl reused."""
    rc, out = cfg.reward, Path(out)
    if labelers not in LABELER_POOLS:
        raise UserError(
            f"unknown labeler pool {labelers!r}: choose one of {', '.join(LABELER_POOLS)}"
        )
    ckpt_path = out / "ckpt.pt"
    resume = load_checkpoint(ckpt_path, "reward") if ckpt_path.exists() else None
    if resume and resume.get("finished"):
        print(f"{ckpt_path} is finished: delete it to train again")
        return ckpt_path
    device = setup(cfg.seed, cfg.device or None, cfg.precision)
    sft_ckpt = load_checkpoint(Path(sft) / "ckpt.pt", "sft")
    if resume:  # the RM resumed is the one this SFT model starts
        check_shape(resume, GPTConfig(**sft_ckpt["model_config"]), ckpt_path)
    tok = tokenizer_from(sft_ckpt)
    # enough RM prompts for n_prompts + val_prompts, and each fits the context: see preflight.py
    all_prompts, demos = (
        world.load_prompts(cfg.data_dir, "rm"),
        world.load_demonstrations(cfg.data_dir),
    )
    train_prompts, val_prompts = (
        all_prompts[: rc.n_prompts],
        all_prompts[len(all_prompts) - rc.val_prompts :],
    )
    # R rankings of a training prompt: its R copies side by side, so that rank() gives each copy the
    # next labeler
    train_prompts = [p for p in train_prompts for _ in range(rc.rankings_per_prompt)]
    prompts = {p.id: p for p in all_prompts}
    pool = LABELER_POOLS[labelers]()
    out.mkdir(parents=True, exist_ok=True)
    compute = Compute(params=count_params(sft_ckpt["model_config"]))

    # 1. comparison data: K responses per prompt from several policies, ranked by labelers; sampled
    # once
    def sample():
        ps = train_prompts + val_prompts
        if (
            responses is not None
        ):  # its sampled sets in order: train's, then val's (val_heldout re-ranks val's)
            theirs = [
                c
                for c in read_comparisons(Path(responses) / "comparisons.jsonl")
                if c.split != "val_heldout"
            ]
            if [c.prompt_id for c in theirs] != [p.id for p in ps]:
                raise UserError(
                    f"{responses} was sampled with other "
                    f"reward.n_prompts/rankings_per_prompt/val_prompts: rerun that reward stage "
                    f"with these settings (minigpt-rlhf run --from reward)"
                )
            print(f"the {labelers!r} labelers rank the responses of {responses}")
            return rank(
                ps,
                [(c.responses, c.finished, c.sources) for c in theirs],
                len(train_prompts),
                pool,
                cfg.seed,
            )
        models = {"sft": build_model(sft_ckpt, device).eval()}
        if rc.base_share > 0:
            models["base"] = build_model(
                load_checkpoint(Path(base) / "ckpt.pt", "pretrain"), device
            ).eval()
        return make_comparisons(
            models, tok, train_prompts, val_prompts, pool, rc, cfg.max_new_tokens, cfg.seed
        )

    t0, reused = time.time(), (out / "comparisons.jsonl").exists()
    comparisons = _comparisons(out / "comparisons.jsonl", rc, pool, labelers, sample)
    t_sample = None if reused else time.time() - t0
    if (
        responses is None
    ):  # sampling: 2·N per prompt and response token (the SFT and base models share a shape)
        fmt = {"sft": format_chat, "base": format_plain}
        for c in (
            c for c in comparisons if c.split != "val_heldout"
        ):  # val_heldout re-ranks val's responses
            for y, f, source in zip(c.responses, c.finished, c.sources):
                x = fmt[source.split("@")[0]](tok, prompts[c.prompt_id].text)
                compute.forward(compute.params, len(x) + len(tok.encode(y)) + f)

    # 2. the reward model: the SFT trunk and a scalar head, trained on the rankings
    data = [encode(tok, c, prompts) for c in comparisons if c.split == "train"]
    val = [encode(tok, c, prompts) for c in comparisons if c.split == "val"]
    rankings = {s: [c.ranking for c in comparisons if c.split == s] for s in SPLITS[1:]}
    rm = (
        build_reward_model(resume, device)
        if resume
        else RewardModel(build_model(sft_ckpt, device), tok.pad_id)
    )
    log = MetricsLogger(out / "metrics.jsonl", fresh=resume is None)
    if resume:
        log.truncate("step", resume["step"])

    def save(step, opt):
        save_reward_model(
            ckpt_path,
            rm,
            tok,
            cfg,
            step=step,
            optimizer=opt.state_dict(),
            torch_rng=torch.get_rng_state(),
            finished=False,
            labelers=labelers,
        )

    t0 = time.time()
    metrics = train(rm, data, val, rankings, rc, cfg.seed, log, resume, save)
    t_train = time.time() - t0
    compute.train(compute.params, metrics["train_tokens"])

    # 3. normalisation: the labelers' demonstrations score 0 on average
    demo = [
        (format_chat(tok, prompts[d.prompt_id].text), chat_response(tok, d.response))
        for d in demos
        if d.prompt_id in prompts
    ]
    demo_mean = normalise(rm, [x for x, _ in demo], [y for _, y in demo])

    # 4. how good is it: accuracy next to the labelers' own agreement, and against the gold judge
    val_comps = [c for c in comparisons if c.split == "val"]
    pools = {"val": pool, "val_heldout": world.labelers.heldout_labelers()}
    summary = dict(
        **metrics,
        **labeler_agreement(comparisons, pools, prompts, cfg.seed),
        **gold_metrics(score_all(rm, val), val_comps, prompts),
        demo_mean_before=demo_mean,
        bias=float(rm.head.bias),
        train_rankings=len(data),
        train_pairs=sum(math.comb(len(e.seqs), 2) for e in data),
        t_sample=t_sample,
        t_train=t_train,
    )
    log.log(final=True, **summary, compute=compute.row())
    save_reward_model(
        ckpt_path,
        rm,
        tok,
        cfg,
        step=metrics["step"],
        finished=True,
        summary=summary,
        labelers=labelers,
    )
    print(
        " ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in summary.items())
    )
    return ckpt_path
