"""The whole recipe in one command, resumable: `minigpt-rlhf run --preset quick [--out runs/NAME]
[--from STAGE]`.

The stages and their order are stages.recipe() (`minigpt-rlhf sweep`: stages.sweep()). Before
anything is written, the world stage checks the data and the settings against it, and the run
folder's checkpoints are checked against the settings (preflight.py); then the run takes the
folder's lock (runtime.run_lock: one run per folder). The pipeline records each stage it finished,
with its wall time, in run_dir/pipeline.json; a recorded stage whose output is still there is
skipped, so an interrupted run resumes where it stopped (a stage interrupted half-way resumes from
its own last checkpoint). `--from STAGE` deletes that stage's output and every later one's, then
reruns them. `run_step` runs one stage alone (`minigpt-rlhf sft`) after the same checks.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import multiprocessing
import os
import platform
import shutil
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

import torch
from tqdm import tqdm

from minigpt_rlhf import preflight, stages as recipes
from minigpt_rlhf.config import Config
from minigpt_rlhf.runtime import (
    UserError,
    pick_device,
    read_json,
    rebuild,
    run_lock,
    uses_bf16,
    workers,
    write_json,
)
from minigpt_rlhf.stages import Stage


def run_stage(stage: Stage, cfg: Config, run_dir: Path, sweep: bool = False) -> None:
    """One stage into run_dir: a step module's run(cfg, run_dir/NAME, **the folders it reads), or
    the world check, the evaluation, the plots or the report of the run (or of the sweep)."""
    from minigpt_rlhf import evaluate, plots, report

    c = stage.config(cfg)
    if stage.trains:
        module = importlib.import_module(f"minigpt_rlhf.{stage.step}")
        module.run(
            c,
            run_dir / stage.name,
            **{k: run_dir / v for k, v in stage.reads.items()},
            **stage.options,
        )
    elif stage.step == "world":
        print(preflight.check_world(c))
    elif stage.step == "evaluate":
        (evaluate.evaluate_sweep if sweep else evaluate.evaluate)(c, run_dir)
    elif stage.step == "plots":
        (plots.plot_sweep if sweep else plots.plot_run)(run_dir)
    elif stage.step == "report":
        (report.write_sweep_report if sweep else report.write_report)(run_dir)
    else:
        raise ValueError(f"stage {stage.name}: unknown step {stage.step!r}")


def run_stages(
    cfg: Config, run_dir, stages: list[Stage], start: str | None = None, sweep: bool = False
) -> dict:
    """Run stages in order into run_dir, skipping those already finished; start = rerun from that
    stage on. Returns the log written to run_dir/pipeline.json: the config, each stage's wall time
    and the whole invocation's (wall_seconds, with the load average at its end)."""
    run_dir = Path(run_dir)
    names = [s.name for s in stages]
    if start is not None and start not in names:
        raise UserError(f"--from {start}: unknown stage; stages: {', '.join(names)}")
    preflight.check_out(run_dir, "--out")
    if (
        cfg.pipeline.threads
    ):  # every stage, here or in a worker, with the same threads: the same numbers
        torch.set_num_threads(cfg.pipeline.threads)
    # the checks, before anything is written: a run that fails them leaves no folder and no
    # pipeline.json
    t0 = t_start = time.time()
    for s in stages:
        if s.step == "world":
            print(f"[{s.name}] ...")
            run_stage(s, cfg, run_dir, sweep)
    t_check = round(time.time() - t0, 1)
    log_path = run_dir / "pipeline.json"
    log = read_json(log_path, keys=("stages",)) if log_path.is_file() else {"stages": {}}
    if not isinstance(log["stages"], dict):
        raise UserError(
            f'{log_path} is not a pipeline log (its "stages" is no object): {rebuild(log_path)}'
        )
    config = dataclasses.asdict(cfg)
    changed = sorted(_diff(log.get("config", config), config))
    made = [s.name for s in stages if s.writes and (run_dir / s.writes).exists()]
    if start is None and changed and made:
        raise UserError(
            f"{run_dir} was made with other settings ({', '.join(changed)} differ) and holds their "
            f"output ({', '.join(made)}): resume it with the same --preset/--set, rerun the stages "
            f"that change with --from STAGE, or use another --out"
        )
    kept = (
        stages[: names.index(start)] if start is not None else stages
    )  # --from deletes the others
    preflight.check_checkpoints(cfg, run_dir, kept)
    preflight.check_outputs(run_dir, kept, log["stages"])

    with run_lock(run_dir):
        log["config"], log["machine"] = config, machine(cfg)
        if start is not None:
            for s in stages[names.index(start) :]:
                if s.writes:
                    path = run_dir / s.writes
                    shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
                log["stages"].pop(s.name, None)
        log["stages"].update({s.name: {"seconds": t_check} for s in stages if s.step == "world"})
        write_json(log_path, log)
        todo = []
        for s in stages:
            derived = (
                not s.trains and s.step != "evaluate"
            )  # cheap checks, plots, the report: every time
            if s.step == "world":
                continue  # run above, before the lock
            if not derived and s.name in log["stages"] and (run_dir / s.writes).exists():
                print(
                    f"[{s.name}] finished before ({log['stages'][s.name]['seconds']:.0f} s): "
                    f"skipped"
                )
                continue
            todo.append(s)

        def finished(s: Stage, seconds: float) -> None:
            log["stages"][s.name] = {"seconds": round(seconds, 1)}
            write_json(log_path, log)
            print(f"[{s.name}] done in {seconds:.0f} s")

        train = [s for s in todo if s.trains]
        if workers(cfg) > 1 and len(train) > 1:
            run_parallel(train, cfg, run_dir, sweep, finished)
        else:
            for s in train:
                print(f"[{s.name}] ...")
                t0 = time.time()
                run_stage(s, cfg, run_dir, sweep)
                finished(s, time.time() - t0)
        for s in todo:
            if not s.trains:
                print(f"[{s.name}] ...")
                t0 = time.time()
                run_stage(s, cfg, run_dir, sweep)
                finished(s, time.time() - t0)
        # this invocation's wall time, and how busy the machine was (other processes slow every
        # stage)
        log["wall_seconds"], log["load_average"] = (
            round(time.time() - t_start, 1),
            os.getloadavg()[:2],
        )
        seconds = {name: s["seconds"] for name, s in log["stages"].items()}
        log["critical_path"] = critical_path(stages, seconds)
        write_json(log_path, log)
        chain = log["critical_path"]
        print(
            f"wall time {log['wall_seconds'] / 60:.1f} min (load average "
            f"{log['load_average'][0]:.1f}); "
            f"critical path {chain['seconds'] / 60:.1f} min: {' → '.join(chain['stages'])}"
        )
    return log


