"""Lesson 06: PPO-ptx. The pretraining term is present and weighted by γ, and it pays the alignment tax back."""

import dataclasses

import pytest
import torch

from conftest import run_lesson
from minigpt_rlhf import ppo
from minigpt_rlhf.corpus import encode_corpus, window_losses
from minigpt_rlhf.runtime import build_model, load_checkpoint, read_metrics
from ppo_micro import CORPUS_WINDOW, TOK, corpus_text, make_trainer, mean_reward
from ppo_micro import one_thread  # noqa: F401 (an autouse fixture: micro tests on one thread)

TRAIN = encode_corpus([corpus_text(seed) for seed in range(20)], TOK)
HELDOUT = encode_corpus([corpus_text(100 + seed) for seed in range(5)], TOK)


def heldout_loss(model):
    losses = window_losses(model, HELDOUT, CORPUS_WINDOW, 64)
    return sum(losses) / len(losses)


def test_ptx_batch_is_pretraining_windows_of_the_corpus_and_their_next_tokens():
    tr = make_trainer(ptx_coef=1.0, corpus=TRAIN, ptx_batch=3)
    x, y = tr.corpus_batch()
    T = CORPUS_WINDOW
    assert x.shape == y.shape == (3, T) and torch.equal(x[:, 1:], y[:, :-1])
    text = TRAIN.tolist()
    for row, nxt in zip(x.tolist(), y[:, -1].tolist()):
        s = next(i for i in range(len(text) - T) if text[i : i + T] == row)
        assert text[s + T] == nxt


@pytest.mark.parametrize("gamma", [0.5, 4.0])
def test_ptx_term_is_present_and_weighted_by_gamma(gamma):
    """loss(γ) − loss(0) = γ · L^ptx, and the policy's gradient gains exactly γ · ∇L^ptx."""
    tr0 = make_trainer(seed=5)
    trg = make_trainer(seed=5, ptx_coef=gamma, corpus=TRAIN)
    trg.policy.load_state_dict(tr0.policy.state_dict())
    ro, _ = tr0.rollout()
    rows = torch.arange(len(ro.responses))
    state = trg.gen.get_state()
    x, y = trg.corpus_batch()  # the window the ptx loss will draw next
    trg.gen.set_state(state)

    grads = []
    for tr in (tr0, trg):
        tr.policy.zero_grad()
        loss, stats = tr.minibatch_loss(ro, rows)
        loss.backward()
        grads.append([p.grad.clone() for p in tr.policy.parameters()])
    trg.policy.zero_grad()
    lm = trg.policy(x, y)[1]
    lm.backward()
    assert stats["ptx_loss"] == pytest.approx(lm.item(), rel=1e-6)
    assert stats["loss"] - tr0.minibatch_loss(ro, rows)[1]["loss"] == pytest.approx(gamma * lm.item(), rel=1e-5)
    for g0, gg, p in zip(*grads, trg.policy.parameters()):
        assert torch.allclose(gg - g0, gamma * p.grad, atol=1e-6)


def test_compute_counts_every_trained_token_and_the_ptx_windows_at_their_length():
    """6·N per token trained on: the rollout's prompt and response tokens in every PPO epoch, and ptx_batch corpus
    windows of the pretraining window's length (not the block's) per gradient step; V trains on the same rows."""
    tr = make_trainer(ptx_coef=1.0, corpus=TRAIN, rollout_batch=8, minibatch=4, ppo_epochs=2, ptx_batch=3)
    ro, _ = tr.rollout()
    tr.update(ro)
    steps, tokens = 2 * 2, int(ro.real.sum())
    c, n = tr.compute, tr.policy.num_params()
    assert c.train_tokens == 2 * tokens + steps * 3 * CORPUS_WINDOW and c.forward_tokens == 2 * tokens
    assert c.flops == pytest.approx(6 * n * c.train_tokens + 6 * n * 2 * tokens + 2 * n * 4 * tokens)  # V and π^SFT
    #                                (a_fraction needs no model: r_θ costs nothing here)


def test_ptx_needs_a_corpus():
    with pytest.raises(ValueError, match="corpus"):
        make_trainer(ptx_coef=1.0)


