"""Bad input, typed as a new user would: each case exits with status 2 and one line on stderr that names the flag,
file or value and the fix, with no traceback, before any work: the folder it ran in holds exactly what it held
before (no run folder, no pipeline.json, no half-written file, nothing modified). Then the run folder's lock: a
live process holding it is named, a dead one's lock is taken over, and the lock goes on errors and Ctrl-C."""

import dataclasses
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from minigpt_rlhf.cli import main
from minigpt_rlhf.config import load_config, ranges
from minigpt_rlhf.model import GPT
from minigpt_rlhf.runtime import LOCK, RESULTS, run_lock, save_checkpoint
from minigpt_rlhf.stages import recipe, training
from minigpt_rlhf.tokenizer import Tokenizer

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
MICRO = ["--preset", "micro", "--device", "cpu", "--set", f"data_dir={DATA}"]
TOK = Tokenizer.load(DATA)  # the world's, as every checkpoint of a run holds it


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    """Every case runs in its own empty folder, so that a default path (runs/micro) would land where it is seen."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def listing(root: Path) -> dict:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) if p.is_file() else "dir"
            for p in sorted(root.rglob("*"))}


@pytest.fixture
def refused(capsys):
    """refused(argv, *names): main(argv) exits 2 with one line on stderr holding every one of names, no traceback,
    and the folder it ran in is as it was."""

    def check(argv, *names) -> str:
        root = Path.cwd()
        before = listing(root)
        code = main([str(a) for a in argv])
        err = capsys.readouterr().err
        assert code == 2, err
        assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
        for name in names:
            assert name in err, f"{name!r} not in {err!r}"
        assert listing(root) == before, "the command left files behind or changed some"
        return err

    return check


def checkpoint(path, kind="pretrain", finished=True, drop=(), tokenizer=None, **shape) -> Path:
    """A checkpoint of the micro model's shape (or another), untrained: what a stage would have written."""
    mc = dataclasses.replace(load_config("micro").model, **{"vocab_size": TOK.vocab_size, **shape})
    payload = dict(model_config=dataclasses.asdict(mc), model=GPT(mc).state_dict(),
                   tokenizer=tokenizer or TOK.state_dict(), step=3, finished=finished)
    if kind == "reward":
        payload["head"] = torch.nn.Linear(mc.n_embd, 1).state_dict()
    return save_checkpoint(path, kind, **{k: v for k, v in payload.items() if k not in drop})


# ---- settings: checked when the config is made -----------------------------------------------------------------------
SETTINGS = [
    ("pretrain.lr=-1", "pretrain.lr=-1.0", "must be > 0", "--set pretrain.lr="),
    ("pretrain.batch_size=0", "pretrain.batch_size=0", "must be >= 1"),
    ("pretrain.steps=0", "pretrain.steps=0", "must be >= 1"),
    ("ppo.lr=-1", "ppo.lr=-1.0", "must be > 0"),
    ("pretrain.lr=nan", "pretrain.lr=nan", "must be > 0"),
    ("max_new_tokens=0", "max_new_tokens=0", "--set max_new_tokens="),
    ("eval.confidence=1.5", "eval.confidence=1.5", "in (0, 1)"),
    ("sft.dropout=1", "sft.dropout=1.0", "in [0, 1)"),
    ("model.n_embd=33", "model.n_embd=33", "model.n_head=2", "divisible"),
    # what the architecture needs: rotary embeddings turn a head's channels in pairs (model.rotate)
    ("model.n_embd=30", "model.n_embd=30 / model.n_head=2", "heads of 15 channels",
     "--set model.n_embd=32"),
    ("pipeline.large_model=2x2x30", "pipeline.large_model='2x2x30'", "15 channels", "2x2x32"),
    ("sft.min_lr=1", "sft.min_lr=1.0", "sft.lr=0.003"),
    ("reward.k_min=7", "reward.k_min=7", "reward.k_max=6"),
    ("ppo.minibatch=100", "ppo.minibatch=100", "ppo.rollout_batch=8"),
    ("pretrain.seq_len=1000", "pretrain.seq_len=1000", "model.block_size=128"),
    ("pretrain.warmup=400", "pretrain.warmup=400", "pretrain.steps"),
    ("reward.temperatures=0.7,hot", "reward.temperatures='0.7,hot'", "positive numbers"),
    ("pipeline.large_model=2x5x48", "pipeline.large_model='2x5x48'", "divisible by n_head"),
    ("pipeline.sweep_sizes=1x2x16", "pipeline.sweep_sizes='1x2x16'", "at least three sizes"),
    ("pretrain.steps=1.5", "pretrain.steps=1.5", "expected a value of type int"),
    ("pretrain.stepz=3", "pretrain.stepz", "valid keys here"),
    ("lr", "--set 'lr'", "expected key=value"),
    # the settings against the data (preflight.check_world): found before the first stage, not after both pretrainings
    ("model.block_size=40 pretrain.seq_len=32", "model.block_size=40", "prompts_sft.jsonl, line 1988",
     "--set model.block_size=57"),
    ("model.block_size=58 pretrain.seq_len=32", "model.block_size=58", "demonstrations.jsonl, line 915"),
    ("reward.n_prompts=5000", "reward.n_prompts=5000", "RM-split prompts"),
    ("sft.heldout_prompts=3000", "sft.heldout_prompts=3000", "--set sft.heldout_prompts"),
    ("sft.grad_accum=400", "sft.grad_accum=400", "lower --set sft.grad_accum"),
]


