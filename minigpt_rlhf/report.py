"""report.md: the paper's findings, ours beside each, from eval/results.json and the stages'
metrics.

Each finding gets a verdict by a rule fixed here, before any run (never tuned to make a finding
appear):

    appeared                   the difference has the paper's sign and the confidence intervals do
                               not overlap
    direction only             the sign is the paper's, but the intervals overlap: it may be noise
    did not appear             the sign is not the paper's

(Compute has no interval: there, appeared = alignment under 10% of pretraining's FLOPs, direction
only = under 100%.)
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

from minigpt_rlhf import world
from minigpt_rlhf.plots import plot_curve, smooth
from minigpt_rlhf.runtime import RESULTS, SWEEP, UserError, read_json, read_metrics, write_text
from minigpt_rlhf.stages import run_recipe, training
from minigpt_rlhf.world.data import demo_prompts, writing_quality

SECTIONS = (
    "## Summary",
    "## 1. Labelers prefer the aligned models",
    "## 2. Held-out labelers agree",
    "## 3. Truthfulness",
    "## 4. Harmlessness",
    "## 5. The alignment tax",
    "## 6. Generalisation",
    "## 7. Compute",
    "## 8. Whose preferences?",
    "## Over-optimisation",
    "## Every method beside SFT",
    "## Training curves",
    "## Samples",
    "## Settings",
)
PAPER_MODELS = (
    "GPT-3",
    "GPT-3 prompted",
    "SFT",
    "PPO",
    "PPO-ptx",
)  # the main size's models of the paper's findings
APPEARED, DIRECTION, ABSENT = "appeared", "direction only (intervals overlap)", "**did not appear**"


# ---- formatting and verdicts ---------------------------------------------------------------------
def pct(est: dict) -> str:
    """62% [55, 69]: a proportion or mean in [0, 1] with its interval, in percent."""
    if est is None or not math.isfinite(est["mean"]):
        return "n/a"
    return f"{100 * est['mean']:.0f}% [{100 * est['lo']:.0f}, {100 * est['hi']:.0f}]"


def num(est: dict, digits: int = 3) -> str:
    if est is None or not math.isfinite(est["mean"]):
        return "n/a"
    return f"{est['mean']:.{digits}f} [{est['lo']:.{digits}f}, {est['hi']:.{digits}f}]"


def better(a: dict, b: dict, lower_is_better: bool = False) -> str:
    """Is a better than b? See the module docstring for the three verdicts."""
    if a is None or b is None or not (math.isfinite(a["mean"]) and math.isfinite(b["mean"])):
        return "not measured (no such prompts)"
    sign = -1 if lower_is_better else 1
    if sign * (a["mean"] - b["mean"]) <= 0:
        return ABSENT
    separated = a["lo"] > b["hi"] if not lower_is_better else a["hi"] < b["lo"]
    return APPEARED if separated else DIRECTION


def above_half(est: dict) -> str:
    """A win rate above 50%: the verdict rule against the fixed line of a coin flip."""
    return APPEARED if est["lo"] > 0.5 else DIRECTION if est["mean"] > 0.5 else ABSENT


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]) + "\n"


def sci(x: float) -> str:
    return f"{x:.2e}"


# ---- the run folder ------------------------------------------------------------------------------
def check_run(run_dir: Path) -> tuple[dict, dict]:
    """results.json and pipeline.json (or {}), after checking that no stage is missing: a UserError
    names the first missing stage and the command that runs it."""
    log_path = run_dir / "pipeline.json"
    log = read_json(log_path, keys=("config",)) if log_path.is_file() else {}
    results_path = run_dir / "eval" / "results.json"
    config = log.get("config") or (
        read_json(results_path, keys=RESULTS)["config"] if results_path.is_file() else {}
    )
    preset = config.get("preset", "quick")
    fix = (
        f"run `minigpt-rlhf run --preset {preset} --out {run_dir}` (it runs the missing stages, "
        f"skips the rest)"
    )
    if not run_dir.is_dir():
        raise UserError(f"run folder {run_dir} does not exist: {fix}")
    for stage in training(run_recipe(config.get("pipeline", {}))):
        if not (run_dir / stage.name / "metrics.jsonl").is_file():
            raise UserError(
                f"{run_dir} is missing stage {stage.name!r} "
                f"({run_dir / stage.name / 'metrics.jsonl'}): {fix}"
            )
    if not results_path.is_file():
        raise UserError(
            f"{run_dir} is missing stage 'evaluate' ({results_path}): run "
            f"`minigpt-rlhf evaluate --preset {preset} --run-dir {run_dir}`, or {fix}"
        )
    return read_json(results_path, keys=RESULTS), log


class Run:
    """What every finding reads: the results (M: per model, h2h: head to head), the small models'
    names (the sizes of the main base model), and `fig`, the Markdown of a figure of plots/ (or how
    to draw it)."""

    def __init__(self, run_dir: Path, res: dict):
        self.dir, self.res, self.M, self.h2h = run_dir, res, res["models"], res["head_to_head"]
        self.small = [k for k in PAPER_MODELS if k in self.M]

    def chat(self) -> list[str]:
        """Every chat model and method (SFT and what it is compared with), in the results' order."""
        return [k for k, m in self.M.items() if m["prompting"] != "plain" and "GPT-3" not in k]

    def fig(self, name: str, alt: str) -> str:
        if (self.dir / "plots" / name).is_file():
            return f"![{alt}](plots/{name})\n"
        return f"({name} not drawn: run `minigpt-rlhf plot {self.dir}`)\n"


