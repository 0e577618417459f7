"""One dataclass per stage, gathered in Config, and four named presets.

Defaults are the `quick` preset (the whole recipe on a 2-core CPU in minutes). `balanced` is quick's models with
fewer demonstrations, more rankings, an RM trained for longer and a longer RL loop: the setting where PPO, PPO-ptx
and GRPO were measured to win more than half of their comparisons with SFT (26-33 minutes on a 2-core CPU).
`micro` is the tests' and `full` a GPU's. Each stage's table of preset overrides sits right below its dataclass.
`load_config("micro", ["ppo.kl_coef=0.05"])` builds a Config; `--set key=value` on the command line does the
same. Every value is checked when the Config is built: the allowed range of each number (RANGES, at the end) and
the settings that must agree with each other (`check`), so a bad value is an error before any stage runs, not a
traceback or a nonsense run minutes later.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from minigpt_rlhf.model import GPTConfig
from minigpt_rlhf.runtime import UserError

PRESETS = ("micro", "quick", "balanced", "full")

# The GPT's shape is the model's own dataclass (model.GPTConfig); vocab_size comes from the tokenizer.
MODEL_PRESETS = {
    "micro": dict(n_layer=2, n_head=2, n_embd=32),
    "quick": {},
    "balanced": {},
    "full": dict(n_layer=6, n_head=6, n_embd=192, dropout=0.1),
}


@dataclass
class Optim:
    """AdamW (weight decay on matrices only), linear warmup to lr, cosine decay to min_lr, gradient clipping:
    the optimizer of every stage that trains with `training.make_optimizer` and `training.lr_at`."""

    lr: float = 1e-3  # peak learning rate, after warmup
    min_lr: float = 1e-4  # end of the cosine decay (= lr: constant)
    warmup: int = 0  # linear warmup steps
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0  # max gradient norm


@dataclass
class PretrainConfig(Optim):
    """Step 0: next-token prediction on the corpus."""

    steps: int = 1800  # optimizer steps. Measured (bf16, seeds 1339 / 1341, whose base models failed at 1200): fact
    #                    completion 57% / 58% at 1200 steps, 68% / 83% at 1500, 94% / 95% at 1800; copy probe 40% /
    #                    67%, 54% / 83%, 83% / 83%; held-out loss still falling at 1200 (seed 1339: 1.075 at 1200,
    #                    1.033 at 1800; docs/experiments/README.md, "How many pretraining steps").
    #                    Memorising the facts and copying from the context is what the last steps buy.
    batch_size: int = 12  # sequences per micro-batch (quick, measured: 12 at lr 5e-3 reached val loss 0.366, 16 at
    #                       2e-3 0.381 with a third more tokens; 12 at 2e-3 0.483, at 3e-3 0.397, 10 at 4e-3 0.419)
    seq_len: int = 128  # tokens per training window: the whole block_size, as a shorter window leaves the later
    #                     positions untrained and a long prompt + answer reaches them (measured, characters: gibberish)
    grad_accum: int = 1  # micro-batches per optimizer step
    lr: float = 5e-3
    min_lr: float = 5e-4
    warmup: int = 100
    eval_every: int = 100  # steps between validation losses and checkpoints
    eval_windows: int = 120  # evenly spaced held-out windows of the corpus loss: pretraining's val_loss, PPO's
    #                          corpus_loss and the evaluation's alignment tax are this one measure
    log_every: int = 10


PRETRAIN_PRESETS = {
    # micro with byte pairs: 60 steps left a 2x2x32 model that answers "." and SFT could not lift its gold score;
    # 300 steps at lr 1e-2 (and 5 SFT epochs) raise it 0.42 -> 0.50 in seconds
    "micro": dict(steps=300, batch_size=8, seq_len=64, lr=1e-2, warmup=10, eval_every=100, eval_windows=16,
                  log_every=5),
    "quick": {},
    "balanced": {},
    "full": dict(steps=8000, batch_size=64, lr=1e-3, min_lr=1e-4, warmup=400, eval_every=500),
}


@dataclass
class SFTConfig(Optim):
    """Step 1: supervised fine-tuning on the labelers' demonstrations, loss on response tokens only."""

    epochs: int = 8  # passes over the demonstrations (the paper: 16, choosing the checkpoint afterwards)
    batch_size: int = 32
    grad_accum: int = 1
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup: int = 20
    dropout: float = 0.1  # residual dropout while fine-tuning (the paper used 0.2)
    max_demos: int = 0  # train on at most this many demonstrations (0 = all)
    heldout_prompts: int = 100  # SFT prompts kept out of training: validation loss and the gold score per epoch
    log_every: int = 10


