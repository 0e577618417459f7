"""Experiment: the reward model trained with the language-modelling loss kept beside the ranking loss
(the "generalizable reward model" regulariser of Yang et al., 2024): each step's loss is

    ranking loss + alpha · cross-entropy of the trunk's LM head on SFT demonstrations (response tokens only)

so that the trunk keeps what SFT knew (facts, copying) while the head learns the rankings. The demonstrations are
the ones the SFT model was trained on (pass its --set sft.max_demos; 16 per step, cycled). Everything else is rm.py's:
    python docs/experiments/rm_lm.py ALPHA RUN NAME [--set ...]   (the arguments of rm.py after ALPHA)
Not part of the package."""
import runpy, sys
from pathlib import Path
import torch
from minigpt_rlhf import reward, sft
from minigpt_rlhf.config import load_config
from minigpt_rlhf.runtime import autocast, load_checkpoint, tokenizer_from

alpha, sys.argv = float(sys.argv[1]), [str(Path(__file__).with_name("rm.py"))] + sys.argv[2:]
sets = [v for k, v in zip(sys.argv, sys.argv[1:]) if k == "--set"]
cfg = load_config("quick", sets)
ckpt = load_checkpoint(Path(sys.argv[1]) / "sft" / "ckpt.pt")
tok, block = tokenizer_from(ckpt), ckpt["model_config"]["block_size"]
pairs = sft.demonstrations(cfg.data_dir)[: -cfg.sft.heldout_prompts][: cfg.sft.max_demos or None]  # as sft.run
examples = [sft.encode_example(tok, p.text, y, block) for p, y in pairs]
order = torch.randperm(len(examples), generator=torch.Generator().manual_seed(cfg.seed)).tolist()
ranking_only, step, LM_BATCH = reward.batch_loss, [0], 16


def batch_loss(rm, batch, chunk=16):  # reward.train's loss of one training step (validation does not call it)
    loss, acc = ranking_only(rm, batch, chunk)
    i, step[0] = step[0] * LM_BATCH, step[0] + 1
    idx, targets, mask = sft.collate([examples[order[(i + j) % len(order)]] for j in range(LM_BATCH)], tok.pad_id)
    dev = rm.head.weight.device
    with autocast(dev):
        lm = rm.trunk(idx.to(dev), targets.to(dev), mask.to(dev))[1]
    return loss + alpha * lm, acc


reward.batch_loss = batch_loss
runpy.run_path(sys.argv[0], run_name="__main__")