@pytest.mark.parametrize("case", SETTINGS, ids=[s[0] for s in SETTINGS])
def test_a_bad_setting_is_refused_before_the_first_stage(case, refused):
    items, *names = case
    refused(["run", *MICRO, "--out", "r", *[a for item in items.split() for a in ("--set", item)]], *names)


def test_a_bad_setting_of_a_step_alone_and_an_unknown_preset(refused):
    refused(["pretrain", *MICRO, "--run-dir", "r", "--set", "pretrain.batch_size=0"], "pretrain.batch_size=0")
    refused(["sft", "--preset", "huge"], "huge", "micro, quick, balanced, full")
    refused(["run", *MICRO, "--out", "r", "--device", "tpu"], "--device 'tpu'", "cpu")


# ---- flags of sample, chat and bench ------------------------------------------------------------------------------
@pytest.mark.parametrize("argv, names", [
    (["sample", "--ckpt", "x.pt", "--prompt", "hi", "--temperature", "-1"], ["--temperature", ">= 0", "-1"]),
    (["sample", "--ckpt", "x.pt", "--prompt", "hi", "--top-k", "0"], ["--top-k", ">= 1"]),
    (["sample", "--ckpt", "x.pt", "--prompt", "hi", "--max-new-tokens", "-5"], ["--max-new-tokens", "-5"]),
    (["sample", "--ckpt", "x.pt", "--prompt", "hi", "--num", "0"], ["--num", ">= 1"]),
    (["sample", "--ckpt", "x.pt", "--prompt", "hi", "--top-k", "two"], ["--top-k", "an integer", "'two'"]),
    (["chat", "--ckpt", "x.pt", "--temperature", "-0.5"], ["--temperature", "minigpt-rlhf chat --help"]),
    (["sample", "--prompt", "hi"], ["--ckpt", "required"]),
    (["run", "--preset", "micro", "--outt", "r"], ["--outt", "unrecognized"]),
    (["bench", "--repeats", "0"], ["--repeats", ">= 1"]),
    (["seeds", *MICRO, "--seeds", "1,x"], ["--seeds", "'1,x'", "whole numbers"]),
    (["seeds", *MICRO, "--seeds", "3,3"], ["--seeds", "repeated"]),
], ids=["temperature", "top-k", "max-new-tokens", "num", "top-k-word", "chat-temperature", "no-ckpt", "typo",
        "bench-repeats", "seeds-word", "seeds-twice"])
def test_a_bad_flag_is_one_line_not_argparse_usage(argv, names, refused):
    refused(argv, *names)


# ---- data: the whole folder checked once, before the first stage ----------------------------------------------------
def _replace(path: Path, old: str, new: str, line: int | None = None) -> None:
    lines = path.read_text().split("\n")
    n = line - 1 if line else next(i for i, t in enumerate(lines) if old in t)
    lines[n] = lines[n].replace(old, new, 1)
    path.write_text("\n".join(lines))


