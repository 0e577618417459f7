"""Shared fixtures: one micro run (pretrain + SFT) that the later stages' tests build on, and `run_lesson`, which
runs a lesson as a learner would (a plain script, on micro) in a run folder that the lessons share."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from minigpt_rlhf.config import load_config

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"


@pytest.fixture
def fp32(monkeypatch):
    """For tests of exact arithmetic (padding invariance, sampled log-probs equal a recomputation): autocast does
    nothing during the test, whatever the machine's bf16 (under bf16 these hold only to its rounding)."""
    from minigpt_rlhf import runtime

    monkeypatch.setattr(runtime, "_precision", "fp32")


def micro_config(*overrides):
    return load_config("micro", [f"data_dir={DATA}", "device=cpu", *overrides])


@pytest.fixture(scope="session")
def micro_run(tmp_path_factory):
    """A run folder with a micro base model and a micro SFT model."""
    from minigpt_rlhf import pretrain, sft

    cfg = micro_config()
    run_dir = tmp_path_factory.mktemp("micro_run")
    pretrain.run(cfg, run_dir / "pretrain")
    sft.run(cfg, run_dir / "sft", run_dir / "pretrain")
    return cfg, run_dir


@pytest.fixture(scope="session")
def lesson_run(micro_run, tmp_path_factory):
    """The run folder the lessons share, as a learner's runs/micro grows lesson by lesson; starts with micro_run's
    pretrain and sft stages."""
    _, run_dir = micro_run
    out = tmp_path_factory.mktemp("lessons")
    for stage in ("pretrain", "sft"):
        shutil.copytree(run_dir / stage, out / stage)
    return out


def run_lesson(name: str, run_dir: Path, needs: tuple[str, ...] = (), timeout: int = 300) -> str:
    """`python lessons/NAME.py` on micro in run_dir (after training the stages `needs` it reads, as the pipeline
    would); fails unless it exits 0. Returns what it printed."""
    from minigpt_rlhf.pipeline import run_stage
    from minigpt_rlhf.stages import recipe

    stages = {s.name: s for s in recipe()}
    for stage in needs:
        run_stage(stages[stage], micro_config(), run_dir)
    env = {**os.environ, "MINIGPT_RLHF_PRESET": "micro", "MINIGPT_RLHF_RUN": str(run_dir), "MPLBACKEND": "Agg",
           "OMP_NUM_THREADS": "1"}  # micro models: a second thread only waits
    proc = subprocess.run([sys.executable, str(ROOT / "lessons" / f"{name}.py")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"lessons/{name}.py failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout
