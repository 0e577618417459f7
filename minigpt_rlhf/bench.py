"""`minigpt-rlhf bench`: how fast this machine trains, samples and runs a PPO iteration.

For each model shape (the `micro`, `quick`, `full` presets) it measures, as medians of repeated runs
after a warm-up: training tokens/s and MFU against this machine's measured matmul peak; sampling
tokens/s with and without the KV cache; iterations of the real RL loop (the preset's PPO settings):
answers per second, MFU, and the split into rollout, scoring and update. Each in the precision its
stages use: training as pretraining trains (runtime.autocast: bf16 matrix products where the
hardware has them, MFU against that precision's measured peak), sampling and RL in float32 as PPO
runs. Timings only, no assertions: the machine may be shared, so read `threads`, `load_avg` and the
spread in the JSON.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import platform
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from minigpt_rlhf import world
from minigpt_rlhf.config import Config, load_config
from minigpt_rlhf.corpus import tokenizer
from minigpt_rlhf.model import GPT, GPTConfig, ValueModel
from minigpt_rlhf.ppo import PPOTrainer
from minigpt_rlhf.runtime import autocast, measure_matmul_flops, mfu, uses_bf16
from minigpt_rlhf.tokenizer import format_chat

SAMPLE_TOKENS = 256  # new tokens per sampling measurement, block_size permitting
SAMPLE_BATCH = 32  # prompts per batched sampling measurement
SHAPES = (
    "micro",
    "quick",
    "full",
)  # the presets with a model shape of their own (balanced trains quick's)


def _sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, dev, repeats: int, warmup: int = 1) -> dict:
    """Median (and min/max) seconds of fn() over `repeats` runs after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    _sync(dev)
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        _sync(dev)
        ts.append(time.perf_counter() - t)
    return {"median_s": statistics.median(ts), "min_s": min(ts), "max_s": max(ts), "runs": len(ts)}


def bench_training(model: GPT, batch: int, T: int, dev, repeats: int, peak: float) -> dict:
    """AdamW steps with gradient clipping on random tokens, as pretraining does them."""
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    V = model.config.vocab_size
    x = torch.randint(0, V, (batch, T + 1), device=dev)

    def step():
        with autocast(dev):
            loss = model(x[:, :-1], x[:, 1:])[1]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    t = timed(step, dev, repeats, warmup=2)
    tps = batch * T / t["median_s"]
    fpt = model.flops_per_token(T)
    model.eval()
    return {
        "batch": batch,
        "block": T,
        "step": t,
        "tokens_per_s": tps,
        "flops_per_token": fpt,
        "mfu": mfu(tps, fpt, peak),
    }


def bench_sampling(model: GPT, batch: int, new: int, dev, repeats: int, use_cache: bool) -> dict:
    prompts = [
        [1 + i % 90] for i in range(batch)
    ]  # 1-token prompts: the response fills the context
    g = torch.Generator(device=dev).manual_seed(0)
    t = timed(
        lambda: model.generate(prompts, new, temperature=1.0, generator=g, use_cache=use_cache),
        dev,
        repeats,
    )
    return {
        "batch": batch,
        "new_tokens": new,
        "time": t,
        "tokens_per_s": batch * new / t["median_s"],
    }


def bench_rl(cfg: Config, mc: GPTConfig, tok, dev, repeats: int, peak: float) -> dict:
    """Iterations of the real RL loop (ppo.PPOTrainer: rollout, scoring, update) with the preset's
    PPO settings on the world's PPO prompts, with freshly initialised models and a stand-in reward
    (the answer's length in tokens): answers per second, and MFU from the FLOPs the trainer counts
    (RL runs in float32: against the float32 peak). Untrained models rarely end an answer, so each
    runs to max_new_tokens: longer answers than a trained policy writes."""
    torch.manual_seed(0)
    policy = GPT(mc).to(dev)
    value = ValueModel(GPT(mc), torch.nn.Linear(mc.n_embd, 1)).to(dev)
    prompts = [format_chat(tok, p.text) for p in world.load_prompts(cfg.data_dir, "ppo")]
    trainer = PPOTrainer(
        policy,
        copy.deepcopy(policy),
        value,
        lambda xs, ys: torch.tensor([float(len(y)) for y in ys]),
        prompts,
        cfg.ppo,
        tok,
        cfg.max_new_tokens,
    )
    parts = {"rollout": [], "scoring": [], "update": [], "iteration": []}
    flops = []
    for i in range(repeats + 1):  # the first iteration is the warm-up
        before = trainer.compute.flops
        _sync(dev)
        t = time.perf_counter()
        ro, stats = trainer.rollout()
        up = trainer.update(ro)
        _sync(dev)
        if i:
            parts["iteration"].append(time.perf_counter() - t)
            parts["rollout"].append(stats["t_rollout"])
            parts["scoring"].append(stats["t_score"])
            parts["update"].append(up["t_update"])
            flops.append(trainer.compute.flops - before)
    med = {k: statistics.median(v) for k, v in parts.items()}
    flops_per_s = statistics.median(flops) / med["iteration"]
    return {
        "rollout_batch": cfg.ppo.rollout_batch,
        "minibatch": cfg.ppo.minibatch,
        "ppo_epochs": cfg.ppo.ppo_epochs,
        "new_tokens": cfg.max_new_tokens,
        **{f"{k}_s": v for k, v in med.items()},
        "answers_per_s": cfg.ppo.rollout_batch / med["iteration"],
        "flops_per_s": flops_per_s,
        "mfu": flops_per_s / peak,
        "rollout_fraction": med["rollout"] / med["iteration"],
    }


