"""One dataclass per stage, gathered in Config, and four named presets.

Defaults are the `quick` preset (the whole recipe on a 2-core CPU in minutes). `balanced` keeps
quick's models with fewer demonstrations, more rankings and a longer RL loop; `micro` is the tests'
and `full` a GPU's. Each stage's table of preset overrides sits below its dataclass.
`load_config("micro", ["ppo.kl_coef=0.05"])` builds a Config, as `--set key=value` does on the
command line. Every value is checked when the Config is built (RANGES, `check`), so a bad value is
an error before any stage runs. Each field's comment says why it has its value; "log DATE: topic"
names the entry of the experiment log, docs/experiments/README.md, whose measurement chose it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from minigpt_rlhf.model import GPTConfig
from minigpt_rlhf.runtime import UserError

PRESETS = ("micro", "quick", "balanced", "full")

# The GPT's shape is the model's dataclass (model.GPTConfig); vocab_size comes from the tokenizer.
MODEL_PRESETS = {
    "micro": dict(n_layer=2, n_head=2, n_embd=32),
    "quick": {},
    "balanced": {},
    "full": dict(n_layer=6, n_head=6, n_embd=192, dropout=0.1),
}


@dataclass
class Optim:
    """AdamW (weight decay on matrices only), linear warmup to lr, cosine decay to min_lr, gradient
    clipping: the optimizer of the stages that use `training.make_optimizer` and `lr_at`."""

    lr: float = 1e-3  # peak learning rate, after warmup
    min_lr: float = 1e-4  # end of the cosine decay (= lr: constant)
    warmup: int = 0  # linear warmup steps
    weight_decay: float = 0.1  # GPT-3's decay
    beta1: float = 0.9  # Adam's momentum
    beta2: float = 0.99  # a little shorter memory than Adam's 0.999 (nanoGPT's small models)
    grad_clip: float = 1.0  # max gradient norm


@dataclass
class PretrainConfig(Optim):
    """Step 0: next-token prediction on the corpus."""

    steps: int = 1800  # facts are learned late (log 2026-12-02: how many pretraining steps)
    batch_size: int = 12  # with lr 5e-3 (log 2026-11-25: the pretraining batch)
    seq_len: int = 128  # all of block_size (log 2026-12-01: settings of the byte-pair world)
    grad_accum: int = 1  # micro-batches per optimizer step
    lr: float = 5e-3  # peak, for batch 12 (log 2026-11-25: the pretraining batch)
    min_lr: float = 5e-4  # a tenth of lr
    warmup: int = 100  # steps
    eval_every: int = 100  # steps between validation losses and checkpoints
    eval_windows: int = 120  # held-out windows: val_loss, PPO's corpus_loss, the tax
    log_every: int = 10  # steps between training-loss rows


PRETRAIN_PRESETS = {
    # micro: enough steps for SFT to have a base to lift (log 2026-12-01: byte-pair world)
    "micro": dict(
        steps=300,
        batch_size=8,
        seq_len=64,
        lr=1e-2,
        warmup=10,
        eval_every=100,
        eval_windows=16,
        log_every=5,
    ),
    "quick": {},
    "balanced": {},
    "full": dict(steps=8000, batch_size=64, lr=1e-3, min_lr=1e-4, warmup=400, eval_every=500),
}


@dataclass
class SFTConfig(Optim):
    """Step 1: fine-tuning on the labelers' demonstrations, loss on response tokens only."""

    epochs: int = 8  # passes over the demonstrations (the paper: 16, then picked a checkpoint)
    batch_size: int = 32  # demonstrations per step
    grad_accum: int = 1  # micro-batches per step
    lr: float = 1e-3  # peak
    min_lr: float = 1e-4  # a tenth of lr
    warmup: int = 20  # steps
    dropout: float = 0.1  # residual dropout while fine-tuning (the paper used 0.2)
    max_demos: int = 0  # train on at most this many demonstrations (0 = all)
    heldout_prompts: int = 100  # SFT prompts held out: validation loss, gold score per epoch
    log_every: int = 10  # steps between training-loss rows