# ---- the findings, in the paper's order: each returns its section and its rows of the summary ----
def preference(r: Run) -> tuple[list[str], list[list]]:
    M, h2h = r.M, r.h2h
    rows = [
        [
            k,
            f"{M[k]['params']:,}",
            pct(M[k]["win_rate"]["heldout"]),
            num(M[k]["likert"], 2),
            pct(M[k]["gold"]["overall"]),
        ]
        for k in M
    ]
    body = [
        SECTIONS[1] + "\n",
        "Paper (Figure 1): labelers prefer InstructGPT to GPT-3 at every size; the 1.3B PPO-ptx "
        "model is preferred to the 175B GPT-3; 175B InstructGPT wins 85 ± 3% against 175B GPT-3.\n",
        r.fig("figure1.png", "Figure 1"),
        table(["model", "params", "win rate vs SFT", "Likert 1-7", "gold overall"], rows),
        table(
            ["head to head (held-out labelers)", "win rate", "verdict"],
            [[k, pct(v), above_half(v)] for k, v in h2h.items()],
        ),
    ]
    gold = "PPO (gold oracle)"
    beats = (
        [
            [
                f"0. the loop's proof: {gold} vs SFT",
                "(a check: RL with a perfect reward beats SFT)",
                pct(M[gold]["win_rate"]["heldout"]),
                above_half(M[gold]["win_rate"]["heldout"]),
            ]
        ]
        if gold in M
        else []
    )
    beats += [
        [
            f"1. RLHF beats SFT: {k} vs SFT",
            "PPO-ptx and PPO preferred to SFT (Figure 1)",
            pct(M[k]["win_rate"]["heldout"]),
            above_half(M[k]["win_rate"]["heldout"]),
        ]
        for k in ("PPO-ptx", "PPO")
    ]
    beats += [
        [
            f"{'0.' if a == gold else '1.'} {a} vs SFT at its best temperature",
            "more than sharpening",
            f"{pct(v)} ({b[5:-1]})",
            above_half(v),
        ]
        for k, v in h2h.items()
        for a, b in [k.split(" vs ")]
        if b.startswith("SFT (T=")
    ]
    large = "PPO-ptx vs GPT-3 large"
    small_beats_large = (
        [
            "1. small PPO-ptx beats large GPT-3",
            "1.3B PPO-ptx > 175B GPT-3",
            pct(h2h[large]),
            above_half(h2h[large]),
        ]
        if large in h2h
        else [
            "1. small PPO-ptx beats large GPT-3",
            "1.3B PPO-ptx > 175B GPT-3",
            "no large model in this preset",
            "not run (--preset balanced, or sweep)",
        ]
    )
    return body, beats + [
        [
            "1. preferred to GPT-3",
            "85 ± 3% (175B vs 175B)",
            pct(h2h["PPO-ptx vs GPT-3"]),
            above_half(h2h["PPO-ptx vs GPT-3"]),
        ],
        small_beats_large,
    ]


def heldout_labelers(r: Run) -> tuple[list[str], list[list]]:
    M = r.M
    gaps = [
        abs(M[k]["win_rate"]["heldout"]["mean"] - M[k]["win_rate"]["training"]["mean"]) for k in M
    ]
    overlap = all(
        M[k]["win_rate"]["heldout"]["lo"] <= M[k]["win_rate"]["training"]["hi"]
        and M[k]["win_rate"]["training"]["lo"] <= M[k]["win_rate"]["heldout"]["hi"]
        for k in M
    )
    verdict = APPEARED if overlap else ABSENT
    body = [
        SECTIONS[2] + "\n",
        "Paper: held-out labelers, who wrote no training data, prefer the same models as the "
        "training labelers (no overfitting to the labelers).\n",
        table(
            ["model", "held-out labelers", "training labelers"],
            [[k, pct(M[k]["win_rate"]["heldout"]), pct(M[k]["win_rate"]["training"])] for k in M],
        ),
        f"Largest gap between the two groups: {100 * max(gaps):.0f} points. Verdict "
        f"({'every' if overlap else 'not every'} model's two intervals overlap): {verdict}.\n",
    ]
    return body, [
        [
            "2. held-out labelers agree",
            "same preferences",
            f"max gap {100 * max(gaps):.0f} pts",
            verdict,
        ]
    ]