def bench_shape(
    preset: str,
    dev,
    peak: float,
    peak_fp32: float,
    repeats: int = 3,
    sample_tokens: int = SAMPLE_TOKENS,
) -> dict:
    cfg = load_config(preset)
    tok = tokenizer(cfg)
    mc = dataclasses.replace(cfg.model, vocab_size=tok.vocab_size)  # the world's vocabulary
    torch.manual_seed(0)
    model = GPT(mc).to(dev)
    new = min(sample_tokens, mc.block_size - 1)
    row = {
        "preset": preset,
        "model": dataclasses.asdict(mc),
        "params": model.num_params(),
        "train": bench_training(model, cfg.pretrain.batch_size, mc.block_size, dev, repeats, peak),
        "sample": {},
    }
    for batch in (1, SAMPLE_BATCH):
        cached = bench_sampling(model, batch, new, dev, repeats, True)
        # the no-cache reference is O(T²): one timed run after the warm-up is enough at batch 32
        plain = bench_sampling(model, batch, new, dev, repeats if batch == 1 else 1, False)
        row["sample"][f"batch{batch}"] = {
            "cache": cached,
            "no_cache": plain,
            "speedup": cached["tokens_per_s"] / plain["tokens_per_s"],
        }
    row["rl"] = bench_rl(cfg, mc, tok, dev, repeats, peak_fp32)
    return row


def run(
    presets=SHAPES,
    device: torch.device | None = None,
    repeats: int = 3,
    sample_tokens: int = SAMPLE_TOKENS,
    out: str | None = None,
    log=print,
) -> dict:
    dev = device or torch.device("cpu")
    torch.set_flush_denormal(True)
    peak = measure_matmul_flops(dev)
    bf16 = measure_matmul_flops(dev, 4096, torch.bfloat16) if uses_bf16(dev) else None
    result = {
        "torch": torch.__version__,
        "device": str(dev),
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "load_avg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "repeats": repeats,
        "precision": "bf16" if bf16 else "fp32",
        "peak_fp32_flops": peak,
        "peak_bf16_flops": bf16,
        "shapes": {},
    }
    for p in presets:
        log(f"benchmarking {p} ...")
        result["shapes"][p] = bench_shape(p, dev, bf16 or peak, peak, repeats, sample_tokens)
    result["load_avg_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(result, indent=2))
    return result


def table(result: dict) -> str:
    """The Markdown table the README shows."""
    lines = [
        f"torch {result['torch']}, {result['device']}, {result['threads']} threads, "
        f"{result.get('precision', 'fp32')} matrix products, fp32 matmul peak "
        f"{result['peak_fp32_flops'] / 1e9:.1f} GFLOP/s, bf16 "
        f"{(result.get('peak_bf16_flops') or 0) / 1e9:.1f} (measured; MFU against the peak of the "
        f"precision used), load avg {result['load_avg'][0]:.1f}"
        if result.get("load_avg")
        else "",
        "",
        "| shape | params | train tok/s | MFU | sample b1 cache / no-cache tok/s (x) "
        "| sample b32 cache / no-cache tok/s (x) | RL answers/s (MFU) "
        "| RL iteration s: rollout / scoring / update |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for p, r in result["shapes"].items():
        s1, s32, rl = r["sample"]["batch1"], r["sample"]["batch32"], r["rl"]
        f = lambda s: (
            f"{s['cache']['tokens_per_s']:,.0f} / {s['no_cache']['tokens_per_s']:,.0f} "
            f"({s['speedup']:.1f}x)"
        )
        lines.append(
            f"| {p} | {r['params'] / 1e6:.2f}M | {r['train']['tokens_per_s']:,.0f} | "
            f"{r['train']['mfu']:.0%} | {f(s1)} | {f(s32)} | {rl['answers_per_s']:.1f} "
            f"({rl['mfu']:.0%}) | {rl['iteration_s']:.2f}: {rl['rollout_s']:.2f} / "
            f"{rl['scoring_s']:.2f} / {rl['update_s']:.2f} |"
        )
    return "\n".join(lines)
