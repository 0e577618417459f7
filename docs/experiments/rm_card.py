"""Experiment: the report card of finished reward models RUN/NAME... on the samples rm.py cached (RUN/
sft_eval_samples8.pt: SFT's 8 samples per eval prompt at temperature 1), per task family as the evaluation's
headroom() computes it, and the correlation within prompts (each prompt's mean subtracted from r_θ and from gold:
the ranking loss cannot learn a prompt's level). `python docs/experiments/rm_sum.py rm_card.py ...` scores
rm_sum.py's models. Not part of the package."""
import sys
from pathlib import Path
import torch
from minigpt_rlhf.comparisons import response_ids
from minigpt_rlhf.config import load_config
from minigpt_rlhf.evaluate import eval_prompts, headroom
from minigpt_rlhf.runtime import load_checkpoint, load_reward_model, tokenizer_from
from minigpt_rlhf.tokenizer import format_chat

torch.set_num_threads(1)
run, names = Path(sys.argv[1]), sys.argv[2:]
prompts = eval_prompts(load_config("quick", []))
bon = torch.load(run / "sft_eval_samples8.pt", weights_only=False)
tok = tokenizer_from(load_checkpoint(run / "sft" / "ckpt.pt"))
ids = [format_chat(tok, p.text) for p in prompts for _ in range(8)]
ys = [response_ids(tok, x.text, x.finished) for x in bon["answers"]]
for name in names:
    scores = load_reward_model(run / name / "ckpt.pt").score(ids, ys).double().view(len(prompts), 8)
    within = torch.corrcoef(torch.stack([(x - x.mean(1, keepdim=True)).flatten() for x in (scores, bon["gold"])]))
    print(f"== {name}: corr within prompts {float(within[0, 1]):.3f}")
    for family, h in headroom(dict(bon, rm=scores), prompts, 8).items():
        print(f"  {family:15} one {h['one']:.3f} by_rm {h['by_rm']:.3f} by_gold {h['by_gold']:.3f} "
              f"captured {h['captured']:+.2f} corr {h['corr']:+.2f}")