def truthfulness(r: Run) -> tuple[list[str], list[list]]:
    M = r.M
    verdict = better(
        M["PPO-ptx"]["hallucination"], M["GPT-3"]["hallucination"], lower_is_better=True
    )
    body = [
        SECTIONS[3] + "\n",
        "Paper: InstructGPT is truthful and informative about twice as often on TruthfulQA; "
        "closed-domain hallucination falls from 41% (GPT-3) to 21%. Ours: closed-domain "
        "hallucination = on questions about a short passage, an answer the passage does not "
        "contain (the judge's truthful score 0); on questions about creatures the corpus never "
        "mentions, any invented attribute.\n",
        table(
            [
                "model",
                "closed-domain hallucination",
                "invents unknown creatures' facts",
                "gold truthful",
            ],
            [
                [
                    k,
                    pct(M[k]["hallucination"]),
                    pct(M[k]["invention"]),
                    pct(M[k]["gold"]["truthful"]),
                ]
                for k in r.small
            ],
        ),
        f"PPO-ptx vs GPT-3, closed-domain hallucination: {verdict}; unknown creatures: "
        f"{better(M['PPO-ptx']['invention'], M['GPT-3']['invention'], lower_is_better=True)}.\n",
    ]
    return body, [
        [
            "3. fewer hallucinations",
            "41% -> 21%",
            f"{pct(M['GPT-3']['hallucination'])} -> {pct(M['PPO-ptx']['hallucination'])}",
            verdict,
        ]
    ]


def harmlessness(r: Run) -> tuple[list[str], list[list]]:
    M = r.M
    verdict = better(M["PPO-ptx"]["toxicity"], M["GPT-3"]["toxicity"], lower_is_better=True)
    body = [
        SECTIONS[4] + "\n",
        "Paper: about 25% fewer toxic outputs than GPT-3 when prompted to be respectful; no gain "
        "on bias; it still follows harmful instructions. Ours: on requests for an insult, toxic = "
        "uses one from the corpus's lexicon; complies = does not decline.\n",
        r.fig("three_h.png", "three H's"),
        table(
            ["model", "toxic", "complies", "gold harmless", "gold helpful"],
            [
                [
                    k,
                    pct(M[k]["toxicity"]),
                    pct(M[k]["compliance"]),
                    pct(M[k]["gold"]["harmless"]),
                    pct(M[k]["gold"]["helpful"]),
                ]
                for k in r.small
            ],
        ),
        f"PPO-ptx vs GPT-3 toxicity: {verdict}.\n",
    ]
    return body, [
        [
            "4. fewer toxic outputs",
            "about -25%",
            f"{pct(M['GPT-3']['toxicity'])} -> {pct(M['PPO-ptx']['toxicity'])}",
            verdict,
        ]
    ]


def alignment_tax(r: Run) -> tuple[list[str], list[list]]:
    M = r.M
    tax = lambda k: M[k]["cloze"]["mean"] - M["SFT"]["cloze"]["mean"]  # noqa: E731
    ppo_tax = better(M["SFT"]["cloze"], M["PPO"]["cloze"])
    ptx_repays = better(M["PPO-ptx"]["cloze"], M["PPO"]["cloze"])
    loss_ppo = better(M["PPO"]["corpus_loss"], M["SFT"]["corpus_loss"], lower_is_better=False)
    loss_ptx = better(M["PPO-ptx"]["corpus_loss"], M["PPO"]["corpus_loss"], lower_is_better=True)
    body = [
        SECTIONS[5] + "\n",
        "Paper: PPO regresses on public NLP tasks (SQuAD, DROP, HellaSwag, WMT) — the alignment "
        "tax — and PPO-ptx, mixing in pretraining gradients, mostly removes it. Ours: plain-text "
        "fact completion (greedy) and the loss on the held-out corpus.\n",
        r.fig("alignment_tax.png", "alignment tax"),
        table(
            ["model", "fact completion", "copy probe", "held-out corpus loss"],
            [
                [k, pct(M[k]["cloze"]), pct(M[k].get("copy")), num(M[k]["corpus_loss"])]
                for k in r.small
            ],
        ),
        f"Tax of PPO (fact completion below SFT's): {ppo_tax}; PPO's corpus loss above SFT's: "
        f"{loss_ppo}. PPO-ptx repays it (above PPO on fact completion): {ptx_repays}; (below PPO "
        f"on corpus loss): {loss_ptx}.\n",
    ]
    return body, [
        [
            "5. PPO pays a tax, PPO-ptx repays it",
            "regressions, mostly removed by ptx",
            f"fact completion vs SFT: PPO {100 * tax('PPO'):+.0f} pts, PPO-ptx "
            f"{100 * tax('PPO-ptx'):+.0f} pts; "
            f"corpus loss PPO {M['PPO']['corpus_loss']['mean']:.3f}, PPO-ptx "
            f"{M['PPO-ptx']['corpus_loss']['mean']:.3f}",
            f"tax: {ppo_tax}; repaid: {ptx_repays}",
        ]
    ]


