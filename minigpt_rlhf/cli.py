"""The command line: `minigpt-rlhf SUBCOMMAND`, one subcommand per step of the recipe."""

from __future__ import annotations

import argparse
import sys

import torch

from minigpt_rlhf.config import PRESETS, load_config
from minigpt_rlhf.runtime import UserError
from minigpt_rlhf.world import DataError

RECIPE = """\
InstructGPT (Ouyang et al., 2022) in miniature, from scratch:

  world     the toy world: knowledge base, corpus, prompts, gold judge, simulated labelers (data/)
  pretrain  step 0: a small GPT learns the corpus ("GPT-3")
  sft       step 1: supervised fine-tuning on labeler demonstrations
  reward    step 2: a reward model learns the labelers' rankings of K = 4..9 responses
  ppo       step 3: PPO against the reward model with a per-token KL penalty (PPO-ptx: + pretraining mix)
  run       every step in order, then the evaluation and the report

Presets: micro (tests, seconds), quick (a 2-core CPU, minutes), full (a GPU or a patient CPU).
"""


def add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default="quick", help=f"one of {', '.join(PRESETS)} (default quick)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set pretrain.lr=1e-3 (repeatable)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N or mps (default: the best available)")


def config_from_args(args):
    cfg = load_config(args.preset, args.overrides)
    if getattr(args, "device", None):
        cfg.device = args.device
    return cfg


# ---- info ----------------------------------------------------------------------------------------------
def cmd_info(args) -> None:
    from minigpt_rlhf.runtime import measure_matmul_flops, setup

    dev = setup(0, args.device)
    print(f"torch {torch.__version__}, device {dev}, {torch.get_num_threads()} threads")
    print(f"fp32 matmul: {measure_matmul_flops(dev) / 1e9:.1f} GFLOP/s (measured, 1024x1024)")
    if dev.type == "cuda":
        print(f"bf16 matmul: {measure_matmul_flops(dev, 4096, torch.bfloat16) / 1e12:.1f} TFLOP/s (measured)")


# ---- sample --------------------------------------------------------------------------------------------
def cmd_sample(args) -> None:
    from minigpt_rlhf.runtime import build_model, load_checkpoint, setup, tokenizer_from
    from minigpt_rlhf.tokenizer import VocabError, format_chat, format_plain

    dev = setup(args.seed, args.device)
    ckpt = load_checkpoint(args.ckpt)
    model, tok = build_model(ckpt, dev), tokenizer_from(ckpt)
    chat = ckpt["kind"] != "pretrain" and not args.plain
    try:
        ids = (format_chat if chat else format_plain)(tok, args.prompt)
    except VocabError as e:
        raise UserError(f"--prompt: {e}") from None
    room = model.config.block_size - len(ids)
    if room < 1:
        raise UserError(f"--prompt is {len(ids)} tokens, the model's context is {model.config.block_size}: shorten it")
    gen = torch.Generator(device=dev).manual_seed(args.seed)
    for _ in range(args.num):
        out = model.generate([ids], min(args.max_new_tokens, room), args.temperature, args.top_k,
                             stop_id=tok.end_id, pad_id=tok.pad_id, generator=gen)
        print(tok.decode(out.responses[0], skip_special=True))
        print("-" * 40)


