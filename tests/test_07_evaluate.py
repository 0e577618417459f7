"""Lesson 07: the evaluation's arithmetic, checked on hand-made judgements and known shapes, and the report's
rules: win rates and their intervals, the FLOPs formula, verdicts, figures from metrics, missing stages."""

import json
import math
import random

import pytest
import torch

from conftest import run_lesson
from minigpt_rlhf.cli import main
from minigpt_rlhf import compute
from minigpt_rlhf.evaluate import win_flags
from minigpt_rlhf.runtime import count_params
from minigpt_rlhf.sampling import Answer
from minigpt_rlhf.stages import recipe, training
from minigpt_rlhf.stats import average, bootstrap, proportion, wilson
from minigpt_rlhf.plots import plot_curves
from minigpt_rlhf.report import ABSENT, APPEARED, DIRECTION, above_half, better, check_run
from minigpt_rlhf.runtime import UserError


class LongerIsBetter:
    """A hand-made labeler: prefers the longer response, and any finished one to an unfinished one."""

    def prefers(self, prompt, a, b, rng, finished=(True, True)):
        return (finished[0], len(a)) > (finished[1], len(b))


def answers(*texts, finished=True):
    return [Answer(t, finished) for t in texts]


def test_win_rate_and_wilson_interval_on_hand_made_judgements():
    flags = win_flags([LongerIsBetter()], ["p"] * 4, answers("aaa", "b", "cc", "dddd"), answers("a", "bb", "c", "d"),
                      random.Random(0))
    assert flags == [True, False, True, True]
    est = proportion(flags)
    # Wilson 95% for 3/4: centre (0.75 + 1.96²/8) / (1 + 1.96²/4) = 0.6275, half-width 0.3269
    assert est["mean"] == 0.75 and est["n"] == 4
    assert est["lo"] == pytest.approx(0.3006, abs=1e-4) and est["hi"] == pytest.approx(0.9544, abs=1e-4)
    # the labelers are told which responses ended: an unfinished long one loses
    assert win_flags([LongerIsBetter()], ["p"], answers("aaaa", finished=False), answers("a"), random.Random(0)) == [False]


def test_wilson_edges_and_width():
    assert wilson(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)  # honest at 0/n, unlike p ± z·se = [0, 0]
    assert wilson(0, 34)[0] == 0.0 and wilson(34, 34)[1] == 1.0  # exactly: plots draw mean - lo, never negative
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
    const = average([0.15] * 37)  # its resampled means differ from sum/len in the last bit; the interval holds it
    assert const["lo"] <= const["mean"] <= const["hi"]
    est = average([1, 2, 3, 4, 5, 6, 7])
    assert est["mean"] == 4.0 and est["lo"] < 4.0 < est["hi"] and est["n"] == 7