SFT_PRESETS = {
    "micro": dict(epochs=5, batch_size=16, max_demos=320, heldout_prompts=16, lr=3e-3, warmup=5, log_every=5),
    "quick": {},
    # balanced: half the demonstrations. In this world a demonstration is the judge's own optimum, so the more of
    # them SFT sees, the less is left for a reward model to find (docs/experiments/README.md, "The paper's ratio",
    # "Between the two"); the paper had 13k SFT prompts to 33k RM prompts. SFT helpful 38-42% instead of 56-59%.
    "balanced": dict(max_demos=1200),
    "full": dict(epochs=8, batch_size=64, lr=5e-4, min_lr=5e-5),
}


@dataclass
class RewardConfig(Optim):
    """Step 2: K responses per prompt, ranked by labelers; the ranking loss over their C(K,2) pairs."""

    n_prompts: int = 480  # RM-split prompts whose rankings train the RM (the paper: about 33k)
    rankings_per_prompt: int = 1  # R: each training prompt's responses sampled and ranked R times, by R labelers
    val_prompts: int = 120  # further RM-split prompts, ranked by a training and by a held-out labeler
    k_min: int = 4  # K ~ U{k_min..k_max} responses per prompt (the paper: 4 to 9)
    k_max: int = 9
    temperatures: str = "0.7,1.0,1.3"  # the SFT model's sampling temperatures, cycled over a prompt's responses
    base_share: float = 0.25  # share of each prompt's responses from the base model, prompted in plain text
    sample_batch: int = 64  # sequences per batched generate call
    lr: float = 3e-4  # constant (min_lr = lr), no weight decay
    min_lr: float = 3e-4
    weight_decay: float = 0.0
    beta2: float = 0.999
    batch_size: int = 8  # prompts per step; each prompt's C(K,2) pairs are one batch element
    epochs: int = 1  # the paper trains one epoch
    pairs: bool = False  # ablation: the comparisons shuffled into independent pairs, batch_size pairs per step
    eval_every: int = 15  # steps between validation accuracies (the curves) and checkpoints


REWARD_PRESETS = {
    "micro": dict(n_prompts=24, val_prompts=12, k_max=6, sample_batch=32, lr=1e-3, min_lr=1e-3, batch_size=4,
                  eval_every=3),
    "quick": {},
    # balanced: every ranking the RM split holds beside the validation prompts, 10 epochs at a higher peak rate,
    # wider sampling temperatures, fewer base-model samples. Measured (seeds 1337 / 1338 / 1339, the run reports'
    # card): correlation with gold on SFT samples 0.49 / 0.47 / 0.43, best of 8 captured 29% / 28% / 25% of the
    # gold judge's gain (quick's RM: 0.10-0.28, -15% to +4%; 2,000 rankings of a larger split for 6 epochs
    # 0.46-0.62, 20-38%). The held-out ranking loss is lowest after 3-5 epochs and then rises while accuracy still
    # creeps up: the scores grow more confident, and PPO divides them by their spread (ppo.normalize_score).
    # 4 epochs instead of 10 (seeds 1337 / 1338): captured 19% / 18%, PPO 50.4% / 52.7% (10 epochs: 56.7% / 54.0%)
    # Each prompt ranked twice (docs/experiments, "A second ranking per prompt"): captured 32 / 21 / 19% -> 37 / 38 /
    # 28% on one sample set, PPO 56.7 / 54.0 / 53.3% -> 55.8 / 56.0 / 57.5%; a third ranking moved PPO no further.
    # The preset's own three seeds, once -> twice ranked: report card corr 0.49 / 0.47 / 0.43 -> 0.53 / 0.57 / 0.49,
    # captured 29 / 28 / 25% -> 30 / 34 / 32%; PPO 56.7 / 54.0 / 53.3% -> 52.5 / 54.6 / 55.6% (the same on the mean),
    # the two RM stages 230-242 s each once ranked (seed 1337), 368-523 s twice ranked (three seeds, measured two days later).
    # 26,876 prompts ranked once (the paper's scale, a larger RM split: docs/experiments, "Rankings at the paper's
    # scale"): corr 0.64-0.71, captured 39-45%, PPO 55.7% over six runs against this preset's 55.0%, 27 min an RM.
    "balanced": dict(n_prompts=1080, rankings_per_prompt=2, epochs=10, lr=1e-3, min_lr=1e-4, warmup=50, temperatures="0.5,1.0,1.5",
                     base_share=0.15),
    "full": dict(n_prompts=1000, val_prompts=200, lr=1e-4, min_lr=1e-4, batch_size=16, eval_every=10),
}


