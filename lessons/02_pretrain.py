# %% [markdown]
# # Lesson 02 — pretraining: our "GPT-3"
#
# Step 0 of the recipe: the GPT of lesson 01 reads "the web" (data/corpus_train.txt) and learns to continue
# it. That is all a base model is trained to do — so, asked an instruction, it *continues* the text: it writes
# more questions (the corpus has quizzes), makes things up, or trades insults (the corpus has forums).
# InstructGPT's starting point is exactly this gap between "predict the web" and "do what the user means".
#
# Run: `python lessons/02_pretrain.py` (the `quick` preset, ~3 minutes on a 2-core CPU; it reuses a finished
# run folder). `MINIGPT_RLHF_PRESET=micro python lessons/02_pretrain.py` runs a seconds-long smoke version.

# %%
import os
import random
from pathlib import Path

from minigpt_rlhf import pretrain, world
from minigpt_rlhf.config import load_config
from minigpt_rlhf.evaluate import cloze_correct
from minigpt_rlhf.plots import plot_curves
from minigpt_rlhf.runtime import build_model, load_checkpoint, read_metrics, tokenizer_from
from minigpt_rlhf.sampling import answer

preset = os.environ.get("MINIGPT_RLHF_PRESET", "quick")
cfg = load_config(preset)
run_dir = Path(os.environ.get("MINIGPT_RLHF_RUN", f"runs/{preset}"))
ckpt_path = pretrain.run(cfg, run_dir / "pretrain")  # skipped if the run folder already has a finished base model

# %% [markdown]
# ## The curves
# Training and validation loss fall together: the corpus is large next to the model, so it does not overfit.

# %%
rows = read_metrics(run_dir / "pretrain" / "metrics.jsonl")
print("first and last training loss:", rows[0]["loss"], [r["loss"] for r in rows if "loss" in r][-1])
print("validation loss:", [r["val_loss"] for r in rows if "val_loss" in r])
print("curves:", plot_curves(rows, "pretraining", run_dir / "pretrain" / "curves.png"))

# %% [markdown]
# ## What the base model writes
# Given the plain text of an instruction (it never saw the chat tokens), it continues it.

# %%
ckpt = load_checkpoint(ckpt_path, "pretrain")
model, tok = build_model(ckpt).eval(), tokenizer_from(ckpt)
prompts = random.Random(0).sample(world.load_prompts(cfg.data_dir, "eval"), 60)
answers = answer(model, tok, [p.text for p in prompts], cfg.max_new_tokens, prompting="plain")
for p, a in list(zip(prompts, answers))[:6]:
    print(f"PROMPT  {p.text}\nBASE    {a.text[:160]!r}\n")

# %% [markdown]
# ## Unaligned, measured
# The gold judge scores these continuations: helpfulness is what alignment has to raise.

# %%
scores = [world.judge(p, a.text, a.finished) for p, a in zip(prompts, answers)]
for k in ("helpful", "truthful", "harmless", "format"):
    print(f"{k:9s} {sum(getattr(s, k) for s in scores) / len(scores):.3f}")
print(f"overall   {sum(s.overall for s in scores) / len(scores):.3f}")

# %% [markdown]
# ## What it memorised, and what it can copy
# Fact completion in the corpus's own words ("The zorbin eats" -> " moss"): what pretraining stored in the
# weights. The copy probe asks for something said once earlier in the same text ("Kess lives in Ozmere. ...
# Where does Kess live? Kess lives in" -> " Ozmere"): in-context copying, which closed QA, extraction and
# rewrites need. Byte pairs and rotary positions made both learnable in the quick budget (README: characters
# vs byte pairs). The evaluation measures both on every model (`evaluate.cloze_correct`), as part of the
# alignment tax.

# %%
for name, items in (("fact recall", world.cloze_items(cfg.data_dir)), ("copy probe", world.copy_probe_items(cfg.data_dir))):
    hits = cloze_correct(model, tok, items, 64)
    print(f"{name}: {sum(hits)}/{len(items)} = {sum(hits) / len(items):.0%}")
prefix, answer = world.copy_probe_items(cfg.data_dir)[0]
print(f"e.g. {prefix!r} -> {answer!r}")