def generalisation(r: Run) -> tuple[list[str], list[list]]:
    M, fam = r.M, r.res.get("heldout_family")
    families = [
        "All families (gold overall, PPO-ptx vs GPT-3):\n",
        table(
            ["family", "GPT-3", "SFT", "PPO", "PPO-ptx"],
            [
                [f] + [pct(M[k]["families"][f]["gold"]) for k in ("GPT-3", "SFT", "PPO", "PPO-ptx")]
                for f in M["GPT-3"]["families"]
            ],
        ),
    ]
    if not (fam and fam in M["PPO-ptx"]["families"]):
        return (
            [
                SECTIONS[6] + "\n",
                "The world names no held-out task family, or the eval sample has none of "
                "its prompts: not measured.\n",
            ]
            + families,
            [
                [
                    "6. generalises to an unsupervised family",
                    "qualitative",
                    "not measured",
                    "not measured",
                ]
            ],
        )
    F = {k: M[k]["families"][fam] for k in r.small}
    verdict = better(F["PPO-ptx"]["gold"], F["GPT-3"]["gold"])
    body = [
        SECTIONS[6] + "\n",
        f"Paper: InstructGPT follows instructions in settings rarely supervised (other languages, "
        f"code). Ours: the task family `{fam}`, absent from every training split.\n",
        table(
            ["model", f"gold on {fam}", f"win rate vs SFT on {fam}"],
            [[k, pct(F[k]["gold"]), pct(F[k]["win_rate"])] for k in r.small],
        ),
        f"PPO-ptx vs GPT-3 on `{fam}`: {verdict}.\n",
    ]
    return body + families, [
        [
            "6. generalises to an unsupervised family",
            "qualitative",
            f"gold {pct(F['GPT-3']['gold'])} -> {pct(F['PPO-ptx']['gold'])}",
            verdict,
        ]
    ]


def compute(r: Run) -> tuple[list[str], list[list]]:
    C = r.res["compute"]
    body = [
        SECTIONS[7] + "\n",
        f"Paper: SFT 175B = 4.9 petaflop/s-days and PPO-ptx 175B = 60, against 3,640 for GPT-3's "
        f"pretraining: alignment costs {100 * C['paper_ratio']:.1f}% of pretraining. Ours, "
        f"counted by each stage as it ran: 6·N per token trained on and 2·N per token sampled or "
        f"scored, for every model the stage runs (tokens: the stage's own model):\n",
        table(
            ["stage", "params N", "trained tokens", "forward tokens", "FLOPs", "petaflop/s-days"],
            [
                [
                    c["stage"],
                    f"{c['params']:,}",
                    f"{c['train_tokens']:,.0f}",
                    f"{c['forward_tokens']:,.0f}",
                    sci(c["flops"]),
                    sci(c["pfs_days"]),
                ]
                for c in C["rows"]
            ],
        ),
        f"(SFT + PPO-ptx) / pretraining = {100 * C['ratio']:.1f}% (paper "
        f"{100 * C['paper_ratio']:.1f}%); with "
        f"the reward model: {100 * C['ratio_with_rm']:.1f}%.\n",
    ]
    # the rule: alignment is "cheap" if it costs less than a tenth of pretraining (the paper: under
    # 2%) (a count, not an estimate: no interval, so "partly" rather than "direction only")
    verdict = (
        APPEARED
        if C["ratio"] < 0.1
        else "partly (below pretraining, above a tenth of it)"
        if C["ratio"] < 1
        else ABSENT
    )
    return body, [
        [
            "7. alignment is cheap next to pretraining",
            f"{100 * C['paper_ratio']:.1f}% of pretraining",
            f"{100 * C['ratio']:.1f}%",
            verdict,
        ]
    ]


def whose_preferences(r: Run) -> tuple[list[str], list[list]]:
    M = r.M
    if "PPO biased" not in M:
        return [
            SECTIONS[8] + "\n",
            "Not run in this preset (pipeline.biased = false; `--preset balanced` runs it).\n",
        ], []
    B = M["PPO biased"]
    verdict = better(B["win_rate"]["biased"], B["win_rate"]["heldout"])
    gold_ok = (
        B["gold"]["overall"]["mean"] <= M["PPO"]["gold"]["overall"]["mean"]
        or better(B["gold"]["overall"], M["PPO"]["gold"]["overall"]) != APPEARED
    )
    body = [
        SECTIONS[8] + "\n",
        "Paper: the model is aligned to its labelers' and researchers' preferences, not to human "
        "values in general. Ours: a reward model trained on the rankings of a labeler group with "
        "a shared taste (a pet phrase and long answers), and PPO against it (γ = 0, so compare "
        "with PPO).\n",
        r.fig("whose_preferences.png", "whose preferences"),
        table(
            [
                "model",
                "biased labelers",
                "held-out labelers",
                "training labelers",
                "gold overall",
                "uses the pet phrase",
                "length (chars)",
            ],
            [
                [
                    k,
                    pct(M[k]["win_rate"]["biased"]),
                    pct(M[k]["win_rate"]["heldout"]),
                    pct(M[k]["win_rate"]["training"]),
                    pct(M[k]["gold"]["overall"]),
                    pct(M[k]["pet_phrase"]),
                    num(M[k]["response_chars"], 0),
                ]
                for k in ("SFT", "PPO", "PPO biased")
            ],
        ),
        f"The biased-RM policy wins more often with the biased group than with the held-out "
        f"labelers: {verdict}; "
        f"its gold score is not significantly above PPO's: {'yes' if gold_ok else 'no'}.\n",
    ]
    return body, [
        [
            "8. aligned to its labelers' preferences",
            "a limitation",
            f"biased group {pct(B['win_rate']['biased'])} vs held-out "
            f"{pct(B['win_rate']['heldout'])}",
            verdict if gold_ok else ABSENT + " (gold rose too)",
        ]
    ]


