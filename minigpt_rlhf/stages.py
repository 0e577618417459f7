"""The recipe as one list of stages: what each runs, which stages' folders it reads, what it writes,
and under which names the evaluation shows its model. The pipeline, `--from`, the evaluation, the
compute accounting, the report, the plots and the CLI's help all read the list here.

    world → pretrain [→ pretrain_large] → sft → ppo_gold beside reward
          → ppo, ppo_ptx, dpo [, grpo] (side by side)
          → [reward_biased → ppo_biased] → evaluate → plots → report
    ([...]: pipeline.large, grpo, biased)

A stage that trains writes run_dir/NAME/ (ckpt.pt, metrics.jsonl) with `STEP.run(cfg, out,
**reads)`, `reads` naming the folders of the stages it starts from; the others write files derived
from those (eval/, plots/, report.md). `minigpt-rlhf sweep` uses the same machinery over several
model sizes (`sweep`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import partial
from typing import Callable

from minigpt_rlhf.config import Config, parse_shape, sweep_shapes
from minigpt_rlhf.model import GPTConfig

TRAINING_STEPS = (
    "pretrain",
    "sft",
    "reward",
    "ppo",
    "dpo",
)  # the step modules: siblings, none imports another


@dataclass(frozen=True)
class Stage:
    name: str  # its folder in the run directory (or the file it writes), and what --from takes
    step: str  # a step module of TRAINING_STEPS, or world / evaluate / plots / report
    help: str  # one line: what it does
    reads: dict[str, str] = field(
        default_factory=dict
    )  # STEP.run's parameter -> the stage whose folder it is
    options: dict = field(default_factory=dict)  # further keyword arguments of STEP.run
    configure: Callable[[Config], Config] | None = (
        None  # the settings it runs with, if not the run's own
    )
    shows: tuple[
        tuple[str, str], ...
    ] = ()  # (name, prompting) under which the evaluation shows its model
    output: str | None = (
        None  # what it writes, if not the folder `name`: deleted by --from, marks it done
    )

    @property
    def trains(self) -> bool:
        return self.step in TRAINING_STEPS

    @property
    def writes(self) -> str:
        return self.name if self.output is None else self.output

    def config(self, cfg: Config) -> Config:
        return self.configure(cfg) if self.configure else cfg


# ---- model shapes (written "LxHxC"; config.py parses and checks them) ----------------------------
def shape_tag(mc: GPTConfig) -> str:
    return f"{mc.n_layer}x{mc.n_head}x{mc.n_embd}"


def _large(cfg: Config) -> Config:
    """The larger base model ("GPT-3 large"): pipeline.large_model, pretrained for
    pipeline.large_steps at its own learning rate."""
    p = cfg.pipeline
    return dataclasses.replace(
        cfg,
        model=parse_shape(p.large_model, cfg.model),
        pretrain=dataclasses.replace(
            cfg.pretrain,
            steps=p.large_steps or cfg.pretrain.steps,
            lr=p.large_lr,
            min_lr=p.large_lr / 10,
        ),
    )


def _no_ptx(cfg: Config) -> Config:
    """The paper's "PPO" models: the same RL, γ = 0."""
    return dataclasses.replace(cfg, ppo=dataclasses.replace(cfg.ppo, ptx_coef=0.0))


def _gold(cfg: Config) -> Config:
    """The gold-judge stage: PPO (γ = 0) at its own β, ppo.oracle_kl_coef (a perfect reward needs
    less leash)."""
    return dataclasses.replace(
        cfg, ppo=dataclasses.replace(cfg.ppo, ptx_coef=0.0, kl_coef=cfg.ppo.oracle_kl_coef)
    )


def _grpo(cfg: Config) -> Config:
    """GRPO: PPO's loop with ppo.baseline = group, γ = 0."""
    return dataclasses.replace(
        cfg, ppo=dataclasses.replace(cfg.ppo, ptx_coef=0.0, baseline="group")
    )


def _with_shape(cfg: Config, mc: GPTConfig, no_ptx: bool) -> Config:
    cfg = dataclasses.replace(cfg, model=mc)
    return _no_ptx(cfg) if no_ptx else cfg


def _shape(mc: GPTConfig, no_ptx: bool = False) -> Callable[[Config], Config]:
    """The settings of one size of the sweep; a partial, not a closure: stages travel to worker
    processes."""
    return partial(_with_shape, mc=mc, no_ptx=no_ptx)


# ---- the recipes ---------------------------------------------------------------------------------
GPT3 = (("GPT-3", "plain"), ("GPT-3 prompted", "few_shot"))


