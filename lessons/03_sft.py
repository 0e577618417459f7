# %% [markdown]
# # Lesson 03 — supervised fine-tuning (SFT)
#
# Step 1: the labelers wrote the answer they want for each SFT prompt. Fine-tune the base model on
# `<|user|> prompt <|assistant|> demonstration <|end|>` with the loss on the demonstration's tokens only.
# The paper trained 16 epochs; validation loss overfit after one, yet quality kept rising, so it chose the
# final checkpoint by reward-model score. We log validation loss and the gold score every epoch and keep the
# best gold epoch (no RM exists yet at this step; see minigpt_rlhf/sft.py).
#
# Run: `python lessons/03_sft.py` (quick, ~2 minutes after lesson 02); `MINIGPT_RLHF_PRESET=micro` for a smoke run.

# %%
import os
import random
from pathlib import Path

from minigpt_rlhf import pretrain, sft, world
from minigpt_rlhf.config import load_config
from minigpt_rlhf.plots import plot_curves
from minigpt_rlhf.runtime import build_model, load_checkpoint, read_metrics, tokenizer_from
from minigpt_rlhf.sampling import answer

preset = os.environ.get("MINIGPT_RLHF_PRESET", "quick")
cfg = load_config(preset)
run_dir = Path(os.environ.get("MINIGPT_RLHF_RUN", f"runs/{preset}"))
pretrain.run(cfg, run_dir / "pretrain")
sft_path = sft.run(cfg, run_dir / "sft", base=run_dir / "pretrain")

# %% [markdown]
# ## The loss mask
# Only the response (and its <|end|>) is learned; the prompt is context.

# %%
tok = tokenizer_from(load_checkpoint(sft_path))
ids, n_prompt = sft.encode_example(tok, "What is 2 + 3?", "2 + 3 = 5.", 256)
print("learned:", repr(tok.decode(ids[n_prompt:])), "| context:", repr(tok.decode(ids[:n_prompt])))

# %% [markdown]
# ## Validation loss and gold score per epoch

# %%
rows = read_metrics(run_dir / "sft" / "metrics.jsonl")
for r in rows:
    if "gold" in r:
        print(f"epoch {r['epoch']}: validation loss {r['val_loss']:.3f}, gold score {r['gold']:.3f}")
chosen = [r for r in rows if "chosen_step" in r][-1]
print(f"chosen: step {chosen['chosen_step']} (best gold {chosen['chosen_gold']:.3f})")
print("curves:", plot_curves(rows, "SFT", run_dir / "sft" / "curves.png"))

# %% [markdown]
# ## Base versus SFT on the evaluation prompts

# %%
prompts = random.Random(0).sample(world.load_prompts(cfg.data_dir, "eval"), 80)
for stage, prompting in (("pretrain", "plain"), ("sft", "chat")):
    ckpt = load_checkpoint(run_dir / stage / "ckpt.pt")
    model = build_model(ckpt).eval()
    answers = answer(model, tok, [p.text for p in prompts], cfg.max_new_tokens, prompting=prompting)
    scores = [world.judge(p, a.text, a.finished) for p, a in zip(prompts, answers)]
    mean = lambda k: sum(getattr(s, k) for s in scores) / len(scores)
    print(f"{stage:8s} helpful {mean('helpful'):.3f}  truthful {mean('truthful'):.3f}  harmless {mean('harmless'):.3f}"
          f"  overall {sum(s.overall for s in scores) / len(scores):.3f}")
    print(f"         e.g. {prompts[0].text!r} -> {answers[0].text[:100]!r}")
