"""Every figure of the report, drawn only from files a run leaves behind (each stage's metrics.jsonl
and eval/results.json), so `minigpt-rlhf plot RUN` redraws them without retraining anything.

    curves_STAGE.png      each stage's training curves
    figure1.png           the paper's Figure 1: win rate against SFT, by model size, per method
    three_h.png           gold helpful / truthful / harmless, and the hallucination and toxicity
                          rates
    alignment_tax.png     held-out corpus loss and fact-completion accuracy
    overoptimisation.png  RM score and gold score against sqrt(KL) during PPO (Gao et al., 2022)
    whose_preferences.png win rates of the biased-RM policy by labeler group (if the run has it)
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no window: works on a server and in CI
import matplotlib.pyplot as plt  # noqa: E402

from minigpt_rlhf.runtime import (  # noqa: E402
    RESULTS,
    SWEEP,
    UserError,
    read_json,
    read_metrics,
)
from minigpt_rlhf.stages import run_recipe  # noqa: E402

STEP_KEYS = ("step", "iter", "epoch")
NOT_CURVES = {"time", "ptx_coef", "epoch", "tokens", "lr"}
MAX_PANELS = 8
# what to show first, where a stage logs it; other numeric keys fill the remaining panels
PREFERRED = (
    "loss",
    "val_loss",
    "acc",
    "val_acc",
    "val_acc_heldout",
    "rm_score",
    "gold",
    "kl",
    "kl_coef",
    "corpus_loss",
    "ptx_loss",
    "response_len",
    "truncated",
    "entropy",
    "explained_var",
    "clipfrac",
)
COLORS = {
    "GPT-3": "tab:gray",
    "GPT-3 prompted": "tab:olive",
    "SFT": "tab:blue",
    "PPO": "tab:orange",
    "PPO-ptx": "tab:red",
    "PPO biased": "tab:purple",
    "GRPO": "tab:green",
    "PPO (gold oracle)": "gold",
    "DPO": "tab:cyan",
}
# for the models COLORS does not name (the baselines: SFT at its best T, best-of-n, ...), none of
# them COLORS' own
EXTRA_COLORS = ("tab:brown", "tab:pink", "black", "silver", "navy", "lime")
FIGURE1 = ("GPT-3", "GPT-3 prompted", "SFT", "PPO", "PPO-ptx")  # the paper's methods, by model size


def load_results(run_dir: Path, name: str = "results.json") -> dict:
    path = Path(run_dir) / "eval" / name
    if not path.is_file():
        raise UserError(
            f"{path} does not exist: evaluate the run first (`minigpt-rlhf evaluate "
            f"--run-dir {run_dir}`)"
        )
    return read_json(path, keys=SWEEP if name == "sweep.json" else RESULTS)


def _save(fig, path: Path, tight: bool = True) -> Path:
    if tight:
        # seconds per figure of many panels: those set their spacing by hand instead
        fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


# ---- training curves -----------------------------------------------------------------------------
def plot_curves(rows: list[dict], title: str, path: Path) -> Path | None:
    """One panel per logged quantity against the step; rows that lack a quantity are left out of its
    panel."""
    if not rows:
        return None
    xkey = next((k for k in STEP_KEYS if k in rows[0]), None)
    numeric = [
        k
        for r in rows
        for k, v in r.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    ]
    counts = {k: numeric.count(k) for k in numeric}
    keys = [
        k for k in counts if counts[k] >= 2 and k not in NOT_CURVES and k != xkey
    ]  # a curve, not a summary
    keys = ([k for k in PREFERRED if k in keys] + [k for k in keys if k not in PREFERRED])[
        :MAX_PANELS
    ]
    if not keys:
        return None
    cols = min(4, len(keys))
    fig, axes = plt.subplots(
        math.ceil(len(keys) / cols),
        cols,
        figsize=(3.2 * cols, 2.4 * math.ceil(len(keys) / cols)),
        squeeze=False,
    )
    for ax, key in zip(axes.flat, keys):
        pts = [
            (r[xkey] if xkey else i, r[key])
            for i, r in enumerate(rows)
            if isinstance(r.get(key), (int, float)) and math.isfinite(r[key])
        ]
        if pts:
            ax.plot(*zip(*pts), marker="." if len(pts) < 30 else None)
        ax.set_title(key, fontsize=9)
        ax.set_xlabel(xkey or "row", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(keys) :]:
        ax.axis("off")
    fig.suptitle(title)
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.1, top=0.88, hspace=0.75, wspace=0.3)
    return _save(fig, path, tight=False)


# ---- evaluation figures --------------------------------------------------------------------------
def _err(est: dict) -> list[list[float]]:
    """matplotlib's asymmetric error bar from {mean, lo, hi}."""
    return [[est["mean"] - est["lo"]], [est["hi"] - est["mean"]]]


