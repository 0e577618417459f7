"""The command line: `minigpt-rlhf SUBCOMMAND`, one subcommand per step of the recipe, the whole
recipe, and the tools around it (sample, best-of-n, chat, evaluate, plot, report, bench)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import torch

from minigpt_rlhf.bench import SHAPES
from minigpt_rlhf.config import AT_LEAST_1, FRACTION, NON_NEGATIVE, PRESETS, Range, load_config
from minigpt_rlhf.runtime import GENERATORS, UserError, is_sweep
from minigpt_rlhf.stages import TRAINING_STEPS, recipe, run_recipe
from minigpt_rlhf.tokenizer import VocabError
from minigpt_rlhf.world import DataError
from minigpt_rlhf.world.labelers import CARE, CURVE_CARE


def recipe_help() -> str:
    quick = {s.name for s in run_recipe(dataclasses.asdict(load_config("quick").pipeline))}
    lines = "\n".join(
        f"  {s.name:15} {'' if s.name in quick else '[not in quick] '}{s.help}" for s in recipe()
    )
    return (
        f"InstructGPT (Ouyang et al., 2022) in miniature, from scratch. `minigpt-rlhf run` runs "
        f"these stages in order:\n\n{lines}\n\nPresets: micro (tests, seconds), quick (a 2-core "
        f"CPU, under 20 minutes), balanced (quick's models, every stage above, half an hour), full "
        f"(a GPU or a patient CPU).\n"
    )


class Parser(argparse.ArgumentParser):
    """argparse, with its errors (an unknown flag, a missing or badly typed value) as one line, like
    every other bad input: `error: argument --top-k: must be >= 1, got 0 (see minigpt-rlhf sample
    --help)`."""

    def error(self, message):
        raise UserError(f"{message} (see `{self.prog} --help`)")


def number(typ: type, allowed: Range):
    """An argparse type: a number of type typ within allowed (the config's own ranges)."""

    def parse(raw: str):
        try:
            value = typ(raw)
        except ValueError:
            kind = "an integer" if typ is int else "a number"
            raise argparse.ArgumentTypeError(f"expected {kind}, got {raw!r}") from None
        if value not in allowed:
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {raw}")
        return value

    return parse


def add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default="quick", help=f"one of {', '.join(PRESETS)} (default quick)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set pretrain.lr=1e-3 (repeatable)",
    )
    p.add_argument(
        "--device", default=None, help="cpu, cuda, cuda:N or mps (default: the best available)"
    )


def config_from_args(args):
    cfg = load_config(args.preset, args.overrides)
    if getattr(args, "device", None):
        cfg.device = args.device
    return cfg


def add_sampling_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--temperature",
        type=number(float, NON_NEGATIVE),
        default=0.8,
        help="softmax temperature (0 = greedy)",
    )
    p.add_argument(
        "--top-k",
        type=number(int, AT_LEAST_1),
        default=None,
        help="sample among the k most likely tokens only",
    )
    p.add_argument("--max-new-tokens", type=number(int, AT_LEAST_1), default=200)
    p.add_argument(
        "--device", default=None, help="cpu, cuda, cuda:N or mps (default: the best available)"
    )
    p.add_argument("--seed", type=int, default=0)


# ---- the steps: each runs one stage of the recipe in a run folder --------------------------------
def cmd_step(args) -> None:
    from minigpt_rlhf import pipeline

    cfg = config_from_args(args)
    name = args.stage or (
        "ppo_ptx" if args.command == "ppo" and cfg.ppo.ptx_coef > 0 else args.command
    )
    if name == "ppo" and cfg.ppo.ptx_coef > 0 and args.stage:
        print(
            f"stage ppo is the paper's PPO: it runs with γ = 0, not "
            f"ppo.ptx_coef={cfg.ppo.ptx_coef} (that is ppo_ptx)"
        )
    run_dir = Path(args.run_dir or f"runs/{args.preset}")
    pipeline.run_step(cfg, run_dir, name)
    print(f"wrote {run_dir / name}")


