"""The one-command pipeline: stage order, resume (finished stages are skipped), --from (reruns from a stage),
settings checks; and, on `micro`, the whole recipe end to end into a report with every section."""

import dataclasses
import json
import os
import shutil
from pathlib import Path

import pytest

from minigpt_rlhf.config import PRESETS, load_config
from minigpt_rlhf import pipeline, preflight
from minigpt_rlhf.pipeline import run, run_stages, sweep
from minigpt_rlhf.stages import Stage, parse_shape, recipe, sweep_shapes, training
from minigpt_rlhf.report import SECTIONS, write_report
from minigpt_rlhf.runtime import UserError


def fake_stages(run_dir: Path, calls: list, monkeypatch):
    """A check that runs every time and four training stages that write a file, each recording that it ran."""

    def run_stage(stage, cfg, run_dir, sweep=False):
        calls.append(stage.name)
        if stage.trains:
            (run_dir / stage.name).mkdir(parents=True, exist_ok=True)
            (run_dir / stage.name / "ckpt.pt").write_text(stage.name)

    monkeypatch.setattr(pipeline, "run_stage", run_stage)
    monkeypatch.setattr(pipeline.preflight, "check_checkpoints", lambda *a, **k: None)  # the fakes' are text files
    return [Stage("check", "world", "a check", output="")] + [Stage(n, "pretrain", n) for n in ("a", "b", "c", "d")]


def test_resume_skips_finished_stages_and_from_reruns(tmp_path, monkeypatch):
    cfg, calls = load_config("micro"), []
    stages = fake_stages(tmp_path, calls, monkeypatch)
    run_stages(cfg, tmp_path, stages)
    assert calls == ["check", "a", "b", "c", "d"]

    calls.clear()
    os.utime(tmp_path / "b" / "ckpt.pt", (1, 1))
    run_stages(cfg, tmp_path, stages)  # everything finished: only the always-run check
    assert calls == ["check"] and (tmp_path / "b" / "ckpt.pt").stat().st_mtime == 1

    calls.clear()
    (tmp_path / "d" / "stale").write_text("x")
    run_stages(cfg, tmp_path, stages, start="c")
    assert calls == ["check", "c", "d"]
    assert not (tmp_path / "d" / "stale").exists()  # --from deleted the old output before rerunning
    assert (tmp_path / "b" / "ckpt.pt").stat().st_mtime == 1

    calls.clear()
    shutil.rmtree(tmp_path / "c")  # a stage's output gone: that stage runs again
    run_stages(cfg, tmp_path, stages)
    assert calls == ["check", "c"]


def test_from_unknown_stage_and_changed_settings_are_errors(tmp_path, monkeypatch):
    calls = []
    stages = fake_stages(tmp_path, calls, monkeypatch)
    run_stages(load_config("micro"), tmp_path, stages)
    with pytest.raises(UserError, match="unknown stage; stages: check, a, b, c, d"):
        run_stages(load_config("micro"), tmp_path, stages, start="e")
    changed = load_config("micro", ["eval.prompts=5"])
    with pytest.raises(UserError, match="eval.prompts"):
        run_stages(changed, tmp_path, stages)
    run_stages(changed, tmp_path, stages, start="d")  # allowed with --from


def test_a_log_without_outputs_does_not_hold_its_settings(tmp_path, monkeypatch):
    """A run that stopped before any stage wrote output (e.g. an error in the first stage) leaves settings that a
    corrected command may change; once a stage has written output, they are held (see the test above)."""
    calls = []
    stages = fake_stages(tmp_path, calls, monkeypatch)
    (tmp_path / "pipeline.json").write_text(json.dumps({"config": dataclasses.asdict(load_config("micro")), "stages": {}}))
    log = run_stages(load_config("micro", ["pretrain.lr=1e-3"]), tmp_path, stages)
    assert calls == ["check", "a", "b", "c", "d"] and log["config"]["pretrain"]["lr"] == 1e-3
    assert not (tmp_path / "run.lock").exists()


def test_model_shapes():
    base = load_config("micro").model
    assert (parse_shape("3x2x48", base).n_layer, parse_shape("3x2x48", base).n_embd) == (3, 48)
    for bad in ("3x2", "3x5x48", "axbxc", "0x1x8"):
        with pytest.raises(UserError, match="n_layer x n_head x n_embd|divisible"):
            parse_shape(bad, base)
    with pytest.raises(UserError, match="pipeline.sweep_sizes.*at least three sizes"):
        sweep_shapes(load_config("micro", ["pipeline.sweep_sizes=1x2x16,2x2x32"]))


# micro, shrunk further where a stage's size does not matter to the wiring this test checks
FAST = ["pretrain.steps=30", "sft.epochs=1", "sft.max_demos=64", "sft.heldout_prompts=8", "reward.n_prompts=12",
        "reward.val_prompts=6", "reward.k_max=4", "ppo.iterations=2", "eval.prompts=12", "pipeline.large_steps=10"]


