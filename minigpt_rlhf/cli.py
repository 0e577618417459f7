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


# ---- world ---------------------------------------------------------------------------------------------
def cmd_world(args) -> None:
    from minigpt_rlhf import world

    out = world.generate(args.out, args.seed)
    print(f"wrote the toy world (seed {args.seed}) to {out}/: see {out}/README.md")


def add_sampling_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--temperature", type=float, default=0.8, help="softmax temperature (0 = greedy)")
    p.add_argument("--top-k", type=int, default=None, help="sample among the k most likely tokens only")
    p.add_argument("--max-new-tokens", type=int, default=200)
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N or mps (default: the best available)")
    p.add_argument("--seed", type=int, default=0)


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

    # --- reward (issue 6) ---

    # --- ppo (issue 7) ---

    # --- run, sweep, evaluate, plot, report (issue 8) ---

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