def over_optimisation(r: Run) -> list[str]:
    """Gao et al.'s picture: best-of-n and every policy on one KL axis, and where each PPO run's
    gold score peaked."""
    over = r.res.get("over_optimisation")
    body = [
        SECTIONS[9] + "\n",
        "Gao et al. (2022): with d = sqrt(KL(π‖π^SFT)), the proxy RM score keeps rising while the "
        "gold score rises, then falls; best-of-n, no training at all, lies on the same axis at KL "
        "= log n − (n−1)/n. The lines of the PPO stages are their rollouts (PPO prompts, "
        "temperature 1, running means over 5 iterations; ★ = the peak of the gold score), the "
        "diamonds each policy on the eval prompts:\n",
        r.fig("overoptimisation.png", "over-optimisation"),
    ]
    if not over:
        return body
    body.append(
        table(
            [
                "n",
                "KL (nats)",
                "gold, best of n by r_θ",
                "r_θ, best of n by r_θ",
                "gold, best of n by gold",
            ],
            [
                [
                    b["n"],
                    f"{b['kl']:.2f}",
                    f"{b['gold']:.3f}",
                    f"{b['rm']:.3f}",
                    f"{b['gold_oracle']:.3f}",
                ]
                for b in over["best_of_n"]
            ],
        )
    )
    if "headroom" in over:
        body.append(
            "The reward model's report card: how much of the gold judge's best-of-8 gain over one "
            "SFT sample its own best of 8 captures, per family (SFT's samples of the eval prompts "
            "at T = 1; corr = r_θ's correlation with the gold score; ties = how often one sample "
            "scores as high as the best of 8, the share on which no method can beat SFT):\n"
        )
        body.append(
            table(
                [
                    "family",
                    "prompts",
                    "gold, one sample",
                    "best of 8 by r_θ",
                    "best of 8 by gold",
                    "captured",
                    "corr",
                    "ties",
                ],
                [
                    [
                        f,
                        h["n_prompts"],
                        f"{h['one']:.3f}",
                        f"{h['by_rm']:.3f}",
                        f"{h['by_gold']:.3f}",
                        f"{100 * h['captured']:.0f}%" if math.isfinite(h["captured"]) else "n/a",
                        f"{h['corr']:.2f}" if math.isfinite(h["corr"]) else "n/a",
                        f"{100 * h['ties']:.0f}%" if "ties" in h else "n/a",
                    ]
                    for f, h in over["headroom"].items()
                ],
            )
        )
    body.append(
        table(
            ["policy (eval prompts, T = 1)", "KL to SFT (nats)", "gold", "r_θ"],
            [
                [k, f"{v['kl']:.2f}", f"{v['gold']:.3f}", f"{v['rm']:.3f}"]
                for k, v in over["policies"].items()
            ],
        )
    )
    peaks = []
    for stage in sorted(p.parent.name for p in r.dir.glob("ppo*/metrics.jsonl")) + sorted(
        p.parent.name for p in r.dir.glob("grpo*/metrics.jsonl")
    ):
        rows = smooth(
            [
                x
                for x in read_metrics(r.dir / stage / "metrics.jsonl")
                if math.isfinite(x.get("rm_score", math.nan))
            ],
            ("iter", "sqrt_kl", "gold", "rm_score"),
            5,
        )
        if rows:
            top = max(rows, key=lambda x: x["gold"])
            peaks.append(
                [
                    stage,
                    f"{rows[0]['gold']:.3f}",
                    f"{top['gold']:.3f} at d = {top['sqrt_kl']:.2f} (iteration {top['iter']:.0f})",
                    f"{rows[-1]['gold']:.3f} at d = {rows[-1]['sqrt_kl']:.2f}",
                    f"{rows[0]['rm_score']:.3f} -> {rows[-1]['rm_score']:.3f}",
                ]
            )
    if peaks:
        body.append(
            table(
                ["stage (rollouts)", "gold at start", "gold at its peak", "gold at the end", "r_θ"],
                peaks,
            )
        )
    return body


def methods(r: Run) -> list[str]:
    """Every chat model beside SFT: the honest baselines (SFT at its best temperature, best-of-n at
    PPO-ptx's KL, the gold judge's best of SFT's samples) and every RL method, with their KL,
    non-answers and lengths."""
    M = r.M
    body = [
        SECTIONS[10] + "\n",
        "A win is more than sharpening when it beats SFT at its best temperature; best-of-n "
        "by r_θ at the KL "
        "where PPO-ptx lands is the no-training rival; the gold judge's best of SFT's "
        "samples bounds what any "
        'method can reach from them. Non-answers: nothing but pleasantries ("Sure.").\n',
        r.fig("methods.png", "every method"),
        table(
            [
                "model",
                "win rate vs SFT",
                "gold helpful",
                "truthful",
                "harmless",
                "KL to SFT",
                "non-answers",
                "median chars",
            ],
            [
                [
                    k,
                    pct(M[k]["win_rate"]["heldout"]),
                    pct(M[k]["gold"]["helpful"]),
                    pct(M[k]["gold"]["truthful"]),
                    pct(M[k]["gold"]["harmless"]),
                    num(M[k].get("kl"), 2),
                    pct(M[k].get("non_answer")),
                    f"{M[k].get('median_chars', math.nan):.0f}",
                ]
                for k in r.chat()
            ],
        ),
    ]
    fams = list(M["SFT"]["families"])
    if all("helpful" in M["SFT"]["families"][f] for f in fams):
        body += [
            "Gold helpful by task family:\n",
            table(
                ["family", *r.chat()],
                [[f, *[pct(M[k]["families"][f]["helpful"]) for k in r.chat()]] for f in fams],
            ),
        ]
    return body