SFT_PRESETS = {
    "micro": dict(
        epochs=5, batch_size=16, max_demos=320, heldout_prompts=16, lr=3e-3, warmup=5, log_every=5
    ),
    "quick": {},
    # balanced: half the demonstrations, leaving the RM something to find (a demonstration is the
    # judge's own optimum; log 2026-12-02: the paper's ratio; between the two)
    "balanced": dict(max_demos=1200),
    "full": dict(epochs=8, batch_size=64, lr=5e-4, min_lr=5e-5),
}


@dataclass
class RewardConfig(Optim):
    """Step 2: K responses per prompt, ranked by labelers; the ranking loss over C(K,2) pairs."""

    n_prompts: int = 1080  # RM-split prompts whose rankings train the RM (the paper: about 33k)
    rankings_per_prompt: int = 1  # R: each prompt's responses sampled and ranked R times
    val_prompts: int = 120  # RM-split prompts ranked by a training and a held-out labeler
    k_min: int = 4  # K ~ U{k_min..k_max} responses per prompt (the paper: 4 to 9)
    k_max: int = 9
    temperatures: str = "0.5,1.0,1.5"  # SFT's sampling temperatures, cycled per prompt
    base_share: float = 0.15  # share of responses from the base model (plain-text prompt)
    sample_batch: int = 64  # sequences per batched generate call
    lr: float = 1e-3  # no weight decay
    min_lr: float = 1e-4
    warmup: int = 50
    weight_decay: float = 0.0
    beta2: float = 0.999  # Adam's default
    batch_size: int = 8  # prompts per step; each prompt's C(K,2) pairs are one batch element
    epochs: int = 4  # the paper: 1; here near the held-out loss minimum, which more rankings
    #                  move (log 2026-12-02: the balanced preset; 10 pay more, at 2.5x the time)
    pairs: bool = False  # ablation: comparisons as shuffled independent pairs
    eval_every: int = 45  # steps between validation accuracies (the curves) and checkpoints


REWARD_PRESETS = {
    "micro": dict(
        n_prompts=24,
        val_prompts=12,
        k_max=6,
        sample_batch=32,
        lr=1e-3,
        min_lr=1e-3,
        warmup=0,
        batch_size=4,
        epochs=1,
        temperatures="0.7,1.0,1.3",
        base_share=0.25,
        eval_every=3,
    ),
    "quick": {},
    # balanced: each prompt ranked twice (log 2026-12-02: a second ranking per prompt), 10 epochs
    "balanced": dict(rankings_per_prompt=2, epochs=10, eval_every=15),
    "full": dict(
        n_prompts=1000,
        val_prompts=200,
        lr=1e-4,
        min_lr=1e-4,
        warmup=0,
        batch_size=16,
        epochs=1,
        temperatures="0.7,1.0,1.3",
        base_share=0.25,
        eval_every=10,
    ),
}


