"""The house's floors, read from the package's own imports (ast): the steps of the recipe stand side by side, each
leaning only on the shared rooms below it, and no room imports one above it."""

import ast
from pathlib import Path

import pytest

from minigpt_rlhf.stages import TRAINING_STEPS

PKG = Path(__file__).resolve().parents[1] / "minigpt_rlhf"
STEPS = set(TRAINING_STEPS) | {"dpo", "grpo"}  # any step module, now or later
ABOVE_STEPS = {"evaluate", "plots", "report", "pipeline", "cli", "bench", "__main__"}


def imported(path: Path) -> set[str]:
    """The package's modules a file imports: `minigpt_rlhf.X...` and `from minigpt_rlhf import X` give X."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "minigpt_rlhf":
                out |= {a.name for a in node.names}
            elif node.module.startswith("minigpt_rlhf."):
                out.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            out |= {a.name.split(".")[1] for a in node.names if a.name.startswith("minigpt_rlhf.")}
    return out


def modules() -> dict[str, set[str]]:
    return {p.stem: imported(p) for p in PKG.glob("*.py")}


def test_the_steps_are_siblings_and_the_evaluation_imports_none():
    mods = modules()
    assert STEPS & set(mods) >= set(TRAINING_STEPS)
    for name in sorted((STEPS | {"evaluate"}) & set(mods)):
        assert not (mods[name] & STEPS) - {name}, f"{name}.py imports the step(s) {(mods[name] & STEPS) - {name}}"


@pytest.mark.parametrize("room, allowed", [
    ("model", set()),  # the GPT knows nothing of training, the world or the command line
    ("tokenizer", set()),
    ("runtime", {"model", "tokenizer"}),
    ("config", {"model", "runtime"}),
    ("stages", {"config", "model", "runtime"}),
])
def test_the_lowest_rooms_import_only_what_lies_below_them(room, allowed):
    assert modules()[room] <= allowed, f"{room}.py imports {modules()[room] - allowed}"


def test_shared_rooms_import_no_step_and_nothing_above():
    mods = modules()
    shared = set(mods) - STEPS - ABOVE_STEPS - {"__init__"}
    for name in sorted(shared):
        assert not mods[name] & (STEPS | ABOVE_STEPS), f"{name}.py imports {mods[name] & (STEPS | ABOVE_STEPS)}"


def test_the_world_imports_no_model():
    for path in (PKG / "world").glob("*.py"):
        assert imported(path) <= {"world", "tokenizer"}, f"world/{path.name} imports {imported(path)}"


LINE_LENGTH = 100  # pyproject.toml's [tool.ruff] line-length


def test_no_line_of_the_package_is_over_100_characters():
    """Every line of every .py file under minigpt_rlhf/ (world/ included) fits in 100 characters
    (counted in characters, not bytes): `ruff format` at pyproject.toml's line-length wraps code,
    and comments and strings are wrapped by hand."""
    long = [
        f"{path.relative_to(PKG.parent)}:{i} ({len(line)})"
        for path in sorted(PKG.rglob("*.py"))
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if len(line) > LINE_LENGTH
    ]
    assert not long, f"{len(long)} lines over {LINE_LENGTH} characters: " + ", ".join(long)