def findings(r: Run) -> tuple[list[list], list[str]]:
    """The summary's rows (finding, paper, ours, verdict) and the sections of every finding, in the
    paper's order."""
    summary, body = [], []
    for finding in FINDINGS:
        section, rows = finding(r)
        body += section
        summary += rows
    return summary, body


FINDINGS = (
    preference,
    heldout_labelers,
    truthfulness,
    harmlessness,
    alignment_tax,
    generalisation,
    compute,
    whose_preferences,
)


# ---- the report ----------------------------------------------------------------------------------
def write_report(run_dir) -> Path:
    """Write run_dir/report.md from the run's results and metrics; returns its path."""
    run_dir = Path(run_dir)
    res, log = check_run(run_dir)
    r, cfg = Run(run_dir, res), res["config"]
    out = [
        f"# minigpt-rlhf report: `{run_dir.name}`\n",
        f"Preset `{res['preset']}`, seed {res['seed']}, {res['n_prompts']} evaluation answers per "
        f"model (eval split: prompts no stage trained on), sampled at temperature "
        f"{cfg['eval']['temperature']}. Every interval is {100 * cfg['eval']['confidence']:.0f}%: "
        f"Wilson for rates, bootstrap ({cfg['eval']['bootstrap']} resamples) for means. Win rates "
        f"are against {res['reference']}, judged by the held-out labelers unless said otherwise. "
        f"Verdicts: *{APPEARED}* = the paper's sign and separated intervals; *{DIRECTION}*; *did "
        f"not appear* = the opposite sign.\n",
    ]
    summary, body = findings(r)
    body += over_optimisation(r) + methods(r)
    body += [SECTIONS[11] + "\n"] + [
        r.fig(p.name, p.stem) for p in sorted((run_dir / "plots").glob("curves_*.png"))
    ]
    body += [SECTIONS[12] + "\n"]
    for ex in res["examples"]:
        body.append(
            f"**{ex['family']}**: `{_oneline(ex['prompt'])}`\n\n"
            + "\n".join(f"- {k}: `{_oneline(t)}`" for k, t in ex["responses"].items())
            + "\n"
        )
    stages = log.get("stages", {})
    body += [
        SECTIONS[13] + "\n",
        f"Seed {res['seed']}, preset `{res['preset']}`. Machine: "
        f"{log.get('machine', 'not recorded')}.\n",
        table(
            ["stage", "wall time (s)"],
            [[k, v["seconds"]] for k, v in stages.items()]
            + [
                [
                    "sum (stages run side by side: more than the wall time, in pipeline.json)",
                    round(sum(v["seconds"] for v in stages.values()), 1),
                ]
            ],
        )
        if stages
        else "",
        "```json\n" + json.dumps(cfg, indent=1) + "\n```\n",
    ]
    out += [SECTIONS[0] + "\n", table(["finding", "paper", "ours", "verdict"], summary)] + body
    return write_text(run_dir / "report.md", "\n".join(out))


def across_seeds(name: str) -> str:
    """A model's name as it is on every seed: the baselines' n and temperature are chosen per run
    ("Best-of-9 (RM)" on one seed, "Best-of-16 (RM)" on another)."""
    return re.sub(
        r"^Best-of-\d+ \(RM\)$",
        "Best-of-n (RM)",
        re.sub(r"^SFT \(T=[\d.]+\)$", "SFT (best T)", name),
    )


def models_across_seeds(r: Run) -> dict[str, dict]:
    return {across_seeds(k): m for k, m in r.M.items()}


def method_rows(runs: dict[str, Run], logs: dict[str, dict]) -> list[list[str]]:
    """write_seeds_report's table of methods: each chat model's numbers as the mean [min, max] over
    the seeds."""

    def spread(values: list[float], fmt: str) -> str:
        values = [v for v in values if v is not None and math.isfinite(v)]
        if not values:
            return "n/a"
        return (
            f"{fmt.format(sum(values) / len(values))} [{fmt.format(min(values))}, "
            f"{fmt.format(max(values))}]"
        )

    rows, models = [], {s: models_across_seeds(r) for s, r in runs.items()}
    flops = {
        s: {row["stage"]: row["flops"] for row in r.res["compute"]["rows"]} for s, r in runs.items()
    }
    for k in map(across_seeds, next(iter(runs.values())).chat()):
        M = [models[s][k] for s in runs if k in models[s]]
        trained = M[0]["prompting"] == "chat" and not k.startswith("SFT")
        rows.append(
            [
                k,
                spread([100 * m["win_rate"]["heldout"]["mean"] for m in M], "{:.0f}%"),
                *[
                    spread([100 * m["gold"][h]["mean"] for m in M], "{:.0f}%")
                    for h in ("helpful", "truthful", "harmless")
                ],
                spread([m.get("kl", {}).get("mean") for m in M], "{:.2f}"),
                spread(
                    [m["corpus_loss"]["mean"] if "corpus_loss" in m else None for m in M], "{:.2f}"
                ),
                spread([flops[s].get(M[0]["stage"]) for s in runs], "{:.2e}") if trained else "",
                spread(
                    [logs[s].get("stages", {}).get(M[0]["stage"], {}).get("seconds") for s in runs],
                    "{:.0f}",
                )
                if trained
                else "",
            ]
        )
    return rows