def _field(path: Path, line: int, key: str, value) -> None:
    lines = path.read_text().split("\n")
    row = json.loads(lines[line - 1])
    row[key] = value
    lines[line - 1] = json.dumps(row)
    path.write_text("\n".join(lines))


DATA_CASES = {
    # name: (how to break data/, what the message names)
    "non-ASCII in the corpus": (lambda d: _replace(d / "corpus_train.txt", "moss", "m\u00f6ss", 309),
                                ["corpus_train.txt, line 309, column", "'\u00f6'", "U+00F6"]),
    "not UTF-8": (lambda d: (d / "corpus_val.txt").write_bytes((d / "corpus_val.txt").read_bytes() + b"\xff\n"),
                  ["corpus_val.txt, line 1000, column 1", "0xff", "UTF-8"]),
    "Windows line ends": (lambda d: (d / "corpus_val.txt").write_bytes(
        (d / "corpus_val.txt").read_bytes().replace(b"\n", b"\r\n")), ["corpus_val.txt, line 1", "'\\r'"]),
    "escaped non-ASCII prompt": (lambda d: _field(d / "prompts_sft.jsonl", 3, "text", "Un caf\u00e9?"),
                                 ["prompts_sft.jsonl, line 3, field 'text'", "U+00E9"]),
    "unresolved demonstration": (lambda d: _field(d / "demonstrations.jsonl", 5, "prompt_id", "sft-99999"),
                                 ["demonstrations.jsonl, line 5", "'sft-99999'"]),
    "empty corpus": (lambda d: (d / "corpus_train.txt").write_text(""), ["corpus_train.txt holds nothing"]),
    "empty prompt split": (lambda d: (d / "prompts_ppo.jsonl").write_text(""), ["prompts_ppo.jsonl holds nothing"]),
    "missing kb.json": (lambda d: (d / "kb.json").unlink(), ["kb.json does not exist", "minigpt-rlhf world"]),
    "malformed kb.json": (lambda d: (d / "kb.json").write_text('{"entities": 3}'), ["kb.json is malformed"]),
    "blank kb.json fact": (lambda d: (d / "kb.json").write_text((d / "kb.json").read_text().replace(
        '"food": "berries"', '"food": " "', 1)), ["kb.json: entity 1's food is empty"]),
    "bad JSON line": (lambda d: _replace(d / "prompts_rm.jsonl", "{", "{oops", 7),
                      ["prompts_rm.jsonl, line 7: not valid JSON"]),
    "missing field": (lambda d: _replace(d / "prompts_eval.jsonl", '"family"', '"famly"', 2),
                      ["prompts_eval.jsonl, line 2: missing field(s) family"]),
    "wrong type": (lambda d: _field(d / "demonstrations.jsonl", 9, "response", 7),
                   ["demonstrations.jsonl, line 9: field 'response' is 7"]),
    # well-formed but empty: SFT would learn to answer this prompt with nothing
    "empty response": (lambda d: _field(d / "demonstrations.jsonl", 9, "response", " "),
                       ["demonstrations.jsonl, line 9: field 'response' is empty",
                        "delete the line"]),
    "empty prompt": (lambda d: _field(d / "prompts_sft.jsonl", 3, "text", ""),
                     ["prompts_sft.jsonl, line 3: field 'text' is empty"]),
    "empty labeler": (lambda d: _field(d / "demonstrations.jsonl", 4, "labeler", ""),
                      ["demonstrations.jsonl, line 4: field 'labeler' is empty"]),
    "unknown task": (lambda d: _field(d / "prompts_eval.jsonl", 2, "meta", {"task": "juggle"}),
                     ["prompts_eval.jsonl, line 2", "gold judge", "juggle"]),
    "duplicate id": (lambda d: (d / "prompts_eval.jsonl").write_text(
        (d / "prompts_eval.jsonl").read_text() + (d / "prompts_sft.jsonl").read_text().split("\n")[0] + "\n"),
                     ["prompts_eval.jsonl, line 481", "'sft-00000'", "prompts_sft.jsonl, line 1"]),
    "tiny corpus": (lambda d: (d / "corpus_val.txt").write_text("The zorbin eats moss.\n"),
                    ["corpus_val.txt holds", "too few for one window of pretrain.seq_len=64"]),
}