@dataclass
class PPOConfig:
    """Step 3: PPO against the reward model with a per-token KL penalty; PPO-ptx adds the pretraining mix.
    Names follow the paper (β = kl_coef, γ = ptx_coef) and cleanrl (clip_eps, gae_lambda, ...)."""

    iterations: int = 24  # rollout + update cycles
    rollout_batch: int = 32  # prompts per iteration, one response each (the paper's "episodes")
    minibatch: int = 16  # responses per gradient step
    ppo_epochs: int = 4  # passes over each rollout batch
    lr: float = 1e-4  # policy learning rate (AdamW, constant)
    value_lr: float = 3e-4  # value model learning rate: a separate model here, so its own rate takes the
    #                         place of cleanrl's vf_coef (a loss weight matters only for a shared network)
    clip_eps: float = 0.2  # ε: the policy ratio is clipped to [1 − ε, 1 + ε]
    value_warmup: int = 0  # the first iterations train only V (the policy stays π^SFT). Measured on quick (seeds
    #   1337 / 1338 / 1339, PPO vs SFT): 8 iterations (then the policy's 24) lift V's explained variance at the first
    #   policy update from −1.4 / −0.3 / 0.0 to 0.53 / 0.26 / 0.79, and the win rate stays within one run's spread
    #   (44.0 / 49.0 / 46.5% against 46.9 / 47.9 / 46.9%; against the gold judge 49.0 / 50.4 / 52.1% against 50.8 /
    #   47.5 / 52.5%): off
    clip_value: float = 0.2  # the value moves at most this far from its rollout value per update (reward units)
    baseline: str = "value"  # "value": PPO's value model and GAE; "group": GRPO, group_size answers per prompt
    group_size: int = 8  # GRPO's G (rollout_batch answers = rollout_batch / G prompts)
    gae_gamma: float = 1.0  # discount: 1 in the bandit (the episode is one response; lm-human-preferences)
    gae_lambda: float = 0.95  # GAE λ: 0 = one-step TD, 1 = Monte-Carlo return
    kl_coef: float = 0.2  # β: per-token KL penalty against π^SFT (the paper used 0.02); the initial β if adaptive.
    #   Measured on quick (seed 1337, one run each, PPO vs SFT, held-out labelers, 480 eval prompts): against the
    #   learned RM β 0.05 / 0.2 / 0.5 won 43% [39, 48] / 49% [45, 53] / 48% [43, 52]; at 0.05 the policy learns the
    #   RM's favourite non-answers ("I don't know anything about the ..."). With the gold judge as the reward and
    #   128-prompt rollouts, β 0.05 won 55%, 0.2 52%: a perfect reward needs less leash than ours (again on the
    #   quick models of seeds 1337 / 1338 / 1339 with the balanced loop: 56.5 / 57.9 / 59.4% against 52.7 / 54.0 /
    #   55.6%).
    kl_target: float = 0.0  # 0 = fixed β; > 0 = adaptive β steering the KL (nats per response) to this target
    kl_horizon: int = 1000  # adaptive controller's horizon in responses (Ziegler et al. 2019 used 10000)
    ptx_coef: float = 0.1  # γ of PPO-ptx: weight of the pretraining LM loss (the paper used 27.8, on losses scaled
    #   otherwise); the pipeline's `ppo` stage runs with γ = 0, `minigpt-rlhf ppo --set ppo.ptx_coef=0` likewise.
    #   Scaled against the RL loss: at γ 1 (the recipe before) the pretraining loss's gradient is 2-6x the clipped PPO
    #   objective's, so after clipping at grad_clip the RL step is about a third of PPO's; at 0.1 it is a fraction of
    #   it. Measured on quick (seeds 1337 / 1338 / 1339; docs/experiments, "γ of PPO-ptx"): γ 0.1 against 1 wins the
    #   same (44.2 / 47.7 / 46.3% against 45.0 / 47.1 / 46.3%), keeps PPO's helpfulness (gold 57.7 / 55.0 / 57.1%
    #   against 54.8 / 53.8 / 53.9%) and repays 81-85% of SFT's corpus loss instead of 94-95% (fact completion 84 / 92
    #   / 96% against 95 / 95 / 98%); at the sweep's smallest size (seed 1337) PPO-ptx keeps 28.5% [24.7, 32.7]
    #   against the largest SFT model where γ 1 fell to 21.7% (SFT 35.0%, PPO 28.3%), and the sweep's headline (the
    #   smallest PPO-ptx above the largest base model, separated) appears on seeds 1337 / 1338 / 1339
    ptx_batch: int = 4  # corpus windows (pretrain.seq_len tokens, as in pretraining) per gradient step of PPO-ptx
    temperature: float = 1.0  # T: the policy is softmax(logits / T) in sampling, the ratio and the KL (to π^SFT at T).
    #   At the evaluation's 0.7 the model trained is the one judged; measured (PPO vs SFT, seeds 1337 / 1338 / 1339):
    #   quick 46.0 / 47.7 / 46.9% against 46.9 / 47.9 / 46.9% at T 1; balanced against a 27k-ranking RM 54.8% on the
    #   mean against 55.7%. No gain, so the model itself (T 1), as the paper samples its rollouts
    truncation_penalty: float = -1.0  # score of a truncated response instead of the RM's (normalised units)
    normalize_score: bool = True  # divide RM scores by their std on the SFT policy's samples, measured once
    whiten_advantages: bool = True  # advantages to mean 0, std 1 over the batch's response tokens
    grad_clip: float = 1.0  # max gradient norm, per model
    eval_every: int = 8  # iterations between held-out corpus losses (the alignment tax) and checkpoints