def critical_path(stages: list[Stage], seconds: dict[str, float]) -> dict:
    """The longest chain of stages, by their wall times: what a machine with a core for every stage
    that can run at once would wait for. A training stage waits for the stages it reads; the others
    (the world check, the evaluation, the plots, the report) for every stage before them."""
    finish, chain = {}, {}
    for i, s in enumerate(stages):
        before = list(s.reads.values()) if s.trains else [t.name for t in stages[:i]]
        before = [b for b in before if b in finish]
        first = max(before, key=finish.get, default=None)
        finish[s.name] = seconds.get(s.name, 0.0) + (finish[first] if first else 0.0)
        chain[s.name] = (chain[first] if first else []) + [s.name]
    last = max(reversed(finish), key=finish.get)  # ties: the later stage, which waits for the other
    return {"seconds": round(finish[last], 1), "stages": [n for n in chain[last] if n in seconds]}


# ---- stages side by side -------------------------------------------------------------------------
def _in_worker(stage: Stage, cfg: Config, run_dir: Path, sweep: bool, log_file: Path) -> None:
    """A stage in a process of its own, with pipeline.threads torch threads, its output into
    log_file."""
    torch.set_num_threads(cfg.pipeline.threads or torch.get_num_threads())
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "a") as f, contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
        run_stage(stage, cfg, run_dir, sweep)