@pytest.mark.slow
def test_micro_pipeline_end_to_end_resume_and_from(tmp_path):
    run_dir = tmp_path / "micro"
    cfg = load_config("micro", FAST)
    run(cfg, run_dir)
    report = (run_dir / "report.md").read_text()
    for section in SECTIONS:
        assert section in report, section
    for fig in ("figure1.png", "three_h.png", "alignment_tax.png", "overoptimisation.png", "whose_preferences.png",
                "curves_ppo.png"):
        assert (run_dir / "plots" / fig).is_file(), fig
    results = json.loads((run_dir / "eval" / "results.json").read_text())
    trained = [s.name for s in training(recipe())]  # micro runs every stage, those quick leaves out included
    assert [r["stage"] for r in results["compute"]["rows"]] == trained
    log = json.loads((run_dir / "pipeline.json").read_text())
    chain = log["critical_path"]["stages"]
    assert chain[:3] == ["pretrain", "sft", "reward"] and chain[-3:] == ["evaluate", "plots", "report"]
    assert log["critical_path"]["seconds"] == pytest.approx(sum(log["stages"][s]["seconds"] for s in chain))

    ckpts = {s: run_dir / s / "ckpt.pt" for s in trained}
    mtimes = {s: p.stat().st_mtime_ns for s, p in ckpts.items()}
    results_mtime = (run_dir / "eval" / "results.json").stat().st_mtime_ns
    run(cfg, run_dir)  # resume: everything finished, nothing retrained or re-evaluated
    assert {s: p.stat().st_mtime_ns for s, p in ckpts.items()} == mtimes
    assert (run_dir / "eval" / "results.json").stat().st_mtime_ns == results_mtime

    run(cfg, run_dir, start="ppo_biased")  # --from: that stage and everything after it again, nothing before
    assert ckpts["ppo_biased"].stat().st_mtime_ns != mtimes["ppo_biased"]
    assert all(ckpts[s].stat().st_mtime_ns == mtimes[s] for s in ckpts if s != "ppo_biased")
    assert (run_dir / "eval" / "results.json").stat().st_mtime_ns != results_mtime

    shutil.rmtree(run_dir / "ppo_ptx")  # a run folder missing a stage: the report says which, and how to run it
    with pytest.raises(UserError, match=r"missing stage 'ppo_ptx'.*minigpt-rlhf run --preset micro"):
        write_report(run_dir)


@pytest.mark.slow
def test_micro_sweep_end_to_end_and_resume(tmp_path):
    """`minigpt-rlhf sweep` on micro: every size through every stage, one RM, Figure 1 and a report with a row
    per size and method; run again, nothing is retrained."""
    cfg = load_config("micro", FAST)
    sweep(cfg, tmp_path)
    sizes = cfg.pipeline.sweep_sizes.split(",")
    report = (tmp_path / "report.md").read_text()
    assert "## Findings" in report and f"beats the largest GPT-3 ({sizes[-1]})" in report
    for size in sizes:
        for method in ("GPT-3", "GPT-3 prompted", "SFT", "PPO", "PPO-ptx"):
            assert f"| {size} |" in report and f"| {method} |" in report
        assert (tmp_path / "plots" / f"curves_ppo_ptx_{size}.png").is_file()
    rows = json.loads((tmp_path / "eval" / "sweep.json").read_text())["rows"]
    assert len(rows) == 5 * len(sizes) and rows[0]["params"] < rows[-1]["params"]
    assert (tmp_path / "plots" / "figure1_sweep.png").is_file()
    assert [p.name for p in tmp_path.glob("reward*")] == ["reward"]  # one reward model for every size

    ckpts = sorted(tmp_path.glob("*/ckpt.pt"))
    mtimes = [p.stat().st_mtime_ns for p in ckpts]
    sweep(cfg, tmp_path)
    assert [p.stat().st_mtime_ns for p in ckpts] == mtimes


@pytest.mark.slow
def test_stages_side_by_side_give_the_numbers_of_one_after_another(tmp_path):
    """pipeline.workers=2 runs the training stages in two processes as their inputs are ready: each stage seeds
    itself, so every metric, checkpoint and result equals the one-after-another run's (timings aside)."""
    def numbers(run_dir):
        out = {}
        for m in sorted(run_dir.glob("*/metrics.jsonl")):
            rows = [json.loads(line) for line in m.read_text().splitlines()]
            out[m.parent.name] = [{k: v for k, v in r.items() if k != "time" and not k.startswith("t_")
                                   and k not in ("tokens_per_s", "mfu")} for r in rows]
        results = json.loads((run_dir / "eval" / "results.json").read_text())
        return out, results["models"], results["head_to_head"]

    run(load_config("micro", FAST), tmp_path / "one")
    run(load_config("micro", [*FAST, "pipeline.workers=2"]), tmp_path / "two")
    assert numbers(tmp_path / "two") == numbers(tmp_path / "one")
    assert (tmp_path / "two" / "ppo" / "log.txt").is_file()  # a worker's stage writes its progress there