def numbered(folder: Path, prefix: str) -> list[Path]:
    """The sub-folders PREFIX<number> (seed_1337, care_0.65), by number; a file beside them (a
    log, seed_1337.log) is none of them."""
    found = []
    for d in folder.glob(prefix + "*"):
        try:
            found.append((float(d.name[len(prefix) :]), d))
        except ValueError:
            continue
    return [d for _, d in sorted(found) if d.is_dir()]


def write_seeds_report(out_dir) -> Path:
    """out_dir/report.md for `minigpt-rlhf seeds`: each finding's verdict on every seed's run
    (out_dir/seed_N), how many seeds it appeared on, and every method's win rate against SFT per
    seed."""
    out_dir = Path(out_dir)
    runs, logs = {}, {}
    for d in numbered(out_dir, "seed_"):
        res, logs[d.name[5:]] = check_run(d)
        runs[d.name[5:]] = Run(d, res)
    if not runs:
        raise UserError(
            f"{out_dir} holds no seed_N run folder: run `minigpt-rlhf seeds --out {out_dir}` first"
        )
    rows = {seed: findings(r)[0] for seed, r in runs.items()}
    first = next(iter(rows.values()))
    table_rows = []
    for i, (name, paper, _, _) in enumerate(first):
        cells = [f"{rows[s][i][2]} ({rows[s][i][3]})" for s in runs]
        appeared = sum(rows[s][i][3].startswith(APPEARED) for s in runs)
        table_rows.append([name, paper, *cells, f"{appeared} of {len(runs)}"])
    models = {s: models_across_seeds(r) for s, r in runs.items()}
    wins = [
        [k, *[pct(models[s][k]["win_rate"]["heldout"]) if k in models[s] else "n/a" for s in runs]]
        for k in next(iter(models.values()))
    ]
    lines = [
        f"# minigpt-rlhf over {len(runs)} seeds\n",
        f"The same recipe and preset, seeds {', '.join(runs)} (run folders `seed_N`, each with "
        f"its own report.md). A verdict is judged per seed by the run report's rule; a claim "
        f"holds when it appeared on most seeds.\n",
        "## Findings, seed by seed\n",
        table(["finding", "paper", *[f"seed {s}" for s in runs], "appeared on"], table_rows),
        "## Win rate against SFT (held-out labelers), seed by seed\n",
        table(["model", *[f"seed {s}" for s in runs]], wins),
        "## Every method beside SFT, over the seeds\n",
        "Means over the seeds, with the lowest and highest seed in brackets. KL to SFT in nats "
        "(best-of-n: log n − (n−1)/n); corpus loss = the held-out corpus loss (the alignment "
        "tax); FLOPs and wall time of the stage that trained the model (none for SFT's own "
        "samples and best-of-n, which train nothing; wall times of stages run side by side, one "
        "thread each).\n",
        table(
            [
                "model",
                "win rate vs SFT",
                "gold helpful",
                "truthful",
                "harmless",
                "KL to SFT",
                "corpus loss",
                "training FLOPs",
                "wall time (s)",
            ],
            method_rows(runs, logs),
        ),
    ]
    return write_text(out_dir / "report.md", "\n".join(lines))


CURVE_METHODS = ("PPO-ptx", "PPO", "DPO", "Best-of-n (RM)", "PPO (gold oracle)", "SFT (best T)")


def spread_over_seeds(wins: list[dict], series: dict, name: str, x: float) -> str:
    """A win rate over the seeds as "mean [lowest, highest]; k of n" (k: seeds whose interval is
    above 50%), and its point (x, mean, lowest, highest) added to series[name] for the figure."""
    if not wins:
        return "n/a"
    means = [w["mean"] for w in wins]
    mean, lo, hi = sum(means) / len(means), min(means), max(means)
    series.setdefault(name, []).append((x, mean, lo, hi))
    clear = sum(w["lo"] > 0.5 for w in wins)
    return f"{100 * mean:.0f}% [{100 * lo:.0f}, {100 * hi:.0f}]; {clear} of {len(wins)}"


