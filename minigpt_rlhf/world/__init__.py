"""The toy world: a fictional knowledge base, "the web" to pretrain on, instruction prompts in the
paper's task families, the gold judge of helpful / truthful / harmless, and simulated labelers. It
imports no model: the judge and the labelers are fixed before any training and cannot be tuned by
it."""

from minigpt_rlhf.world import labelers
from minigpt_rlhf.world.data import (
    Data,
    DataError,
    Demonstration,
    check_data,
    cloze_items,
    copy_probe_items,
    few_shot_examples,
    generate,
    load_corpus,
    load_demonstrations,
    load_kb,
    load_prompts,
    mixed_responses,
)
from minigpt_rlhf.world.judge import Scores, judge
from minigpt_rlhf.world.tasks import HELDOUT_FAMILY, Prompt

__all__ = [
    "HELDOUT_FAMILY",
    "Data",
    "DataError",
    "Demonstration",
    "Prompt",
    "Scores",
    "check_data",
    "cloze_items",
    "copy_probe_items",
    "few_shot_examples",
    "generate",
    "judge",
    "labelers",
    "load_corpus",
    "load_demonstrations",
    "load_kb",
    "load_prompts",
    "mixed_responses",
]