def recipe(biased: bool = True, large: bool = True, grpo: bool = True) -> list[Stage]:
    """The stages of `minigpt-rlhf run`, in order; biased: with the "whose preferences?" experiment;
    large: with the larger base model ("GPT-3 large"); grpo: with GRPO. The longest RL stages come
    first: the pipeline starts the stages that are ready at once in this order, so the short ones
    fill the other core's slack."""
    ppo_reads = {"sft": "sft", "reward": "reward"}
    stages = [
        Stage(
            "world",
            "world",
            "check data/, the settings and the run folder, before anything is written",
            output="",
        ),
        Stage(
            "pretrain", "pretrain", 'step 0: a small GPT learns the corpus ("GPT-3")', shows=GPT3
        ),
        *(
            [
                Stage(
                    "pretrain_large",
                    "pretrain",
                    'a larger base model (pipeline.large_model): "GPT-3 large"',
                    configure=_large,
                    shows=(("GPT-3 large", "plain"), ("GPT-3 large prompted", "few_shot")),
                )
            ]
            if large
            else []
        ),
        Stage(
            "sft",
            "sft",
            "step 1: supervised fine-tuning on labeler demonstrations",
            reads={"base": "pretrain"},
            shows=(("SFT", "chat"),),
        ),
        Stage(
            "reward",
            "reward",
            "step 2: a reward model learns the labelers' rankings of K = 4..9 responses",
            reads={"sft": "sft", "base": "pretrain"},
        ),
        Stage(
            "ppo",
            "ppo",
            "step 3: PPO against the reward model, per-token KL penalty (γ = 0)",
            reads=ppo_reads,
            configure=_no_ptx,
            shows=(("PPO", "chat"),),
        ),
        Stage(
            "ppo_ptx",
            "ppo",
            "step 3: PPO-ptx, the same plus γ · the pretraining loss",
            reads=ppo_reads,
            shows=(("PPO-ptx", "chat"),),
        ),
        Stage(
            "ppo_gold",
            "ppo",
            "the loop's proof, not the recipe: PPO (γ = 0) against the gold judge itself, "
            "what RL reaches with a perfect reward model",
            reads={"sft": "sft"},
            configure=_gold,
            options={"oracle": True},
            shows=(("PPO (gold oracle)", "chat"),),
        ),
        *(
            [
                Stage(
                    "grpo",
                    "ppo",
                    "beside PPO: GRPO, no value model, advantages relative to a group of answers "
                    "(γ = 0)",
                    reads=ppo_reads,
                    configure=_grpo,
                    shows=(("GRPO", "chat"),),
                )
            ]
            if grpo
            else []
        ),
        Stage(
            "dpo",
            "dpo",
            "beside PPO: DPO, the policy trained on the reward stage's comparisons, no "
            "reward model",
            reads={"sft": "sft", "comparisons": "reward"},
            shows=(("DPO", "chat"),),
        ),
    ]
    if biased:
        stages += [
            Stage(
                "reward_biased",
                "reward",
                "whose preferences? a reward model from a biased labeler group, on "
                "the reward stage's responses",
                reads={"sft": "sft", "responses": "reward"},
                options={"labelers": "biased"},
            ),
            Stage(
                "ppo_biased",
                "ppo",
                "whose preferences? PPO (γ = 0) against the biased reward model",
                reads={"sft": "sft", "reward": "reward_biased"},
                configure=_no_ptx,
                shows=(("PPO biased", "chat"),),
            ),
        ]
    return stages + [
        Stage(
            "evaluate",
            "evaluate",
            "every model answers the eval split: win rates, three H's, tax, compute",
            output="eval",
        ),
        Stage("plots", "plots", "figures from metrics.jsonl and eval/results.json"),
        Stage(
            "report", "report", "report.md: the paper's findings beside ours", output="report.md"
        ),
    ]


def run_recipe(pipeline: dict) -> list[Stage]:
    """The recipe a run's settings choose (its `pipeline` section, as a dict: a run folder's
    config); a setting a folder predates counts as on."""
    return recipe(*(pipeline.get(k, True) for k in ("biased", "large", "grpo")))


def sweep(cfg: Config) -> list[Stage]:
    """The stages of `minigpt-rlhf sweep`: every size through pretrain, SFT, PPO and PPO-ptx; one
    reward model, trained from the middle size's SFT model, scores them all (as the paper's 6B RM
    served every policy size)."""
    shapes = sweep_shapes(cfg)
    middle = shapes[len(shapes) // 2]
    rm = shape_tag(middle)
    stages = [Stage("world", "world", "check data/, the settings and the checkpoints", output="")]
    for mc in shapes:
        t = shape_tag(mc)
        stages += [
            Stage(f"pretrain_{t}", "pretrain", f"step 0 at {t}", configure=_shape(mc), shows=GPT3),
            Stage(
                f"sft_{t}",
                "sft",
                f"step 1 at {t}",
                reads={"base": f"pretrain_{t}"},
                configure=_shape(mc),
                shows=(("SFT", "chat"),),
            ),
        ]
    stages.append(
        Stage(
            "reward",
            "reward",
            f"step 2, from the {rm} SFT model, for every size",
            reads={"sft": f"sft_{rm}", "base": f"pretrain_{rm}"},
            configure=_shape(middle),
        )
    )
    for mc in shapes:
        t = shape_tag(mc)
        reads = {"sft": f"sft_{t}", "reward": "reward"}
        stages += [
            Stage(
                f"ppo_{t}",
                "ppo",
                f"step 3 at {t} (γ = 0)",
                reads=reads,
                configure=_shape(mc, no_ptx=True),
                shows=(("PPO", "chat"),),
            ),
            Stage(
                f"ppo_ptx_{t}",
                "ppo",
                f"step 3, PPO-ptx at {t}",
                reads=reads,
                configure=_shape(mc),
                shows=(("PPO-ptx", "chat"),),
            ),
        ]
    return stages + [
        Stage(
            "evaluate",
            "evaluate",
            "every method at every size against the largest SFT model",
            output="eval",
        ),
        Stage("plots", "plots", "figures"),
        Stage("report", "report", "report.md", output="report.md"),
    ]


def training(stages: list[Stage]) -> list[Stage]:
    """The stages with a checkpoint, in order."""
    return [s for s in stages if s.trains]


def contenders(stages: list[Stage]) -> list[tuple[str, Stage, str]]:
    """(name, stage, prompting) of every model the evaluation compares, in the recipe's order."""
    return [(name, s, prompting) for s in stages for name, prompting in s.shows]