@pytest.mark.parametrize("case", DATA_CASES)
def test_bad_data_is_named_by_file_and_line_before_any_stage(tmp_path, case, refused):
    data = tmp_path / "data"
    data.mkdir()
    for f in DATA.iterdir():
        (data / f.name).write_bytes(f.read_bytes())
    breaks, names = DATA_CASES[case]
    breaks(data)
    # a step alone (here pretraining, which reads only the corpus) checks the whole folder, as `run` does
    refused(["pretrain", *MICRO, "--set", f"data_dir={data}", "--run-dir", "r"], *names)


def test_a_missing_data_folder(refused):
    refused(["run", *MICRO, "--set", "data_dir=nowhere", "--out", "r"], "nowhere does not exist", "minigpt-rlhf world")


# ---- output folders -------------------------------------------------------------------------------------------------
def test_an_output_that_is_a_file_or_under_one(refused):
    Path("afile").write_text("not a folder")
    refused(["run", *MICRO, "--out", "afile"], "--out afile is a file")
    refused(["run", *MICRO, "--out", "afile/run"], "--out afile/run", "afile is a file")
    refused(["sft", *MICRO, "--run-dir", "afile"], "--run-dir afile is a file")
    refused(["world", "--out", "afile"], "--out afile is a file")
    refused(["bench", "--out", "."], "--out .", "a file in an existing folder")


def test_an_output_that_cannot_be_made(refused):
    refused(["run", *MICRO, "--out", "x" * 300], "x" * 300, "choose another")  # longer than a file name may be
    if sys.platform == "linux":
        refused(["run", *MICRO, "--out", "/proc/no/such/run"], "/proc/no/such/run", "choose another")


# ---- checkpoints ----------------------------------------------------------------------------------------------------
def test_a_file_that_is_not_a_checkpoint(refused):
    Path("notes.txt").write_text("hello, I am not a checkpoint\n")
    refused(["sample", "--ckpt", "notes.txt", "--prompt", "hi"], "notes.txt is corrupt or not a checkpoint")
    good = checkpoint(Path("sft/ckpt.pt"), "sft")
    Path("half.pt").write_bytes(good.read_bytes()[:300])
    refused(["chat", "--ckpt", "half.pt"], "half.pt is corrupt or not a checkpoint")
    refused(["sample", "--ckpt", "missing.pt", "--prompt", "hi"], "missing.pt does not exist")
    checkpoint(Path("bare.pt"), "sft", drop=("tokenizer",))
    refused(["sample", "--ckpt", "bare.pt", "--prompt", "hi"], "bare.pt lacks tokenizer")


def test_a_checkpoint_whose_model_cannot_read_its_tokenizer(refused):
    checkpoint(Path("v.pt"), "sft", vocab_size=50)  # its tokenizer's ids go to TOK.vocab_size - 1
    refused(["sample", "--ckpt", "v.pt", "--prompt", "hi"], "v.pt: its model has a vocabulary of",
            "of 50 tokens", f"its tokenizer {TOK.vocab_size}", "delete it")


def test_best_of_n_refuses_a_reward_model_that_cannot_read_the_policy(refused):
    checkpoint(Path("p.pt"), "sft")
    checkpoint(Path("rm.pt"), "reward", block_size=8)  # a context shorter than the prompt
    prompt = "Where does Kess live?"
    refused(["best-of-n", "--ckpt", "p.pt", "--reward", "rm.pt", "--prompt", prompt],
            "--prompt is too long", "(8 tokens)")
    chars = Tokenizer()  # the plain character tokenizer: another dataset's ids
    checkpoint(Path("rm.pt"), "reward", vocab_size=chars.vocab_size, tokenizer=chars.state_dict())
    refused(["best-of-n", "--ckpt", "p.pt", "--reward", "rm.pt", "--prompt", "hi"],
            "--reward rm.pt was trained with another tokenizer", "models of one run")