@dataclass
class PPOConfig:
    """Step 3: PPO against the reward model with a per-token KL penalty; PPO-ptx adds pretraining.
    Names follow the paper (β = kl_coef, γ = ptx_coef) and cleanrl (clip_eps, gae_lambda, ...)."""

    iterations: int = (
        80  # rollout + update cycles: 10,240 answers, what the gold-judge loop needs to climb
    )
    rollout_batch: int = 128  # prompts per iteration, one response each (the paper's "episodes")
    minibatch: int = 32  # responses per gradient step
    ppo_epochs: int = 2  # passes over each rollout batch (1 spends the answers less fully)
    lr: float = 1e-4  # policy learning rate (AdamW, constant)
    value_lr: float = 3e-4  # V is a separate model: its own rate, not cleanrl's vf_coef
    clip_eps: float = 0.2  # ε: the policy ratio is clipped to [1 − ε, 1 + ε]
    value_warmup: int = 0  # iterations of V alone first; no gain (log 2026-12-05: a value warm-up)
    clip_value: float = 0.2  # V's step clipped to this around its rollout value
    baseline: str = "value"  # "value": PPO's V and GAE; "group": GRPO
    group_size: int = 8  # GRPO's G (rollout_batch answers = rollout_batch / G prompts)
    gae_gamma: float = 1.0  # 1: an episode is one response (lm-human-preferences)
    gae_lambda: float = 0.95  # GAE λ: 0 = one-step TD, 1 = Monte-Carlo return
    kl_coef: float = 0.2  # β of the per-token KL to π^SFT (the paper: 0.02); less finds the RM's
    #                       blind spots (log 2026-12-01: RL against learned reward models)
    oracle_kl_coef: float = 0.05  # β of the gold-judge stage: a perfect reward needs less leash
    #                               (log 2026-12-05: what bounds the gold-judge loop)
    kl_target: float = 0.0  # 0 = fixed β; > 0: β adapts from kl_coef to this KL
    kl_horizon: int = 1000  # adaptive β's horizon in responses (Ziegler et al.: 10000)
    ptx_coef: float = 0.1  # γ of PPO-ptx (0 = PPO): repays most of the tax, keeps helpfulness
    #                        (log 2026-12-05: γ of PPO-ptx); the paper's 27.8 scales other losses
    ptx_batch: int = 4  # corpus windows (pretrain.seq_len) per PPO-ptx step
    temperature: float = 1.0  # T of softmax(logits / T) in sampling, ratio and KL; 0.7 gained
    #                           nothing (log 2026-12-05: the rollouts' temperature)
    truncation_penalty: float = -1.0  # a truncated response's score (normalised)
    normalize_score: bool = True  # RM scores / their std on SFT's samples
    whiten_advantages: bool = True  # advantages to mean 0, std 1 over the batch's response tokens
    grad_clip: float = 1.0  # max gradient norm, per model
    eval_every: int = 8  # iterations between corpus losses and checkpoints


PPO_PRESETS = {
    "micro": dict(
        iterations=3, rollout_batch=8, minibatch=4, ppo_epochs=2, ptx_batch=2, eval_every=2
    ),
    "quick": {},
    # balanced: γ 1 and the gold stage at β 0.2, with which every balanced number was measured
    "balanced": dict(ptx_coef=1.0, oracle_kl_coef=0.2),
    "full": dict(
        iterations=150,
        rollout_batch=64,
        minibatch=16,
        ppo_epochs=4,
        lr=5e-5,
        value_lr=1e-4,
        ptx_batch=16,
    ),
}


@dataclass
class DPOConfig(Optim):
    """Beside the recipe: DPO on the reward stage's comparisons, a prompt's pairs in one element."""

    beta: float = 0.1  # β: the implicit reward is β · log(π / π_ref)
    epochs: int = 2  # passes over the comparisons
    batch_size: int = 8  # prompts (whole rankings) per step
    lr: float = 1e-4  # peak
    min_lr: float = 1e-5  # a tenth of lr
    warmup: int = 10  # steps
    weight_decay: float = 0.0  # none: β's tie to π_ref is the regulariser
    eval_every: int = 15  # steps between validation accuracies and checkpoints


DPO_PRESETS = {
    "micro": dict(epochs=1, batch_size=4, lr=1e-3, min_lr=1e-4, warmup=2, eval_every=3),
    "quick": {},
    "balanced": {},
    "full": dict(batch_size=16, lr=5e-5, min_lr=5e-6),
}


