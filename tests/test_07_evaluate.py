"""Lesson 07: the evaluation's arithmetic, checked on hand-made judgements and known shapes, and the report's
rules: win rates and their intervals, the FLOPs formula, verdicts, figures from metrics, missing stages."""

import json
import math
import random

import pytest

from minigpt_rlhf.cli import main
from minigpt_rlhf.evaluate import (PFS_DAY, average, bootstrap, compute_row, lm_compute, params_of, proportion,
                                   wilson, win_flags)
from minigpt_rlhf.plots import plot_curves
from minigpt_rlhf.report import ABSENT, APPEARED, DIRECTION, above_half, better, check_run
from minigpt_rlhf.runtime import UserError


class LongerIsBetter:
    """A hand-made labeler: prefers the longer response, always."""

    def prefers(self, prompt, a, b, rng):
        return len(a) > len(b)


def test_win_rate_and_wilson_interval_on_hand_made_judgements():
    flags = win_flags([LongerIsBetter()], ["p"] * 4, ["aaa", "b", "cc", "dddd"], ["a", "bb", "c", "d"],
                      random.Random(0))
    assert flags == [True, False, True, True]
    est = proportion(flags)
    # Wilson 95% for 3/4: centre (0.75 + 1.96²/8) / (1 + 1.96²/4) = 0.6275, half-width 0.3269
    assert est["mean"] == 0.75 and est["n"] == 4
    assert est["lo"] == pytest.approx(0.3006, abs=1e-4) and est["hi"] == pytest.approx(0.9544, abs=1e-4)


def test_wilson_edges_and_width():
    assert wilson(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)  # honest at 0/n, unlike p ± z·se = [0, 0]
    assert wilson(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    assert all(math.isnan(x) for x in wilson(0, 0))
    lo99, hi99 = wilson(30, 60, 0.99)
    lo95, hi95 = wilson(30, 60, 0.95)
    assert lo99 < lo95 < 0.5 < hi95 < hi99  # more confidence, wider interval
    assert hi95 - lo95 > wilson(300, 600)[1] - wilson(300, 600)[0]  # more data, narrower interval


def test_bootstrap_interval_of_a_mean():
    assert bootstrap([3.0] * 5) == (3.0, 3.0)  # no spread, no uncertainty
    lo, hi = bootstrap([0, 0, 1, 1, 1, 1, 1, 1], resamples=2000, seed=1)
    assert 0.3 < lo < 0.75 < hi <= 1.0
    assert bootstrap([0, 1] * 10, seed=3) == bootstrap([0, 1] * 10, seed=3)  # deterministic per seed
    est = average([1, 2, 3, 4, 5, 6, 7])
    assert est["mean"] == 4.0 and est["lo"] < 4.0 < est["hi"] and est["n"] == 7


def test_flops_formula_on_a_known_shape():
    # N = V·C (tied embedding) + L·(12C² + 13C) (attention, MLP, two LayerNorms) + 2C (final LayerNorm)
    mc = dict(vocab_size=100, block_size=64, n_layer=2, n_head=2, n_embd=32, dropout=0.0, bias=True)
    N = 100 * 32 + 2 * (12 * 32**2 + 13 * 32) + 2 * 32
    assert params_of(mc) == N == 28672
    ckpt = dict(kind="pretrain", model_config=mc, config={"pretrain": dict(batch_size=4, grad_accum=2)}, step=10)
    row = lm_compute("pretrain", ckpt, [], None)  # 10 steps · 4·2 sequences · 64 tokens
    assert row["train_tokens"] == 5120 and row["flops"] == 6 * N * 5120
    assert row["pfs_days"] == pytest.approx(6 * N * 5120 / 8.64e19)
    logged = lm_compute("pretrain", ckpt, [{"step": 10, "tokens": 1000}], None)  # the stage's own count wins
    assert logged["flops"] == 6 * N * 1000
    gen = compute_row("ppo", N, 0, forward_tokens=50, extra_flops=7.0)
    assert gen["flops"] == 2 * N * 50 + 7.0 and PFS_DAY == 1e15 * 86400


def est(mean, lo, hi):
    return dict(mean=mean, lo=lo, hi=hi, n=10)


def test_verdict_rules():
    assert better(est(0.8, 0.7, 0.9), est(0.5, 0.4, 0.6)) == APPEARED
    assert better(est(0.6, 0.45, 0.7), est(0.5, 0.4, 0.6)) == DIRECTION
    assert better(est(0.4, 0.3, 0.5), est(0.5, 0.4, 0.6)) == ABSENT
    assert better(est(0.1, 0.0, 0.2), est(0.4, 0.3, 0.5), lower_is_better=True) == APPEARED
    assert above_half(est(0.6, 0.52, 0.68)) == APPEARED
    assert above_half(est(0.55, 0.45, 0.65)) == DIRECTION
    assert above_half(est(0.45, 0.35, 0.55)) == ABSENT


def test_curves_are_drawn_from_metrics_rows(tmp_path):
    rows = [{"step": s, "loss": 3 / (s + 1), "time": s} for s in range(10)] + [{"step": 9, "val_loss": 0.5}]
    path = plot_curves(rows, "pretrain", tmp_path / "c.png")
    assert path.is_file() and path.stat().st_size > 1000


def test_report_names_the_missing_stage_and_the_command(tmp_path, capsys):
    run = tmp_path / "run"
    for stage in ("pretrain", "pretrain_large"):
        (run / stage).mkdir(parents=True)
        (run / stage / "metrics.jsonl").write_text(json.dumps({"step": 1, "loss": 1.0}) + "\n")
    (run / "pipeline.json").write_text(json.dumps({"config": {"preset": "micro", "eval": {"biased": True}}}))
    with pytest.raises(UserError, match=r"missing stage 'sft'.*minigpt-rlhf run --preset micro --out"):
        check_run(run)
    assert main(["report", str(run)]) == 2
    assert "missing stage 'sft'" in capsys.readouterr().err