def test_sample_and_chat_refuse_a_reward_model(refused):
    checkpoint(Path("reward/ckpt.pt"), "reward")
    for cmd in (["sample", "--prompt", "hi"], ["chat"]):
        refused([*cmd, "--ckpt", "reward/ckpt.pt"], "'reward' checkpoint", "scores text", "'pretrain' or 'sft' or 'ppo'")


def test_a_checkpoint_of_another_size_in_the_run_folder(refused):
    # copied in from another run: the "larger" base model is the small one; the report would compare equals
    checkpoint(Path("r/pretrain_large/ckpt.pt"))
    refused(["run", *MICRO, "--out", "r"], "r/pretrain_large/ckpt.pt holds a model of 2x2x32", "make one of 2x2x48")
    checkpoint(Path("r2/pretrain/ckpt.pt"), n_layer=1, n_embd=16)
    refused(["sft", *MICRO, "--run-dir", "r2"], "r2/pretrain/ckpt.pt holds a model of 1x2x16", "make one of 2x2x32")
    refused(["run", *MICRO, "--out", "r2", "--set", "model.n_embd=16"], "r2/pretrain/ckpt.pt", "1x2x16",
            "make one of 2x2x16")


def test_a_stage_does_not_resume_a_checkpoint_of_another_shape():
    """Called from Python (as the lessons do), past the CLI's checks: the resume itself checks the shape."""
    from minigpt_rlhf import pretrain
    from minigpt_rlhf.runtime import UserError

    path = checkpoint(Path("pretrain/ckpt.pt"), finished=False, n_layer=1, n_embd=16)
    save_checkpoint(path, **{**torch.load(path, weights_only=True), "optimizer": {}})  # an interrupted run's
    with pytest.raises(UserError, match="holds a model of 1x2x16.*make one of 2x2x32"):
        pretrain.run(load_config("micro", [f"data_dir={DATA}", "device=cpu"]), Path("pretrain"))


def test_a_step_needs_the_finished_checkpoint_of_the_stage_it_starts_from(refused):
    refused(["sft", *MICRO, "--run-dir", "r"], "r/pretrain/ckpt.pt does not exist", "minigpt-rlhf pretrain")
    checkpoint(Path("r/pretrain/ckpt.pt"), finished=False)  # pretraining interrupted by Ctrl-C
    refused(["sft", *MICRO, "--run-dir", "r"], "r/pretrain/ckpt.pt is not finished", "resumes it")
    checkpoint(Path("r/sft/ckpt.pt"), "reward")  # a reward model where the SFT model should be
    refused(["ppo", *MICRO, "--run-dir", "r"], "r/sft/ckpt.pt is a 'reward' checkpoint", "'sft'")


# ---- the run folder: its log and its lock ---------------------------------------------------------------------------
def test_a_broken_pipeline_log_and_a_folder_made_with_other_settings(refused):
    Path("r").mkdir()
    Path("r/pipeline.json").write_text('{"stages": {"world": ')
    refused(["run", *MICRO, "--out", "r"], "r/pipeline.json", "not valid JSON", "delete it")
    config = dataclasses.asdict(load_config("micro", [f"data_dir={DATA}", "device=cpu"]))
    Path("r/pipeline.json").write_text(json.dumps({"config": config, "stages": {}}))
    checkpoint(Path("r/pretrain/ckpt.pt"))
    refused(["run", *MICRO, "--out", "r", "--set", "pretrain.lr=1e-3"], "other settings (pretrain.lr differ)",
            "holds their output (pretrain)", "--from STAGE")


def _made(folder: str) -> dict:
    """folder/pipeline.json of a micro run, as the pipeline writes it; returns the config."""
    config = dataclasses.asdict(load_config("micro", [f"data_dir={DATA}", "device=cpu"]))
    Path(folder).mkdir(parents=True, exist_ok=True)
    log = {"config": config, "stages": {"pretrain": {}}}
    Path(folder, "pipeline.json").write_text(json.dumps(log))
    return config


