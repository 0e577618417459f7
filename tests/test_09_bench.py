"""Issue 9: the benchmark runs on micro in seconds and writes valid JSON with every field. No timing asserts."""

import json

import pytest
import torch

from minigpt_rlhf import bench
from minigpt_rlhf.cli import main
from minigpt_rlhf.config import load_config
from minigpt_rlhf.model import GPT, GPTConfig
from minigpt_rlhf.runtime import mfu

TOP = ["torch", "device", "threads", "cpu_count", "timestamp", "load_avg", "repeats", "precision", "peak_fp32_flops",
       "peak_bf16_flops", "shapes"]


def _check(result):
    for k in TOP:
        assert k in result
    assert result["peak_fp32_flops"] > 0 and result["threads"] >= 1
    r = result["shapes"]["micro"]
    assert r["params"] > 0
    tr = r["train"]
    assert tr["tokens_per_s"] > 0 and 0 < tr["mfu"] and tr["flops_per_token"] > 0
    # MFU against the peak of the precision training ran in (bf16 where the hardware has it, as pretraining)
    assert result["precision"] in ("bf16", "fp32")
    assert (result["peak_bf16_flops"] is None) == (result["precision"] == "fp32")
    peak = result["peak_bf16_flops"] or result["peak_fp32_flops"]
    assert tr["mfu"] == pytest.approx(mfu(tr["tokens_per_s"], tr["flops_per_token"], peak))
    for b in ("batch1", "batch32"):
        s = r["sample"][b]
        for kind in ("cache", "no_cache"):
            assert s[kind]["tokens_per_s"] > 0 and s[kind]["time"]["median_s"] > 0
        assert s["speedup"] == pytest.approx(s["cache"]["tokens_per_s"] / s["no_cache"]["tokens_per_s"])
    rl = r["rl"]  # the real RL loop with micro's PPO settings
    for k in ("rollout_s", "scoring_s", "update_s", "iteration_s"):
        assert rl[k] > 0
    # the iteration is its three parts plus the reward and the bookkeeping between them
    assert rl["rollout_s"] + rl["scoring_s"] + rl["update_s"] <= rl["iteration_s"] * 1.001
    assert rl["answers_per_s"] == pytest.approx(rl["rollout_batch"] / rl["iteration_s"])
    assert rl["rollout_batch"] == load_config("micro").ppo.rollout_batch
    assert rl["mfu"] == pytest.approx(rl["flops_per_s"] / result["peak_fp32_flops"]) and 0 < rl["mfu"] < 1
    assert 0 < rl["rollout_fraction"] < 1
    assert "| micro |" in bench.table(result)


def test_bench_micro_writes_json_with_every_field(tmp_path):
    out = tmp_path / "b.json"
    result = bench.run(["micro"], torch.device("cpu"), repeats=1, sample_tokens=4, out=str(out), log=lambda *a: None)
    _check(json.loads(out.read_text()))
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))


def test_mfu_on_a_known_flops_count():
    # a model doing exactly 1e9 FLOPs per token at 50 tokens/s on a 1e11 FLOP/s machine uses 50% of it
    assert mfu(50.0, 1e9, 1e11) == pytest.approx(0.5)
    m = GPT(GPTConfig(vocab_size=10, block_size=8, n_layer=1, n_head=1, n_embd=4))
    n = m.num_params()  # wte 40 + 2 LN 16 + qkv 60 + proj 20 + fc 80 + proj 68 + ln_f 8
    assert n == 292
    fpt = 6 * n + 6 * 1 * 8 * 4
    assert m.flops_per_token(8) == fpt
    assert mfu(1000.0, m.flops_per_token(8), fpt * 1000.0) == pytest.approx(1.0)


def test_cli_bench(tmp_path, capsys):
    out = tmp_path / "cli.json"
    threads = torch.get_num_threads()
    try:
        assert main(["bench", "--preset", "micro", "--out", str(out), "--device", "cpu", "--repeats", "1",
                     "--new-tokens", "4", "--threads", "1"]) == 0
    finally:
        torch.set_num_threads(threads)
    assert "| micro |" in capsys.readouterr().out
    _check(json.loads(out.read_text()))