PPO_PRESETS = {
    "micro": dict(iterations=3, rollout_batch=8, minibatch=4, ppo_epochs=2, ptx_batch=2, eval_every=2),
    "quick": {},
    # balanced: four times the rollouts per iteration and 80 iterations (13x quick's responses), 2 epochs over
    # each. Measured (PPO vs SFT, seeds 1337 / 1338 / 1339): 57% [52, 61] / 54% [49, 58] / 53% [49, 58] against
    # the once-ranked RM, 52% [48, 57] / 55% [50, 59] / 56% [51, 60] against the preset's twice-ranked one; on
    # seed 1337 against the 2,000-ranking RM, 40 iterations x 64 rollouts won 54.2%, 80 x 128 54.8%
    # γ 1 on balanced: every balanced number was measured so (γ 0.1, quick's, is not measured there)
    "balanced": dict(iterations=80, rollout_batch=128, minibatch=32, ppo_epochs=2, ptx_coef=1.0),
    "full": dict(iterations=150, rollout_batch=64, minibatch=16, lr=5e-5, value_lr=1e-4, ptx_batch=16),
}


@dataclass
class DPOConfig(Optim):
    """Beside the recipe: DPO on the reward stage's comparisons, every pair of a prompt in one batch element."""

    beta: float = 0.1  # β: the implicit reward is β · log(π / π_ref)
    epochs: int = 2  # passes over the comparisons
    batch_size: int = 8  # prompts (whole rankings) per step
    lr: float = 1e-4
    min_lr: float = 1e-5
    warmup: int = 10
    weight_decay: float = 0.0
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
    temperature: float = 0.7  # sampling temperature of every compared model (the paper's evaluations sample)
    batch_size: int = 48  # prompts per batched KV-cache generation
    bootstrap: int = 1000  # resamples for bootstrap confidence intervals
    confidence: float = 0.95  # level of every interval
    cloze_items: int = 100  # corpus-style fact completions (the alignment-tax task); 0 = all
    temperatures: str = "0,0.3,0.5,0.7,1"  # SFT's sampling temperatures: the best of them is a baseline of its own
    best_of: int = 16  # SFT samples per prompt (temperature 1) for best-of-n, n = 1, 2, 4, ... best_of
    oracle_of: int = 8  # SFT samples per prompt (eval temperature) of which the gold judge picks the best: a ceiling


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

    large_model: str = "4x4x160"  # the larger base model (1.55x the quick base model: "175B GPT-3" to our "1.3B")
    large_steps: int = 0  # its pretraining steps; 0 = pretrain.steps
    large_lr: float = 3e-3  # its peak learning rate (min_lr a tenth of it); measured on quick: fact completion 85%
    #                         at 3e-3, 67% at the small model's 5e-3
    biased: bool = True  # run "whose preferences?": an RM from biased labelers and PPO against it
    sweep_sizes: str = "2x2x64,4x4x128,6x4x192"  # model sizes of `minigpt-rlhf sweep`, smallest first
    workers: int = 0  # training stages run at once (each in its own process); 0 = one per CPU core, one on a GPU
    threads: int = 1  # torch threads of every stage (0 = torch's default). One per stage, stages side by side: on
    #                   a 2-core CPU a second thread of these small models was measured to gain little when idle
    #                   and to slow a step 30x when another process runs (it waits at every op for the other)