def test_a_damaged_file_of_a_run_folder_is_named_with_the_command_that_rebuilds_it(refused):
    _made("r")
    for stage in training(recipe()):  # a finished run's stages, as far as the report checks
        Path("r", stage.name).mkdir()
        Path("r", stage.name, "metrics.jsonl").write_text("")
    Path("r/eval").mkdir()
    Path("r/eval/results.json").write_text('{"preset": "micro", "models": {"SFT": {"w')  # cut short
    fix = "minigpt-rlhf evaluate --preset micro --set seed=1337 --run-dir r"
    refused(["report", "r"], "r/eval/results.json, line 1: not valid JSON", fix,
            "minigpt-rlhf report r")
    refused(["plot", "r"], "r/eval/results.json, line 1", fix)
    Path("r/eval/results.json").write_text("{}")  # valid JSON, but not what evaluate writes
    refused(["report", "r"], "r/eval/results.json is damaged", "'preset'", fix)
    Path("r/pipeline.json").write_text('{"config": {"pre')
    refused(["report", "r"], "r/pipeline.json, line 1: not valid JSON", "delete it", "--out r")
    _made("r")
    Path("r/eval/results.json").write_text(json.dumps({k: {} for k in RESULTS}))
    Path("r/pretrain/metrics.jsonl").write_text('{"step": 1, "loss": 3.1}\n{"step": 2, "lo\n')
    refused(["plot", "r"], "r/pretrain/metrics.jsonl, line 2: not valid JSON",
            "at column 13",
            "minigpt-rlhf run --preset micro --set seed=1337 --out r --from pretrain")
    Path("s/pretrain_1x2x16").mkdir(parents=True)  # a sweep's folder
    Path("s/eval").mkdir()
    Path("s/eval/sweep.json").write_bytes(b'{"rows": [\xff')
    refused(["report", "s"], "s/eval/sweep.json", "not UTF-8",
            "minigpt-rlhf sweep --preset PRESET --out s --from evaluate")


def test_a_run_checks_the_files_it_will_read_before_the_first_stage(refused):
    """Found before anything runs, not when the plots or DPO read them after the training."""
    _made("r")
    checkpoint(Path("r/pretrain/ckpt.pt"))
    Path("r/pretrain/metrics.jsonl").write_text('{"step": 1, "loss": 3.1}\n[1, 2]\n')
    refused(["run", *MICRO, "--out", "r"], "r/pretrain/metrics.jsonl, line 2: not a JSON object",
            "--from pretrain")
    # the evaluation counts each stage's compute from it
    refused(["evaluate", *MICRO, "--run-dir", "r"], "r/pretrain/metrics.jsonl, line 2")
    Path("r/pretrain/metrics.jsonl").write_text('{"step": 1, "loss": 3.1}\n')
    checkpoint(Path("r/reward/ckpt.pt"), "reward")
    Path("r/reward/comparisons.jsonl").write_text('{"split": "train", "responses": 3}\n')
    refused(["run", *MICRO, "--out", "r"], "r/reward/comparisons.jsonl, line 1",
            "no field 'prompt_id'")
    Path("r/reward/comparisons.jsonl").unlink()
    config = _made("r")
    Path("r/pipeline.json").write_text(json.dumps({"config": config, "stages": {"evaluate": {}}}))
    Path("r/eval").mkdir()
    Path("r/eval/results.json").write_text('{"preset": "mic')
    refused(["run", *MICRO, "--out", "r"], "r/eval/results.json, line 1", "minigpt-rlhf evaluate")


def test_evaluate_refuses_a_run_folder_made_with_other_settings(refused):
    config = dataclasses.asdict(load_config("micro", [f"data_dir={DATA}", "device=cpu", "seed=7"]))
    Path("r").mkdir()
    Path("r/pipeline.json").write_text(json.dumps({"config": config, "stages": {}}))
    refused(["evaluate", *MICRO, "--run-dir", "r"], "r was made with other settings", "(seed)", "--set seed=7")


def _lock(folder: Path, pid: int, **written) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / LOCK).write_text(json.dumps(dict(pid=pid, host=socket.gethostname(), command="minigpt-rlhf run",
                                               started="earlier", **written)))


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(proc.stdout)


def test_a_folder_in_use_by_a_live_process_is_refused_naming_it(refused):
    _lock(Path("r"), os.getppid())  # our parent process: alive
    refused(["run", *MICRO, "--out", "r"], f"r is in use by process {os.getppid()}", "another --out")
    checkpoint(Path("r/pretrain/ckpt.pt"))  # what sft starts from, so that the lock is what stops it
    refused(["sft", *MICRO, "--run-dir", "r"], f"process {os.getppid()}")


