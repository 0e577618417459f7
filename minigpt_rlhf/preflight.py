"""The checks before the first stage: whatever a run can get wrong without training is found in a
second, before anything is written. The settings alone are checked where they are made
(config.check); here they meet the data, the machine and the run folder:

    check_out          --out / --run-dir names a folder, or a place where one can be made
    check_world        data/ (world.check_data), and the settings against it: every prompt and its
                       answer fit the model's context, and there are enough demonstrations, RM
                       prompts and corpus tokens for what the settings ask; the device exists
    check_checkpoints  the checkpoints already in the run folder are of the kind, shape and
                       tokenizer their stage expects, and the stages a step reads are there and
                       finished
    check_outputs      the run folder's other files that later stages read (metrics.jsonl, eval/)
                       are whole

The pipeline runs all three before its first stage (the "world" stage is check_world), as does every
step run alone (`minigpt-rlhf sft`); each raises a UserError that names the flag, file or value and
the fix.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from minigpt_rlhf import world
from minigpt_rlhf.comparisons import read_comparisons
from minigpt_rlhf.config import Config
from minigpt_rlhf.corpus import encode_corpus, tokenizer
from minigpt_rlhf.runtime import (
    RESULTS,
    SWEEP,
    UserError,
    check_shape,
    load_checkpoint,
    pick_device,
    read_json,
    read_metrics,
)
from minigpt_rlhf.sampling import prompt_ids
from minigpt_rlhf.stages import Stage, training
from minigpt_rlhf.tokenizer import Tokenizer, format_chat


# ---- the output folder ---------------------------------------------------------------------------
def check_out(path, flag: str) -> None:
    """path is a folder, or none is there yet and one can be made: not a file, not under a file,
    writable."""
    path = Path(path)
    try:
        if path.exists() and not path.is_dir():
            raise UserError(
                f"{flag} {path} is a file, not a folder: pass a folder (it is created if missing)"
            )
        parent = next(p for p in (path, *path.parents) if p.exists())
    except OSError as e:  # e.g. a name longer than the file system allows
        raise UserError(
            f"{flag} {path}: not a possible folder ({e.strerror}): choose another {flag}"
        ) from None
    if not parent.is_dir():
        raise UserError(
            f"{flag} {path}: {parent} is a file, so no folder can be made in it: choose "
            f"another {flag}"
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"{flag} {path}: {parent} is not writable: choose another {flag}")


# ---- the data and the settings against it --------------------------------------------------------
def check_world(cfg: Config) -> str:
    """Check data/ and the settings that depend on it; returns the line the world stage prints."""
    pick_device(cfg.device or None)
    data = world.check_data(cfg.data_dir)
    tok = tokenizer(cfg)
    note = check_context(cfg, data, tok)
    check_sizes(cfg, data, tok)
    return f"world: {cfg.data_dir} is valid ({data.summary()}) and the settings fit it" + note


def check_context(cfg: Config, data: world.Data, tok: Tokenizer) -> str:
    """Every prompt, as any model is shown it, and an answer of max_new_tokens fit model.block_size
    (a prompt that does not would get a shorter answer or none, found only stages later); so does
    every demonstration (SFT would cut its end off). The "GPT-3 prompted" baseline shows worked
    examples before each evaluation prompt, as many as fit beside it and its answer
    (sampling.prompt_ids): an error if none fits anywhere (the baseline would be plain GPT-3), a
    note naming how many prompts get none otherwise."""
    block, new = cfg.model.block_size, cfg.max_new_tokens
    # chat (SFT, RM, PPO, evaluation) or plain (the base models): whichever is longer
    length, split, line = max(
        (max(len(prompt_ids(tok, p.text, "chat")), len(prompt_ids(tok, p.text, "plain"))), s, n)
        for s, ps in data.prompts.items()
        for n, p in enumerate(ps, 1)
    )
    if length + new > block:
        fewer = f" or lower --set max_new_tokens to {block - length}" if block > length else ""
        raise UserError(
            f"model.block_size={block} is too small: the longest prompt (prompts_{split}.jsonl, "
            f"line {line}: {length} tokens) and an answer of max_new_tokens={new} need "
            f"{length + new}; raise --set model.block_size={length + new}{fewer}"
        )
    texts = {p.id: p.text for ps in data.prompts.values() for p in ps}
    length, line = max(
        (len(format_chat(tok, texts[d.prompt_id], d.response)) - 1, n)
        for n, d in enumerate(data.demonstrations, 1)
    )
    if length > block:
        raise UserError(
            f"model.block_size={block} is too small: the longest demonstration "
            f"(demonstrations.jsonl, line {line}) is {length} tokens, and SFT would cut its end "
            f"off; raise --set model.block_size={length}"
        )

    examples, room, evals = world.few_shot_examples(cfg.data_dir), block - new, data.prompts["eval"]
    if not examples:
        return ""
    bare = [
        p
        for p in evals
        if prompt_ids(tok, p.text, "few_shot", examples, room) == prompt_ids(tok, p.text, "plain")
    ]
    # the examples are dropped first one first, so the last is the one that stays longest
    every = (
        max(len(prompt_ids(tok, p.text, "plain")) for p in evals)
        + len(tok.encode(examples[-1]))
        + 1
        + new
    )
    if len(bare) == len(evals):
        raise UserError(
            f"model.block_size={block} leaves no room for a worked example before any "
            f"evaluation prompt "
            f'beside max_new_tokens={new}: the "GPT-3 prompted" baseline would be plain '
            f"GPT-3; raise "
            f"--set model.block_size={every} or lower --set max_new_tokens"
        )
    if bare:
        return (
            f'\nnote: the "GPT-3 prompted" baseline shows no worked example before '
            f"{len(bare)} of {len(evals)} "
            f"evaluation prompts (model.block_size={block} leaves no room beside the prompt and "
            f"max_new_tokens={new}); --set model.block_size={every} gives each one an example"
        )
    return ""


def check_sizes(cfg: Config, data: world.Data, tok: Tokenizer) -> None:
    """Enough data for what the settings ask of each stage."""
    sft, rc, path = cfg.sft, cfg.reward, Path(cfg.data_dir)
    sft_ids = {p.id for p in data.prompts["sft"]}
    n = sum(d.prompt_id in sft_ids for d in data.demonstrations)
    if n <= sft.heldout_prompts:
        raise UserError(
            f"sft.heldout_prompts={sft.heldout_prompts} leaves no demonstration to train on ({n} "
            f"answer SFT prompts in {path}): lower --set sft.heldout_prompts"
        )
    train = min(n - sft.heldout_prompts, sft.max_demos or n)
    if math.ceil(train / (sft.batch_size * sft.grad_accum)) * sft.grad_accum > train:
        raise UserError(
            f"{train} demonstrations cannot fill sft.grad_accum={sft.grad_accum} micro-batches per "
            f"step: lower --set sft.grad_accum or raise sft.max_demos"
        )

    rm = data.prompts["rm"]
    if rc.n_prompts + rc.val_prompts > len(rm):
        raise UserError(
            f"reward.n_prompts={rc.n_prompts} + reward.val_prompts={rc.val_prompts} exceed "
            f"the {len(rm)} "
            f"RM-split prompts of {path}: lower --set reward.n_prompts or reward.val_prompts"
        )
    rm_ids = {p.id for p in rm}
    if not any(d.prompt_id in rm_ids for d in data.demonstrations):
        raise UserError(
            f"no demonstration in {path / 'demonstrations.jsonl'} answers an RM-split "
            f"prompt: the reward "
            f"model is centred on them; regenerate data/ with `minigpt-rlhf world --out {path}`"
        )

    T = (
        cfg.pretrain.seq_len
    )  # pretraining draws random windows of T + 1 tokens; the corpus loss, evenly spaced ones
    for split, docs in data.corpus.items():
        tokens = len(encode_corpus(docs, tok))
        if tokens < T + 2:
            raise UserError(
                f"{path / f'corpus_{split}.txt'} holds {tokens} tokens, too few for one window of "
                f"pretrain.seq_len={T} (it takes {T + 2}): lower --set pretrain.seq_len or add text"
            )


# ---- the run folder's checkpoints ----------------------------------------------------------------
def check_checkpoints(cfg: Config, run_dir, stages: list[Stage], needed: list[Stage] = ()) -> None:
    """The checkpoints in run_dir of these stages (those there) and of `needed` (which must be
    there, finished) hold what their stage makes: its kind, the shape its settings give
    (stage.config(cfg).model) and this run's tokenizer. So a checkpoint copied from another run, or
    made with other model settings, is an error here, not a model trained on, resumed or compared as
    if it were this run's."""
    run_dir, tok = Path(run_dir), tokenizer(cfg).state_dict()
    for s in training([*stages, *needed]):
        for path in sorted((run_dir / s.name).glob("*.pt")):
            ckpt = load_checkpoint(path, s.step)
            check_shape(ckpt, s.config(cfg).model, path)
            if ckpt["tokenizer"] != tok:
                raise UserError(
                    f"{path} was trained with another tokenizer than {cfg.data_dir}'s: it comes "
                    f"from another dataset; delete it to train it again, or point --set data_dir "
                    f"at its data"
                )
    for s in needed:
        path = run_dir / s.name / "ckpt.pt"
        command = (
            f"minigpt-rlhf {s.step}{'' if s.name == s.step else ' --stage ' + s.name} --preset "
            f"{cfg.preset} --run-dir {run_dir}"
        )
        if not path.is_file():
            raise UserError(
                f"{path} does not exist: this step starts from stage {s.name!r}; run "
                f"`{command}` first"
            )
        if not load_checkpoint(path).get("finished"):
            raise UserError(
                f"{path} is not finished (stage {s.name!r} was interrupted): finish it first with "
                f"`{command}`, which resumes it"
            )


def check_outputs(run_dir, stages: list[Stage], done=()) -> None:
    """The files of run_dir that these stages left and later ones read as they are: each stage's
    metrics.jsonl (resumed, plotted, counted by the evaluation) and comparisons.jsonl, and eval/'s
    results where the evaluation is in `done` (not run again). A damaged one is named with the
    command that rebuilds it before the first stage, not when the plots read it after training."""
    run_dir = Path(run_dir)
    for s in training(stages):
        if (run_dir / s.name / "metrics.jsonl").is_file():
            read_metrics(run_dir / s.name / "metrics.jsonl")
        if (run_dir / s.name / "comparisons.jsonl").is_file():  # reused by the stage, read by DPO
            read_comparisons(run_dir / s.name / "comparisons.jsonl")
    for s in stages:
        for name, keys in (("results.json", RESULTS), ("sweep.json", SWEEP)):
            if s.step == "evaluate" and s.name in done and (run_dir / "eval" / name).is_file():
                read_json(run_dir / "eval" / name, keys=keys)