def write_curve_report(out_dir) -> Path:
    """out_dir/report.md and curve.png for `minigpt-rlhf curve`: per writing care (care_C/seed_N,
    data_care_C), the demonstrations' quality and each method's win rate against SFT over the
    seeds: when does RLHF beat SFT?"""
    out_dir = Path(out_dir)
    levels = numbered(out_dir, "care_")[::-1]
    if not levels:
        raise UserError(
            f"{out_dir} holds no care_C folder: run `minigpt-rlhf curve --out {out_dir}` first"
        )
    rows, series = [], {}
    for level in levels:
        data = out_dir / f"data_{level.name}"
        prompts = demo_prompts({s: world.load_prompts(data, s) for s in ("sft", "rm")})
        demos = {d.prompt_id: d.response for d in world.load_demonstrations(data)}
        helpful, prefer = writing_quality(prompts, [demos[p.id] for p in prompts])
        runs = [Run(d, check_run(d)[0]) for d in numbered(level, "seed_")]
        models = [models_across_seeds(r) for r in runs]
        cells = [
            spread_over_seeds(
                [m[method]["win_rate"]["heldout"] for m in models if method in m],
                series,
                method,
                helpful,
            )
            for method in CURVE_METHODS
        ]
        for method in ("PPO-ptx", "PPO (gold oracle)"):  # head to head with SFT at its best T
            wins = [
                v for r in runs for k, v in r.h2h.items() if k.startswith(f"{method} vs SFT (T=")
            ]
            cells.append(spread_over_seeds(wins, series, f"{method} vs SFT (best T)", helpful))
        gold = [
            f"{100 * sum(m[k]['gold']['helpful']['mean'] for m in models) / len(models):.0f}%"
            if all(k in m for m in models)
            else "n/a"
            for k in ("SFT", "PPO-ptx")
        ]
        rows.append(
            [
                level.name[5:],
                f"{100 * helpful:.0f}%",
                f"{100 * prefer:.0f}%",
                len(runs),
                " → ".join(gold),
                *cells,
            ]
        )
    plot_curve(series, out_dir / "curve.png")
    lines = [
        "# When does RLHF beat SFT?\n",
        "The recipe on worlds that differ only in the demonstrators' writing skill (writing care: "
        "the chance a demonstration is complete, not hurried; the same prompts, corpus, judge and "
        "rankings). Win rates against SFT by the held-out labelers: the seeds' mean [lowest, "
        "highest]; then on how many seeds the 95% interval's lower end is above 50%.\n",
        table(
            [
                "writing care",
                "demonstrations' gold helpful",
                "judge's answer preferred to a demonstration",
                "seeds",
                "gold helpful SFT → PPO-ptx",
                *[f"{m} vs SFT" for m in CURVE_METHODS],
                "PPO-ptx vs SFT (best T)",
                "PPO (gold oracle) vs SFT (best T)",
            ],
            rows,
        ),
        "![win rate against SFT by the demonstrators' writing skill](curve.png)\n",
    ]
    return write_text(out_dir / "report.md", "\n".join(lines))


def _oneline(text: str, limit: int = 160) -> str:
    text = text.replace("\n", " ⏎ ").replace("`", "'")
    return text if len(text) <= limit else text[:limit] + " …"


# ---- the sweep's report --------------------------------------------------------------------------
def sweep_findings(rows: list[dict]) -> list[list[str]]:
    """Figure 1's claims, each judged by the module's verdict rule on the win rates against the one
    reference."""
    win = {(r["size"], r["method"]): r["win_rate"] for r in rows}
    sizes = list(dict.fromkeys(r["size"] for r in rows))  # smallest first
    small, large = sizes[0], sizes[-1]

    def claim(name, paper, a, b):
        return [name, paper, f"{pct(win[a])} vs {pct(win[b])}", better(win[a], win[b])]

    return (
        [
            claim(f"PPO-ptx beats GPT-3 at {s}", "at every size", (s, "PPO-ptx"), (s, "GPT-3"))
            for s in sizes
        ]
        + [claim(f"PPO beats SFT at {s}", "at every size", (s, "PPO"), (s, "SFT")) for s in sizes]
        + [
            claim(
                f"the smallest PPO-ptx ({small}) beats the largest GPT-3 ({large})",
                "1.3B PPO-ptx > 175B GPT-3",
                (small, "PPO-ptx"),
                (large, "GPT-3"),
            ),
            claim(
                f"PPO-ptx gains with size ({large} vs {small})",
                "the win rate rises with size",
                (large, "PPO-ptx"),
                (small, "PPO-ptx"),
            ),
        ]
    )


def write_sweep_report(out_dir) -> Path:
    out_dir = Path(out_dir)
    path = out_dir / "eval" / "sweep.json"
    if not path.is_file():
        raise UserError(f"{path} does not exist: run `minigpt-rlhf sweep --out {out_dir}` first")
    res = read_json(path, keys=SWEEP)
    lines = [
        "# minigpt-rlhf model-size sweep\n",
        f"Preset `{res['preset']}`, seed {res['seed']}. Win rate against {res['reference']}, "
        f"judged by the held-out labelers (the paper's Figure 1: InstructGPT beats GPT-3 at every "
        f"size; 1.3B PPO-ptx beats 175B GPT-3).\n",
        "![Figure 1](plots/figure1_sweep.png)\n",
        "## Findings\n",
        table(["finding", "paper", "ours (win rate)", "verdict"], sweep_findings(res["rows"])),
        "## Every model\n",
        table(
            [
                "size",
                "params",
                "method",
                "win rate",
                "gold overall",
                "gold helpful",
                "gold harmless",
            ],
            [
                [
                    r["size"],
                    f"{r['params']:,}",
                    r["method"],
                    pct(r["win_rate"]),
                    pct(r["gold"]),
                    pct(r["helpful"]),
                    pct(r["harmless"]),
                ]
                for r in res["rows"]
            ],
        ),
    ]
    return write_text(out_dir / "report.md", "\n".join(lines))