PIPELINE_PRESETS = {
    "micro": dict(large_model="2x2x48", sweep_sizes="1x2x16,2x2x32,2x2x48", workers=1),
    "quick": {},
    "balanced": {},
    "full": dict(large_model="8x8x384", sweep_sizes="4x4x128,6x6x192,8x8x256"),
}


@dataclass
class Config:
    """Everything a run needs; serialised into every checkpoint and metrics file."""

    preset: str = "quick"
    seed: int = 1337
    device: str = ""  # "" = automatic (cuda > mps > cpu)
    precision: str = "auto"  # matrix products of the supervised stages (pretraining, SFT, the reward model and its
    #                         samples): "auto" = bf16 where the device has it in hardware (a CUDA GPU, a CPU with
    #                         AVX512-BF16 or AMX), else fp32; or "bf16" / "fp32". PPO, GRPO, DPO and the evaluation
    #                         always run in fp32 (see ppo.py). Measured on quick (2-core CPU, bf16): pretraining
    #                         (1200 steps) 128-150 s against 211-225 s; over 9 seeds the base model's held-out loss 1.053 against
    #                         1.055 and fact completion 79% against 83% (-4 ± 5 points paired): no measurable cost
    data_dir: str = "data"
    tokenizer: str = "bpe"  # "bpe": the world's byte pairs (data/tokenizer.json); "chars": one token per character
    max_new_tokens: int = 32  # response length limit wherever a model answers a prompt: SFT's held-out gold score,
    #                           the RM's comparisons, PPO's rollouts and the evaluation; a response that has not
    #                           ended by then is truncated (and keeps no <|end|>). The longest demonstration is 27
    #                           byte-pair tokens with its <|end|>; the judge's 120 characters are about 31
    model: GPTConfig = field(default_factory=GPTConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    ppo: PPOConfig = field(default_factory=PPOConfig)
    dpo: DPOConfig = field(default_factory=DPOConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)


# micro in float32: its matrices are too small for bf16 to pay for its casts (micro pretraining took 8.8-9.6 s in
# fp32, 10.9-11.2 s in bf16, measured back to back on the 2-core CPU)
_TOP_PRESETS = {"micro": dict(max_new_tokens=16, precision="fp32"), "quick": {}, "balanced": {}, "full": {}}
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
    """The preset's Config with the `section.key=value` overrides applied, every value checked (`check`)."""
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
    """Set one `section.key=value` (or a top-level `key=value`), converting the value to the field's type."""
    if "=" not in item:
        raise UserError(f"--set {item!r}: expected key=value, e.g. --set pretrain.lr=1e-3")
    key, raw = item.split("=", 1)
    *path, name = key.strip().split(".")
    target = cfg
    for part in path:
        sections = [f.name for f in dataclasses.fields(target) if dataclasses.is_dataclass(getattr(target, f.name))]
        if part not in sections:
            raise UserError(f"--set {key}: unknown section {part!r}; sections: {', '.join(sections)}")
        target = getattr(target, part)
    fields = {f.name: f for f in dataclasses.fields(target) if not dataclasses.is_dataclass(getattr(target, f.name))}
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


# ---- allowed values -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Range:
    """The values a number may take: lo..hi, an end excluded where it is open; never NaN or infinite."""

    lo: float = -math.inf
    hi: float = math.inf
    lo_open: bool = False
    hi_open: bool = False

    def __contains__(self, x) -> bool:
        return (math.isfinite(x) and (x > self.lo if self.lo_open else x >= self.lo)
                and (x < self.hi if self.hi_open else x <= self.hi))

    def __str__(self) -> str:
        if self.lo == -math.inf:
            return "a finite number"
        if self.hi == math.inf:
            return f"{'>' if self.lo_open else '>='} {self.lo:g}"
        return f"in {'(' if self.lo_open else '['}{self.lo:g}, {self.hi:g}{')' if self.hi_open else ']'}"


ANY, POSITIVE, NON_NEGATIVE, AT_LEAST_1 = Range(), Range(0, lo_open=True), Range(0), Range(1)
FRACTION, BELOW_1, OPEN_UNIT = Range(0, 1), Range(0, 1, hi_open=True), Range(0, 1, True, True)

# The range of every number of every section, by dataclass (a subclass also gets its base's, e.g. Optim's).
# A test checks that no int or float field is missing here.
RANGES = {
    Config: dict(seed=ANY, max_new_tokens=AT_LEAST_1),
    GPTConfig: dict(block_size=Range(2), n_layer=AT_LEAST_1, n_head=AT_LEAST_1, n_embd=AT_LEAST_1, dropout=BELOW_1),
    Optim: dict(lr=POSITIVE, min_lr=NON_NEGATIVE, warmup=NON_NEGATIVE, weight_decay=NON_NEGATIVE, beta1=BELOW_1,
                beta2=BELOW_1, grad_clip=POSITIVE),
    PretrainConfig: dict(steps=AT_LEAST_1, batch_size=AT_LEAST_1, seq_len=AT_LEAST_1, grad_accum=AT_LEAST_1,
                         eval_every=AT_LEAST_1, eval_windows=AT_LEAST_1, log_every=AT_LEAST_1),
    SFTConfig: dict(epochs=AT_LEAST_1, batch_size=AT_LEAST_1, grad_accum=AT_LEAST_1, dropout=BELOW_1,
                    max_demos=NON_NEGATIVE, heldout_prompts=AT_LEAST_1, log_every=AT_LEAST_1),
    RewardConfig: dict(n_prompts=AT_LEAST_1, rankings_per_prompt=AT_LEAST_1, val_prompts=AT_LEAST_1, k_min=Range(2), k_max=Range(2),
                       base_share=FRACTION, sample_batch=AT_LEAST_1, batch_size=AT_LEAST_1, epochs=AT_LEAST_1, eval_every=AT_LEAST_1),
    PPOConfig: dict(iterations=AT_LEAST_1, rollout_batch=AT_LEAST_1, minibatch=AT_LEAST_1, ppo_epochs=AT_LEAST_1,
                    lr=POSITIVE, value_lr=POSITIVE, clip_eps=POSITIVE, clip_value=POSITIVE, gae_gamma=FRACTION,
                    gae_lambda=FRACTION, kl_coef=NON_NEGATIVE, kl_target=NON_NEGATIVE, kl_horizon=AT_LEAST_1,
                    ptx_coef=NON_NEGATIVE, ptx_batch=AT_LEAST_1, temperature=POSITIVE, truncation_penalty=ANY,
                    grad_clip=POSITIVE, value_warmup=NON_NEGATIVE,
                    eval_every=AT_LEAST_1, group_size=Range(2)),
    DPOConfig: dict(beta=POSITIVE, epochs=AT_LEAST_1, batch_size=AT_LEAST_1, eval_every=AT_LEAST_1),
    EvalConfig: dict(prompts=NON_NEGATIVE, samples=AT_LEAST_1, temperature=NON_NEGATIVE, batch_size=AT_LEAST_1,
                     bootstrap=AT_LEAST_1, confidence=OPEN_UNIT, cloze_items=NON_NEGATIVE, best_of=AT_LEAST_1,
                     oracle_of=AT_LEAST_1),
    PipelineConfig: dict(large_steps=NON_NEGATIVE, large_lr=POSITIVE, workers=NON_NEGATIVE, threads=NON_NEGATIVE),
}


def ranges(section) -> dict[str, Range]:
    """The allowed range of each number of one section (a dataclass instance), its base classes' included."""
    out = {}
    for cls in reversed(type(section).__mro__):
        out.update(RANGES.get(cls, {}))
    return out


def check(cfg: Config) -> None:
    """Raise a UserError naming the first value out of its range, or the first two settings that disagree, and
    the --set that changes it. (What needs the data, e.g. whether the prompts fit model.block_size, is checked by
    preflight.py before the first stage.)"""
    sections = {"": cfg} | {f.name + ".": getattr(cfg, f.name) for f in dataclasses.fields(cfg)
                            if dataclasses.is_dataclass(getattr(cfg, f.name))}
    for prefix, section in sections.items():
        for name, allowed in ranges(section).items():
            value = getattr(section, name)
            if value not in allowed:
                raise UserError(f"{prefix}{name}={value}: must be {allowed}; change it with --set {prefix}{name}=VALUE")
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
        (cfg.preset in PRESETS, f"preset={cfg.preset!r}: choose the preset with --preset {'|'.join(PRESETS)}"),
        (m.vocab_size == 0, f"model.vocab_size={m.vocab_size}: it is set from the tokenizer when a model is built; "
                            f"drop --set model.vocab_size"),
        (cfg.precision in ("auto", "bf16", "fp32"), f"precision={cfg.precision!r}: choose auto, bf16 or fp32 with "
                                                    f"--set precision"),
        (cfg.tokenizer in ("bpe", "chars"), f"tokenizer={cfg.tokenizer!r}: choose bpe (the world's byte pairs) or "
                                            f"chars (one token per character) with --set tokenizer"),
        (m.n_embd % m.n_head == 0, f"model.n_embd={m.n_embd} is not divisible by model.n_head={m.n_head}: each head "
                                   f"gets n_embd / n_head channels; change --set model.n_embd or model.n_head"),
        (m.n_embd % m.n_head or even_heads(m.n_head, m.n_embd, m.rope),
         f"model.n_embd={m.n_embd} / model.n_head={m.n_head} gives heads of "
         f"{m.n_embd // m.n_head} channels: rotary position embeddings (model.rope) turn a head's "
         f"channels in pairs, so it must be even; --set model.n_embd="
         f"{even_embd(m.n_head, m.n_embd)} or change model.n_head"),
        *[(s.min_lr <= s.lr, f"{name}.min_lr={s.min_lr} is above {name}.lr={s.lr}: the schedule decays from lr down "
                             f"to min_lr; lower --set {name}.min_lr or raise {name}.lr")
          for name, s in (("pretrain", p), ("sft", cfg.sft), ("reward", r), ("dpo", cfg.dpo))],
        (p.warmup <= min(p.steps, cfg.pipeline.large_steps or p.steps),
         f"pretrain.warmup={p.warmup} is longer than the {min(p.steps, cfg.pipeline.large_steps or p.steps)} "
         f"pretraining steps (pretrain.steps, pipeline.large_steps): lower --set pretrain.warmup"),
        (p.seq_len <= m.block_size, f"pretrain.seq_len={p.seq_len} is longer than the model's context, "
                                    f"model.block_size={m.block_size}: lower --set pretrain.seq_len"),
        (r.k_min <= r.k_max, f"reward.k_min={r.k_min} is above reward.k_max={r.k_max}: K is drawn from k_min..k_max; "
                             f"change --set reward.k_min or reward.k_max"),
        (cfg.ppo.baseline in ("value", "group"), f"ppo.baseline={cfg.ppo.baseline!r}: choose value (PPO's value "
                                                 f"model) or group (GRPO) with --set ppo.baseline"),
        (cfg.ppo.baseline != "group" or cfg.ppo.rollout_batch % cfg.ppo.group_size == 0,
         f"ppo.rollout_batch={cfg.ppo.rollout_batch} is not a multiple of ppo.group_size={cfg.ppo.group_size}: GRPO "
         f"answers rollout_batch / group_size prompts group_size times each; change --set ppo.rollout_batch"),
        (cfg.ppo.value_warmup < cfg.ppo.iterations and (cfg.ppo.baseline == "value" or cfg.ppo.value_warmup == 0),
         f"ppo.value_warmup={cfg.ppo.value_warmup} with ppo.iterations={cfg.ppo.iterations} and ppo.baseline="
         f"{cfg.ppo.baseline}: the warm-up trains PPO's value model alone (GRPO has none) for fewer iterations than "
         f"the stage has; lower --set ppo.value_warmup"),
        (cfg.ppo.minibatch <= cfg.ppo.rollout_batch,
         f"ppo.minibatch={cfg.ppo.minibatch} is larger than ppo.rollout_batch={cfg.ppo.rollout_batch}, the responses "
         f"each update draws its minibatches from: lower --set ppo.minibatch"),
    ]