def run_parallel(stages: list[Stage], cfg: Config, run_dir: Path, sweep: bool, finished) -> None:
    """Run training stages in `workers(cfg)` processes, each as soon as the stages it reads are done
    (pretrain beside pretrain_large, the RL methods beside each other). Each stage seeds itself, so
    the numbers are those of running them one after another with the same threads. A stage's output
    goes to RUN/STAGE/log.txt; a failure stops the scheduling, lets the running stages finish, and
    is raised. Of the stages ready at once, those that more stages wait for go first, then those
    whose inputs were done last: reward_biased before the RL methods and ppo_biased as soon as it
    can, so that the last chain does not start last."""
    names = {s.name for s in stages}
    waits = {s.name: len(_waiting_for(s.name, stages)) for s in stages}
    pending, done, running = list(stages), {}, {}  # done: stage -> when it finished

    def priority(s: Stage):
        return waits[s.name], max((done[r] for r in s.reads.values() if r in done), default=0)

    ctx = multiprocessing.get_context(
        "spawn"
    )  # a fresh interpreter: no torch thread pool copied by fork
    with (
        ProcessPoolExecutor(workers(cfg), mp_context=ctx) as pool,
        tqdm(total=len(stages), desc="stages") as bar,
    ):
        while pending or running:
            ready = [
                s for s in pending if all(r not in names or r in done for r in s.reads.values())
            ]
            for s in sorted(ready, key=priority, reverse=True)[
                : workers(cfg) - len(running)
            ]:  # ties: in order
                pending.remove(s)
                log_file = run_dir / s.name / "log.txt"
                running[pool.submit(_in_worker, s, cfg, run_dir, sweep, log_file)] = (
                    s,
                    time.time(),
                )
                tqdm.write(f"[{s.name}] started (its progress: {log_file})")
            bar.set_postfix_str(", ".join(s.name for s, _ in running.values()))
            for future in wait(running, return_when=FIRST_COMPLETED).done:
                s, t0 = running.pop(future)
                if future.exception() is not None:
                    pending.clear()
                    for other in wait(running).done:
                        other.exception()
                    raise future.exception()
                done[s.name] = time.time()
                bar.update(1)
                finished(s, time.time() - t0)


def _waiting_for(name: str, stages: list[Stage]) -> set[str]:
    """The stages that read `name`'s folder, directly or through others."""
    out, todo = set(), [name]
    while todo:
        n = todo.pop()
        for s in stages:
            if n in s.reads.values() and s.name not in out:
                out.add(s.name)
                todo.append(s.name)
    return out


def run_step(cfg: Config, run_dir, name: str) -> None:
    """One stage of the recipe alone (`minigpt-rlhf sft`, `minigpt-rlhf evaluate`), after the checks
    the pipeline makes: the data and the settings, the stage's own checkpoints and those of the
    stages it starts from (there, finished, of this run's shape); then under the folder's lock."""
    stages = recipes.run_recipe(dataclasses.asdict(cfg.pipeline))
    by_name = {s.name: s for s in stages}
    if name not in by_name:  # a stage the preset leaves out (pipeline.large, biased, grpo)
        switch = {"pretrain_large": "large", "grpo": "grpo"}.get(name, "biased")
        raise UserError(
            f"stage {name!r} is not in the {cfg.preset} recipe: add it with --set "
            f"pipeline.{switch}=true, or use --preset balanced"
        )
    stage, run_dir = by_name[name], Path(run_dir)
    preflight.check_out(run_dir, "--run-dir")
    if cfg.pipeline.threads:  # as `run` runs it: the same threads, the same numbers
        torch.set_num_threads(cfg.pipeline.threads)
    print(preflight.check_world(cfg))
    if (
        stage.step == "evaluate"
    ):  # every model of the run, where it is there (evaluate names a missing one)
        log_path = (
            run_dir / "pipeline.json"
        )  # results labelled with this run's seed must be measured with it
        log = read_json(log_path) if log_path.is_file() else {}
        made = log.get("config") if isinstance(log, dict) else None
        changed = sorted(_diff(made, dataclasses.asdict(cfg))) if isinstance(made, dict) else []
        unknown = [k for k in changed if _get(made, k) is None]  # settings newer than the folder
        if unknown:
            raise UserError(
                f"{run_dir} was made by an older version of minigpt-rlhf, which had no "
                f"{', '.join(unknown)} setting: rerun it "
                f"(`minigpt-rlhf run --out {run_dir} --from pretrain`)"
            )
        if changed:
            sets = " ".join(f"--set {k}={_get(made, k)}" for k in changed if k != "preset")
            raise UserError(
                f"{run_dir} was made with other settings than these ({', '.join(changed)}): "
                f"evaluate "
                f"it with its own, --preset {made.get('preset')} {sets}".rstrip()
            )
        preflight.check_checkpoints(cfg, run_dir, recipes.training(stages))
        preflight.check_outputs(run_dir, stages)
    else:
        reads = [
            by_name[src] for param, src in stage.reads.items() if param != "responses"
        ]  # responses: a file
        preflight.check_checkpoints(cfg, run_dir, [stage], needed=reads)
        preflight.check_outputs(run_dir, [stage])
    with run_lock(run_dir):
        run_stage(stage, cfg, run_dir)


