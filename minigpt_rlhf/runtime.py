"""What every stage needs and no stage owns: device and seeding, autocast, atomic checkpoints and
the models they hold, the metrics log and atomic JSON files, the lock on a run folder, and the
errors a user can fix."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import math
import os
import random
import socket
import sys
import time
from pathlib import Path

import numpy as np
import torch

from minigpt_rlhf.model import GPT, GPTConfig, RewardModel
from minigpt_rlhf.tokenizer import Tokenizer


class UserError(Exception):
    """Bad input the user can fix (a flag, a file, a checkpoint). The CLI prints the message, no
    traceback."""


# ---- device, seeds, precision --------------------------------------------------------------------
def pick_device(name: str | None = None) -> torch.device:
    """cuda > mps > cpu, unless a device is named ("cpu", "cuda", "cuda:1", "mps")."""
    if name:
        try:
            dev = torch.device(name)
        except RuntimeError:
            raise UserError(
                f"--device {name!r} is not a device: use cpu, cuda, cuda:N or mps"
            ) from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise UserError(f"--device {name}: CUDA is not available here; use --device cpu")
        if dev.type == "mps" and not torch.backends.mps.is_available():
            raise UserError(f"--device {name}: MPS is not available here; use --device cpu")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def workers(cfg) -> int:
    """How many processes a run may keep busy: pipeline.workers, or (0) one per CPU core on a CPU
    and one on a GPU. The pipeline runs that many training stages at once; the evaluation samples
    its baselines beside its contenders when it may use two."""
    if cfg.pipeline.workers:
        return cfg.pipeline.workers
    return 1 if pick_device(cfg.device or None).type != "cpu" else max(1, os.cpu_count() or 1)


def setup(seed: int, device: str | None = None, precision: str = "auto") -> torch.device:
    """Seed everything, pick the device, choose what `autocast` does in this process (precision:
    "auto", "bf16" or "fp32"), and flush subnormal floats to zero on CPU: tiny gradients in the
    backward pass were measured to slow small-model training on a 2-core CPU by 17% up to 35x."""
    global _precision
    torch.set_flush_denormal(True)
    seed_everything(seed)
    dev = pick_device(device)
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    _precision = precision
    return dev


@functools.cache
def native_bf16(device_type: str) -> bool:
    """Whether the device multiplies bfloat16 matrices in hardware: a CUDA GPU that supports it, or
    a CPU with AVX512-BF16 or AMX (without them a bf16 matrix product is slower than fp32). MPS
    stays in fp32."""
    if device_type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device_type == "cpu":
        checks = (
            "_is_avx512_bf16_supported",
            "_is_amx_tile_supported",
        )  # torch.cpu's, private but stable
        return any(getattr(torch.cpu, f, lambda: False)() for f in checks)
    return False


_precision = (
    "auto"  # set by setup() from the run's `precision`: what autocast() does in this process
)


def autocast(device: torch.device):
    """Mixed precision where `setup` chose it: matrix products in bfloat16; weights, optimizer
    states, softmaxes, losses and layer norms in float32 (torch's autocast rules); elsewhere plain
    float32. On the 2-core CPU (AVX512-BF16) a quick training step took 0.081 s in bf16 against
    0.161 s in fp32, with attention kept in float32 there (see CausalSelfAttention;
    docs/experiments/bf16_step.py)."""
    return (
        torch.autocast(device.type, dtype=torch.bfloat16)
        if uses_bf16(device)
        else contextlib.nullcontext()
    )


def uses_bf16(device: torch.device, precision: str | None = None) -> bool:
    """Whether autocast(device) runs matrix products in bfloat16 under `precision` (default: this
    process's, as `setup` set it): "bf16", or "auto" where the device has bf16 in hardware; never on
    MPS."""
    precision = precision or _precision
    if device.type not in ("cuda", "cpu"):
        return False
    return precision == "bf16" or (precision == "auto" and native_bf16(device.type))


# ---- checkpoints ---------------------------------------------------------------------------------
def save_checkpoint(path, kind: str, **payload) -> Path:
    """Write {kind, **payload} to path atomically: a temporary file in the same folder, then a
    rename, so an interrupted save (Ctrl-C, full disk) leaves the previous checkpoint intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        torch.save({"kind": kind, **payload}, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


GENERATORS = (
    "pretrain",
    "sft",
    "ppo",
)  # the kinds of checkpoint that hold a model which writes text
_NEEDS = {
    "reward": ("head",)
}  # what a kind holds beyond every model checkpoint's model_config, model, tokenizer


def load_checkpoint(path, kind: str | tuple[str, ...] | None = None, map_location="cpu") -> dict:
    """Load a checkpoint with weights_only=True (a checkpoint can never run code) and check its kind
    and that it holds what a checkpoint of that kind holds."""
    path = Path(path)
    if not path.is_file():
        raise UserError(
            f"checkpoint {path} does not exist: run the stage that writes it first "
            f"(see `minigpt-rlhf --help`) or pass the right path"
        )
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    # BLE001: any exception; a text file, a truncated file, a pickle that would run code: all
    # refused
    except Exception as e:  # noqa: BLE001
        raise UserError(
            f"checkpoint {path} is corrupt or not a checkpoint ({type(e).__name__}): delete it and "
            f"rerun the stage that writes it, or pass the right path"
        ) from None
    if not isinstance(ckpt, dict) or "kind" not in ckpt:
        raise UserError(
            f"{path} is not a minigpt-rlhf checkpoint: delete it and rerun the stage that writes it"
        )
    kinds = (kind,) if isinstance(kind, str) else kind
    if kinds and ckpt["kind"] not in kinds:
        writes = ckpt["kind"] == "reward" and tuple(kinds) == GENERATORS  # sample, chat
        hint = " (a reward model scores text; it does not write it)" if writes else ""
        raise UserError(
            f"{path} is a {ckpt['kind']!r} checkpoint, but a {' or '.join(map(repr, kinds))} "
            f"checkpoint is needed here{hint}: pass the right --ckpt / run folder"
        )
    missing = [
        k
        for k in ("model_config", "model", "tokenizer", *_NEEDS.get(ckpt["kind"], ()))
        if k not in ckpt
    ]
    if missing:
        raise UserError(
            f"{path} lacks {', '.join(missing)}: it is not a complete {ckpt['kind']!r} checkpoint; "
            f"delete it and rerun the stage that writes it"
        )
    try:
        vocab = tokenizer_from(ckpt).vocab_size
    except (KeyError, TypeError, ValueError, IndexError) as e:
        raise UserError(
            f"{path}: its tokenizer is damaged ({type(e).__name__}: {e}); delete it "
            f"and rerun the stage that writes it"
        ) from None
    config = ckpt["model_config"]
    have = config.get("vocab_size") if isinstance(config, dict) else None
    if have != vocab:
        raise UserError(
            f"{path}: its model has a vocabulary of {have} tokens, its tokenizer "
            f"{vocab}: the model cannot read that tokenizer's ids; delete it and rerun "
            f"the stage that writes it"
        )
    return ckpt


SHAPE = (
    "n_layer",
    "n_head",
    "n_embd",
    "block_size",
)  # what makes two GPTs the same model (not dropout)


def shape_of(model_config) -> str:
    c = model_config if isinstance(model_config, dict) else dataclasses.asdict(model_config)
    return (
        f"{c.get('n_layer')}x{c.get('n_head')}x{c.get('n_embd')}, block_size {c.get('block_size')}"
    )


def check_shape(ckpt: dict, expected: GPTConfig, path) -> None:
    """A checkpoint about to be resumed or used by a stage holds a model of the shape that stage's
    settings make: a checkpoint of another size (copied in, or made with other --set model.*) would
    be trained on or compared as if it were this one."""
    have = {k: ckpt["model_config"].get(k) for k in SHAPE}
    if have != {k: getattr(expected, k) for k in SHAPE}:
        raise UserError(
            f"{path} holds a model of {shape_of(have)} (n_layer x n_head x n_embd), but these "
            f"settings make one of {shape_of(expected)}: it was made with other settings or copied "
            f"from another run; delete it to train it again, or use the settings it was made with"
        )


def build_model(ckpt: dict, device="cpu") -> GPT:
    """The GPT stored in a checkpoint (its config, then its weights), on device."""
    try:
        model = GPT(GPTConfig(**ckpt["model_config"]))
        model.load_state_dict(ckpt["model"])
    except (RuntimeError, TypeError, AssertionError) as e:
        raise UserError(
            f"checkpoint weights do not fit their model config ({str(e).splitlines()[0]}): the "
            f"file was written by another version; rerun the stage"
        ) from None
    return model.to(device)


def count_params(model_config: dict) -> int:
    """N of a checkpoint's GPT (`GPT.num_params`) from its shape alone: built on the meta device,
    which takes no memory and draws no random numbers."""
    with torch.device("meta"):
        return GPT(GPTConfig(**model_config)).num_params()


def tokenizer_from(ckpt: dict) -> Tokenizer:
    return Tokenizer.from_state_dict(ckpt["tokenizer"])


def build_reward_model(ckpt: dict, device="cpu") -> RewardModel:
    """The reward model of a "reward" checkpoint (the trunk like any GPT checkpoint, plus `head`),
    in eval mode, with its own tokenizer's pad id."""
    rm = RewardModel(build_model(ckpt), tokenizer_from(ckpt).pad_id)
    rm.head.load_state_dict(ckpt["head"])
    return rm.to(device).eval()


def load_reward_model(path, device="cpu") -> RewardModel:
    return build_reward_model(load_checkpoint(path, "reward"), device)


# ---- metrics and guards --------------------------------------------------------------------------
class MetricsLogger:
    """Appends one JSON object per logged step to metrics.jsonl; plots are drawn from these
    files."""

    def __init__(self, path, fresh: bool = False):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if fresh:
            self.path.unlink(missing_ok=True)
        self.t0 = time.time()

    def log(self, **metrics) -> dict:
        row = {
            k: (float(v) if isinstance(v, (np.floating, torch.Tensor)) else v)
            for k, v in metrics.items()
        }
        row["time"] = round(time.time() - self.t0, 3)
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")
        return row

    def truncate(self, key: str, upto) -> None:
        """Drop rows logged after a checkpoint (row[key] > upto), so a resumed run does not repeat
        them."""
        rows = (
            [r for r in read_metrics(self.path) if r.get(key, upto) <= upto]
            if self.path.exists()
            else []
        )
        write_text(self.path, "".join(json.dumps(r) + "\n" for r in rows))


# the keys of eval/results.json and eval/sweep.json (evaluate.py writes them) that the report and
# the plots read
RESULTS = (
    "preset",
    "seed",
    "config",
    "n_prompts",
    "reference",
    "models",
    "head_to_head",
    "compute",
    "examples",
)
SWEEP = ("preset", "seed", "reference", "rows")


def read_json(path, fix: str | None = None, keys: tuple[str, ...] = ()):
    """A JSON file (with `keys`, if given, it must be an object holding them), or a UserError naming
    it, the line and the fix (by default the command that writes it again, `rebuild`)."""
    path = Path(path)
    fix = fix or rebuild(path)
    try:
        obj = json.loads(_text(path, fix))
    except json.JSONDecodeError as e:
        raise UserError(
            f"{path}, line {e.lineno}: not valid JSON (cut short or edited: {_at(e)}); {fix}"
        ) from None
    missing = [k for k in keys if not isinstance(obj, dict) or k not in obj]
    if missing:
        raise UserError(f"{path} is damaged: it holds no {missing[0]!r}; {fix}")
    return obj


def write_json(path, obj) -> Path:
    return write_text(path, json.dumps(obj, indent=1))


def write_text(path, text: str) -> Path:
    """Atomically (temporary file, then rename): an interrupted write never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return path


def read_jsonl(path, fix: str | None = None) -> list[tuple[int, dict]]:
    """(line number, object) of each non-blank line of a JSON-lines file, or a UserError naming the
    file, the line and the fix (by default the command that writes it again, `rebuild`)."""
    path = Path(path)
    fix = fix or rebuild(path)
    rows = []
    for n, line in enumerate(_text(path, fix).splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(f"{path}, line {n}: not valid JSON ({_at(e)}); {fix}") from None
        if not isinstance(row, dict):
            raise UserError(f"{path}, line {n}: not a JSON object ({line.strip()[:20]!r}); {fix}")
        rows.append((n, row))
    return rows


def _at(e: json.JSONDecodeError) -> str:
    """ "Unterminated string starting at column 13": json's message, where it is."""
    return f"{e.msg.removesuffix(' at')} at column {e.colno}"


def _text(path: Path, fix: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise UserError(
            f"{path}: byte {e.start} is not UTF-8 text (the file is damaged); {fix}"
        ) from None
    except OSError as e:
        raise UserError(f"{path} cannot be read ({e.strerror}); {fix}") from None


def rebuild(path) -> str:
    """How to write a file of a run folder again, with the preset and seed the folder was made
    with (as its pipeline.json says): eval/results.json by `evaluate`, eval/sweep.json by `sweep
    --from evaluate`, pipeline.json by rerunning, a stage's own file by `--from STAGE`."""
    path = Path(path)
    run_dir = path.parent if path.name == "pipeline.json" else path.parent.parent
    try:  # the preset and the seed (`seeds` varies it) the folder was made with: pipeline.json's
        made = json.loads((run_dir / "pipeline.json").read_text())["config"]
        preset, seed, sets = made["preset"], f" --set seed={int(made['seed'])}", "any other --set"
    except (OSError, ValueError, KeyError, TypeError):
        preset, seed, sets = "PRESET", "", "the preset and any --set"
    step = "sweep" if is_sweep(run_dir) else "run"
    run = f"minigpt-rlhf {step} --preset {preset}{seed} --out {run_dir}"
    if path.name == "pipeline.json":
        return (
            f"delete it (the stages' checkpoints are kept) and rerun `{run}` with {sets} it "
            f"was made with"
        )
    if path.parent.name != "eval":
        return (
            f"rebuild it with `{run} --from {path.parent.name}` and {sets} it was made with "
            f"(it retrains that stage and those after it)"
        )
    if is_sweep(run_dir):
        return f"rebuild it with `{run} --from evaluate` and {sets} it was made with"
    return (
        f"rebuild it with `minigpt-rlhf evaluate --preset {preset}{seed} --run-dir {run_dir}`, "
        f"then `minigpt-rlhf plot {run_dir}` and `minigpt-rlhf report {run_dir}`"
    )


def is_sweep(run_dir) -> bool:
    """A `sweep` folder has one pretrain_LxHxC stage per size; a `run` folder has pretrain and
    pretrain_large."""
    return any(Path(run_dir).glob("pretrain_*x*x*"))


def read_metrics(path) -> list[dict]:
    """A stage's metrics.jsonl, one dict per logged step."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} does not exist: run the stage that writes it first")
    return [row for _, row in read_jsonl(path, f"delete the line, or {rebuild(path)}")]


class NonFiniteError(UserError):
    """Training produced NaN or inf; the last good checkpoint is kept."""


def check_finite(value, step: int, what: str = "loss") -> None:
    v = float(value)
    if not math.isfinite(v):
        raise NonFiniteError(
            f"{what} became {v} at step {step}: stopped, the last good checkpoint is kept; "
            f"lower the learning rate (--set STAGE.lr=...) or check the data"
        )


# ---- one run per folder --------------------------------------------------------------------------
LOCK = "run.lock"


@contextlib.contextmanager
def run_lock(run_dir):
    """Hold run_dir for this process while it runs stages: a second process that tries gets an error
    naming the first (two runs in one folder would interleave their metrics and checkpoints). The
    lock is a file holding the owner's pid, put in place whole and atomically (a hard link fails if
    the name exists, so of two processes one wins); it is removed on exit, on Ctrl-C and on errors,
    and one left by a process that no longer runs (kill -9, a crash) is taken over. Under torchrun,
    rank 0 holds it for every rank. Folders this call created are removed again if nothing was
    written into them."""
    if int(os.environ.get("RANK", "0")) > 0:
        yield
        return
    run_dir = Path(run_dir)
    new = [
        d for d in (run_dir, *run_dir.parents) if not d.exists()
    ]  # the folders mkdir will create, deepest first
    path, me = (
        run_dir / LOCK,
        dict(
            pid=os.getpid(),
            host=socket.gethostname(),
            command=" ".join(sys.argv),
            started=time.strftime("%Y-%m-%d %H:%M:%S"),
            time=time.time(),
        ),
    )
    mine = run_dir / f"{LOCK}.{os.getpid()}"
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        mine.write_text(json.dumps(me))
        try:
            while True:
                try:
                    os.link(mine, path)
                    break
                except FileExistsError:
                    owner = _lock_owner(path)
                    if owner and _alive(owner):
                        raise UserError(
                            f"{run_dir} is in use by process {owner['pid']} "
                            f"({owner.get('command', '?')}, on {owner.get('host', '?')} since "
                            f"{owner.get('started', '?')}): wait for it to end or stop it, or use "
                            f"another --out / --run-dir; if no such process runs, delete {path}"
                        ) from None
                    print(
                        f"{run_dir}: taking over the lock of process "
                        f"{owner['pid'] if owner else '?'}, which no longer runs"
                    )
                    path.unlink(missing_ok=True)
        finally:
            mine.unlink(missing_ok=True)
    except OSError as e:
        _remove_empty(new)
        raise UserError(
            f"cannot write to the run folder {run_dir} ({e.strerror}): choose another --out / "
            f"--run-dir"
        ) from None
    except UserError:
        _remove_empty(new)
        raise
    try:
        yield
    finally:
        if _lock_owner(path) == me:
            path.unlink(missing_ok=True)
        _remove_empty(new)


def _remove_empty(folders: list[Path]) -> None:
    """Remove the folders a failed start created (deepest first), as long as they are still
    empty."""
    for d in folders:
        if d.is_dir() and not any(d.iterdir()):
            d.rmdir()


def _lock_owner(path: Path) -> dict | None:
    try:
        owner = json.loads(path.read_text())
        return owner if isinstance(owner, dict) and isinstance(owner.get("pid"), int) else None
    except (OSError, ValueError):
        return None  # unreadable or half written: a process that died while writing it


def _alive(owner: dict) -> bool:
    """Does the lock's process still run? A lock from another machine (a shared disk) cannot be
    checked: held."""
    if owner.get("host") != socket.gethostname():
        return True
    if owner["pid"] == os.getpid():
        # our own pid in an old lock: a previous process that had it (containers reuse pids)
        return False
    try:
        os.kill(owner["pid"], 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, run by another user
    stat = _stat(owner["pid"])
    if stat is None:
        return True  # no /proc (not Linux): it exists
    # killed or ended but not yet reaped by its parent (a zombie): the pid exists, nothing runs
    if stat[0] in ("Z", "X"):
        return False
    # a process that began well after the lock was written has the dead owner's pid (reused)
    return _started(stat) < owner.get("time", math.inf) + 60


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the process's name (which may hold spaces), or None."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _started(stat: list[str]) -> float:
    """When the process began, in seconds since the epoch: its starttime (field 22, clock ticks
    after boot) after the boot time in /proc/stat; -inf where that cannot be read."""
    try:
        boot = next(
            int(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
        return boot + int(stat[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return -math.inf


# ---- speed ---------------------------------------------------------------------------------------
def measure_matmul_flops(
    device: torch.device, n: int = 1024, dtype=torch.float32, seconds: float = 1.0
) -> float:
    """This machine's achievable matmul FLOP/s: the fastest of timed n×n @ n×n products (2n³ FLOPs
    each), after a warm-up. The fastest, not the median: on a shared CPU other processes slow most
    products, and a peak measured from them would let MFU exceed 100%. MFU is reported against this,
    not a datasheet number."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(3):
        a @ b
    sync()
    times, t_end = [], time.perf_counter() + seconds
    while time.perf_counter() < t_end or len(times) < 5:
        t = time.perf_counter()
        a @ b
        sync()
        times.append(time.perf_counter() - t)
    return 2 * n**3 / min(times)


def mfu(tokens_per_s: float, flops_per_token: float, peak_flops: float) -> float:
    """Model FLOPs utilisation: the FLOP/s the model's arithmetic needs at this speed, over the
    peak."""
    return tokens_per_s * flops_per_token / peak_flops