def even_heads(n_head: int, n_embd: int, rope: bool) -> bool:
    """What the model's rotary embeddings need of a shape (model.rotate): an even head size,
    n_embd / n_head."""
    return not rope or n_embd // n_head % 2 == 0


def even_embd(n_head: int, n_embd: int) -> int:
    """The nearest n_embd above n_embd that gives n_head heads of an even size."""
    return -(-n_embd // (2 * n_head)) * 2 * n_head


def parse_temperatures(spec: str, key: str = "reward.temperatures", allow_zero: bool = False) -> list[float]:
    """A list of sampling temperatures, "0.7,1.0,1.3" -> [0.7, 1.0, 1.3]: positive numbers (or 0 = greedy)."""
    try:
        temps = [float(t) for t in spec.split(",")]
    except ValueError:
        temps = []
    allowed = NON_NEGATIVE if allow_zero else POSITIVE
    if not temps or not all(t in allowed for t in temps):
        raise UserError(f"{key}={spec!r}: expected {'non-negative' if allow_zero else 'positive'} numbers separated "
                        f"by commas, e.g. --set {key}=0.7,1.0")
    return temps


def parse_shape(spec: str, base: GPTConfig, key: str = "pipeline.large_model") -> GPTConfig:
    """"LxHxC" (n_layer x n_head x n_embd) -> a GPTConfig like base with that shape."""
    try:
        n_layer, n_head, n_embd = (int(x) for x in spec.lower().split("x"))
    except ValueError:
        raise UserError(f"{key}={spec!r}: expected n_layer x n_head x n_embd, e.g. --set {key}=4x4x128") from None
    if min(n_layer, n_head, n_embd) < 1 or n_embd % n_head:
        raise UserError(f"{key}={spec!r}: sizes must be positive and n_embd divisible by n_head, e.g. 4x4x128")
    if not even_heads(n_head, n_embd, base.rope):
        raise UserError(f"{key}={spec!r}: heads of n_embd / n_head = {n_embd // n_head} channels, "
                        f"but rotary position embeddings (model.rope) turn a head's channels in "
                        f"pairs, so it must be even: e.g. {n_layer}x{n_head}x"
                        f"{even_embd(n_head, n_embd)}")
    return dataclasses.replace(base, n_layer=n_layer, n_head=n_head, n_embd=n_embd)


def sweep_shapes(cfg: Config) -> list[GPTConfig]:
    """The model shapes of `minigpt-rlhf sweep` (pipeline.sweep_sizes), smallest first."""
    sizes = cfg.pipeline.sweep_sizes
    shapes = [parse_shape(s.strip(), cfg.model, "pipeline.sweep_sizes") for s in sizes.split(",")]
    if len(shapes) < 3:
        raise UserError(f"pipeline.sweep_sizes={sizes!r}: a sweep needs at least three sizes, e.g. "
                        f"--set pipeline.sweep_sizes=2x2x64,4x4x128,6x4x192")
    return shapes