def test_every_preset_fits_the_committed_world():
    """A preset asks no more of data/ than it holds: balanced ranks every RM-split prompt the validation leaves."""
    for preset in PRESETS:
        preflight.check_world(load_config(preset))
    with pytest.raises(UserError, match="RM-split prompts"):
        preflight.check_world(load_config("balanced", ["reward.val_prompts=121"]))


def test_every_stage_of_the_recipe_and_the_sweep_can_travel_to_a_worker_process():
    """Stages side by side run in spawned processes: each stage, its settings function included, must pickle."""
    import pickle

    cfg = load_config("quick")
    for stage in recipe() + pipeline.recipes.sweep(cfg):
        twin = pickle.loads(pickle.dumps(stage))
        assert twin.config(cfg) == stage.config(cfg), stage.name


def test_of_the_stages_ready_at_once_those_that_others_wait_for_go_first():
    stages = training(recipe())
    assert pipeline._waiting_for("reward_biased", stages) == {"ppo_biased"}
    assert {"ppo", "ppo_ptx", "grpo", "dpo", "reward_biased", "ppo_biased"} == \
        pipeline._waiting_for("reward", stages)
    assert pipeline._waiting_for("ppo", stages) == set()
    # the gold-judge loop reads no reward model: it starts beside the reward stage, right after SFT
    assert "ppo_gold" in pipeline._waiting_for("sft", stages) - pipeline._waiting_for("reward", stages)


def test_the_critical_path_is_the_longest_chain_of_stages():
    stages = [Stage("world", "world", "", output=""), Stage("pretrain", "pretrain", ""),
              Stage("pretrain_large", "pretrain", ""), Stage("sft", "sft", "", reads={"base": "pretrain"}),
              Stage("reward", "reward", "", reads={"sft": "sft"}),
              Stage("ppo", "ppo", "", reads={"sft": "sft", "reward": "reward"}),
              Stage("dpo", "dpo", "", reads={"sft": "sft", "comparisons": "reward"}),
              Stage("evaluate", "evaluate", "", output="eval"), Stage("report", "report", "", output="report.md")]
    seconds = dict(world=1, pretrain=200, pretrain_large=260, sft=60, reward=30, ppo=300, dpo=50, evaluate=90,
                   report=1)
    path = pipeline.critical_path(stages, seconds)
    assert path == {"seconds": 681, "stages": ["pretrain", "sft", "reward", "ppo", "evaluate", "report"]}
    seconds["pretrain_large"] = 700  # a longer side stage becomes the chain the evaluation waits for
    assert pipeline.critical_path(stages, seconds)["stages"] == ["pretrain_large", "evaluate", "report"]


def test_stages_moved_out_of_quick_still_run_in_balanced_and_are_named_when_asked_for(tmp_path):
    moved = {"pretrain_large", "grpo", "reward_biased", "ppo_biased"}
    names = {p: {s.name for s in pipeline.recipes.run_recipe(dataclasses.asdict(load_config(p).pipeline))}
             for p in ("quick", "balanced", "micro")}
    assert not moved & names["quick"] and moved <= names["balanced"] and moved <= names["micro"]
    assert {"ppo", "ppo_ptx", "ppo_gold", "dpo", "reward", "sft", "pretrain"} <= names["quick"]
    with pytest.raises(UserError, match=r"'grpo' is not in the quick recipe.*--set pipeline.grpo=true"):
        pipeline.run_step(load_config("quick"), tmp_path / "q", "grpo")


@pytest.mark.slow
def test_micro_curve_trains_each_base_model_once_and_reports_every_writing_care(tmp_path):
    """`minigpt-rlhf curve`: the recipe on worlds whose demonstrators differ in writing care; a seed's base model
    is pretrained at the first care and copied to the others; the report has a row per care."""
    from minigpt_rlhf.pipeline import curve

    out = curve(load_config("micro", FAST), tmp_path, [3], [1.0, 0.3])
    first, second = (tmp_path / f"care_{c}" / "seed_3" for c in ("1", "0.3"))
    assert (first / "pretrain" / "ckpt.pt").read_bytes() == (second / "pretrain" / "ckpt.pt").read_bytes()
    assert (first / "sft" / "ckpt.pt").read_bytes() != (second / "sft" / "ckpt.pt").read_bytes()
    assert json.loads((second / "pipeline.json").read_text())["config"]["data_dir"] == str(tmp_path / "data_care_0.3")
    report = out.read_text()
    rows = [line for line in report.splitlines() if line.startswith(("| 1 |", "| 0.3 |"))]
    assert len(rows) == 2 and "| 100% |" in rows[0] and "| 100% |" not in rows[1], rows
    assert (tmp_path / "curve.png").is_file()


def test_the_seed_and_care_folders_are_found_by_number_and_a_log_beside_them_is_not_one(tmp_path):
    from minigpt_rlhf.report import numbered

    for name in ("seed_10", "seed_2", "care_1", "care_0.3"):
        (tmp_path / name).mkdir()
    (tmp_path / "seed_10.log").write_text("a run's output\n")
    assert [d.name for d in numbered(tmp_path, "seed_")] == ["seed_2", "seed_10"]
    assert [d.name for d in numbered(tmp_path, "care_")] == ["care_0.3", "care_1"]
