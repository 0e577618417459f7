"""Shared by the RM experiments: SFT's 8 samples per eval prompt at temperature 1 that rm.py caches
(RUN/sft_eval_samples8.pt), the token lists r_θ scores them on, and the report card of a score tensor on them
(evaluate.headroom: per family, and the correlation within prompts). Not part of the package."""
from pathlib import Path
import torch
from minigpt_rlhf.comparisons import response_ids
from minigpt_rlhf.config import load_config
from minigpt_rlhf.evaluate import eval_prompts, headroom
from minigpt_rlhf.runtime import load_checkpoint, tokenizer_from
from minigpt_rlhf.tokenizer import format_chat


def sft_samples(run: Path, cfg=None):
    """(eval prompts of cfg's data dir, default data/; the cached samples; the SFT tokenizer; prompt and response
    token lists, 8 per prompt)."""
    prompts = eval_prompts(cfg or load_config("quick", []))
    bon = torch.load(Path(run) / "sft_eval_samples8.pt", weights_only=False)
    tok = tokenizer_from(load_checkpoint(Path(run) / "sft" / "ckpt.pt"))
    ids = [format_chat(tok, p.text) for p in prompts for _ in range(8)]
    ys = [response_ids(tok, x.text, x.finished) for x in bon["answers"]]
    return prompts, bon, tok, ids, ys


def print_card(label: str, scores: torch.Tensor, bon: dict, prompts) -> dict:
    """Print the report card of r_θ scores (P, 8) on the cached samples; returns evaluate.headroom's dict."""
    within = torch.corrcoef(torch.stack([(x - x.mean(1, keepdim=True)).flatten() for x in (scores, bon["gold"])]))
    card = headroom(dict(bon, rm=scores), prompts, 8)
    print(f"== {label}: corr within prompts {float(within[0, 1]):.3f}")
    for family, h in card.items():
        print(f"  {family:15} one {h['one']:.3f} by_rm {h['by_rm']:.3f} by_gold {h['by_gold']:.3f} "
              f"captured {h['captured']:+.2f} corr {h['corr']:+.2f}")
    return card