def add_step_parser(sub, step: str, help: str) -> None:
    p = sub.add_parser(step, help=help)
    add_config_args(p)
    p.add_argument(
        "--run-dir",
        default=None,
        help="the run folder (default runs/<preset>): the stages this one "
        "reads are read from it, and it writes RUN_DIR/STAGE",
    )
    names = [s.name for s in recipe() if s.step == step]
    p.add_argument(
        "--stage",
        default=None,
        choices=names,
        help=f"which stage of the recipe (default {step}"
        + (", or ppo_ptx when ppo.ptx_coef > 0" if step == "ppo" else "")
        + ")",
    )
    p.set_defaults(func=cmd_step)


# ---- the recipe ----------------------------------------------------------------------------------
def cmd_run(args) -> None:
    from minigpt_rlhf import pipeline

    out = args.out or f"runs/{args.preset}"
    pipeline.run(config_from_args(args), out, start=args.start)
    print(f"report: {out}/report.md")


def cmd_sweep(args) -> None:
    from minigpt_rlhf import pipeline

    out = args.out or f"runs/sweep_{args.preset}"
    pipeline.sweep(config_from_args(args), out, start=args.start)
    print(f"report: {out}/report.md")


def seeds_arg(raw: str) -> list[int]:
    try:
        seed_list = [int(x) for x in raw.split(",")]
    except ValueError:
        raise UserError(
            f"--seeds {raw!r}: expected whole numbers separated by commas, e.g. 1337,1338,1339"
        ) from None
    if len(set(seed_list)) != len(seed_list):
        raise UserError(f"--seeds {raw!r}: a seed is repeated; name each once")
    return seed_list


def cmd_seeds(args) -> None:
    from minigpt_rlhf import pipeline

    seed_list = seeds_arg(args.seeds)
    out = args.out or f"runs/seeds_{args.preset}"
    print(f"report: {pipeline.seeds(config_from_args(args), out, seed_list, start=args.start)}")


def cmd_curve(args) -> None:
    from minigpt_rlhf import pipeline

    seed_list, care = seeds_arg(args.seeds), number(float, FRACTION)
    try:
        cares = [care(raw) for raw in args.care.split(",")]
    except argparse.ArgumentTypeError as e:
        raise UserError(f"--care {args.care!r}: each writing care {e}; e.g. 1,0.65,0.3") from None
    out = args.out or f"runs/curve_{args.preset}"
    print(f"report: {pipeline.curve(config_from_args(args), out, seed_list, cares, args.start)}")


def cmd_world(args) -> None:
    from minigpt_rlhf import preflight, world

    preflight.check_out(args.out, "--out")
    out = world.generate(args.out, args.seed, args.care)
    print(
        f"wrote the toy world (seed {args.seed}, care {args.care}) to {out}/: see {out}/README.md"
    )


def cmd_evaluate(args) -> None:
    from minigpt_rlhf import pipeline

    run_dir = Path(args.run_dir or f"runs/{args.preset}")
    pipeline.run_step(config_from_args(args), run_dir, "evaluate")
    print(run_dir / "eval" / "results.json")


def cmd_plot(args) -> None:
    from minigpt_rlhf import plots

    for path in (plots.plot_sweep if is_sweep(args.run) else plots.plot_run)(args.run):
        print(path)


def cmd_report(args) -> None:
    from minigpt_rlhf import report

    if any(Path(args.run).glob("seed_*/eval")):  # a `seeds` folder: one run per seed
        print(report.write_seeds_report(args.run))
    else:
        print((report.write_sweep_report if is_sweep(args.run) else report.write_report)(args.run))


# ---- talking to a model --------------------------------------------------------------------------
def cmd_info(args) -> None:
    from minigpt_rlhf.runtime import measure_matmul_flops, native_bf16, setup

    dev = setup(0, args.device)
    print(f"torch {torch.__version__}, device {dev}, {torch.get_num_threads()} threads")
    print(f"fp32 matmul: {measure_matmul_flops(dev) / 1e9:.1f} GFLOP/s (measured, 1024x1024)")
    bf16 = native_bf16(dev.type)
    print(
        f"bf16 in hardware: {'yes' if bf16 else 'no'} (precision=auto trains in "
        f"{'bf16' if bf16 else 'fp32'})"
    )
    if bf16:
        print(
            f"bf16 matmul: {measure_matmul_flops(dev, 4096, torch.bfloat16) / 1e9:.1f} "
            f"GFLOP/s (measured, 4096x4096)"
        )