def test_a_lock_left_by_a_dead_process_is_taken_over(capsys):
    pid = _dead_pid()
    _lock(Path("r"), pid)
    # evaluate takes the folder (the lock is stale), then finds no model to evaluate: an error, the lock released
    assert main(["evaluate", *MICRO, "--run-dir", "r"]) == 2
    out, err = capsys.readouterr()
    assert f"taking over the lock of process {pid}" in out and "missing stage 'pretrain'" in err
    assert list(Path("r").iterdir()) == []  # the stale lock was all it held, and the new one is gone


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_a_lock_of_a_process_killed_a_moment_ago_and_not_yet_reaped_is_taken_over(capsys):
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    holder.kill()  # SIGKILL, not waited for: a zombie until its parent reaps it; its pid exists
    try:
        deadline = time.time() + 10
        while Path(f"/proc/{holder.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
            assert time.time() < deadline, "the killed process never became a zombie"
            time.sleep(0.01)
        os.kill(holder.pid, 0)  # signal 0 alone would say it runs
        _lock(Path("r"), holder.pid)
        with run_lock("r"):
            assert json.loads(Path("r", LOCK).read_text())["pid"] == os.getpid()
        assert f"taking over the lock of process {holder.pid}" in capsys.readouterr().out
    finally:
        holder.wait()


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_a_lock_whose_pid_now_belongs_to_a_newer_process_is_taken_over(refused, capsys):
    """The owner died long ago and the system gave its pid to a process that began after the lock
    was written: not the owner. A process that began before it may be: held."""
    newer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _lock(Path("r"), newer.pid, time=time.time() - 3600)  # written an hour ago
        with run_lock("r"):
            assert json.loads(Path("r", LOCK).read_text())["pid"] == os.getpid()
        assert f"taking over the lock of process {newer.pid}" in capsys.readouterr().out
    finally:
        newer.kill()
        newer.wait()
    _lock(Path("r"), os.getppid(), time=time.time())  # our parent, which began before it: held
    refused(["run", *MICRO, "--out", "r"], f"r is in use by process {os.getppid()}")


def test_two_processes_one_folder_then_kill_9(tmp_path, refused):
    """A second run into a folder that a running one holds is refused, naming the first; after the first is
    killed with kill -9 (no chance to clean up), its lock is stale and the next run takes it over."""
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from minigpt_rlhf.runtime import run_lock\n"
                               "with run_lock(sys.argv[1]):\n    print('held', flush=True); time.sleep(60)", "r"],
                              cwd=tmp_path, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert holder.stdout.readline().strip() == "held"
        refused(["run", *MICRO, "--out", "r"], f"in use by process {holder.pid}")
    finally:
        holder.kill()  # SIGKILL
        holder.wait()
    assert json.loads(Path("r", LOCK).read_text())["pid"] == holder.pid  # left behind
    with run_lock("r"):
        assert json.loads(Path("r", LOCK).read_text())["pid"] == os.getpid()
    assert not Path("r", LOCK).exists()


def test_the_lock_is_released_on_errors_and_ctrl_c_and_a_new_empty_folder_removed():
    for exc in (KeyboardInterrupt, RuntimeError):
        with pytest.raises(exc):
            with run_lock("a/b"):
                assert Path("a/b", LOCK).is_file()
                raise exc
        assert not Path("a").exists()  # made by the lock, left empty: removed
    with run_lock("kept"):
        Path("kept/out.txt").write_text("a stage's output")
    assert sorted(p.name for p in Path("kept").iterdir()) == ["out.txt"]


def test_every_number_of_the_config_has_an_allowed_range():
    cfg = load_config("micro")
    sections = [cfg] + [getattr(cfg, f.name) for f in dataclasses.fields(cfg)
                        if dataclasses.is_dataclass(getattr(cfg, f.name))]
    for section in sections:
        for f in dataclasses.fields(section):
            value = getattr(section, f.name)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and f.name != "vocab_size":
                assert f.name in ranges(section), f"{type(section).__name__}.{f.name}: no range in config.RANGES"
