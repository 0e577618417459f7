"""Experiment: best-of-n distillation (rejection-sampling fine-tuning, "expert iteration"; Llama 2's rejection
sampling, ReST): each round, the policy answers every PPO-split prompt n times at temperature 1, the reward model
(--oracle: the gold judge) picks each prompt's best finished answer, and the policy is fine-tuned on those answers
with SFT's loss (response tokens only). The policy starts from RUN/sft; RUN/NAME/ckpt.pt is an "sft"-kind
checkpoint, so `rl.py RUN NAME --eval-only` measures it as the evaluation does. Not part of the package.

    python docs/experiments/bon_sft.py RUN NAME [--oracle | --reward reward] [--n 8] [--rounds 1] [--epochs 2] [--lr 1e-4]
"""
import argparse, json, time
from pathlib import Path
import torch
from minigpt_rlhf import world
from minigpt_rlhf.config import load_config
from minigpt_rlhf.runtime import build_model, load_checkpoint, load_reward_model, save_checkpoint, setup, tokenizer_from
from minigpt_rlhf.sampling import prompt_ids, sample
from minigpt_rlhf.sft import collate, encode_example

ap = argparse.ArgumentParser()
ap.add_argument("run"); ap.add_argument("name"); ap.add_argument("--set", action="append", default=[])
ap.add_argument("--oracle", action="store_true"); ap.add_argument("--reward", default="reward")
ap.add_argument("--n", type=int, default=8); ap.add_argument("--rounds", type=int, default=1)
ap.add_argument("--epochs", type=int, default=2); ap.add_argument("--lr", type=float, default=1e-4)
ap.add_argument("--batch", type=int, default=32)
a = ap.parse_args()
torch.set_num_threads(1)
cfg = load_config("quick", a.set)
run, out = Path(a.run), Path(a.run) / a.name
out.mkdir(parents=True, exist_ok=True)
setup(cfg.seed)
sft_ckpt = load_checkpoint(run / "sft" / "ckpt.pt", "sft")
tok = tokenizer_from(sft_ckpt)
policy = build_model(sft_ckpt)
rm = None if a.oracle else load_reward_model(run / a.reward / "ckpt.pt")
prompts = world.load_prompts(cfg.data_dir, "ppo")
ids = [prompt_ids(tok, p.text) for p in prompts for _ in range(a.n)]
gen = torch.Generator().manual_seed(cfg.seed + 7)
opt = torch.optim.AdamW(policy.parameters(), lr=a.lr, weight_decay=0.0)
log = (out / "metrics.jsonl").open("w")
t0 = time.time()
for r in range(a.rounds):
    policy.eval()
    g = sample(policy, tok, ids, cfg.max_new_tokens, 1.0, 64, gen)
    texts = [tok.decode(y, skip_special=True) for y in g.responses]
    fin = torch.tensor(g.finished).view(len(prompts), a.n)
    gold = torch.tensor([world.judge(prompts[i // a.n], t, f).overall
                         for i, (t, f) in enumerate(zip(texts, g.finished))]).view(len(prompts), a.n)
    score = gold if rm is None else rm.score(ids, g.responses).double().view(len(prompts), a.n)
    best = score.masked_fill(~fin, float("-inf")).argmax(1)
    keep = [i for i in range(len(prompts)) if fin[i, best[i]]]
    data = [encode_example(tok, prompts[i].text, texts[i * a.n + int(best[i])], policy.config.block_size) for i in keep]
    row = dict(round=r, gold_mean=float(gold.mean()), gold_chosen=float(gold[keep, best[keep]].mean()),
               finished=float(fin.float().mean()), examples=len(data))
    policy.train()
    for epoch in range(a.epochs):
        order = torch.randperm(len(data), generator=gen).tolist()
        for b in range(0, len(order), a.batch):
            idx, targets, mask = collate([data[i] for i in order[b : b + a.batch]], tok.pad_id)
            loss = policy(idx, targets, mask)[1]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
            opt.step()
    row.update(loss=loss.item(), time=round(time.time() - t0, 1))
    log.write(json.dumps(row) + "\n"); log.flush()
    print(row)
save_checkpoint(out / "ckpt.pt", kind="sft", model_config=sft_ckpt["model_config"], tokenizer=tok.state_dict(),
                config=sft_ckpt["config"], model=policy.state_dict(), step=a.rounds, finished=True)
print(f"wrote {out / 'ckpt.pt'} in {time.time() - t0:.0f}s")
