"""Lesson 08: DPO. The loss is the hand-computed value and log 2 at the start, its gradient widens the preferred
response's margin, and on micro it learns a known preference without a reward model."""

import math
import random

import pytest
import torch

from conftest import micro_config, run_lesson
from minigpt_rlhf import dpo
from minigpt_rlhf.runtime import load_checkpoint, read_metrics
from minigpt_rlhf.training import make_optimizer
from ppo_micro import PROMPTS, TOK, a_fraction, micro_policy
from ppo_micro import one_thread  # noqa: F401 (an autouse fixture: micro tests on one thread)


def test_loss_equals_a_hand_computed_value_and_log_2_when_the_policy_is_the_reference():
    logp, ref = torch.tensor([-3.0, -5.0, -4.0]), torch.tensor([-4.0, -4.0, -4.0])
    # ranking 0 > 2 > 1, β = 0.5: implicit rewards 0.5·(1, −1, 0) = (0.5, −0.5, 0); the pairs (0,2), (0,1), (2,1)
    # have margins 0.5, 1.0, 0.5, and −log σ(d) = log(1 + e^−d)
    expected = (2 * math.log(1 + math.exp(-0.5)) + math.log(1 + math.exp(-1.0))) / 3
    assert dpo.dpo_loss(logp, ref, [0, 2, 1], 0.5).item() == pytest.approx(expected, abs=1e-6)
    assert dpo.dpo_loss(ref, ref, [2, 0, 1], 0.5).item() == pytest.approx(math.log(2))  # π = π_ref: a coin flip


def sampled_comparisons(policy, n_prompts: int, k: int, seed: int):
    """k answers per prompt from the micro policy, ranked by the known preference (more "a" is better)."""
    g = torch.Generator().manual_seed(seed)
    prompts = random.Random(seed).sample(PROMPTS, n_prompts)
    out = []
    for x in prompts:
        ys = policy.generate([x] * k, 12, temperature=1.0, stop_id=TOK.end_id, pad_id=TOK.pad_id, generator=g).responses
        score = a_fraction(None, ys)
        ranking = (score + 1e-3 * torch.rand(k, generator=g)).argsort(descending=True).tolist()  # ties at random
        out.append(((x, ys), ranking, score))
    return out


def test_the_gradient_widens_the_margin_of_the_preferred_response():
    torch.manual_seed(0)
    policy, ref = micro_policy(), micro_policy().requires_grad_(False)
    (data, ranking, _), = sampled_comparisons(ref, 1, 2, seed=1)
    with torch.no_grad():
        ref_lp = dpo.logprobs(ref, TOK, [data])[0]
    opt = torch.optim.SGD(policy.parameters(), lr=0.5)
    margins = []
    for _ in range(2):
        lp = dpo.logprobs(policy, TOK, [data])[0]
        margins.append(float((lp - ref_lp).detach()[ranking[0]] - (lp - ref_lp).detach()[ranking[1]]))
        opt.zero_grad()
        dpo.dpo_loss(lp, ref_lp, ranking, 0.1).backward()
        opt.step()
    assert margins[0] == pytest.approx(0.0, abs=1e-5) and margins[1] > 0.01


def test_dpo_learns_a_known_preference_without_a_reward_model():
    """Comparisons ranked by the share of "a" in the answer: on held-out comparisons, DPO's implicit reward orders
    the pairs whose shares differ as the preference does, and the policy's fresh samples hold more "a"."""
    torch.manual_seed(0)
    policy, ref = micro_policy(), micro_policy().requires_grad_(False)
    train, val = sampled_comparisons(ref, 48, 4, seed=2), sampled_comparisons(ref, 16, 4, seed=3)
    with torch.no_grad():
        ref_train = dpo.logprobs(ref, TOK, [d for d, _, _ in train])
        ref_val = dpo.logprobs(ref, TOK, [d for d, _, _ in val])
    opt = make_optimizer(policy, micro_config("dpo.lr=3e-3").dpo)

    def val_accuracy():
        with torch.no_grad():
            lp = dpo.logprobs(policy, TOK, [d for d, _, _ in val])
        right = total = 0
        for x, r, (_, _, a) in zip(lp, ref_val, val):
            for i in range(len(a)):
                for j in range(len(a)):
                    if a[i] > a[j]:
                        right += float((x - r)[i] > (x - r)[j]) + 0.5 * float((x - r)[i] == (x - r)[j])
                        total += 1
        return right / total

    def a_share():
        g = torch.Generator().manual_seed(9)
        ys = policy.generate(PROMPTS[:32], 12, temperature=1.0, stop_id=TOK.end_id, pad_id=TOK.pad_id, generator=g)
        return float(a_fraction(None, ys.responses).mean())

    before, share_before = val_accuracy(), a_share()
    for epoch in range(3):
        for b in range(0, len(train), 8):
            batch = train[b : b + 8]
            lp = dpo.logprobs(policy, TOK, [d for d, _, _ in batch])
            loss = torch.stack([dpo.dpo_loss(x, ref_train[b + i], k, 0.1) for i, (x, (_, k, _)) in enumerate(zip(lp, batch))])
            opt.zero_grad()
            loss.mean().backward()
            opt.step()
    assert before == pytest.approx(0.5, abs=0.01)  # π = π_ref: every pair a tie
    after, share_after = val_accuracy(), a_share()
    assert after > 0.65 and share_after > share_before + 0.15, (after, share_before, share_after)  # measured 0.75, 0.04 -> 0.51


def test_the_stage_trains_from_the_reward_stage_s_comparisons_and_resumes(micro_run, tmp_path):
    import shutil

    from minigpt_rlhf import reward

    cfg, run_dir = micro_run
    for stage in ("pretrain", "sft"):
        shutil.copytree(run_dir / stage, tmp_path / stage)
    reward.run(cfg, tmp_path / "reward", tmp_path / "sft", tmp_path / "pretrain")
    path = dpo.run(cfg, tmp_path / "dpo", tmp_path / "sft", tmp_path / "reward")
    ckpt = load_checkpoint(path, "dpo")
    rows = read_metrics(tmp_path / "dpo" / "metrics.jsonl")
    assert ckpt["finished"] and rows[0]["val_loss"] == pytest.approx(math.log(2), abs=1e-4)  # π = π_ref at the start
    assert "val_acc_heldout" in rows[-2] and rows[-1]["compute"]["flops"] > 0
    mtime = path.stat().st_mtime_ns
    assert dpo.run(cfg, tmp_path / "dpo", tmp_path / "sft", tmp_path / "reward") == path and path.stat().st_mtime_ns == mtime


def test_the_lesson_runs_on_micro(lesson_run):
    out = run_lesson("08_dpo", lesson_run, needs=("reward",))
    assert "DPO loss by hand" in out and "on evaluation prompts" in out
