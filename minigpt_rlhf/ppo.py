"""Step 3 of the recipe: reinforcement learning from the reward model with PPO, and PPO-ptx.

The paper's objective, maximised over the policy's parameters φ:

    objective(φ) = E_(x,y)~π_φ^RL [ r_θ(x, y) − β · log( π_φ^RL(y|x) / π^SFT(y|x) ) ]
                   + γ · E_x~D_pretrain [ log π_φ^RL(x) ]

    r_θ      the reward model, frozen                                 `reward_fn`
    π_φ^RL   the policy, initialised from the SFT model               `policy`
    π^SFT    the SFT model, frozen: the anchor of the KL penalty      `ref`
    β        `kl_coef`: per-token KL penalty, fixed or adaptive (a controller steering the KL to a
             target)
    γ        `ptx_coef`: weight of the pretraining LM loss; 0 = "PPO", > 0 = "PPO-ptx"

The environment is a bandit: a prompt x is drawn, the policy writes y, the RM scores it, the episode
ends. PPO (Schulman et al., 2017) treats every response token as an action, with the per-token
reward of Ziegler et al. (2019): a KL penalty on every token, the RM score on the last one,

    r_t = −β · (log π^RL(y_t | x, y_<t) − log π^SFT(y_t | x, y_<t))  +  [t = last] · r_θ(x, y).

A value model V (initialised from the RM, as in the paper) is the baseline; GAE turns rewards and
values into advantages; the clipped surrogate keeps each update near the policy that sampled the
batch. PPO-ptx adds γ · the LM loss on a corpus batch to every gradient step, which the paper found
cuts the "alignment tax".

GRPO (Shao et al., 2024, `baseline="group"`) is the same loop without a value model: each prompt is
answered G = group_size times, and every token of response i gets the advantage of its whole return
standardised within its group, A_i = (R_i − mean_group R) / std_group R, with R_i = r_θ(x, y_i) −
β·KL_i. (DeepSeekMath moves the KL into the loss; keeping it in the reward, PPO and GRPO maximise
the same objective and differ only in the baseline.)

One iteration = rollout (sample with the KV cache, then score: π^RL, π^SFT, V and r_θ on the
samples) → update (ppo_epochs passes of minibatch gradient steps). All in float32, on every device:
the ratio, the KL and the advantages are differences of log-probabilities, which float32 computes
the same way when sampling and when scoring (the largest gap 8e-6), where bf16 made them differ by
up to 0.015 nats per token, and by 0.062 with bf16 logits, with which the rollouts' gold score fell
(docs/experiments/bf16_ppo.py). (The supervised stages use bf16 where the hardware has it:
config.precision.) Shapes: B responses; each row is a left-padded prompt (P columns) followed by its
right-padded response (R columns); per-token tensors are (B, R), with `mask` True on real response
tokens. Padding never enters a sum, a mean or a loss.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections import defaultdict
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from minigpt_rlhf import world
from minigpt_rlhf.compute import Compute
from minigpt_rlhf.config import Config, PPOConfig
from minigpt_rlhf.corpus import corpus_loss, load_tokens, random_windows, window
from minigpt_rlhf.model import GPT, ValueModel, fp32_linear, left_pad
from minigpt_rlhf.runtime import (
    MetricsLogger,
    build_model,
    check_finite,
    check_shape,
    load_checkpoint,
    load_reward_model,
    save_checkpoint,
    setup,
    tokenizer_from,
)
from minigpt_rlhf.tokenizer import Tokenizer, format_chat

RewardFn = Callable[[list[list[int]], list[list[int]]], torch.Tensor]
"""r_θ(x, y) for a batch: prompt token lists and response token lists (ending in <|end|>) -> scores
(B,)."""


# ---- statistics over real tokens only ------------------------------------------------------------
def masked_mean(x, mask):
    """Mean of x where mask is True. torch.where (not x * mask) so that even inf/NaN on pads cannot
    leak."""
    return torch.where(mask, x, 0.0).sum() / mask.sum()


def masked_var(x, mask):
    return masked_mean((x - masked_mean(x, mask)) ** 2, mask)


def masked_whiten(x, mask):
    """(x − mean) / std over the real tokens of the whole batch; pads become 0."""
    return torch.where(
        mask, (x - masked_mean(x, mask)) * torch.rsqrt(masked_var(x, mask) + 1e-8), 0.0
    )


def explained_variance(values, returns, mask) -> float:
    """1 − Var[R − V] / Var[R]: 1 = the value model predicts the returns, ≤ 0 = no better than a
    constant."""
    return float(1 - masked_var(returns - values, mask) / masked_var(returns, mask).clamp(min=1e-8))


# ---- the reward: r_θ on the last token, −β·KL on every token -------------------------------------
def kl_penalised_rewards(score, logprobs, ref_logprobs, mask, kl_coef):
    """Per-token rewards r_t and per-token KL, both (B, R) and 0 on padding.

    kl_t = log π^RL(y_t|·) − log π^SFT(y_t|·); summed over a sampled response it is an unbiased
    estimate of KL(π^RL(·|x) ‖ π^SFT(·|x)) (one sample: it can be negative, its mean cannot). Every
    token pays −β·kl_t; the final real token also receives the score r_θ(x, y)."""
    kl = torch.where(mask, logprobs - ref_logprobs, 0.0)
    rewards = -kl_coef * kl
    last = mask.long().sum(1) - 1  # each response's final token (responses are right-padded)
    rewards[torch.arange(len(score)), last] += score
    return rewards, kl


# ---- advantages ----------------------------------------------------------------------------------
def gae(rewards, values, mask, gamma, lam):
    """Generalised advantage estimation (Schulman et al., 2016), backwards through each response:

        δ_t = r_t + γ·V(s_t+1) − V(s_t),    A_t = δ_t + γλ·A_t+1,    returns R_t = A_t + V(s_t).

    The episode ends after the last real token, so the value after it is 0. Pads (to the right) get
    reward 0 and value 0, which makes their δ and A exactly 0 and leaves the real tokens
    untouched."""
    rewards = torch.where(mask, rewards, 0.0)
    values = torch.where(mask, values, 0.0)
    advantages = torch.zeros_like(rewards)
    next_value = next_advantage = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(rewards.size(1))):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        next_advantage = delta + gamma * lam * next_advantage
        advantages[:, t] = next_advantage
        next_value = values[:, t]
    return advantages, advantages + values


def group_advantages(rewards, mask, G: int):
    """GRPO's advantages: each response's return R_i = Σ_t r_t, standardised within its group of G
    answers to one prompt (rows i·G .. i·G+G−1), and given to every one of its tokens; 0 on
    padding."""
    R = torch.where(mask, rewards, 0.0).sum(1).view(-1, G)
    A = (R - R.mean(1, keepdim=True)) / (R.std(1, keepdim=True) + 1e-8)
    return torch.where(mask, A.view(-1, 1), 0.0)


# ---- the PPO losses ------------------------------------------------------------------------------
def policy_loss(logprobs, old_logprobs, advantages, mask, clip_eps):
    """PPO's clipped surrogate, as a loss to minimise (Schulman et al., 2017, eq. 7):

        ρ_t = π_φ(y_t|·) / π_old(y_t|·),    L^CLIP = −E_t[ min(ρ_t·A_t, clip(ρ_t, 1−ε, 1+ε)·A_t) ]

    Also returns two diagnostics, as cleanrl logs them: the fraction of tokens whose ratio left
    [1−ε, 1+ε], and approx-KL E[(ρ − 1) − log ρ], an estimator of KL(π_old ‖ π_φ) that is never
    negative."""
    log_ratio = torch.where(mask, logprobs - old_logprobs, 0.0)  # pads: ρ = 1, no gradient
    ratio = log_ratio.exp()
    surrogate = torch.min(ratio * advantages, ratio.clamp(1 - clip_eps, 1 + clip_eps) * advantages)
    with torch.no_grad():
        clipfrac = masked_mean(((ratio - 1).abs() > clip_eps).float(), mask)
        approx_kl = masked_mean((ratio - 1) - log_ratio, mask)
    return masked_mean(-surrogate, mask), clipfrac, approx_kl


def value_loss(values, old_values, returns, mask, clip_value):
    """Clipped value loss (the PPO2 code, cleanrl): V may move at most clip_value from its rollout
    value; the worse of the clipped and unclipped errors counts:  L^V = ½·E_t[ max((V − R)²,
    (V_clipped − R)²) ]."""
    clipped = old_values + (values - old_values).clamp(-clip_value, clip_value)
    return 0.5 * masked_mean(torch.max((values - returns) ** 2, (clipped - returns) ** 2), mask)


# ---- β: fixed or adaptive ------------------------------------------------------------------------
class KLController:
    """β, fixed (target 0) or adaptive (Ziegler et al., 2019, section 2.2). After a batch of n
    responses:

        e = clip( (KL − KL_target) / KL_target, −0.2, 0.2 ),    β ← β · (1 + e · n / horizon)

    so β grows while the policy drifts past the target KL (nats per response) and shrinks while it
    stays below."""

    def __init__(self, beta: float, target: float = 0.0, horizon: int = 10000):
        self.beta, self.target, self.horizon = beta, target, horizon

    def update(self, kl: float, n: int) -> None:
        if self.target > 0:
            error = min(max((kl - self.target) / self.target, -0.2), 0.2)
            self.beta *= 1 + error * n / self.horizon


# ---- rollouts ------------------------------------------------------------------------------------
def make_batch(prompts, responses, pad_id, device):
    """Lay each left-padded prompt beside its right-padded response: seq and real (B, P+R), mask (B,
    R)."""
    prompt_idx, prompt_real = left_pad(prompts, pad_id)
    R = max(len(r) for r in responses)
    resp = torch.full((len(responses), R), pad_id, dtype=torch.long)
    mask = torch.zeros(len(responses), R, dtype=torch.bool)
    for i, r in enumerate(responses):
        resp[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, : len(r)] = True
    return (
        torch.cat([prompt_idx, resp], 1).to(device),
        torch.cat([prompt_real, mask], 1).to(device),
        mask.to(device),
    )


def by_length(fn, seq, real, mask, rows: int = 8):
    """fn(seq, real, R) -> (B, R, ...) computed on chunks of `rows` rows of similar length, each cut
    to the columns where one of its rows has a real token: the same values wherever mask is True,
    zeros on the padding, and far fewer pad tokens through the model (prompts of 14-102 tokens are
    left-padded to the longest; a quick PPO update took 1.8-2.0 s this way, 2.2-3.1 s as one padded
    batch). Differentiable, so the update uses it."""
    B, R = mask.shape
    P = seq.size(1) - R
    prompt_len, response_len = real[:, :P].sum(1), mask.sum(1)
    order = (prompt_len + response_len).argsort()
    out = []
    for chunk in order.split(rows):
        p, r = int(prompt_len[chunk].max()), int(response_len[chunk].max())
        y = fn(seq[chunk, P - p : P + r], real[chunk, P - p : P + r], r)
        out.append(F.pad(y, (0, 0) * (y.dim() - 2) + (0, R - r)))
    return torch.cat(out)[order.argsort()]


def response_logprobs(model: GPT, seq, real, R, temperature: float = 1.0):
    """log π(· | x, y_<t) over the vocabulary at the last R positions of seq: (B, R, V), in float32;
    with a temperature T, the policy is the model's softmax(logits / T)."""
    # the unembedding only where a response token is predicted: the prompt's positions would cost a
    # V-wide projection and its backward for logits nobody reads
    logits = fp32_linear(model.lm_head, model.hidden_states(seq[:, :-1], real=real[:, :-1])[:, -R:])
    return (logits / temperature).log_softmax(-1)