def plot_figure1(series: dict[str, list[tuple[int, dict]]], title: str, path: Path) -> Path:
    """Win rate against the reference by parameter count (log scale), one line per method: the
    paper's Figure 1. series: method -> [(params, {mean, lo, hi}), ...]."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, (method, pts) in enumerate(series.items()):
        pts = sorted(pts, key=lambda p: p[0])
        # methods share sizes: nudge each sideways a little so that their error bars stay apart
        xs, ests = [p[0] * (1 + 0.04 * (i - len(series) / 2)) for p in pts], [p[1] for p in pts]
        ax.errorbar(
            xs,
            [e["mean"] for e in ests],
            yerr=[[e["mean"] - e["lo"] for e in ests], [e["hi"] - e["mean"] for e in ests]],
            marker="o",
            capsize=3,
            label=method,
            color=COLORS.get(method),
        )
    ax.axhline(0.5, color="k", lw=0.8, ls="--")
    ax.set_xscale("log")
    ax.set_ylim(0, 1)
    ax.set_xlabel("parameters")
    ax.set_ylabel("win rate against the reference")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_curve(series: dict[str, list[tuple[float, float, float, float]]], path: Path) -> Path:
    """When does RLHF beat SFT: each method's win rate against SFT by the demonstrations' gold
    helpful. series: method -> [(demos' helpful, mean, lowest seed, highest seed), ...]."""
    fig, ax = plt.subplots(figsize=(6, 4))
    extra = iter(EXTRA_COLORS)
    for method, pts in series.items():
        pts = sorted(pts)
        ax.errorbar(
            [100 * p[0] for p in pts],
            [100 * p[1] for p in pts],
            yerr=[[100 * (p[1] - p[2]) for p in pts], [100 * (p[3] - p[1]) for p in pts]],
            marker="o",
            capsize=3,
            label=method,
            color=COLORS.get(method) or next(extra),
        )
    ax.axhline(50, color="k", lw=0.8, ls="--")
    ax.set_xlabel("the demonstrations' gold helpful (%): the demonstrators' writing skill")
    ax.set_ylabel("win rate against SFT (%), seeds' mean [min, max]")
    ax.set_title("When does RLHF beat SFT? (held-out labelers)", fontsize=10)
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_bars(
    models: dict, metrics: list[tuple[str, callable]], title: str, path: Path, ylabel: str = ""
) -> Path:
    """Grouped bars with their confidence intervals: one group per metric, one bar per model."""
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(metrics) + 2), 4))
    width, extra = 0.8 / len(models), iter(EXTRA_COLORS * len(models))
    for i, (name, m) in enumerate(models.items()):
        color = COLORS.get(name) or next(extra)
        for j, (label, get) in enumerate(metrics):
            est = get(m)
            if est is None or not math.isfinite(est["mean"]):
                continue
            ax.bar(
                j + i * width,
                est["mean"],
                width,
                yerr=_err(est),
                capsize=2,
                color=color,
                label=name if j == 0 else None,
                alpha=0.9,
            )
    ax.set_xticks(
        [j + 0.4 - width / 2 for j in range(len(metrics))],
        [label for label, _ in metrics],
        fontsize=8,
    )
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, ncol=2)
    return _save(fig, path)