def machine(cfg: Config) -> str:
    """Where the run's wall times were measured, for the report."""
    dev = pick_device(cfg.device or None)
    name = (
        torch.cuda.get_device_name(dev)
        if dev.type == "cuda"
        else platform.processor() or platform.machine()
    )
    bf16 = uses_bf16(dev, cfg.precision)
    return (
        f"{name} ({dev.type}), {os.cpu_count()} CPU cores, {torch.get_num_threads()} torch "
        f"threads, {'bf16' if bf16 else 'fp32'} in the supervised stages, torch "
        f"{torch.__version__}, {platform.system()}"
    )


def _get(config: dict, key: str):
    """config's value of a dotted section.key."""
    for part in key.split("."):
        config = config.get(part) if isinstance(config, dict) else None
    return config


def _diff(old: dict, new: dict, prefix: str = "") -> list[str]:
    """The settings that differ, as section.key; the device may change between runs (same numbers on
    CPU)."""
    out = []
    for k in (set(old) | set(new)) - {"device"}:
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _diff(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k}")
    return out


def run(cfg: Config, run_dir, start: str | None = None) -> dict:
    return run_stages(cfg, run_dir, recipes.run_recipe(dataclasses.asdict(cfg.pipeline)), start)


def sweep(cfg: Config, out_dir, start: str | None = None) -> dict:
    return run_stages(cfg, out_dir, recipes.sweep(cfg), start, sweep=True)


def seeds(cfg: Config, out_dir, seed_list: list[int], start: str | None = None) -> Path:
    """The recipe once per seed, into out_dir/seed_N (each resumable), then out_dir/report.md: every
    finding's verdict per seed."""
    from minigpt_rlhf import report

    for seed in seed_list:
        print(f"==== seed {seed} ====")
        run(dataclasses.replace(cfg, seed=seed), Path(out_dir) / f"seed_{seed}", start)
    return report.write_seeds_report(out_dir)


def curve(
    cfg: Config, out_dir, seed_list: list[int], cares: list[float], start: str | None = None
) -> Path:
    """When does RLHF beat SFT? The recipe on worlds whose demonstrators write with each writing
    care (out_dir/data_care_C: the same prompts and corpus, other demonstrations), seed_list each,
    into out_dir/care_C/seed_N; then out_dir/report.md. Pretraining reads no demonstration, so a
    seed's base models are trained once, at the first care, and copied to the others."""
    from minigpt_rlhf import report, world

    out_dir = Path(out_dir)
    stages = recipes.run_recipe(dataclasses.asdict(cfg.pipeline))
    base = [s.writes for s in stages[: [s.name for s in stages].index("sft")] if s.writes]
    for care in cares:
        data = out_dir / f"data_care_{care:g}"
        if not (data / "README.md").is_file():
            world.generate(data, seed=0, care=care)
        for seed in seed_list:
            print(f"==== writing care {care:g}, seed {seed} ====")
            run_dir = out_dir / f"care_{care:g}" / f"seed_{seed}"
            first = out_dir / f"care_{cares[0]:g}" / f"seed_{seed}"
            at = start
            if run_dir != first and not run_dir.exists() and (first / "pretrain").is_dir():
                for folder in base:  # the base models: pretrain (and pretrain_large)
                    shutil.copytree(first / folder, run_dir / folder)
                shutil.copy(first / "pipeline.json", run_dir / "pipeline.json")
                at = start or "sft"  # the copied log's settings name the first world's data
            run(dataclasses.replace(cfg, seed=seed, data_dir=str(data)), run_dir, at)
    return report.write_curve_report(out_dir)
