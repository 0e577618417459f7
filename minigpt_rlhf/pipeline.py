"""The whole recipe in one command, resumable: `minigpt-rlhf run --preset quick [--out runs/NAME] [--from STAGE]`.

The stages and their order are stages.recipe() (`minigpt-rlhf sweep`: stages.sweep()). The pipeline records
each stage it finished, with its wall time, in run_dir/pipeline.json; a recorded stage whose output is still
there is skipped, so an interrupted run resumes where it stopped (a stage interrupted half-way resumes from its
own last checkpoint). `--from STAGE` deletes that stage's output and every later one's, then reruns them.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import platform
import shutil
import time
from pathlib import Path

import torch

from minigpt_rlhf import stages as recipes
from minigpt_rlhf.config import Config
from minigpt_rlhf.runtime import UserError, pick_device, write_json
from minigpt_rlhf.stages import Stage


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


def run_stage(stage: Stage, cfg: Config, run_dir: Path, sweep: bool = False) -> None:
    """One stage into run_dir: a step module's run(cfg, run_dir/NAME, **the folders it reads), or the world check,
    the evaluation, the plots or the report of the run (or of the sweep)."""
    from minigpt_rlhf import evaluate, plots, report

    c = stage.config(cfg)
    if stage.trains:
        module = importlib.import_module(f"minigpt_rlhf.{stage.step}")
        module.run(c, run_dir / stage.name, **{k: run_dir / v for k, v in stage.reads.items()}, **stage.options)
    elif stage.step == "world":
        check_world(c)
    elif stage.step == "evaluate":
        (evaluate.evaluate_sweep if sweep else evaluate.evaluate)(c, run_dir)
    elif stage.step == "plots":
        (plots.plot_sweep if sweep else plots.plot_run)(run_dir)
    elif stage.step == "report":
        (report.write_sweep_report if sweep else report.write_report)(run_dir)
    else:
        raise ValueError(f"stage {stage.name}: unknown step {stage.step!r}")


def run_stages(cfg: Config, run_dir, stages: list[Stage], start: str | None = None, sweep: bool = False) -> dict:
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
            if s.writes:
                path = run_dir / s.writes
                shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
            log["stages"].pop(s.name, None)
    run_dir.mkdir(parents=True, exist_ok=True)
    for s in stages:
        derived = not s.trains and s.step != "evaluate"  # cheap checks, plots, the report: every time
        if not derived and s.name in log["stages"] and (run_dir / s.writes).exists():
            print(f"[{s.name}] finished before ({log['stages'][s.name]['seconds']:.0f} s): skipped")
            continue
        print(f"[{s.name}] ...")
        t0 = time.time()
        run_stage(s, cfg, run_dir, sweep)
        log["stages"][s.name] = {"seconds": round(time.time() - t0, 1)}
        write_json(log_path, log)
        print(f"[{s.name}] done in {time.time() - t0:.0f} s")
    return log


def machine(cfg: Config) -> str:
    """Where the run's wall times were measured, for the report."""
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
    return run_stages(cfg, run_dir, recipes.recipe(cfg.pipeline.biased), start)


def sweep(cfg: Config, out_dir, start: str | None = None) -> dict:
    return run_stages(cfg, out_dir, recipes.sweep(cfg), start, sweep=True)