# ---- bench (issue 9) ----------------------------------------------------------------------------------
def cmd_bench(args) -> None:
    from minigpt_rlhf import bench
    from minigpt_rlhf.runtime import setup

    dev = setup(0, args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.repeats < 1 or args.new_tokens < 1:
        raise UserError("--repeats and --new-tokens must be at least 1")
    result = bench.run([args.preset] if args.preset else PRESETS, dev, args.repeats, args.new_tokens, args.out)
    print(bench.table(result))
    print(f"wrote {args.out}")


# ---- pretrain, sft, chat ---------------------------------------------------------------------------------
def add_run_dir_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run-dir", default=None, help="the run folder (default runs/<preset>)")


def run_dir_from_args(args):
    return args.run_dir or f"runs/{args.preset}"


def cmd_pretrain(args) -> None:
    from minigpt_rlhf import pretrain

    print(f"wrote {pretrain.run(config_from_args(args), run_dir_from_args(args))}")


def cmd_sft(args) -> None:
    from minigpt_rlhf import sft

    print(f"wrote {sft.run(config_from_args(args), run_dir_from_args(args))}")


def cmd_chat(args) -> None:
    from minigpt_rlhf.runtime import build_model, load_checkpoint, setup, tokenizer_from
    from minigpt_rlhf.tokenizer import VocabError, format_chat, format_plain

    dev = setup(args.seed, args.device)
    ckpt = load_checkpoint(args.ckpt, ("pretrain", "sft", "ppo"))
    model, tok = build_model(ckpt, dev).eval(), tokenizer_from(ckpt)
    fmt = format_plain if ckpt["kind"] == "pretrain" else format_chat
    gen = torch.Generator(device=dev).manual_seed(args.seed)
    print(f"chatting with a {ckpt['kind']} model ({model.num_params():,} parameters). Ctrl-D or Ctrl-C to leave.")
    while True:
        try:
            text = input("you> ")
        except (EOFError, KeyboardInterrupt):
            print("\nbye")
            return
        try:
            ids = fmt(tok, text)
        except VocabError as e:
            print(f"  ({e})")
            continue
        room = model.config.block_size - len(ids)
        if room < 1:
            print(f"  (that is {len(ids)} tokens; the model reads at most {model.config.block_size}: shorten it)")
            continue
        print("model> ", end="", flush=True)
        stream = lambda t: print(tok.decode([t], skip_special=True), end="", flush=True)
        try:
            model.generate([ids], min(args.max_new_tokens, room), args.temperature, args.top_k, stop_id=tok.end_id,
                           pad_id=tok.pad_id, generator=gen, callback=lambda t: stream(int(t[0])))
        except KeyboardInterrupt:
            print(" (interrupted)", end="")
        print()


# ---- world ---------------------------------------------------------------------------------------------
def cmd_world(args) -> None:
    from minigpt_rlhf import world

    out = world.generate(args.out, args.seed)
    print(f"wrote the toy world (seed {args.seed}) to {out}/: see {out}/README.md")


# ---- run, sweep, evaluate, plot, report (issue 8) ----------------------------------------------------------------
def cmd_run(args) -> None:
    from minigpt_rlhf import pipeline

    cfg = config_from_args(args)
    out = args.out or f"runs/{args.preset}"
    pipeline.run(cfg, out, start=args.start)
    print(f"report: {out}/report.md")


def cmd_sweep(args) -> None:
    from minigpt_rlhf import pipeline

    cfg = config_from_args(args)
    out = args.out or f"runs/sweep_{args.preset}"
    pipeline.sweep(cfg, out, start=args.start)
    print(f"report: {out}/report.md")


def cmd_evaluate(args) -> None:
    from minigpt_rlhf import evaluate

    print(evaluate.evaluate(config_from_args(args), args.run_dir or f"runs/{args.preset}"))


def is_sweep(run_dir) -> bool:
    """A `sweep` folder has one pretrain_LxHxC stage per size; a `run` folder has pretrain and pretrain_large."""
    from pathlib import Path

    return any(Path(run_dir).glob("pretrain_*x*x*"))


def cmd_plot(args) -> None:
    from minigpt_rlhf import plots

    for path in (plots.plot_sweep if is_sweep(args.run) else plots.plot_run)(args.run):
        print(path)


def cmd_report(args) -> None:
    from minigpt_rlhf import report

    print((report.write_sweep_report if is_sweep(args.run) else report.write_report)(args.run))
# ---- ppo (issue 7) ----------------------------------------------------------------------------------------
def cmd_ppo(args) -> None:
    from pathlib import Path

    from minigpt_rlhf import ppo

    cfg = config_from_args(args)
    run_dir = Path(args.run_dir or f"runs/{args.preset}")
    stage = args.stage or ("ppo_ptx" if args.ptx_coef > 0 else "ppo")
    print(ppo.run(cfg, run_dir, stage=stage, ptx_coef=args.ptx_coef, sft_stage=args.sft_stage,
                  reward_stage=args.reward_stage))


def add_sampling_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--temperature", type=float, default=0.8, help="softmax temperature (0 = greedy)")
    p.add_argument("--top-k", type=int, default=None, help="sample among the k most likely tokens only")
    p.add_argument("--max-new-tokens", type=int, default=200)
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N or mps (default: the best available)")
    p.add_argument("--seed", type=int, default=0)


# ---- reward (issue 6) ----------------------------------------------------------------------------------------
def cmd_reward(args) -> None:
    from minigpt_rlhf import reward

    path = reward.run(config_from_args(args), run_dir_from_args(args), stage=args.stage,
                      sft_stage=args.sft_stage, labelers=args.labelers)
    print(f"wrote {path}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="minigpt-rlhf", description=RECIPE,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")

    p = sub.add_parser("info", help="torch version, device, threads and this machine's measured matmul speed")
    p.add_argument("--device", default=None)
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("sample", help="generate from a checkpoint")
    p.add_argument("--ckpt", required=True, help="a checkpoint, e.g. runs/quick/sft/ckpt.pt")
    p.add_argument("--prompt", required=True, help="the instruction (chat format) or text to continue (base)")
    p.add_argument("--num", type=int, default=1, help="how many samples")
    p.add_argument("--plain", action="store_true", help="prompt a chat model with plain text, as a base model")
    add_sampling_args(p)
    p.set_defaults(func=cmd_sample)

    # --- world (issue 4) ---
    p = sub.add_parser("world", help="generate the toy world's dataset (data/) from a seed")
    p.add_argument("--out", default="data", help="folder to write (default data)")
    p.add_argument("--seed", type=int, default=0, help="the default seed 0 reproduces the committed data/")
    p.set_defaults(func=cmd_world)

    # --- pretrain, sft, chat (issue 5) ---
    p = sub.add_parser("pretrain", help="step 0: pretrain the base model on the corpus")
    add_config_args(p)
    add_run_dir_arg(p)
    p.set_defaults(func=cmd_pretrain)

    p = sub.add_parser("sft", help="step 1: fine-tune the base model on the labelers' demonstrations")
    add_config_args(p)
    add_run_dir_arg(p)
    p.set_defaults(func=cmd_sft)

    p = sub.add_parser("chat", help="talk to any checkpoint (base, SFT, PPO); answers stream as they are sampled")
    p.add_argument("--ckpt", required=True, help="a checkpoint, e.g. runs/quick/ppo_ptx/ckpt.pt")
    add_sampling_args(p)
    p.set_defaults(func=cmd_chat)

    # --- reward (issue 6) ---
    p = sub.add_parser("reward", help="step 2: a reward model learns the labelers' rankings of K = 4..9 responses")
    add_config_args(p)
    p.add_argument("--run-dir", default=None, help="the run folder with sft/ and pretrain/ (default runs/<preset>)")
    p.add_argument("--stage", default="reward", help="output folder name (default reward)")
    p.add_argument("--sft-stage", default="sft", help="the SFT model to sample from and start from (default sft)")
    p.add_argument("--labelers", default="train", choices=["train", "biased"],
                   help="who ranks: the training labelers (default) or a biased group (whose preferences?)")
    p.set_defaults(func=cmd_reward)

    # --- ppo (issue 7) ---
    p = sub.add_parser("ppo", help="step 3: PPO against the reward model (--ptx-coef > 0: PPO-ptx)")
    add_config_args(p)
    p.add_argument("--run-dir", default=None, help="the run folder with sft/ and reward/ (default runs/<preset>)")
    p.add_argument("--ptx-coef", type=float, default=0.0,
                   help="γ, the pretraining-mix weight: 0 = PPO (default), > 0 = PPO-ptx (the pipeline passes "
                        "ppo.ptx_coef)")
    p.add_argument("--stage", default=None, help="output folder name (default ppo, or ppo_ptx if --ptx-coef > 0)")
    p.add_argument("--sft-stage", default="sft", help="the policy's and reference's starting stage (default sft)")
    p.add_argument("--reward-stage", default="reward", help="the reward model's stage (default reward)")
    p.set_defaults(func=cmd_ppo)

    # --- run, sweep, evaluate, plot, report (issue 8) ---
    p = sub.add_parser("run", help="every step in order, then evaluation, plots and report.md (resumable)")
    add_config_args(p)
    p.add_argument("--out", default=None, help="the run folder (default runs/<preset>)")
    p.add_argument("--from", dest="start", default=None, metavar="STAGE",
                   help="delete and rerun this stage and every later one: world, pretrain, pretrain_large, sft, "
                        "reward, ppo, ppo_ptx, reward_biased, ppo_biased, evaluate, plots, report")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("sweep", help="several model sizes through every step, and the paper's Figure 1")
    add_config_args(p)
    p.add_argument("--out", default=None, help="the sweep folder (default runs/sweep_<preset>)")
    p.add_argument("--from", dest="start", default=None, metavar="STAGE", help="delete and rerun from this stage on")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("evaluate", help="measure every model of a run folder into eval/results.json")
    add_config_args(p)
    p.add_argument("--run-dir", default=None, help="the run folder (default runs/<preset>)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("plot", help="redraw a run's or a sweep's figures from metrics.jsonl and eval/*.json")
    p.add_argument("run", help="the run or sweep folder, e.g. runs/quick or runs/sweep_quick")
    p.set_defaults(func=cmd_plot)

    p = sub.add_parser("report", help="write RUN/report.md: the paper's findings beside ours")
    p.add_argument("run", help="the run or sweep folder, e.g. runs/quick or runs/sweep_quick")
    p.set_defaults(func=cmd_report)


    # --- bench (issue 9) ---
    p = sub.add_parser("bench", help="training, sampling and PPO speed on this machine (table + JSON)")
    p.add_argument("--preset", choices=PRESETS, default=None, help="one model shape only (default: all three)")
    p.add_argument("--out", default="bench.json", help="JSON file to write (default bench.json)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N or mps (default: the best available)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per measurement, after a warm-up")
    p.add_argument("--threads", type=int, default=None,
                   help="torch intra-op threads (default torch's); 1 is far faster on a busy 2-core CPU")
    p.add_argument("--new-tokens", type=int, default=256, help="tokens per sampling run (default 256)")
    p.set_defaults(func=cmd_bench)

    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (UserError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: the last good checkpoint is kept; rerun the same command to resume", file=sys.stderr)
        return 130
    return 0
