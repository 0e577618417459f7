"""Shared fixtures: one micro run (pretrain + SFT) that the later stages' tests build on."""

from pathlib import Path

import pytest

from minigpt_rlhf.config import load_config

DATA = Path(__file__).resolve().parents[1] / "data"


def micro_config(*overrides):
    return load_config("micro", [f"data_dir={DATA}", "device=cpu", *overrides])


@pytest.fixture(scope="session")
def micro_run(tmp_path_factory):
    """A run folder with a micro base model and a micro SFT model."""
    from minigpt_rlhf import pretrain, sft

    cfg = micro_config()
    run_dir = tmp_path_factory.mktemp("micro_run")
    pretrain.run(cfg, run_dir)
    sft.run(cfg, run_dir)
    return cfg, run_dir