def smooth(rows: list[dict], keys: tuple[str, ...], window: int) -> list[dict]:
    """Running means over `window` consecutive rows (one rollout batch is noisy): a readable curve,
    not a zigzag."""
    out = []
    for i in range(len(rows)):
        part = rows[max(0, i - window + 1) : i + 1]
        out.append({k: sum(r[k] for r in part) / len(part) for k in keys})
    return out


def plot_overoptimisation(
    curves: dict[str, list[dict]],
    path: Path,
    over: dict | None = None,
    window: int = 5,
    other_reward: set[str] = frozenset(),
) -> Path | None:
    """Gao et al. (2022)'s picture: the gold score (what we want) and the RM score r_θ (the proxy
    optimised) against d = sqrt(KL(π ‖ π^SFT)). curves: PPO stages' metrics rows (their rollouts,
    temperature 1, smoothed over `window` iterations; the peak of the gold score is marked); over:
    the evaluation's best-of-n curves (by r_θ and by the gold judge, at the analytic KL) and each
    policy's point, on the eval prompts. other_reward: stages trained against another reward (the
    gold judge, the biased RM), left out of the r_θ panel."""
    if not curves and not over:
        return None
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    for stage, rows in curves.items():
        rows = smooth(
            [r for r in rows if math.isfinite(r.get("rm_score", math.nan))],
            ("sqrt_kl", "gold", "rm_score"),
            window,
        )
        if not rows:
            continue
        line = a1.plot(
            [r["sqrt_kl"] for r in rows], [r["gold"] for r in rows], label=f"{stage} (rollouts)"
        )[0]
        if stage not in other_reward:
            a2.plot(
                [r["sqrt_kl"] for r in rows],
                [r["rm_score"] for r in rows],
                color=line.get_color(),
                label=stage,
            )
        peak = max(rows, key=lambda r: r["gold"])
        a1.plot(peak["sqrt_kl"], peak["gold"], "*", ms=11, color=line.get_color())
    if over:
        bon = over["best_of_n"]
        d = [r["sqrt_kl"] for r in bon]
        a1.plot(d, [r["gold"] for r in bon], "k-o", ms=3, label="best-of-n by r_θ")
        a1.plot(d, [r["gold_oracle"] for r in bon], "k:", label="best-of-n by gold (oracle)")
        a2.plot(d, [r["rm"] for r in bon], "k-o", ms=3, label="best-of-n by r_θ")
        for r in bon:
            a1.annotate(
                f"n={r['n']}",
                (r["sqrt_kl"], r["gold"]),
                fontsize=6,
                xytext=(2, -8),
                textcoords="offset points",
            )
        for name, pt in over["policies"].items():
            colour = COLORS.get(name)
            a1.plot(pt["sqrt_kl"], pt["gold"], "D", color=colour, label=f"{name} (eval)")
            a2.plot(pt["sqrt_kl"], pt["rm"], "D", color=colour)
    for ax, t in ((a1, "gold judge score (what we want)"), (a2, "RM score r_θ (the proxy)")):
        ax.set_xlabel("d = sqrt(KL(π ‖ π^SFT))  [sqrt(nats)]")
        ax.set_title(t, fontsize=10)
        ax.legend(fontsize=6)
    return _save(fig, path)


# ---- a run, a sweep ------------------------------------------------------------------------------
def plot_stage_curves(run_dir: Path) -> list[Path]:
    """Every stage's training curves, from its metrics.jsonl, into
    run_dir/plots/curves_STAGE.png."""
    # every file read before the first is drawn: a damaged one leaves no figure and no plots/ behind
    curves = {m.parent.name: read_metrics(m) for m in sorted(run_dir.glob("*/metrics.jsonl"))}
    (run_dir / "plots").mkdir(exist_ok=True)
    return [
        plot_curves(rows, f"{name}: training curves", run_dir / "plots" / f"curves_{name}.png")
        for name, rows in curves.items()
    ]


