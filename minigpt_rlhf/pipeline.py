"""The whole recipe in one command, resumable: `minigpt-rlhf run --preset quick [--out runs/NAME] [--from STAGE]`.

    world → pretrain → pretrain_large → sft → reward → ppo → ppo_ptx → [reward_biased → ppo_biased]
          → evaluate → plots → report

Every stage writes its own folder of the run (see contract: run folder layout). The pipeline records each
stage it finished, with its wall time, in run_dir/pipeline.json; a recorded stage whose folder is still there
is skipped, so an interrupted run resumes where it stopped (a stage interrupted half-way resumes from its
own last checkpoint). `--from STAGE` deletes that stage's output and every later one's, then reruns them.

`minigpt-rlhf sweep` is the same machinery over another list of stages: several model sizes through every
step, one reward model for all of them (as the paper's 6B RM served every policy size), and Figure 1.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from minigpt_rlhf.config import Config, ModelConfig
from minigpt_rlhf.evaluate import write_json
from minigpt_rlhf.runtime import UserError, pick_device


@dataclass
class Stage:
    name: str
    run: Callable[[], object]
    output: str  # the file or folder of run_dir it writes: deleted by --from, and its presence marks it done
    always: bool = False  # cheap and derived (checks, plots, the report): rerun every time


# ---- model shapes -------------------------------------------------------------------------------------------------
def parse_shape(spec: str, base: ModelConfig, key: str = "eval.large_model") -> ModelConfig:
    """"LxHxC" (n_layer x n_head x n_embd) -> a ModelConfig like base with that shape."""
    try:
        n_layer, n_head, n_embd = (int(x) for x in spec.lower().split("x"))
    except ValueError:
        raise UserError(f"{key}={spec!r}: expected n_layer x n_head x n_embd, e.g. 4x4x128") from None
    if min(n_layer, n_head, n_embd) < 1 or n_embd % n_head:
        raise UserError(f"{key}={spec!r}: sizes must be positive and n_embd divisible by n_head")
    return dataclasses.replace(base, n_layer=n_layer, n_head=n_head, n_embd=n_embd)


def sweep_shapes(cfg: Config) -> list[ModelConfig]:
    shapes = [parse_shape(s.strip(), cfg.model, "eval.sweep_sizes") for s in cfg.eval.sweep_sizes.split(",")]
    if len(shapes) < 3:
        raise UserError(f"eval.sweep_sizes={cfg.eval.sweep_sizes!r}: a sweep needs at least three sizes")
    return shapes


def shape_tag(mc: ModelConfig) -> str:
    return f"{mc.n_layer}x{mc.n_head}x{mc.n_embd}"


# ---- the world check --------------------------------------------------------------------------------------------
def check_world(cfg: Config) -> None:
    """data/ is there and every split loads (the world's loaders validate the files and the vocabulary)."""
    from minigpt_rlhf import world

    data = Path(cfg.data_dir)
    if not data.is_dir():
        raise UserError(f"the data folder {data} does not exist: run `minigpt-rlhf world` to generate it, "
                        f"or point --set data_dir=... at it")
    for split in ("sft", "rm", "ppo", "eval"):
        if not world.load_prompts(data, split):
            raise UserError(f"{data}: the {split!r} prompt split is empty: regenerate it with `minigpt-rlhf world`")
    for split in ("train", "val"):
        if not world.load_corpus(data, split):
            raise UserError(f"{data}: the {split!r} corpus is empty: regenerate it with `minigpt-rlhf world`")
    print(f"world: {data} is present and valid")


# ---- the recipes ------------------------------------------------------------------------------------------------
def recipe(cfg: Config, run_dir: Path) -> list[Stage]:
    """The stages of `minigpt-rlhf run`, in order."""
    from minigpt_rlhf import evaluate, plots, ppo, pretrain, report, reward, sft

    large = parse_shape(cfg.eval.large_model, cfg.model)
    large_cfg = dataclasses.replace(cfg, model=large, pretrain=dataclasses.replace(
        cfg.pretrain, steps=cfg.eval.large_steps or cfg.pretrain.steps))
    stages = [
        Stage("world", lambda: check_world(cfg), "", always=True),
        Stage("pretrain", lambda: pretrain.run(cfg, run_dir), "pretrain"),
        Stage("pretrain_large", lambda: pretrain.run(large_cfg, run_dir, stage="pretrain_large", model_cfg=large),
              "pretrain_large"),
        Stage("sft", lambda: sft.run(cfg, run_dir), "sft"),
        Stage("reward", lambda: reward.run(cfg, run_dir), "reward"),
        Stage("ppo", lambda: ppo.run(cfg, run_dir, stage="ppo", ptx_coef=0.0), "ppo"),
        Stage("ppo_ptx", lambda: ppo.run(cfg, run_dir, stage="ppo_ptx"), "ppo_ptx"),
    ]
    if cfg.eval.biased:
        # "whose preferences?": the same PPO (γ = 0, so it compares with "PPO") against a reward model that a
        # labeler group with a shared bias trained
        stages += [
            Stage("reward_biased", lambda: reward.run(cfg, run_dir, stage="reward_biased", labelers="biased"),
                  "reward_biased"),
            Stage("ppo_biased", lambda: ppo.run(cfg, run_dir, stage="ppo_biased", ptx_coef=0.0,
                                                reward_stage="reward_biased"), "ppo_biased"),
        ]
    return stages + [
        Stage("evaluate", lambda: evaluate.evaluate(cfg, run_dir), "eval"),
        Stage("plots", lambda: plots.plot_run(run_dir), "plots", always=True),
        Stage("report", lambda: report.write_report(run_dir), "report.md", always=True),
    ]


def sweep_recipe(cfg: Config, out_dir: Path) -> list[Stage]:
    """The stages of `minigpt-rlhf sweep`: every size through pretrain, SFT, PPO and PPO-ptx; one reward model,
    trained from the middle size's SFT model, scores them all."""
    from minigpt_rlhf import evaluate, plots, ppo, pretrain, report, reward, sft

    shapes = sweep_shapes(cfg)
    rm_tag = shape_tag(shapes[len(shapes) // 2])
    stages = [Stage("world", lambda: check_world(cfg), "", always=True)]
    for mc in shapes:
        t, c = shape_tag(mc), dataclasses.replace(cfg, model=mc)
        stages += [Stage(f"pretrain_{t}", lambda t=t, c=c: pretrain.run(c, out_dir, f"pretrain_{t}", c.model),
                         f"pretrain_{t}"),
                   Stage(f"sft_{t}", lambda t=t, c=c: sft.run(c, out_dir, f"sft_{t}", f"pretrain_{t}"), f"sft_{t}")]
    def train_reward():
        # reward.py draws some comparison responses from run_dir/pretrain: here, the RM size's base model
        base = out_dir / "pretrain"
        if not base.exists():
            base.symlink_to(f"pretrain_{rm_tag}", target_is_directory=True)
        return reward.run(cfg, out_dir, sft_stage=f"sft_{rm_tag}")

    stages.append(Stage("reward", train_reward, "reward"))
    for mc in shapes:
        t = shape_tag(mc)
        stages += [Stage(f"ppo_{t}", lambda t=t: ppo.run(cfg, out_dir, f"ppo_{t}", 0.0, f"sft_{t}"), f"ppo_{t}"),
                   Stage(f"ppo_ptx_{t}", lambda t=t: ppo.run(cfg, out_dir, f"ppo_ptx_{t}", None, f"sft_{t}"),
                         f"ppo_ptx_{t}")]
    return stages + [
        Stage("evaluate", lambda: evaluate.evaluate_sweep(cfg, out_dir, [shape_tag(s) for s in shapes]), "eval"),
        Stage("plots", lambda: plots.plot_sweep(out_dir), "plots", always=True),
        Stage("report", lambda: report.write_sweep_report(out_dir), "report.md", always=True),
    ]


# ---- running them, resumably ----------------------------------------------------------------------------------
def run_stages(cfg: Config, run_dir, stages: list[Stage], start: str | None = None) -> dict:
    """Run stages in order into run_dir, skipping those already finished; start = rerun from that stage on.
    Returns the log written to run_dir/pipeline.json: the config and each stage's wall time."""
    run_dir = Path(run_dir)
    names = [s.name for s in stages]
    if start is not None and start not in names:
        raise UserError(f"--from {start}: unknown stage; stages: {', '.join(names)}")
    log_path = run_dir / "pipeline.json"
    log = json.loads(log_path.read_text()) if log_path.is_file() else {"stages": {}}
    config = dataclasses.asdict(cfg)
    changed = sorted(_diff(log.get("config", config), config))
    if start is None and changed:
        raise UserError(f"{run_dir} was made with other settings ({', '.join(changed)} differ): resume it with "
                        f"the same --preset/--set, rerun the stages that change with --from STAGE, or use "
                        f"another --out")
    log["config"], log["machine"] = config, machine(cfg)
    if start is not None:
        for s in stages[names.index(start):]:
            if s.output:
                path = run_dir / s.output
                shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
            log["stages"].pop(s.name, None)
    run_dir.mkdir(parents=True, exist_ok=True)
    for s in stages:
        if not s.always and s.name in log["stages"] and (run_dir / s.output).exists():
            print(f"[{s.name}] finished before ({log['stages'][s.name]['seconds']:.0f} s): skipped")
            continue
        print(f"[{s.name}] ...")
        t0 = time.time()
        s.run()
        log["stages"][s.name] = {"seconds": round(time.time() - t0, 1)}
        write_json(log_path, log)
        print(f"[{s.name}] done in {time.time() - t0:.0f} s")
    return log


def machine(cfg: Config) -> str:
    """Where the run's wall times were measured, for the report."""
    import os
    import platform

    import torch

    dev = pick_device(cfg.device or None)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or platform.machine()
    return (f"{name} ({dev.type}), {os.cpu_count()} CPU cores, {torch.get_num_threads()} torch threads, "
            f"torch {torch.__version__}, {platform.system()}")


def _diff(old: dict, new: dict, prefix: str = "") -> list[str]:
    """The settings that differ, as section.key; the device may change between runs (same numbers on CPU)."""
    out = []
    for k in (set(old) | set(new)) - {"device"}:
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _diff(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k}")
    return out


def run(cfg: Config, run_dir, start: str | None = None) -> dict:
    return run_stages(cfg, run_dir, recipe(cfg, Path(run_dir)), start)


def sweep(cfg: Config, out_dir, start: str | None = None) -> dict:
    return run_stages(cfg, out_dir, sweep_recipe(cfg, Path(out_dir)), start)