def response_values(value: ValueModel, seq, real, R):
    """V(s_t) for the state before each of the last R tokens: (B, R)."""
    return value(seq[:, :-1], real[:, :-1])[:, -R:]


@dataclass
class Rollout:
    """One batch of episodes, everything PPO's update needs. Per-token tensors are (B, R)."""

    prompt_index: list[int]  # which of the trainer's prompts each row answers
    responses: list[list[int]]  # sampled tokens, <|end|> included when emitted
    seq: torch.Tensor  # (B, P+R) prompt then response tokens
    real: torch.Tensor  # (B, P+R) True on non-pad tokens
    mask: torch.Tensor  # (B, R) True on real response tokens
    finished: torch.Tensor  # (B,) emitted <|end|>
    logprobs: (
        torch.Tensor
    )  # log π_old(y_t): the policy that sampled, recomputed by a full forward pass
    ref_logprobs: torch.Tensor  # log π^SFT(y_t)
    values: torch.Tensor  # V_old(s_t)
    score: torch.Tensor  # (B,) normalised r_θ(x, y), or the truncation penalty
    rewards: torch.Tensor  # r_t
    kl: torch.Tensor  # log π^RL − log π^SFT per token
    advantages: torch.Tensor  # A_t (whitened if configured)
    returns: torch.Tensor  # R_t = A_t + V_old(s_t), before whitening: the value model's target