def test_ppo_pays_an_alignment_tax_and_ppo_ptx_pays_it_back():
    """With the same known reward, PPO raises the held-out corpus loss; PPO-ptx keeps it near the start and keeps
    the reward gain. Measured on micro: corpus loss 2.77 -> 3.88 (PPO) vs 2.61 (PPO-ptx), reward 0.02 -> 0.9."""
    results = {}
    for gamma in (0.0, 1.0):
        tr = make_trainer(ptx_coef=gamma, corpus=TRAIN, rollout_batch=16, minibatch=8, lr=1e-3, value_lr=1e-3,
                          kl_coef=0.01, ptx_batch=4)
        start = heldout_loss(tr.policy), mean_reward(tr)
        for _ in range(20):
            tr.update(tr.rollout()[0])
        results[gamma] = start, (heldout_loss(tr.policy), mean_reward(tr))
    (loss0, reward0), (loss_ppo, reward_ppo) = results[0.0]
    _, (loss_ptx, reward_ptx) = results[1.0]
    assert loss_ppo > loss0 + 0.5, "PPO should pay an alignment tax on micro"
    assert abs(loss_ptx - loss0) < 0.3, "PPO-ptx should keep the corpus loss near the SFT model's"
    assert reward_ppo > reward0 + 0.4 and reward_ptx > reward0 + 0.4


# ---- the stage, on a real micro run (pretrain -> SFT -> reward, from conftest's micro_run) ------------------------------
@pytest.fixture(scope="module")
def rlhf_run(micro_run):
    from minigpt_rlhf import reward

    cfg, run_dir = micro_run
    reward.run(cfg, run_dir / "reward", run_dir / "sft", run_dir / "pretrain")

    def run(c, stage):
        return ppo.run(c, run_dir / stage, run_dir / "sft", run_dir / "reward")

    return cfg, run_dir, run


def test_run_writes_a_gpt_checkpoint_and_every_diagnostic_then_skips(rlhf_run):
    cfg, run_dir, run = rlhf_run
    path = run(cfg, "ppo_ptx")
    ckpt = load_checkpoint(path, "ppo")
    assert ckpt["finished"] and ckpt["step"] == cfg.ppo.iterations and ckpt["ptx_coef"] == cfg.ppo.ptx_coef > 0
    assert {"model_config", "model", "tokenizer", "config", "value_model", "optimizer", "kl_coef"} <= set(ckpt)
    build_model(ckpt)  # the policy loads like any GPT: evaluation and `chat` need nothing PPO-specific
    rows = read_metrics(run_dir / "ppo_ptx" / "metrics.jsonl")
    assert [r["iter"] for r in rows] == list(range(cfg.ppo.iterations + 1))
    for key in ["rm_score", "gold", "kl", "sqrt_kl", "kl_coef", "entropy", "response_len", "truncated",
                "explained_var", "approx_kl", "clipfrac", "vf_loss", "pg_loss", "ptx_loss", "t_rollout", "t_update"]:
        assert key in rows[0], key
    assert "corpus_loss" in rows[0] and "corpus_loss" in rows[-1]
    assert "pg_loss" not in rows[-1]  # the last row only measures the final policy
    assert rows[-1]["compute"]["flops"] > 0 and ckpt["compute"] == rows[-1]["compute"]
    mtime = path.stat().st_mtime_ns
    assert run(cfg, "ppo_ptx") == path and path.stat().st_mtime_ns == mtime


def test_an_interrupted_run_resumes_to_the_same_numbers(rlhf_run, monkeypatch):
    cfg, run_dir, run = rlhf_run
    cfg = dataclasses.replace(cfg, ppo=dataclasses.replace(cfg.ppo, iterations=4, eval_every=2, ptx_coef=0.0))
    full = run(cfg, "ppo_full")

    real_update, calls = ppo.PPOTrainer.update, []

    class Interrupted(Exception):
        pass

    def update_then_stop(self, ro, **kwargs):
        calls.append(1)
        if len(calls) == 4:  # stopped during the 4th update: the checkpoint written after update 2 survives
            raise Interrupted
        return real_update(self, ro, **kwargs)

    monkeypatch.setattr(ppo.PPOTrainer, "update", update_then_stop)
    with pytest.raises(Interrupted):
        run(cfg, "ppo_resumed")
    assert load_checkpoint(run_dir / "ppo_resumed" / "ckpt.pt", "ppo")["step"] == 2
    monkeypatch.setattr(ppo.PPOTrainer, "update", real_update)
    resumed = run(cfg, "ppo_resumed")

    def numbers(stage):
        return [{k: v for k, v in r.items() if k != "time" and not k.startswith("t_")}
                for r in read_metrics(run_dir / stage / "metrics.jsonl")]

    assert numbers("ppo_resumed") == numbers("ppo_full")
    a, b = load_checkpoint(full)["model"], load_checkpoint(resumed)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_the_lesson_runs_on_micro(lesson_run):
    out = run_lesson("06_ppo_ptx", lesson_run, needs=("reward",))
    assert "ppo_ptx_alignment_tax.png" in out and "fact completion" in out