def cmd_sample(args) -> None:
    from minigpt_rlhf.runtime import build_model, load_checkpoint, setup, tokenizer_from
    from minigpt_rlhf.tokenizer import VocabError, format_chat, format_plain

    dev = setup(args.seed, args.device)
    ckpt = load_checkpoint(args.ckpt, GENERATORS)
    model, tok = build_model(ckpt, dev), tokenizer_from(ckpt)
    chat = ckpt["kind"] != "pretrain" and not args.plain
    try:
        ids = (format_chat if chat else format_plain)(tok, args.prompt)
    except VocabError as e:
        raise UserError(f"--prompt: {e}") from None
    room = model.config.block_size - len(ids)
    if room < 1:
        raise UserError(
            f"--prompt is {len(ids)} tokens, the model's context is "
            f"{model.config.block_size}: shorten it"
        )
    gen = torch.Generator(device=dev).manual_seed(args.seed)
    for _ in range(args.num):
        out = model.generate(
            [ids],
            min(args.max_new_tokens, room),
            args.temperature,
            args.top_k,
            stop_id=tok.end_id,
            pad_id=tok.pad_id,
            generator=gen,
        )
        print(tok.decode(out.responses[0], skip_special=True))
        print("-" * 40)


def cmd_best_of_n(args) -> None:
    from minigpt_rlhf.best_of_n import best_of_n, kl_best_of_n
    from minigpt_rlhf.runtime import (
        build_model,
        build_reward_model,
        load_checkpoint,
        setup,
        tokenizer_from,
    )
    from minigpt_rlhf.sampling import prompt_ids

    dev = setup(args.seed, args.device)
    ckpt, rm_ckpt = load_checkpoint(args.ckpt, GENERATORS), load_checkpoint(args.reward, "reward")
    if rm_ckpt["tokenizer"] != ckpt["tokenizer"]:  # the same ids would be other words to it
        raise UserError(
            f"--reward {args.reward} was trained with another tokenizer than --ckpt "
            f"{args.ckpt}: they come from different datasets; pass models of one run"
        )
    model, tok = build_model(ckpt, dev).eval(), tokenizer_from(ckpt)
    rm = build_reward_model(rm_ckpt, dev)
    block = min(model.config.block_size, rm.trunk.config.block_size)  # the RM reads prompt + answer
    try:
        room = block - len(prompt_ids(tok, args.prompt))
    except VocabError as e:
        raise UserError(f"--prompt: {e}") from None
    if room < 1:
        raise UserError(
            f"--prompt is too long for the context of the models ({block} tokens): shorten it"
        )
    gen = torch.Generator(device=dev).manual_seed(args.seed)
    _, scores, answers = best_of_n(
        model, rm, tok, [args.prompt], args.n, min(args.max_new_tokens, room), args.temperature, gen
    )
    order = scores[0].argsort(descending=True).tolist()
    print(
        f"{args.n} samples at T = {args.temperature:g}, best first by r_θ (unfinished ones score "
        f"-inf); KL(best-of-{args.n} ‖ policy) ≤ {kl_best_of_n(args.n):.2f} nats"
    )
    for rank, k in enumerate(order):
        print(f"{'→' if rank == 0 else ' '} {float(scores[0, k]):+7.3f}  {answers[k].text}")