@dataclass
class EvalConfig:
    """Evaluation: every model answers the eval split; the world's judges score the answers."""

    prompts: int = 0  # eval-split prompts (never trained on) per model; 0 = all of them (480)
    samples: int = 1  # responses per prompt and model
    temperature: float = 0.7  # every compared model samples (as the paper's)
    batch_size: int = 48  # prompts per batched KV-cache generation
    bootstrap: int = 1000  # resamples for bootstrap confidence intervals
    confidence: float = 0.95  # level of every interval
    cloze_items: int = 100  # corpus-style fact completions (the alignment-tax task); 0 = all
    temperatures: str = "0,0.3,0.5,0.7,1"  # SFT at its best T: a baseline
    best_of: int = 16  # SFT samples (T 1) for best-of-n, n = 1, 2, 4, ...
    oracle_of: int = 8  # the gold judge's best of these: a ceiling


EVAL_PRESETS = {
    "micro": dict(prompts=24, batch_size=24, bootstrap=200, cloze_items=12),
    "quick": {},
    "balanced": {},
    "full": dict(samples=2, cloze_items=0),
}


@dataclass
class PipelineConfig:
    """What `minigpt-rlhf run` and `sweep` add to the recipe. Model shapes are written "LxHxC":
    n_layer x n_head x n_embd."""

    large_model: str = "4x4x160"  # 1.55x quick's: "175B GPT-3" to our "1.3B"
    large_steps: int = 0  # its pretraining steps; 0 = pretrain.steps
    large_lr: float = 3e-3  # its peak rate (min_lr a tenth); log 2026-12-01: byte-pair world
    large: bool = False  # pretrain the larger base model too ("GPT-3 large"; balanced does)
    biased: bool = False  # "whose preferences?": an RM from biased labelers, PPO against it
    grpo: bool = False  # GRPO beside PPO (balanced)
    sweep_sizes: str = "2x2x64,4x4x128,6x4x192"  # `minigpt-rlhf sweep`'s sizes, smallest first
    workers: int = 0  # stages at once, one process each; 0 = one per core
    threads: int = 1  # per stage, 0 = torch's (log 2026-12-01: one torch thread)


PIPELINE_PRESETS = {
    "micro": dict(
        large_model="2x2x48",
        sweep_sizes="1x2x16,2x2x32,2x2x48",
        workers=1,
        large=True,
        biased=True,
        grpo=True,
    ),
    "quick": {},
    "balanced": dict(large=True, biased=True, grpo=True),
    "full": dict(
        large_model="8x8x384",
        sweep_sizes="4x4x128,6x6x192,8x8x256",
        large=True,
        biased=True,
        grpo=True,
    ),
}