def plot_run(run_dir) -> list[Path]:
    """Every figure of a run folder into run_dir/plots/."""
    run_dir = Path(run_dir)
    res = load_results(run_dir)
    out = run_dir / "plots"
    paths = plot_stage_curves(run_dir)
    models = res["models"]
    series = {}
    for name, m in models.items():
        method = name.replace(" large", "")  # GPT-3 and GPT-3 large: one method, two sizes
        if method in FIGURE1:
            series.setdefault(method, []).append((m["params"], m["win_rate"]["heldout"]))
    paths.append(
        plot_figure1(
            series,
            f"win rate against SFT ({res['reference']}), held-out labelers",
            out / "figure1.png",
        )
    )
    small = {k: models[k] for k in FIGURE1 if k in models}
    methods = {k: v for k, v in models.items() if v["prompting"] != "plain" and "GPT-3" not in k}
    paths.append(
        plot_bars(
            methods,
            [
                ("win rate vs SFT", lambda m: m["win_rate"]["heldout"]),
                ("gold helpful", lambda m: m["gold"]["helpful"]),
                ("gold overall", lambda m: m["gold"]["overall"]),
                ("non-answers", lambda m: m.get("non_answer")),
            ],
            "every method beside SFT: held-out labelers and the gold judge",
            out / "methods.png",
        )
    )
    paths.append(
        plot_bars(
            small,
            [
                ("helpful", lambda m: m["gold"]["helpful"]),
                ("truthful", lambda m: m["gold"]["truthful"]),
                ("harmless", lambda m: m["gold"]["harmless"]),
                ("hallucination (closed)", lambda m: m["hallucination"]),
                ("invents (unknown)", lambda m: m["invention"]),
                ("toxic", lambda m: m["toxicity"]),
                ("complies w/ harmful", lambda m: m["compliance"]),
            ],
            "gold judge: the three H's (higher is better) and failure rates (lower is better)",
            out / "three_h.png",
        )
    )
    paths.append(
        plot_bars(
            small,
            [
                ("held-out corpus loss", lambda m: m["corpus_loss"]),
                ("fact completion", lambda m: m["cloze"]),
            ],
            "alignment tax: corpus loss (lower is better), fact completion (higher is better)",
            out / "alignment_tax.png",
        )
    )
    ppo_stages = [s for s in run_recipe(res["config"]["pipeline"]) if s.step == "ppo"]
    ppo_curves = {
        s.name: read_metrics(run_dir / s.name / "metrics.jsonl")
        for s in ppo_stages
        if (run_dir / s.name / "metrics.jsonl").is_file()
    }
    other = {
        s.name for s in ppo_stages if s.options.get("oracle") or s.reads.get("reward") != "reward"
    }
    paths.append(
        plot_overoptimisation(
            ppo_curves,
            out / "overoptimisation.png",
            res.get("over_optimisation"),
            other_reward=other,
        )
    )
    if "PPO biased" in models:
        groups = [g for g in ("biased", "heldout", "training") if g in models["SFT"]["win_rate"]]
        trio = {k: models[k] for k in ("SFT", "PPO", "PPO biased")}
        paths.append(
            plot_bars(
                trio,
                [(f"{g} labelers", lambda m, g=g: m["win_rate"][g]) for g in groups]
                + [
                    ("gold (overall)", lambda m: m["gold"]["overall"]),
                    ("uses the pet phrase", lambda m: m["pet_phrase"]),
                ],
                "whose preferences? win rate against SFT by labeler group",
                out / "whose_preferences.png",
            )
        )
    return [p for p in paths if p is not None]


def plot_sweep(out_dir) -> list[Path]:
    """Figure 1 of a model-size sweep, from eval/sweep.json."""
    out_dir = Path(out_dir)
    res = load_results(out_dir, "sweep.json")
    paths = plot_stage_curves(out_dir)
    series = {}
    for row in res["rows"]:
        series.setdefault(row["method"], []).append((row["params"], row["win_rate"]))
    paths.append(
        plot_figure1(
            series,
            f"win rate against {res['reference']}, held-out labelers",
            out_dir / "plots" / "figure1_sweep.png",
        )
    )
    return [p for p in paths if p is not None]
