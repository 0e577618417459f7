"""docs/metrics.md defines every metric a stage logs: a metric added without a definition fails here.

The keys are read from the source (no model runs): in the functions below, the keyword names of `dict(...)`
calls and of `*.log(...)` calls, the string keys of dict literals, and the keys assigned as `x["key"] = ...`
(a key built as f"val_acc{suffix}" or "agreement" + suffix counts by its fixed prefix)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "metrics.md"

# module -> the functions whose rows reach metrics.jsonl (or, for evaluate.py, eval/results.json)
SOURCES = {
    "training.py": ["fit", "check_ranks_agree"],
    "pretrain.py": ["evaluate"],
    "sft.py": ["run", "evaluate"],
    "reward.py": ["validate", "train", "labeler_agreement", "gold_metrics", "run"],
    "dpo.py": ["validate", "run"],
    "ppo.py": ["rollout", "update", "minibatch_loss", "run"],
    "evaluate.py": ["judge_answers", "headroom", "best_of_n_curve"],
    "compute.py": ["Compute"],
}
# names those functions use for something else: a metrics file opened fresh, a checkpoint's model_config, the
# reward stage's samplers ("sft", "base") and labeler pools ("val", "val_heldout"), the report card's family "all"
NOT_METRICS = {"fresh", "model_config", "sft", "base", "val", "val_heldout", "all"}


def _prefix(node) -> str | None:
    """The fixed start of a key: "a", f"a{x}" and "a" + x all give "a"."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
        return node.values[0].value
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _prefix(node.left)
    return None


def _keys(tree: ast.AST) -> set[str]:
    keys = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            if (isinstance(f, ast.Name) and f.id == "dict") or (isinstance(f, ast.Attribute) and f.attr == "log"):
                keys |= {k.arg for k in node.keywords if k.arg}
        elif isinstance(node, ast.Dict):
            keys |= {p for p in map(_prefix, node.keys) if p} if all(k is not None for k in node.keys) else set()
        elif isinstance(node, ast.Assign):
            for t in node.targets:
                if isinstance(t, ast.Subscript) and (p := _prefix(t.slice)):
                    keys.add(p)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            keys.add(node.target.id)  # a dataclass's fields (Compute: the `compute` entry)
    return keys - NOT_METRICS


def logged_keys() -> dict[str, set[str]]:
    out = {}
    for module, names in SOURCES.items():
        tree = ast.parse((ROOT / "minigpt_rlhf" / module).read_text())
        found = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name in names]
        assert {n.name for n in found} == set(names), f"{module}: expected functions {names}"
        out[module] = set().union(*(_keys(n) for n in found))
    return out


def test_every_logged_metric_is_defined():
    text = DOC.read_text()
    missing = {m: sorted(k for k in keys if f"`{k}`" not in text) for m, keys in logged_keys().items()}
    missing = {m: ks for m, ks in missing.items() if ks}
    assert not missing, f"define these metrics in docs/metrics.md (as `key`): {missing}"


def test_the_ppo_keys_are_found():
    """The extraction itself: the PPO stage's well-known metrics are among the keys it reads."""
    keys = logged_keys()["ppo.py"]
    assert {"kl", "approx_kl", "clipfrac", "explained_var", "logprob_gap", "non_score_reward", "gold"} <= keys