def cmd_chat(args) -> None:
    from minigpt_rlhf.runtime import build_model, load_checkpoint, setup, tokenizer_from
    from minigpt_rlhf.tokenizer import VocabError, format_chat, format_plain

    dev = setup(args.seed, args.device)
    ckpt = load_checkpoint(args.ckpt, GENERATORS)
    model, tok = build_model(ckpt, dev).eval(), tokenizer_from(ckpt)
    fmt = format_plain if ckpt["kind"] == "pretrain" else format_chat
    gen = torch.Generator(device=dev).manual_seed(args.seed)
    print(
        f"chatting with a {ckpt['kind']} model ({model.num_params():,} parameters). Ctrl-D "
        f"or Ctrl-C to leave."
    )
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
            print(
                f"  (that is {len(ids)} tokens; the model reads at most "
                f"{model.config.block_size}: shorten it)"
            )
            continue
        print("model> ", end="", flush=True)
        stream = lambda t: print(  # noqa: E731
            tok.decode([t], skip_special=True), end="", flush=True
        )
        try:
            model.generate(
                [ids],
                min(args.max_new_tokens, room),
                args.temperature,
                args.top_k,
                stop_id=tok.end_id,
                pad_id=tok.pad_id,
                generator=gen,
                callback=lambda t: stream(int(t[0])),
            )
        except KeyboardInterrupt:
            print(" (interrupted)", end="")
        print()