@dataclass
class Config:
    """Everything a run needs; serialised into every checkpoint and metrics file."""

    preset: str = "quick"  # the preset this Config was built from
    seed: int = 1337  # every stage's seed; the committed runs use 1337, 1338, 1339
    device: str = ""  # "" = automatic (cuda > mps > cpu)
    precision: str = "auto"  # supervised stages: "auto" = bf16 where the hardware has it,
    #                          else fp32; RL, DPO, the evaluation stay fp32 (log 2026-12-02: bf16)
    data_dir: str = "data"  # the world's committed splits and tokenizer
    tokenizer: str = "bpe"  # "bpe" (data/tokenizer.json) or "chars"
    max_new_tokens: int = 32  # answer limit: fits the longest demonstration (27 tokens)
    model: GPTConfig = field(default_factory=GPTConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    ppo: PPOConfig = field(default_factory=PPOConfig)
    dpo: DPOConfig = field(default_factory=DPOConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)


# micro in float32: its matrices are too small for bf16 to pay for its casts
# (log 2026-12-02: bf16 in the training step)
_TOP_PRESETS = {
    "micro": dict(max_new_tokens=16, precision="fp32"),
    "quick": {},
    "balanced": {},
    "full": {},
}
_STAGE_PRESETS = {
    "model": MODEL_PRESETS,
    "pretrain": PRETRAIN_PRESETS,
    "sft": SFT_PRESETS,
    "reward": REWARD_PRESETS,
    "ppo": PPO_PRESETS,
    "dpo": DPO_PRESETS,
    "eval": EVAL_PRESETS,
    "pipeline": PIPELINE_PRESETS,
}


def load_config(preset: str = "quick", overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """The preset's Config with the `section.key=value` overrides applied, every value checked
    (`check`)."""
    if preset not in PRESETS:
        raise UserError(f"unknown preset {preset!r}: choose one of {', '.join(PRESETS)}")
    cfg = Config(preset=preset, **_TOP_PRESETS[preset])
    for stage, table in _STAGE_PRESETS.items():
        for key, value in table[preset].items():
            setattr(getattr(cfg, stage), key, value)
    for item in overrides:
        apply_override(cfg, item)
    check(cfg)
    return cfg


def apply_override(cfg: Config, item: str) -> None:
    """Set one `section.key=value` (or a top-level `key=value`), converting the value to the field's
    type."""
    if "=" not in item:
        raise UserError(f"--set {item!r}: expected key=value, e.g. --set pretrain.lr=1e-3")
    key, raw = item.split("=", 1)
    *path, name = key.strip().split(".")
    target = cfg
    for part in path:
        sections = [
            f.name
            for f in dataclasses.fields(target)
            if dataclasses.is_dataclass(getattr(target, f.name))
        ]
        if part not in sections:
            raise UserError(
                f"--set {key}: unknown section {part!r}; sections: {', '.join(sections)}"
            )
        target = getattr(target, part)
    fields = {
        f.name: f
        for f in dataclasses.fields(target)
        if not dataclasses.is_dataclass(getattr(target, f.name))
    }
    if name not in fields:
        raise UserError(f"--set {key}: unknown key {name!r}; valid keys here: {', '.join(fields)}")
    setattr(target, name, _parse(key, raw.strip(), type(getattr(target, name))))


def _parse(key: str, raw: str, typ: type):
    try:
        if typ is bool:
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if typ is int:
            value = float(raw)  # accepts 2000 and 2e3, rejects 2.5
            if not value.is_integer():
                raise ValueError
            return int(value)
        return typ(raw)
    except ValueError:
        raise UserError(f"--set {key}={raw}: expected a value of type {typ.__name__}") from None


# ---- allowed values ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Range:
    """The values a number may take: lo..hi, an end excluded where it is open; never NaN or
    infinite."""

    lo: float = -math.inf
    hi: float = math.inf
    lo_open: bool = False
    hi_open: bool = False

    def __contains__(self, x) -> bool:
        return (
            math.isfinite(x)
            and (x > self.lo if self.lo_open else x >= self.lo)
            and (x < self.hi if self.hi_open else x <= self.hi)
        )

    def __str__(self) -> str:
        if self.lo == -math.inf:
            return "a finite number"
        if self.hi == math.inf:
            return f"{'>' if self.lo_open else '>='} {self.lo:g}"
        return (
            f"in {'(' if self.lo_open else '['}{self.lo:g}, "
            f"{self.hi:g}{')' if self.hi_open else ']'}"
        )


ANY, POSITIVE, NON_NEGATIVE, AT_LEAST_1 = Range(), Range(0, lo_open=True), Range(0), Range(1)
FRACTION, BELOW_1, OPEN_UNIT = Range(0, 1), Range(0, 1, hi_open=True), Range(0, 1, True, True)

# The range of every number of every section, by dataclass (a subclass also gets its base's, e.g.
# Optim's). A test checks that no int or float field is missing here.
RANGES = {
    Config: dict(seed=ANY, max_new_tokens=AT_LEAST_1),
    GPTConfig: dict(
        block_size=Range(2),
        n_layer=AT_LEAST_1,
        n_head=AT_LEAST_1,
        n_embd=AT_LEAST_1,
        dropout=BELOW_1,
    ),
    Optim: dict(
        lr=POSITIVE,
        min_lr=NON_NEGATIVE,
        warmup=NON_NEGATIVE,
        weight_decay=NON_NEGATIVE,
        beta1=BELOW_1,
        beta2=BELOW_1,
        grad_clip=POSITIVE,
    ),
    PretrainConfig: dict(
        steps=AT_LEAST_1,
        batch_size=AT_LEAST_1,
        seq_len=AT_LEAST_1,
        grad_accum=AT_LEAST_1,
        eval_every=AT_LEAST_1,
        eval_windows=AT_LEAST_1,
        log_every=AT_LEAST_1,
    ),
    SFTConfig: dict(
        epochs=AT_LEAST_1,
        batch_size=AT_LEAST_1,
        grad_accum=AT_LEAST_1,
        dropout=BELOW_1,
        max_demos=NON_NEGATIVE,
        heldout_prompts=AT_LEAST_1,
        log_every=AT_LEAST_1,
    ),
    RewardConfig: dict(
        n_prompts=AT_LEAST_1,
        rankings_per_prompt=AT_LEAST_1,
        val_prompts=AT_LEAST_1,
        k_min=Range(2),
        k_max=Range(2),
        base_share=FRACTION,
        sample_batch=AT_LEAST_1,
        batch_size=AT_LEAST_1,
        epochs=AT_LEAST_1,
        eval_every=AT_LEAST_1,
    ),
    PPOConfig: dict(
        iterations=AT_LEAST_1,
        rollout_batch=AT_LEAST_1,
        minibatch=AT_LEAST_1,
        ppo_epochs=AT_LEAST_1,
        lr=POSITIVE,
        value_lr=POSITIVE,
        clip_eps=POSITIVE,
        clip_value=POSITIVE,
        gae_gamma=FRACTION,
        gae_lambda=FRACTION,
        kl_coef=NON_NEGATIVE,
        kl_target=NON_NEGATIVE,
        kl_horizon=AT_LEAST_1,
        ptx_coef=NON_NEGATIVE,
        ptx_batch=AT_LEAST_1,
        temperature=POSITIVE,
        truncation_penalty=ANY,
        grad_clip=POSITIVE,
        value_warmup=NON_NEGATIVE,
        oracle_kl_coef=NON_NEGATIVE,
        eval_every=AT_LEAST_1,
        group_size=Range(2),
    ),
    DPOConfig: dict(beta=POSITIVE, epochs=AT_LEAST_1, batch_size=AT_LEAST_1, eval_every=AT_LEAST_1),
    EvalConfig: dict(
        prompts=NON_NEGATIVE,
        samples=AT_LEAST_1,
        temperature=NON_NEGATIVE,
        batch_size=AT_LEAST_1,
        bootstrap=AT_LEAST_1,
        confidence=OPEN_UNIT,
        cloze_items=NON_NEGATIVE,
        best_of=AT_LEAST_1,
        oracle_of=AT_LEAST_1,
    ),
    PipelineConfig: dict(
        large_steps=NON_NEGATIVE, large_lr=POSITIVE, workers=NON_NEGATIVE, threads=NON_NEGATIVE
    ),
}


def ranges(section) -> dict[str, Range]:
    """The allowed range of each number of one section (a dataclass instance), its base classes'
    included."""
    out = {}
    for cls in reversed(type(section).__mro__):
        out.update(RANGES.get(cls, {}))
    return out


def check(cfg: Config) -> None:
    """Raise a UserError naming the first value out of its range, or the first two settings that
    disagree, and the --set that changes it. (What needs the data, e.g. whether the prompts fit
    model.block_size, is checked by preflight.py before the first stage.)"""
    sections = {"": cfg} | {
        f.name + ".": getattr(cfg, f.name)
        for f in dataclasses.fields(cfg)
        if dataclasses.is_dataclass(getattr(cfg, f.name))
    }
    for prefix, section in sections.items():
        for name, allowed in ranges(section).items():
            value = getattr(section, name)
            if value not in allowed:
                raise UserError(
                    f"{prefix}{name}={value}: must be {allowed}; change it with --set "
                    f"{prefix}{name}=VALUE"
                )
    for ok, message in _agreements(cfg):
        if not ok:
            raise UserError(message)
    parse_temperatures(cfg.reward.temperatures)
    parse_temperatures(cfg.eval.temperatures, "eval.temperatures", allow_zero=True)
    parse_shape(cfg.pipeline.large_model, cfg.model)
    sweep_shapes(cfg)


def _agreements(cfg: Config) -> list[tuple[bool, str]]:
    """(holds, the message if not) for each pair of settings that must agree."""
    m, p, r = cfg.model, cfg.pretrain, cfg.reward
    return [
        (
            cfg.preset in PRESETS,
            f"preset={cfg.preset!r}: choose the preset with --preset {'|'.join(PRESETS)}",
        ),
        (
            m.vocab_size == 0,
            f"model.vocab_size={m.vocab_size}: it is set from the tokenizer when a model is built; "
            f"drop --set model.vocab_size",
        ),
        (
            cfg.precision in ("auto", "bf16", "fp32"),
            f"precision={cfg.precision!r}: choose auto, bf16 or fp32 with --set precision",
        ),
        (
            cfg.tokenizer in ("bpe", "chars"),
            f"tokenizer={cfg.tokenizer!r}: choose bpe (the world's byte pairs) or "
            f"chars (one token per character) with --set tokenizer",
        ),
        (
            m.n_embd % m.n_head == 0,
            f"model.n_embd={m.n_embd} is not divisible by model.n_head={m.n_head}: each head "
            f"gets n_embd / n_head channels; change --set model.n_embd or model.n_head",
        ),
        (
            m.n_embd % m.n_head or even_heads(m.n_head, m.n_embd, m.rope),
            f"model.n_embd={m.n_embd} / model.n_head={m.n_head} gives heads of "
            f"{m.n_embd // m.n_head} channels: rotary position embeddings (model.rope) turn a "
            f"head's channels in pairs, so it must be even; --set "
            f"model.n_embd={even_embd(m.n_head, m.n_embd)} or change model.n_head",
        ),
        *[
            (
                s.min_lr <= s.lr,
                f"{name}.min_lr={s.min_lr} is above {name}.lr={s.lr}: the schedule decays from lr "
                f"down to min_lr; lower --set {name}.min_lr or raise {name}.lr",
            )
            for name, s in (("pretrain", p), ("sft", cfg.sft), ("reward", r), ("dpo", cfg.dpo))
        ],
        (
            p.warmup <= min(p.steps, cfg.pipeline.large_steps or p.steps),
            f"pretrain.warmup={p.warmup} is longer than the "
            f"{min(p.steps, cfg.pipeline.large_steps or p.steps)} pretraining steps "
            f"(pretrain.steps, pipeline.large_steps): lower --set pretrain.warmup",
        ),
        (
            p.seq_len <= m.block_size,
            f"pretrain.seq_len={p.seq_len} is longer than the model's context, "
            f"model.block_size={m.block_size}: lower --set pretrain.seq_len",
        ),
        (
            r.k_min <= r.k_max,
            f"reward.k_min={r.k_min} is above reward.k_max={r.k_max}: K is drawn from "
            f"k_min..k_max; change --set reward.k_min or reward.k_max",
        ),
        (
            cfg.ppo.baseline in ("value", "group"),
            f"ppo.baseline={cfg.ppo.baseline!r}: choose value (PPO's value "
            f"model) or group (GRPO) with --set ppo.baseline",
        ),
        (
            cfg.ppo.baseline != "group" or cfg.ppo.rollout_batch % cfg.ppo.group_size == 0,
            f"ppo.rollout_batch={cfg.ppo.rollout_batch} is not a multiple of "
            f"ppo.group_size={cfg.ppo.group_size}: GRPO answers rollout_batch / group_size "
            f"prompts group_size times each; change --set ppo.rollout_batch",
        ),
        (
            cfg.ppo.value_warmup < cfg.ppo.iterations
            and (cfg.ppo.baseline == "value" or cfg.ppo.value_warmup == 0),
            f"ppo.value_warmup={cfg.ppo.value_warmup} with ppo.iterations={cfg.ppo.iterations} "
            f"and ppo.baseline={cfg.ppo.baseline}: the warm-up trains PPO's value model alone "
            f"(GRPO has none) for fewer iterations than the stage has; lower --set "
            f"ppo.value_warmup",
        ),
        (
            cfg.ppo.minibatch <= cfg.ppo.rollout_batch,
            f"ppo.minibatch={cfg.ppo.minibatch} is larger than "
            f"ppo.rollout_batch={cfg.ppo.rollout_batch}, the responses "
            f"each update draws its minibatches from: lower --set ppo.minibatch",
        ),
    ]


def even_heads(n_head: int, n_embd: int, rope: bool) -> bool:
    """What the model's rotary embeddings need of a shape (model.rotate): an even head size,
    n_embd / n_head."""
    return not rope or n_embd // n_head % 2 == 0


def even_embd(n_head: int, n_embd: int) -> int:
    """The nearest n_embd above n_embd that gives n_head heads of an even size."""
    return -(-n_embd // (2 * n_head)) * 2 * n_head


def parse_temperatures(
    spec: str, key: str = "reward.temperatures", allow_zero: bool = False
) -> list[float]:
    """A list of sampling temperatures, "0.7,1.0,1.3" -> [0.7, 1.0, 1.3]: positive numbers (or 0 =
    greedy)."""
    try:
        temps = [float(t) for t in spec.split(",")]
    except ValueError:
        temps = []
    allowed = NON_NEGATIVE if allow_zero else POSITIVE
    if not temps or not all(t in allowed for t in temps):
        raise UserError(
            f"{key}={spec!r}: expected {'non-negative' if allow_zero else 'positive'} numbers "
            f"separated by commas, e.g. --set {key}=0.7,1.0"
        )
    return temps


def parse_shape(spec: str, base: GPTConfig, key: str = "pipeline.large_model") -> GPTConfig:
    """ "LxHxC" (n_layer x n_head x n_embd) -> a GPTConfig like base with that shape."""
    try:
        n_layer, n_head, n_embd = (int(x) for x in spec.lower().split("x"))
    except ValueError:
        raise UserError(
            f"{key}={spec!r}: expected n_layer x n_head x n_embd, e.g. --set {key}=4x4x128"
        ) from None
    if min(n_layer, n_head, n_embd) < 1 or n_embd % n_head:
        raise UserError(
            f"{key}={spec!r}: sizes must be positive and n_embd divisible by n_head, e.g. 4x4x128"
        )
    if not even_heads(n_head, n_embd, base.rope):
        raise UserError(
            f"{key}={spec!r}: heads of n_embd / n_head = {n_embd // n_head} channels, "
            f"but rotary position embeddings (model.rope) turn a head's channels in "
            f"pairs, so it must be even: e.g. {n_layer}x{n_head}x"
            f"{even_embd(n_head, n_embd)}"
        )
    return dataclasses.replace(base, n_layer=n_layer, n_head=n_head, n_embd=n_embd)


def sweep_shapes(cfg: Config) -> list[GPTConfig]:
    """The model shapes of `minigpt-rlhf sweep` (pipeline.sweep_sizes), smallest first."""
    sizes = cfg.pipeline.sweep_sizes
    shapes = [parse_shape(s.strip(), cfg.model, "pipeline.sweep_sizes") for s in sizes.split(",")]
    if len(shapes) < 3:
        raise UserError(
            f"pipeline.sweep_sizes={sizes!r}: a sweep needs at least three sizes, e.g. "
            f"--set pipeline.sweep_sizes=2x2x64,4x4x128,6x4x192"
        )
    return shapes