def test_flops_are_6n_per_trained_and_2n_per_forward_token_and_the_accounting_adds_logged_rows(tmp_path):
    # N = V·C (tied embedding) + L·(12C² + 13C) (attention, MLP, two LayerNorms) + 2C (final LayerNorm)
    mc = dict(vocab_size=100, block_size=64, n_layer=2, n_head=2, n_embd=32, dropout=0.0, bias=True)
    N = 100 * 32 + 2 * (12 * 32**2 + 13 * 32) + 2 * 32
    assert count_params(mc) == N == 28672
    c = compute.Compute(params=N)
    c.train(N, 5120)
    c.forward(N, 50)
    c.forward(7, 10, own=False)  # another model the stage runs: its FLOPs count, its tokens are not the stage's
    assert (c.train_tokens, c.forward_tokens, c.flops) == (5120, 50, 6 * N * 5120 + 2 * N * 50 + 2 * 7 * 10)
    logged = {"pretrain": 1e12, "sft": 1e10, "reward": 2e10, "ppo_ptx": 3e10}
    for stage, flops in logged.items():
        rows = [{"step": 1, "loss": 1.0}, {"step": 2, "compute": dict(params=N, train_tokens=1.0, forward_tokens=0.0,
                                                                      flops=flops)}]
        (tmp_path / stage).mkdir()
        (tmp_path / stage / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    acc = compute.accounting(tmp_path, ["pretrain", "sft", "reward", "ppo", "ppo_ptx"])  # ppo never ran: left out
    assert [r["stage"] for r in acc["rows"]] == list(logged)
    assert acc["ratio"] == pytest.approx(4e10 / 1e12) and acc["ratio_with_rm"] == pytest.approx(6e10 / 1e12)
    assert acc["rows"][0]["pfs_days"] == pytest.approx(1e12 / 8.64e19) and compute.PFS_DAY == 1e15 * 86400


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
    (run / "pipeline.json").write_text(json.dumps({"config": {"preset": "micro", "pipeline": {"biased": True}}}))
    with pytest.raises(UserError, match=r"missing stage 'sft'.*minigpt-rlhf run --preset micro --out"):
        check_run(run)
    assert main(["report", str(run)]) == 2
    assert "missing stage 'sft'" in capsys.readouterr().err
    assert main(["plot", str(run)]) == 2  # nothing to draw Figure 1 from: evaluate first
    assert "minigpt-rlhf evaluate" in capsys.readouterr().err


def hand_made_run(run_dir, ppo_ptx_win=0.8):
    """A run folder as the pipeline leaves it, with made-up numbers: metrics of every stage, results.json."""
    import dataclasses

    from minigpt_rlhf.config import load_config

    stages = [s.name for s in training(recipe())]
    e = lambda m: est(m, max(0.0, m - 0.1), min(1.0, m + 0.1))  # noqa: E731
    for stage in stages:
        (run_dir / stage).mkdir(parents=True)
        rows = [{"iter": i, "rm_score": 0.1 * i, "gold": 0.3, "sqrt_kl": i**0.5} if "ppo" in stage
                else {"step": i, "loss": 2.0 - 0.1 * i} for i in range(5)]
        (run_dir / stage / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    names = ["GPT-3", "GPT-3 prompted", "GPT-3 large", "GPT-3 large prompted", "SFT", "PPO", "PPO-ptx", "PPO biased"]
    win = dict(zip(names, [0.2, 0.3, 0.3, 0.35, 0.5, 0.7, ppo_ptx_win, 0.6]))
    models = {n: dict(win_rate={g: e(win[n]) for g in ("heldout", "training", "biased")}, likert=est(4, 3.5, 4.5),
                      gold={k: e(win[n]) for k in ("helpful", "truthful", "harmless", "format", "overall")},
                      hallucination=e(1 - win[n]), invention=e(1 - win[n]), toxicity=e(1 - win[n]),
                      compliance=e(0.5), pet_phrase=e(0.1), finished=e(0.9),
                      families={"heldout_family": dict(win_rate=e(win[n]), gold=e(win[n]))},
                      response_chars=est(40, 35, 45), corpus_loss=est(1.0, 0.9, 1.1), cloze=e(0.5),
                      stage="x", prompting="chat", params=1000 * (1 + 9 * ("large" in n))) for n in names}
    rows = [dict(stage=s, params=1000, train_tokens=1e6 if s == "pretrain" else 1e4, forward_tokens=0.0,
                 flops=6e9 if s == "pretrain" else 6e7, pfs_days=1e-10) for s in stages]
    results = dict(preset="micro", seed=1, config=dataclasses.asdict(load_config("micro")), n_prompts=12,
                   reference="a second SFT sample", heldout_family="heldout_family", models=models,
                   head_to_head={"PPO-ptx vs GPT-3": e(ppo_ptx_win), "PPO-ptx vs GPT-3 large": e(ppo_ptx_win)},
                   compute=dict(rows=rows, ratio=0.02, ratio_with_rm=0.03, paper_ratio=64.9 / 3640),
                   examples=[dict(family="open_qa", prompt="What does the zorbin eat?", reference="Moss.",
                                  responses={n: "Moss." for n in names})])
    (run_dir / "eval").mkdir()
    (run_dir / "eval" / "results.json").write_text(json.dumps(results))


def test_report_and_plots_from_hand_made_results(tmp_path):
    from minigpt_rlhf.plots import plot_run
    from minigpt_rlhf.report import SECTIONS, write_report

    hand_made_run(tmp_path)
    names = {p.name for p in plot_run(tmp_path)}
    assert {"figure1.png", "three_h.png", "alignment_tax.png", "overoptimisation.png", "whose_preferences.png",
            "curves_sft.png", "curves_ppo_ptx.png"} <= names
    report = write_report(tmp_path).read_text()
    for section in SECTIONS:
        assert section in report, section
    assert "| 1. preferred to GPT-3 | 85 ± 3% (175B vs 175B) | 80% [70, 90] | appeared |" in report
    assert "![Figure 1](plots/figure1.png)" in report


def test_a_finding_that_did_not_appear_says_so(tmp_path):
    from minigpt_rlhf.report import write_report

    hand_made_run(tmp_path, ppo_ptx_win=0.4)
    report = write_report(tmp_path).read_text()
    assert "| 1. preferred to GPT-3 | 85 ± 3% (175B vs 175B) | 40% [30, 50] | **did not appear** |" in report


def test_sweep_report_judges_figure_1_from_hand_made_rows(tmp_path):
    """A sweep folder (pretrain_LxHxC stages, eval/sweep.json): `report` and `plot` recognise it, and each of
    Figure 1's claims gets the verdict its numbers earn."""
    win = {("1x2x16", "GPT-3"): 0.2, ("1x2x16", "SFT"): 0.4, ("1x2x16", "PPO"): 0.45, ("1x2x16", "PPO-ptx"): 0.6,
           ("2x2x32", "GPT-3"): 0.3, ("2x2x32", "SFT"): 0.5, ("2x2x32", "PPO"): 0.4, ("2x2x32", "PPO-ptx"): 0.7}
    rows = [dict(size=size, params=1000 * (1 + (size == "2x2x32")), method=method, win_rate=est(w, w - 0.1, w + 0.1),
                 gold=est(0.5, 0.45, 0.55), helpful=est(0.2, 0.15, 0.25), harmless=est(0.9, 0.85, 0.95))
            for (size, method), w in win.items()]
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "sweep.json").write_text(json.dumps(dict(preset="micro", seed=1, reference="SFT 2x2x32",
                                                                  rows=rows)))
    (tmp_path / "pretrain_1x2x16").mkdir()
    (tmp_path / "pretrain_1x2x16" / "metrics.jsonl").write_text("".join(json.dumps({"step": i, "loss": 2 - i / 5}) + "\n"
                                                                        for i in range(5)))
    assert main(["report", str(tmp_path)]) == 0 and main(["plot", str(tmp_path)]) == 0
    report = (tmp_path / "report.md").read_text()
    assert "| PPO-ptx beats GPT-3 at 1x2x16 | at every size | 60% [50, 70] vs 20% [10, 30] | appeared |" in report
    assert "| PPO beats SFT at 1x2x16 | at every size | 45% [35, 55] vs 40% [30, 50] | " + DIRECTION in report
    assert "| PPO beats SFT at 2x2x32 | at every size | 40% [30, 50] vs 50% [40, 60] | " + ABSENT in report
    assert "beats the largest GPT-3 (2x2x32) | 1.3B PPO-ptx > 175B GPT-3 | 60% [50, 70] vs 30% [20, 40] | " \
           "appeared" in report
    assert "| PPO-ptx gains with size (2x2x32 vs 1x2x16) | the win rate rises with size | 70% [60, 80] vs " \
           "60% [50, 70] | " + DIRECTION in report
    assert (tmp_path / "plots" / "figure1_sweep.png").is_file()
    assert (tmp_path / "plots" / "curves_pretrain_1x2x16.png").is_file()


def test_few_shot_examples_that_do_not_fit_are_dropped_first_one_first():
    from minigpt_rlhf.sampling import prompt_ids
    from minigpt_rlhf.tokenizer import Tokenizer, format_chat, format_plain

    tok = Tokenizer()
    examples = ["Q1 A1", "Q22 A22"]
    assert prompt_ids(tok, "Q?", "chat", examples, 100) == format_chat(tok, "Q?")
    assert prompt_ids(tok, "Q?", "plain", examples, 100) == format_plain(tok, "Q?")
    assert tok.decode(prompt_ids(tok, "Q?", "few_shot", examples, 100)) == "Q1 A1<|end|>Q22 A22<|end|>Q?"
    assert tok.decode(prompt_ids(tok, "Q?", "few_shot", examples, 14)) == "Q22 A22<|end|>Q?"
    assert tok.decode(prompt_ids(tok, "Q?", "few_shot", examples, 3)) == "Q?"


def test_the_lesson_runs_on_micro(lesson_run):
    out = run_lesson("07_evaluate", lesson_run)
    assert "report:" in out and "PPO-ptx vs GPT-3" in out
    assert "SFT at its best temperature: T = " in out and "gold, judge picks" in out


def test_the_seeds_report_counts_each_finding_s_verdicts_over_hand_made_seeds(tmp_path, capsys):
    """Three seeds' run folders with made-up results: PPO-ptx's win against GPT-3 is 80% (appeared), 55%
    (direction only) and 40% (did not appear); the seeds report shows each seed's verdict and counts 1 of 3."""
    for seed, win in ((1, 0.8), (2, 0.55), (3, 0.4)):
        hand_made_run(tmp_path / f"seed_{seed}", ppo_ptx_win=win)
    assert main(["report", str(tmp_path)]) == 0
    report = (tmp_path / "report.md").read_text()
    row = next(line for line in report.splitlines() if line.startswith("| 1. preferred to GPT-3 |"))
    assert "80% [70, 90] (appeared)" in row and "55% [45, 65] (direction only" in row
    assert "40% [30, 50] (**did not appear**)" in row and row.endswith("| 1 of 3 |")
    method = next(line for line in report.splitlines() if line.startswith("| PPO-ptx | 58% [40%, 80%] |"))
    assert "| 1.00 [1.00, 1.00] |" in method  # the corpus loss, the same on every seed
    assert "| PPO-ptx | 80% [70, 90] | 55% [45, 65] | 40% [30, 50] |" in report


def test_headroom_captures_all_of_the_gain_with_the_gold_score_and_less_than_none_with_its_opposite():
    from types import SimpleNamespace

    from minigpt_rlhf.evaluate import headroom

    torch.manual_seed(0)
    gold = torch.rand(6, 8, dtype=torch.float64)
    prompts = [SimpleNamespace(family=f) for f in "aabbbc"]
    for rm, captured, corr in ((gold, 1.0, 1.0), (-gold, None, -1.0)):
        bon = dict(rm=rm, gold=gold, finished=torch.ones(6, 8, dtype=torch.bool))
        h = headroom(bon, prompts, n=4)
        assert [h[f]["n_prompts"] for f in ("a", "all", "b", "c")] == [2, 6, 3, 1]
        assert h["all"]["one"] == pytest.approx(float(gold.mean()))
        assert h["all"]["by_gold"] > h["all"]["one"] and h["all"]["corr"] == pytest.approx(corr)
        if captured is not None:
            assert h["all"]["captured"] == pytest.approx(captured) and h["b"]["by_rm"] == pytest.approx(h["b"]["by_gold"])
        else:  # r_θ = −gold picks the worst of 4: below one sample
            assert h["all"]["captured"] < 0 and h["all"]["by_rm"] < h["all"]["one"]


def test_the_seeds_report_names_the_per_run_baselines_alike():
    from pathlib import Path

    from minigpt_rlhf.report import Run, models_across_seeds

    names = ["SFT", "SFT (T=0.3)", "Best-of-9 (RM)", "Best-of-8 (gold oracle)"]
    run = Run(Path("."), dict(models={k: {} for k in names}, head_to_head={}))
    assert list(models_across_seeds(run)) == ["SFT", "SFT (best T)", "Best-of-n (RM)", "Best-of-8 (gold oracle)"]
