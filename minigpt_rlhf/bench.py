"""`minigpt-rlhf bench`: how fast this machine trains, samples and runs a PPO iteration.

For each model shape (the `micro`, `quick`, `full` presets) it measures, as medians of repeated runs after a
warm-up: training tokens/s and MFU against this machine's measured matmul peak; sampling tokens/s with and
without the KV cache; one PPO-like iteration split into rollout, scoring and update. Each in the precision its
stages use: training as pretraining trains (runtime.autocast: bf16 matrix products where the hardware has them,
MFU against that precision's measured peak), sampling and PPO in float32 as PPO runs. Timings only, no
assertions: the machine may be shared, so read `threads`, `load_avg` and the spread in the JSON.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from minigpt_rlhf.config import load_config
from minigpt_rlhf.model import GPT, GPTConfig, left_pad
from minigpt_rlhf.runtime import autocast, measure_matmul_flops, mfu, uses_bf16
from minigpt_rlhf.corpus import tokenizer

SAMPLE_TOKENS = 256  # new tokens per sampling measurement, block_size permitting
ROLLOUT_BATCH = 32  # prompts per PPO rollout
PPO_PROMPT, PPO_NEW = 32, 128  # prompt and response length of the PPO-like iteration
SHAPES = ("micro", "quick", "full")  # the presets with a model shape of their own (balanced trains quick's)


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
    return {"batch": batch, "block": T, "step": t, "tokens_per_s": tps, "flops_per_token": fpt,
            "mfu": mfu(tps, fpt, peak)}


def bench_sampling(model: GPT, batch: int, new: int, dev, repeats: int, use_cache: bool) -> dict:
    prompts = [[1 + i % 90] for i in range(batch)]  # 1-token prompts: the response fills the context
    g = torch.Generator(device=dev).manual_seed(0)
    t = timed(lambda: model.generate(prompts, new, temperature=1.0, generator=g, use_cache=use_cache),
              dev, repeats)
    return {"batch": batch, "new_tokens": new, "time": t, "tokens_per_s": batch * new / t["median_s"]}


def bench_ppo(cfg: GPTConfig, dev, repeats: int, new_tokens: int = PPO_NEW) -> dict:
    """One PPO-like iteration with the model API only: rollout (generate), scoring (no-grad forward passes
    of policy, reference, reward and value models over the samples), update (forward+backward of policy
    and value, one AdamW step each). Reward/value models are GPT trunks with a scalar head."""
    policy, ref = GPT(cfg).to(dev), GPT(cfg).to(dev)
    reward, value = GPT(cfg).to(dev), GPT(cfg).to(dev)
    r_head, v_head = torch.nn.Linear(cfg.n_embd, 1).to(dev), torch.nn.Linear(cfg.n_embd, 1).to(dev)
    for m in (policy, ref, reward, value):
        m.eval()
    opt_p = torch.optim.AdamW(policy.parameters(), lr=1e-5)
    opt_v = torch.optim.AdamW(list(value.parameters()) + list(v_head.parameters()), lr=1e-5)
    P, N = min(PPO_PROMPT, cfg.block_size // 2), min(new_tokens, cfg.block_size // 2)
    g = torch.Generator(device=dev).manual_seed(0)
    prompts = [[1 + (i * 7 + j) % 90 for j in range(P - i % 8)] for i in range(ROLLOUT_BATCH)]
    state = {}

    def rollout():
        out = policy.generate(prompts, N, temperature=1.0, generator=g)
        state["idx"], state["real"] = left_pad([p + r for p, r in zip(prompts, out.responses)], 0, dev)

    def scoring():
        idx, real = state["idx"], state["real"]
        with torch.no_grad():
            policy.token_logprobs(idx, real)
            ref.token_logprobs(idx, real)
            r_head(reward.hidden_states(idx, real)[:, -1])
            v_head(value.hidden_states(idx, real))

    def update():
        idx, real = state["idx"], state["real"]
        policy.train(), value.train()
        lp = policy.token_logprobs(idx, real)
        (-(lp * real[:, 1:]).sum() / real.sum()).backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
        opt_p.step(), opt_p.zero_grad(set_to_none=True)
        v = v_head(value.hidden_states(idx, real)).squeeze(-1)
        ((v * real) ** 2).mean().backward()
        torch.nn.utils.clip_grad_norm_(value.parameters(), 1.0)
        opt_v.step(), opt_v.zero_grad(set_to_none=True)
        policy.eval(), value.eval()

    parts = {"rollout": [], "scoring": [], "update": []}
    for i in range(repeats + 1):  # the first iteration is the warm-up
        for name, fn in (("rollout", rollout), ("scoring", scoring), ("update", update)):
            _sync(dev)
            t = time.perf_counter()
            fn()
            _sync(dev)
            if i:
                parts[name].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in parts.items()}
    total = sum(med.values())
    return {"batch": ROLLOUT_BATCH, "prompt_tokens": P, "new_tokens": N, **{f"{k}_s": v for k, v in med.items()},
            "total_s": total, "rollout_fraction": med["rollout"] / total}


def bench_shape(preset: str, dev, peak: float, repeats: int = 3, sample_tokens: int = SAMPLE_TOKENS) -> dict:
    cfg = load_config(preset)
    mc = dataclasses.replace(cfg.model, vocab_size=tokenizer(cfg).vocab_size)  # the world's vocabulary
    torch.manual_seed(0)
    model = GPT(mc).to(dev)
    new = min(sample_tokens, mc.block_size - 1)
    row = {"preset": preset, "model": dataclasses.asdict(mc), "params": model.num_params(),
           "train": bench_training(model, cfg.pretrain.batch_size, mc.block_size, dev, repeats, peak),
           "sample": {}}
    for batch in (1, ROLLOUT_BATCH):
        cached = bench_sampling(model, batch, new, dev, repeats, True)
        # the no-cache reference is O(T²): one timed run after the warm-up is enough at batch 32
        plain = bench_sampling(model, batch, new, dev, repeats if batch == 1 else 1, False)
        row["sample"][f"batch{batch}"] = {"cache": cached, "no_cache": plain,
                                          "speedup": cached["tokens_per_s"] / plain["tokens_per_s"]}
    row["ppo"] = bench_ppo(mc, dev, repeats, min(PPO_NEW, sample_tokens))
    return row


def run(presets=SHAPES, device: torch.device | None = None, repeats: int = 3, sample_tokens: int = SAMPLE_TOKENS,
        out: str | None = None, log=print) -> dict:
    dev = device or torch.device("cpu")
    torch.set_flush_denormal(True)
    peak = measure_matmul_flops(dev)
    bf16 = measure_matmul_flops(dev, 4096, torch.bfloat16) if uses_bf16(dev) else None
    result = {"torch": torch.__version__, "device": str(dev), "threads": torch.get_num_threads(),
              "cpu_count": os.cpu_count(), "platform": platform.platform(),
              "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "load_avg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
              "repeats": repeats, "precision": "bf16" if bf16 else "fp32", "peak_fp32_flops": peak,
              "peak_bf16_flops": bf16, "shapes": {}}
    for p in presets:
        log(f"benchmarking {p} ...")
        result["shapes"][p] = bench_shape(p, dev, bf16 or peak, repeats, sample_tokens)
    result["load_avg_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(result, indent=2))
    return result


def table(result: dict) -> str:
    """The Markdown table the README shows."""
    lines = [f"torch {result['torch']}, {result['device']}, {result['threads']} threads, "
             f"{result.get('precision', 'fp32')} matrix products, fp32 matmul peak "
             f"{result['peak_fp32_flops'] / 1e9:.1f} GFLOP/s, bf16 {(result.get('peak_bf16_flops') or 0) / 1e9:.1f} "
             f"(measured; MFU against the peak of the precision used), "
             f"load avg {result['load_avg'][0]:.1f}" if result.get("load_avg") else "",
             "",
             "| shape | params | train tok/s | MFU | sample b1 cache / no-cache tok/s (x) "
             "| sample b32 cache / no-cache tok/s (x) | PPO iter s: rollout / scoring / update (rollout %) |",
             "|---|---|---|---|---|---|---|"]
    for p, r in result["shapes"].items():
        s1, s32, ppo = r["sample"]["batch1"], r["sample"]["batch32"], r["ppo"]
        f = lambda s: (f"{s['cache']['tokens_per_s']:,.0f} / {s['no_cache']['tokens_per_s']:,.0f} "
                       f"({s['speedup']:.1f}x)")
        lines.append(f"| {p} | {r['params'] / 1e6:.2f}M | {r['train']['tokens_per_s']:,.0f} | "
                     f"{r['train']['mfu']:.0%} | {f(s1)} | {f(s32)} | {ppo['total_s']:.2f}: {ppo['rollout_s']:.2f} / "
                     f"{ppo['scoring_s']:.2f} / {ppo['update_s']:.2f} ({ppo['rollout_fraction']:.0%}) |")
    return "\n".join(lines)