def cmd_bench(args) -> None:
    from minigpt_rlhf import bench
    from minigpt_rlhf.runtime import setup

    out = Path(args.out)
    if out.is_dir() or not out.parent.is_dir():
        raise UserError(
            f"--out {out}: expected a file in an existing folder, e.g. --out bench.json"
        )
    dev = setup(0, args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    result = bench.run(
        [args.preset] if args.preset else SHAPES, dev, args.repeats, args.new_tokens, args.out
    )
    print(bench.table(result))
    print(f"wrote {args.out}")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="minigpt-rlhf",
        description=recipe_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")

    p = sub.add_parser("world", help="generate the toy world's dataset (data/) from a seed")
    p.add_argument("--out", default="data", help="folder to write (default data)")
    p.add_argument(
        "--seed", type=int, default=0, help="the default seed 0 reproduces the committed data/"
    )
    p.add_argument(
        "--care",
        type=number(float, FRACTION),
        default=CARE,
        help=f"the demonstrators' writing skill in [0, 1] (default {CARE}, calibrated; 1: perfect)",
    )
    p.set_defaults(func=cmd_world)

    steps = {s.step: s.help for s in recipe() if s.trains and s.name == s.step}
    for step in TRAINING_STEPS:
        add_step_parser(sub, step, steps[step])

    p = sub.add_parser(
        "run", help="every stage in order, then evaluation, plots and report.md (resumable)"
    )
    add_config_args(p)
    p.add_argument("--out", default=None, help="the run folder (default runs/<preset>)")
    p.add_argument(
        "--from",
        dest="start",
        default=None,
        metavar="STAGE",
        help="delete and rerun this stage and every later one: "
        + ", ".join(s.name for s in recipe()),
    )
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "sweep", help="several model sizes through every step, and the paper's Figure 1"
    )
    add_config_args(p)
    p.add_argument("--out", default=None, help="the sweep folder (default runs/sweep_<preset>)")
    p.add_argument(
        "--from",
        dest="start",
        default=None,
        metavar="STAGE",
        help="delete and rerun from this stage on",
    )
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser(
        "seeds", help="the whole recipe for several seeds, and a report of every finding per seed"
    )
    add_config_args(p)
    p.add_argument(
        "--seeds", default="1337,1338,1339", help="comma-separated seeds (default 1337,1338,1339)"
    )
    p.add_argument(
        "--out", default=None, help="the folder of the seed_N runs (default runs/seeds_<preset>)"
    )
    p.add_argument(
        "--from",
        dest="start",
        default=None,
        metavar="STAGE",
        help="rerun every seed from this stage on",
    )
    p.set_defaults(func=cmd_seeds)

    p = sub.add_parser(
        "curve",
        help="when does RLHF beat SFT? the recipe at several writing skills of the demonstrators",
    )
    add_config_args(p)
    p.add_argument(
        "--care",
        default=",".join(f"{c:g}" for c in CURVE_CARE),
        help="comma-separated writing cares in [0, 1] (default: perfect, calibrated, hurried)",
    )
    p.add_argument(
        "--seeds", default="1337,1338,1339", help="comma-separated seeds (default 1337,1338,1339)"
    )
    p.add_argument("--out", default=None, help="the folder (default runs/curve_<preset>)")
    p.add_argument(
        "--from", dest="start", default=None, metavar="STAGE", help="rerun from this stage on"
    )
    p.set_defaults(func=cmd_curve)

    p = sub.add_parser(
        "evaluate", help="measure every model of a run folder into eval/results.json"
    )
    add_config_args(p)
    p.add_argument("--run-dir", default=None, help="the run folder (default runs/<preset>)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser(
        "plot", help="redraw a run's or a sweep's figures from metrics.jsonl and eval/*.json"
    )
    p.add_argument("run", help="the run or sweep folder, e.g. runs/quick or runs/sweep_quick")
    p.set_defaults(func=cmd_plot)

    p = sub.add_parser("report", help="write RUN/report.md: the paper's findings beside ours")
    p.add_argument(
        "run",
        help="the run, sweep or seeds folder, e.g. runs/quick, runs/sweep_quick, runs/seeds_quick",
    )
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("sample", help="generate from a checkpoint")
    p.add_argument("--ckpt", required=True, help="a checkpoint, e.g. runs/quick/sft/ckpt.pt")
    p.add_argument(
        "--prompt", required=True, help="the instruction (chat format) or text to continue (base)"
    )
    p.add_argument("--num", type=number(int, AT_LEAST_1), default=1, help="how many samples")
    p.add_argument(
        "--plain", action="store_true", help="prompt a chat model with plain text, as a base model"
    )
    add_sampling_args(p)
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser(
        "best-of-n",
        help="n answers from a policy, ranked by a reward model: the best one is best-of-n",
    )
    p.add_argument("--ckpt", required=True, help="the policy, e.g. runs/quick/sft/ckpt.pt")
    p.add_argument(
        "--reward", required=True, help="the reward model, e.g. runs/quick/reward/ckpt.pt"
    )
    p.add_argument("--prompt", required=True, help="the instruction")
    p.add_argument(
        "--n",
        type=number(int, AT_LEAST_1),
        default=16,
        help="how many answers to draw (default 16)",
    )
    add_sampling_args(p)
    p.set_defaults(func=cmd_best_of_n, temperature=1.0, max_new_tokens=32)

    p = sub.add_parser(
        "chat", help="talk to any checkpoint (base, SFT, PPO); answers stream as they are sampled"
    )
    p.add_argument("--ckpt", required=True, help="a checkpoint, e.g. runs/quick/ppo_ptx/ckpt.pt")
    add_sampling_args(p)
    p.set_defaults(func=cmd_chat)

    p = sub.add_parser(
        "info", help="torch version, device, threads and this machine's measured matmul speed"
    )
    p.add_argument("--device", default=None)
    p.set_defaults(func=cmd_info)

    p = sub.add_parser(
        "bench", help="training, sampling and PPO speed on this machine (table + JSON)"
    )
    p.add_argument(
        "--preset", choices=SHAPES, default=None, help="one model shape only (default: all three)"
    )
    p.add_argument("--out", default="bench.json", help="JSON file to write (default bench.json)")
    p.add_argument(
        "--device", default=None, help="cpu, cuda, cuda:N or mps (default: the best available)"
    )
    p.add_argument(
        "--repeats",
        type=number(int, AT_LEAST_1),
        default=3,
        help="timed runs per measurement, after a warm-up",
    )
    p.add_argument(
        "--threads",
        type=number(int, AT_LEAST_1),
        default=None,
        help="torch intra-op threads (default torch's); 1 is far faster on a busy 2-core CPU",
    )
    p.add_argument(
        "--new-tokens",
        type=number(int, AT_LEAST_1),
        default=256,
        help="tokens per sampling run (default 256)",
    )
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv=None) -> int:
    try:
        args = build_parser().parse_args(argv)
        args.func(args)
    except (UserError, DataError, VocabError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "\ninterrupted: the last good checkpoint is kept; rerun the same command to resume",
            file=sys.stderr,
        )
        return 130
    return 0