class PPOTrainer:
    """π^RL, π^SFT, V and r_θ with the prompts to train on. One iteration: `rollout()`, then
    `update(rollout)`.

    The policy's log-probs are recorded at sampling time and recomputed by a full forward pass on
    the padded batch; training uses the recomputation (the same code path as the update, so the
    first ratio is 1 and the KL of an untrained policy is exactly 0) and logs the largest gap
    between the two as `logprob_gap`: it must stay ~1e-6, a larger one means sampling and scoring
    disagree, the usual cause of a negative KL."""

    def __init__(
        self,
        policy: GPT,
        ref: GPT,
        value: ValueModel | None,
        reward_fn: RewardFn,
        prompts: list[list[int]],
        pc: PPOConfig,
        tok: Tokenizer,
        max_new_tokens: int,
        ptx_coef: float = 0.0,
        corpus: torch.Tensor | None = None,
        corpus_window: int = 128,
        seed: int = 0,
        reward_params: int = 0,
    ):
        """max_new_tokens: the response limit; corpus: the pretraining corpus as one token stream,
        for PPO-ptx; corpus_window: the pretraining window length, so that the ptx term is the
        pretraining loss itself; reward_params: N of the model behind reward_fn, for the compute
        count. value: None for GRPO."""
        if ptx_coef > 0 and corpus is None:
            raise ValueError("PPO-ptx (ptx_coef > 0) needs the pretraining corpus")
        if (value is None) != (pc.baseline == "group"):
            raise ValueError(
                "a value model is PPO's baseline (ppo.baseline=value); GRPO (group) has none"
            )
        self.policy, self.ref, self.value, self.reward_fn = policy, ref, value, reward_fn
        self.prompts, self.pc, self.tok, self.ptx_coef = prompts, pc, tok, ptx_coef
        self.max_new_tokens, self.reward_params = max_new_tokens, reward_params
        self.corpus, self.corpus_window = corpus, corpus_window
        self.compute = Compute(params=policy.num_params())
        # eval mode throughout, i.e. no dropout: the ratio π_φ/π_old must be exactly 1 before the
        # first step
        self.models = [m for m in (policy, value) if m is not None]  # what trains
        for m in (policy, ref, value):
            if m is not None:
                m.eval()
        ref.requires_grad_(False)
        self.device = next(policy.parameters()).device
        groups = [{"params": policy.parameters(), "lr": pc.lr}]
        if value is not None:
            groups.append({"params": value.parameters(), "lr": pc.value_lr})
        self.optimizer = torch.optim.AdamW(groups, weight_decay=0.0)
        self.kl_ctl = KLController(pc.kl_coef, pc.kl_target, pc.kl_horizon)
        self.score_scale = (
            None if pc.normalize_score else 1.0
        )  # set from the first batch, see _normalise
        self.sample_gen = torch.Generator(device=self.device).manual_seed(
            seed
        )  # sampling responses
        self.gen = torch.Generator().manual_seed(
            seed + 1
        )  # prompt draws, minibatch order, corpus windows

    # -- rollout: sample, then score
    # ----------------------------------------------------------------------------
    @torch.no_grad()
    def rollout(self) -> tuple[Rollout, dict]:
        pc, tok, dev = self.pc, self.tok, self.device
        t0 = time.perf_counter()
        G = pc.group_size if self.value is None else 1  # GRPO: each prompt answered G times
        index = torch.randint(
            len(self.prompts), (pc.rollout_batch // G,), generator=self.gen
        ).repeat_interleave(G)
        index = index.tolist()
        prompts = [self.prompts[i] for i in index]
        # no top-k: the samples come from π^RL = softmax(logits / T) itself, as the KL assumes
        T = pc.temperature
        gen = self.policy.generate(
            prompts,
            self.max_new_tokens,
            temperature=T,
            top_k=None,
            stop_id=tok.end_id,
            pad_id=tok.pad_id,
            generator=self.sample_gen,
        )
        t1 = time.perf_counter()

        seq, real, mask = make_batch(prompts, gen.responses, tok.pad_id, dev)
        B, R = mask.shape
        finished = torch.tensor(gen.finished, device=dev)
        rm_score = self._score(prompts, gen.responses, finished)
        # a response that never ends gets a fixed penalty, not the RM's opinion of a fragment
        score = torch.where(finished, rm_score * self.score_scale, pc.truncation_penalty)
        logp = by_length(partial(response_logprobs, self.policy, temperature=T), seq, real, mask)
        ref_logp = by_length(partial(response_logprobs, self.ref, temperature=T), seq, real, mask)
        values = (
            by_length(partial(response_values, self.value), seq, real, mask)
            if self.value is not None
            else torch.zeros(B, R, device=dev)
        )
        y = seq[:, -R:, None]
        logprobs, ref_logprobs = logp.gather(2, y).squeeze(2), ref_logp.gather(2, y).squeeze(2)
        entropy = -(logp.exp() * logp).sum(-1)
        sampled = torch.zeros(B, R, device=dev)
        for i, lp in enumerate(gen.logprobs):
            sampled[i, : len(lp)] = lp.to(dev)
        # generate records the model's own log-probs (T = 1): log_softmax(z) = log_softmax(T ·
        # log_softmax(z / T))
        model_logprobs = logp if T == 1 else (T * logp).log_softmax(-1)

        rewards, kl = kl_penalised_rewards(score, logprobs, ref_logprobs, mask, self.kl_ctl.beta)
        if self.value is None:
            advantages, returns = group_advantages(rewards, mask, G), torch.zeros_like(rewards)
        else:
            advantages, returns = gae(rewards, values, mask, pc.gae_gamma, pc.gae_lambda)
            if pc.whiten_advantages:
                advantages = masked_whiten(advantages, mask)
        ro = Rollout(
            index,
            gen.responses,
            seq,
            real,
            mask,
            finished,
            logprobs,
            ref_logprobs,
            values,
            score,
            rewards,
            kl,
            advantages,
            returns,
        )
        kl_seq = float(kl.sum(1).mean())
        stats = dict(
            rm_score=float(rm_score[finished].mean())
            if finished.any()
            else float("nan"),  # raw r_θ, finished only
            reward=float(score.mean()),  # the score PPO sees: normalised, penalty included
            non_score_reward=float(rewards.sum(1).mean() - score.mean()),  # −β · KL, per response
            kl=kl_seq,
            sqrt_kl=math.sqrt(max(kl_seq, 0.0)),
            kl_per_token=float(masked_mean(kl, mask)),
            kl_coef=self.kl_ctl.beta,
            entropy=float(masked_mean(entropy, mask)),
            response_len=float(mask.sum(1).float().mean()),
            truncated=float(1 - finished.float().mean()),
            logprob_gap=float(
                torch.where(mask, sampled - model_logprobs.gather(2, y).squeeze(2), 0.0).abs().max()
            ),
            t_rollout=t1 - t0,
            t_score=time.perf_counter() - t1,
        )
        if self.value is not None:
            stats |= dict(
                explained_var=explained_variance(values, returns, mask),
                value_mean=float(masked_mean(values, mask)),
            )
        return ro, stats

    def _score(self, prompts, responses, finished):
        """Raw r_θ of the finished responses (NaN for truncated ones, whose score is the
        penalty)."""
        rm_score = torch.full(finished.shape, float("nan"), device=self.device)
        done = finished.nonzero().squeeze(1).tolist()
        if done:
            scores = self.reward_fn([prompts[i] for i in done], [responses[i] for i in done])
            rm_score[done] = scores.float().to(self.device)
        if self.score_scale is None:
            self._normalise(rm_score[finished])
        return rm_score

    def _normalise(self, scores):
        """Measure the RM's spread once, on the SFT policy's own samples, and express rewards in its
        units (lm-human-preferences does the same): then β, the truncation penalty and the learning
        rates mean the same thing whatever scale the RM happened to learn. The value head, a copy of
        the RM's, is rescaled with them. With fewer than two finished samples there is no spread to
        measure: scale 1."""
        std = float(scores.std()) if len(scores) >= 2 else 0.0
        self.score_scale = 1.0 / std if std > 1e-6 else 1.0
        if self.value is not None:
            self.value.head.weight.data.mul_(self.score_scale)
            if self.value.head.bias is not None:
                self.value.head.bias.data.mul_(self.score_scale)

    # -- update: several epochs of minibatch steps
    # -----------------------------------------------------------------
    def update(self, ro: Rollout, train_policy: bool = True) -> dict:
        """ppo_epochs passes over the batch in shuffled minibatches; then the KL controller sees the
        batch's KL. The compute count adds the rollout (sampled, then scored by π^RL, π^SFT, V and
        r_θ) and the training. train_policy=False: only the value model learns (its warm-up: the
        policy stays π^SFT)."""
        t0 = time.perf_counter()
        pc, B, c = self.pc, len(ro.responses), self.compute
        n_value, tokens = (
            self.value.trunk.num_params() if self.value is not None else 0,
            int(ro.real.sum()),
        )
        c.forward(c.params, 2 * tokens)  # sampling, and scoring by π^RL
        c.forward(c.params, tokens, own=False)  # π^SFT
        c.forward(n_value, tokens, own=False)
        c.forward(
            self.reward_params, int(ro.real[ro.finished].sum()), own=False
        )  # r_θ scores the finished ones
        history = defaultdict(list)
        for _ in range(pc.ppo_epochs):
            for mb in torch.randperm(B, generator=self.gen).split(pc.minibatch):
                mb_tokens = int(ro.real[mb].sum())
                if train_policy:
                    c.train(
                        c.params,
                        mb_tokens + (pc.ptx_batch * self.corpus_window if self.ptx_coef > 0 else 0),
                    )
                # the value model's warm-up: the policy's forward pass only (its ratio, logged)
                else:
                    c.forward(c.params, mb_tokens)
                c.train(n_value, mb_tokens, own=False)
                loss, stats = self.minibatch_loss(ro, mb.to(self.device), train_policy)
                check_finite(stats["loss"], len(history["loss"]), "PPO loss")
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                # clipped per model: the value loss's gradients must not shrink the policy's step
                for m in self.models:
                    nn.utils.clip_grad_norm_(m.parameters(), pc.grad_clip)
                self.optimizer.step()
                for k, v in stats.items():
                    history[k].append(v)
        self.kl_ctl.update(float(ro.kl.sum(1).mean()), B)
        return {k: sum(v) / len(v) for k, v in history.items()} | {
            "t_update": time.perf_counter() - t0
        }

    def minibatch_loss(
        self, ro: Rollout, mb, train_policy: bool = True
    ) -> tuple[torch.Tensor, dict]:
        """loss = L^CLIP(φ) + L^V + γ · L^ptx(φ) on rows mb of a rollout, and its parts as numbers;
        L^V alone while the value model warms up. (Policy and value are separate models, so adding
        their losses couples nothing.)"""
        R = ro.mask.size(1)
        seq, real, mask = ro.seq[mb], ro.real[mb], ro.mask[mb]
        with torch.set_grad_enabled(
            train_policy
        ):  # warm-up: the policy's ratio is only logged, so no graph for it
            logprobs = by_length(
                partial(response_logprobs, self.policy, temperature=self.pc.temperature),
                seq,
                real,
                mask,
            )
        logprobs = logprobs.gather(2, seq[:, -R:, None]).squeeze(2)
        pg_loss, clipfrac, approx_kl = policy_loss(
            logprobs, ro.logprobs[mb], ro.advantages[mb], mask, self.pc.clip_eps
        )
        loss = pg_loss if train_policy else torch.zeros((), device=self.device)
        stats = dict(pg_loss=pg_loss.item(), clipfrac=clipfrac.item(), approx_kl=approx_kl.item())
        if self.value is not None:
            values = by_length(partial(response_values, self.value), seq, real, mask)
            vf_loss = value_loss(values, ro.values[mb], ro.returns[mb], mask, self.pc.clip_value)
            loss = loss + vf_loss
            stats["vf_loss"] = vf_loss.item()
        if self.ptx_coef > 0 and train_policy:
            # γ · E_x~D_pretrain[−log π_φ^RL(x)]: the objective's last term, as a loss
            x, y = self.corpus_batch()
            ptx_loss = self.policy(x, y)[1]
            loss = loss + self.ptx_coef * ptx_loss
            stats["ptx_loss"] = ptx_loss.item()
        stats["loss"] = loss.item()
        return loss, stats

    def corpus_batch(self):
        """ptx_batch random windows of the pretraining corpus, as pretraining drew them: inputs,
        next tokens."""
        x, y = random_windows(self.corpus, self.pc.ptx_batch, self.corpus_window, self.gen)
        return x.to(self.device), y.to(self.device)

    # -- resume
    # ----------------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        value = (
            {}
            if self.value is None
            else dict(
                value_model=self.value.state_dict(),
                value_model_config=dataclasses.asdict(self.value.trunk.config),
            )
        )
        return dict(
            **value,
            optimizer=self.optimizer.state_dict(),
            kl_coef=self.kl_ctl.beta,
            score_scale=self.score_scale,
            rng=dict(sample=self.sample_gen.get_state(), train=self.gen.get_state()),
            compute=self.compute.row(),
        )

    def load_state_dict(self, state: dict) -> None:
        if self.value is not None:
            self.value.load_state_dict(state["value_model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.kl_ctl.beta, self.score_scale = state["kl_coef"], state["score_scale"]
        self.sample_gen.set_state(state["rng"]["sample"])
        self.gen.set_state(state["rng"]["train"])
        self.compute = Compute(**state["compute"])


# ---- the stage -----------------------------------------------------------------------------------
def gold_reward(
    prompts: list[world.Prompt], prompt_ids: list[list[int]], tok: Tokenizer
) -> RewardFn:
    """The oracle: the gold judge's overall score as the reward of a finished response. A
    measurement of what RL can do with a perfect reward model, never the recipe and never a source
    of gradients for its models."""
    by_ids = {tuple(ids): p for ids, p in zip(prompt_ids, prompts)}

    def reward(xs: list[list[int]], ys: list[list[int]]) -> torch.Tensor:
        return torch.tensor(
            [
                world.judge(by_ids[tuple(x)], tok.decode(y, skip_special=True)).overall
                for x, y in zip(xs, ys)
            ]
        )

    return reward


def build_trainer(
    cfg: Config, sft: Path, reward: Path | None, device=None, oracle: bool = False
) -> tuple[PPOTrainer, list]:
    """A PPOTrainer from the SFT model in folder `sft`, the reward model in folder `reward` and
    data/: π^RL and π^SFT from the SFT checkpoint, V (for PPO's baseline) and r_θ from the reward
    model's, the PPO-split prompts in the chat format, and for PPO-ptx (cfg.ppo.ptx_coef > 0) the
    pretraining corpus. oracle: the gold judge instead of r_θ, and V a copy of the SFT trunk with a
    zero head (no reward model is read: the gold loop needs none, so it can run beside the reward
    stage). Returns the trainer and the world's Prompt objects (the gold judge needs their
    metadata)."""
    pc = cfg.ppo
    sft_ckpt = load_checkpoint(Path(sft) / "ckpt.pt", "sft")
    tok = tokenizer_from(sft_ckpt)
    policy, ref = build_model(sft_ckpt, device), build_model(sft_ckpt, device)
    rm = (
        None
        if oracle
        else load_reward_model(Path(reward) / "ckpt.pt", device).requires_grad_(False)
    )
    prompts = world.load_prompts(cfg.data_dir, "ppo")
    prompt_ids = [
        format_chat(tok, p.text) for p in prompts
    ]  # each fits the context with its answer: preflight.py
    corpus = load_tokens(cfg.data_dir, "train", tok) if pc.ptx_coef > 0 else None
    value = None
    if pc.baseline == "value":
        value = ValueModel.from_trunk(policy) if oracle else ValueModel.from_reward_model(rm)
    reward_fn, n_reward = (
        (gold_reward(prompts, prompt_ids, tok), 0) if oracle else (rm.score, rm.trunk.num_params())
    )
    trainer = PPOTrainer(
        policy,
        ref,
        value,
        reward_fn,
        prompt_ids,
        pc,
        tok,
        cfg.max_new_tokens,
        pc.ptx_coef,
        corpus,
        window(cfg, policy),
        cfg.seed,
        reward_params=n_reward,
    )
    return trainer, prompts


def gold_score(prompts, responses, finished, tok: Tokenizer) -> float:
    """Mean overall score of the world's gold judge: the experimenters' ground truth, never a
    training signal."""
    return sum(
        world.judge(p, tok.decode(r, skip_special=True), bool(f)).overall
        for p, r, f in zip(prompts, responses, finished)
    ) / len(prompts)


def run(
    cfg: Config, out: Path, sft: Path, reward: Path | None = None, oracle: bool = False
) -> Path:
    """PPO-ptx with γ = cfg.ppo.ptx_coef (γ = 0: PPO; ppo.baseline=group: GRPO) from the SFT model
    in folder `sft` against the reward model in folder `reward` (oracle: against the gold judge, no
    reward model). Writes out/{ckpt.pt, metrics.jsonl} and returns the checkpoint path; a finished
    checkpoint is returned as is, an unfinished one is resumed."""
    pc, out = cfg.ppo, Path(out)
    path = out / "ckpt.pt"
    resume = load_checkpoint(path, "ppo") if path.exists() else None
    if resume is not None and resume["finished"]:
        print(f"{out.name}: {path} is finished, skipping (delete it to retrain)")
        return path
    device = setup(cfg.seed, cfg.device or None)
    trainer, prompts = build_trainer(cfg, sft, reward, device, oracle)
    policy, tok = trainer.policy, trainer.tok
    if resume is not None:  # the policy resumed is the one this SFT model starts
        check_shape(resume, policy.config, path)
    heldout = load_tokens(cfg.data_dir, "val", tok)

    log = MetricsLogger(out / "metrics.jsonl", fresh=resume is None)
    start = 0
    if resume is not None:
        policy.load_state_dict(resume["model"])
        trainer.load_state_dict(resume)
        start = resume["step"]
        log.truncate("iter", start - 1)

    def save(step, finished):
        save_checkpoint(
            path,
            "ppo",
            model_config=dataclasses.asdict(policy.config),
            model=policy.state_dict(),
            tokenizer=tok.state_dict(),
            config=dataclasses.asdict(cfg),
            step=step,
            finished=finished,
            ptx_coef=pc.ptx_coef,
            sft_stage=Path(sft).name,
            reward_stage="gold" if oracle else Path(reward).name,
            **trainer.state_dict(),
        )

    # Row k describes the policy after k updates (its rollout, its gold score) and then the update k
    # -> k+1; the last row, k = iterations, only measures the final policy and adds the stage's
    # compute.
    bar = tqdm(
        range(start, pc.iterations + 1), desc=out.name, initial=start, total=pc.iterations + 1
    )
    for it in bar:
        ro, stats = trainer.rollout()
        stats["gold"] = gold_score(
            [prompts[i] for i in ro.prompt_index], ro.responses, ro.finished.tolist(), tok
        )
        if it % pc.eval_every == 0 or it == pc.iterations:
            stats["corpus_loss"] = corpus_loss(cfg, policy, heldout)
        if it < pc.iterations:
            stats |= trainer.update(ro, train_policy=it >= pc.value_warmup)
        else:
            stats["compute"] = trainer.compute.row()
        log.log(iter=it, ptx_coef=pc.ptx_coef, **stats)
        bar.set_postfix(
            rm=f"{stats['rm_score']:.3f}",
            gold=f"{stats['gold']:.3f}",
            kl=f"{stats['kl']:.2f}",
            beta=f"{stats['kl_coef']:.3g}",
        )
        if it < pc.iterations and (it + 1) % pc.eval_every == 0:
            save(it + 1, finished=False)
    save(pc.iterations, finished=True)
    return path
