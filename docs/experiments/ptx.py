"""Experiment: the measurements behind PPO-ptx's γ (docs/experiments/README.md, "γ of PPO-ptx"). Not part of the package.

    python docs/experiments/ptx.py grad RUN --set seed=S          # |∇ L^CLIP| and |∇ L^ptx| over 3 PPO-ptx iterations
    python docs/experiments/ptx.py tax RUN STAGE... --set seed=S  # held-out corpus loss and fact completion per stage
    python docs/experiments/ptx.py sweep DIR 2x2x64 0.1 0.03      # one sweep size's PPO-ptx again at each γ, judged
                                                                  # as `minigpt-rlhf sweep` judges (vs the largest SFT)
RUN holds pretrain/, sft/, reward/ and the stages named (`rl.py RUN ptx_g01 --set ppo.ptx_coef=0.1` trains one);
DIR is a finished `minigpt-rlhf sweep --out DIR` (the new stages go to DIR/ppo_ptx_g<γ>_<size>)."""
import argparse, dataclasses, random
from functools import partial
from pathlib import Path
import torch
from minigpt_rlhf import ppo, stages as recipes, world
from minigpt_rlhf.config import load_config
from minigpt_rlhf.corpus import corpus_loss, load_tokens
from minigpt_rlhf.evaluate import Answerer, cloze_correct, eval_prompts, judge_answers, labeler_pools
from minigpt_rlhf.runtime import build_model, load_checkpoint, setup, tokenizer_from

ap = argparse.ArgumentParser()
ap.add_argument("what", choices=["grad", "tax", "sweep"]); ap.add_argument("run"); ap.add_argument("args", nargs="*")
ap.add_argument("--set", action="append", default=[])
a = ap.parse_args()
torch.set_num_threads(1)
cfg = load_config("quick", a.set)
run = Path(a.run)

if a.what == "grad":  # the two terms' gradient norms on the policy, minibatch by minibatch, at γ = 1
    setup(cfg.seed)  # the minibatch order below draws from torch's global generator
    tr, _ = ppo.build_trainer(dataclasses.replace(cfg, ppo=dataclasses.replace(cfg.ppo, ptx_coef=1.0)),
                              run / "sft", run / "reward")

    def norm(loss):
        tr.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        return float(torch.sqrt(sum((p.grad ** 2).sum() for p in tr.policy.parameters() if p.grad is not None)))

    for it in range(3):
        ro, _ = tr.rollout()
        pg, ptx = [], []
        for mb in torch.randperm(len(ro.responses)).split(cfg.ppo.minibatch):
            R, seq, real, mask = ro.mask.size(1), ro.seq[mb], ro.real[mb], ro.mask[mb]
            lp = ppo.by_length(partial(ppo.response_logprobs, tr.policy), seq, real, mask)
            lp = lp.gather(2, seq[:, -R:, None]).squeeze(2)
            pg.append(norm(ppo.policy_loss(lp, ro.logprobs[mb], ro.advantages[mb], mask, cfg.ppo.clip_eps)[0]))
            x, y = tr.corpus_batch()
            ptx.append(norm(tr.policy(x, y)[1]))
        print(f"iteration {it}: |grad L^CLIP| {sum(pg) / len(pg):.3f}  |grad L^ptx| {sum(ptx) / len(ptx):.3f}")
        tr.update(ro)

elif a.what == "tax":  # as the evaluation measures the alignment tax
    cloze = world.cloze_items(cfg.data_dir)
    cloze = random.Random(cfg.seed).sample(cloze, cfg.eval.cloze_items)
    for stage in a.args:
        ckpt = load_checkpoint(run / stage / "ckpt.pt")
        model, tok = build_model(ckpt).eval(), tokenizer_from(ckpt)
        loss = corpus_loss(cfg, model, load_tokens(cfg.data_dir, "val", tok))
        correct = cloze_correct(model, tok, cloze, batch_size=cfg.eval.batch_size)
        print(f"{stage:12} held-out corpus loss {loss:.3f}  fact completion {100 * sum(correct) / len(correct):.0f}%")

else:  # sweep DIR SIZE γ...
    tag, gammas = a.args[0], [float(g) for g in a.args[1:]]
    shape = next(mc for mc in recipes.sweep_shapes(cfg) if recipes.shape_tag(mc) == tag)
    sized = dataclasses.replace(cfg, model=shape)
    for g in gammas:
        ppo.run(dataclasses.replace(sized, ppo=dataclasses.replace(sized.ppo, ptx_coef=g)), run / f"ppo_ptx_g{g}_{tag}",
                run / f"sft_{tag}", run / "reward")
    prompts, pools, ask = eval_prompts(cfg), labeler_pools(False), Answerer(cfg, run, setup(cfg.seed))
    ref = ask(f"sft_{recipes.shape_tag(recipes.sweep_shapes(cfg)[-1])}", "chat", prompts, cfg.seed + 1)
    for stage in [f"sft_{tag}", f"ppo_{tag}", f"ppo_ptx_{tag}"] + [f"ppo_ptx_g{g}_{tag}" for g in gammas]:
        m = judge_answers(prompts, ask(stage, "chat", prompts, cfg.seed), ref, pools, cfg.eval, cfg.seed)
        w = m["win_rate"]["heldout"]
        print(f"{stage:24} win {100 * w['mean']:.1f}% [{100 * w['lo']:.1f}, {100 * w['hi']:.1f}]  "
              f"gold helpful {100 * m['gold']['helpful']['mean']:.1f}%")
