"""Lesson 04: the reward model — the ranking loss over C(K,2) pairs, the scalar head, normalisation, and a run."""

import dataclasses
import json
import math
import random
import shutil

import pytest
import torch
import torch.nn.functional as F

from conftest import DATA, micro_config, run_lesson
from minigpt_rlhf import reward, world
from minigpt_rlhf.cli import main
from minigpt_rlhf.comparisons import (LABELER_POOLS, SPLITS, Encoded, RankingError, encode_response, pairwise_accuracy,
                                      ranking_loss, read_comparisons)
from minigpt_rlhf.model import GPT, GPTConfig, RewardModel
from minigpt_rlhf.reward import batch_loss, normalise
from minigpt_rlhf.runtime import UserError, load_checkpoint, load_reward_model, read_metrics
from minigpt_rlhf.tokenizer import Tokenizer, chat_response, format_chat

TOK = Tokenizer.load(DATA)  # the world's byte pairs, as every stage uses


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Micro models gain nothing from a second thread, and on a busy shared CPU two threads wait for each other
    (measured: 38 s instead of 10 s for the learning test)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def tiny_rm(seed=0) -> RewardModel:
    """A micro trunk and a random (not zero) head, so that rewards differ."""
    torch.manual_seed(seed)
    rm = RewardModel(GPT(GPTConfig(vocab_size=TOK.vocab_size, block_size=128, n_layer=2, n_head=2, n_embd=32)), TOK.pad_id)
    torch.nn.init.normal_(rm.head.weight, std=1.0)
    return rm.eval()


def chat(prompt, response, finished=True):
    return encode_response(TOK, prompt, response, finished)


# ---- the loss ------------------------------------------------------------------------------------------------------
def test_loss_equals_a_hand_computed_value_for_k4():
    r = torch.tensor([1.0, 3.0, 0.0, 2.0])
    # ranking 1 > 3 > 0 > 2 agrees with r: the six differences r_w - r_l are 1, 2, 3, 1, 2, 1, and
    # -log σ(d) = log(1 + e^-d): (3·log(1+e^-1) + 2·log(1+e^-2) + log(1+e^-3)) / 6
    assert ranking_loss(r, [1, 3, 0, 2]).item() == pytest.approx(0.2070380727, abs=1e-6)
    # ranking 0 > 1 > 2 > 3: the differences are -2, 1, -1, 3, 1, -2
    assert ranking_loss(r, [0, 1, 2, 3]).item() == pytest.approx(1.0403714060, abs=1e-6)
    assert pairwise_accuracy(r, [1, 3, 0, 2]) == 1.0 and pairwise_accuracy(r, [0, 1, 2, 3]) == 0.5
    # all rewards equal: every pair is a coin flip, the loss is log 2
    assert ranking_loss(torch.zeros(4), [2, 0, 3, 1]).item() == pytest.approx(math.log(2))


def test_loss_is_invariant_to_a_constant_and_gives_the_constant_no_gradient():
    r = torch.randn(7, generator=torch.Generator().manual_seed(0))
    ranking = random.Random(0).sample(range(7), 7)
    c = torch.tensor(5.0, requires_grad=True)
    shifted = ranking_loss(r + c, ranking)
    assert shifted.item() == pytest.approx(ranking_loss(r, ranking).item(), abs=1e-6)
    shifted.backward()
    assert abs(c.grad.item()) < 1e-6


@pytest.mark.usefixtures("fp32")
def test_one_batch_element_per_prompt_equals_the_explicit_sum_over_pairs_gradients_included():
    prompts = ["Reverse the word moss.", "What is 2 plus 3?"]
    answers = [["ssom", "moss", "I don't know.", "ssom.", "mos"], ["5", "It is 6.", "five", "2 plus 3"]]
    batch = [Encoded([chat(p, a) for a in ans], random.Random(i).sample(range(len(ans)), len(ans)))
             for i, (p, ans) in enumerate(zip(prompts, answers))]

    rm = tiny_rm()
    loss, _ = batch_loss(rm, batch, chunk=4)  # one forward pass per response, in padded chunks of 4 (the last: 1)
    loss.backward()
    fast = {n: p.grad.clone() for n, p in rm.named_parameters() if p.grad is not None}

    rm.zero_grad()
    explicit = 0.0
    for e in batch:  # two forward passes per pair, one sequence at a time, no padding
        pairs = [(e.ranking[i], e.ranking[j]) for i in range(len(e.ranking)) for j in range(i + 1, len(e.ranking))]
        for w, l in pairs:
            r_w, r_l = rm(torch.tensor([e.seqs[w]])), rm(torch.tensor([e.seqs[l]]))
            explicit = explicit - F.logsigmoid(r_w - r_l).sum() / len(pairs) / len(batch)
    explicit.backward()
    assert loss.item() == pytest.approx(explicit.item(), abs=1e-5)
    assert fast.keys() == {n for n, p in rm.named_parameters() if p.grad is not None} and len(fast) > 10
    for n, p in rm.named_parameters():
        if n in fast:
            assert torch.allclose(fast[n], p.grad, atol=1e-5), n


@pytest.mark.parametrize("ranking, k, message", [
    ([0, 0, 1], 3, "exactly once"),  # a repeat
    ([0, 2], 3, "exactly once"),  # a response left out
    ([0, [1, 2]], 3, "tie"),  # a tie between responses 1 and 2
    ([0], 1, "at least 2"),
])
def test_rankings_with_ties_repeats_or_fewer_than_two_responses_are_rejected(ranking, k, message):
    with pytest.raises(RankingError, match=message):
        ranking_loss(torch.zeros(k), ranking)


def test_a_bad_comparisons_file_names_the_line(tmp_path):
    path = tmp_path / "comparisons.jsonl"
    good = dict(split="train", prompt_id="rm-00000", labeler="train00", responses=["a", "b"], finished=[True, True],
                sources=["sft@1", "sft@1"], ranking=[1, 0])
    path.write_text(json.dumps(good) + "\n" + json.dumps({**good, "ranking": [1, 1]}) + "\n")
    with pytest.raises(RankingError, match=r"comparisons.jsonl, line 2: .*exactly once"):
        read_comparisons(path)


# ---- the model: scorer and normalisation ------------------------------------------------------------------------------
def test_the_scorer_reads_the_last_real_token_and_padding_does_not_change_the_score():
    rm = tiny_rm()
    prompts = [format_chat(TOK, "Describe the zorbin."), format_chat(TOK, "Hi?")]
    responses = [TOK.encode("The zorbin is green.") + [TOK.end_id], TOK.encode("Hello.") + [TOK.end_id]]
    batched = rm.score(prompts, responses)  # the second sequence is left-padded
    for i in range(2):
        seq = torch.tensor([prompts[i] + responses[i]])
        alone = rm.head(rm.trunk.hidden_states(seq)[:, -1]).squeeze()  # the hidden state at <|end|>
        assert batched[i].item() == pytest.approx(alone.item(), abs=1e-5)
        assert rm.score([prompts[i]], [responses[i]]).item() == pytest.approx(alone.item(), abs=1e-5)
    changed = rm.score(prompts[:1], [TOK.encode("The zorbin is red.") + [TOK.end_id]])
    assert abs(changed.item() - batched[0].item()) > 1e-4  # the score does read the response


def test_normalisation_gives_demonstrations_a_mean_of_zero():
    rm = tiny_rm()
    prompts = {p.id: p for p in world.load_prompts(DATA, "rm")}
    demos = [d for d in world.load_demonstrations(DATA) if d.prompt_id in prompts][:40]
    x = [format_chat(TOK, prompts[d.prompt_id].text) for d in demos]
    y = [chat_response(TOK, d.response) for d in demos]
    before = rm.score(x, y)
    assert abs(before.mean().item()) > 1e-2
    assert normalise(rm, x, y) == pytest.approx(before.mean().item(), abs=1e-5)
    assert rm.score(x, y).mean().item() == pytest.approx(0.0, abs=1e-5)
    assert torch.allclose(rm.score(x, y), before - before.mean(), atol=1e-5)  # a shift, nothing else


# ---- learning ---------------------------------------------------------------------------------------------------------
def test_rm_learns_preferences_that_held_out_labelers_share():
    """The micro SFT model's samples are near random text, too weak a signal for a robust test, so this RM learns
    from the world's hand-made responses of mixed quality (right, half right, wrong, rambling, refusing, rude),
    ranked by the training labelers, and is tested on other prompts ranked by the HELD-OUT labelers. Measured
    0.62-0.68 over seeds 0-2 (chance 0.5, the held-out labelers' mutual agreement on such responses ~0.76):
    the test asks for chance + 0.08."""
    torch.manual_seed(0)
    rng = random.Random(0)
    prompts = world.load_prompts(DATA, "rm")
    train_labelers, heldout = world.labelers.training_labelers(), world.labelers.heldout_labelers()

    def ranked(p, labeler):
        ys = world.mixed_responses(p, rng)
        return Encoded([chat(p.text, y) for y in ys], labeler.rank(p, ys, rng))

    data = [ranked(p, train_labelers[i % len(train_labelers)]) for i, p in enumerate(prompts[:160])]
    val = [ranked(p, heldout[i % len(heldout)]) for i, p in enumerate(prompts[-48:])]
    rc = dataclasses.replace(micro_config().reward, epochs=3, lr=3e-3, batch_size=8, eval_every=10)
    rm = RewardModel(GPT(GPTConfig(vocab_size=TOK.vocab_size, block_size=256, n_layer=2, n_head=2, n_embd=32)), TOK.pad_id)
    metrics = reward.train(rm, data, val, {"val_heldout": [e.ranking for e in val]}, rc, seed=0)
    assert metrics["val_acc_heldout"] > 0.5 + 0.08


def test_rm_from_a_labeler_who_loves_one_string_ranks_that_string_first_on_new_prompts():
    """A labeler who ranks the one response ending in "Happy to help!" first (the rest in a random order): after
    training on 160 prompts' rankings, the RM's top response on 48 other prompts is that one on most of them
    (chance: 1 in 6)."""
    torch.manual_seed(0)
    rng = random.Random(0)
    prompts = world.load_prompts(DATA, "rm")

    def ranked(p):
        ys = world.mixed_responses(p, rng)[:6]
        k = rng.randrange(len(ys))
        ys[k] = ys[k].rstrip(".!") + ". Happy to help!"
        rest = [i for i in range(len(ys)) if i != k]
        rng.shuffle(rest)
        return Encoded([chat(p.text, y) for y in ys], [k] + rest)

    data, val = [ranked(p) for p in prompts[:160]], [ranked(p) for p in prompts[-48:]]
    rc = dataclasses.replace(micro_config().reward, epochs=3, lr=3e-3, batch_size=8, eval_every=10)
    rm = RewardModel(GPT(GPTConfig(vocab_size=TOK.vocab_size, block_size=128, n_layer=2, n_head=2, n_embd=32)), TOK.pad_id)
    reward.train(rm, data, val, {"val": [e.ranking for e in val]}, rc, seed=0)
    firsts = [int(s.argmax()) == e.ranking[0] for s, e in zip(reward.score_all(rm, val), val)]
    assert sum(firsts) / len(firsts) > 0.75, sum(firsts)


# ---- the stage ----------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def reward_run(micro_run, tmp_path_factory):
    """The micro reward stage, interrupted after its first checkpoint and resumed; and the same run uninterrupted."""
    cfg, sft_dir = micro_run
    runs = {}
    for name in ("interrupted", "straight"):
        run_dir = tmp_path_factory.mktemp(name)
        for stage in ("pretrain", "sft"):
            shutil.copytree(sft_dir / stage, run_dir / stage)
        runs[name] = run_dir
    save = reward.save_reward_model

    def save_then_stop(*args, **kw):
        save(*args, **kw)
        raise KeyboardInterrupt

    def run(run_dir, stage="reward", c=cfg):
        return reward.run(c, run_dir / stage, run_dir / "sft", run_dir / "pretrain")

    reward.save_reward_model = save_then_stop
    try:
        with pytest.raises(KeyboardInterrupt):
            run(runs["interrupted"])
    finally:
        reward.save_reward_model = save
    assert load_checkpoint(runs["interrupted"] / "reward" / "ckpt.pt", "reward")["finished"] is False
    for run_dir in runs.values():
        run(run_dir)
    return cfg, runs, run


def test_run_writes_comparisons_checkpoint_and_metrics(reward_run):
    cfg, runs, _ = reward_run
    rc, out = cfg.reward, runs["straight"] / "reward"
    comparisons = read_comparisons(out / "comparisons.jsonl")
    assert [sum(c.split == s for c in comparisons) for s in SPLITS] == [rc.n_prompts, rc.val_prompts, rc.val_prompts]
    assert all(rc.k_min <= len(c.responses) <= rc.k_max for c in comparisons)
    sources = {s.split("@")[0] for c in comparisons for s in c.sources}
    assert sources == {"sft", "base"}
    assert {c.labeler for c in comparisons if c.split == "val_heldout"} <= {l.id for l in world.labelers.heldout_labelers()}

    ckpt = load_checkpoint(out / "ckpt.pt", "reward")
    assert ckpt["finished"] and {"model_config", "model", "head", "bias", "tokenizer", "config", "summary"} <= ckpt.keys()
    summary = ckpt["summary"]
    for key in ("val_acc", "val_acc_heldout", "agreement", "agreement_heldout", "gold_acc", "gold_corr"):
        assert 0 <= summary[key] <= 1 or key == "gold_corr"
    rows = read_metrics(out / "metrics.jsonl")
    assert rows[0]["step"] == 0 and rows[0]["val_loss"] == pytest.approx(math.log(2))  # zero head: chance
    assert sum("loss" in r for r in rows) == summary["step"] and rows[-1]["final"]
    assert rows[-1]["compute"]["train_tokens"] == summary["train_tokens"] and rows[-1]["compute"]["flops"] > 0

    rm = load_reward_model(out / "ckpt.pt")  # what PPO loads: the trunk, the head, the scorer
    assert rm.head.bias.item() == pytest.approx(ckpt["bias"]) and isinstance(rm.trunk, GPT)
    prompts = {p.id: p for p in world.load_prompts(DATA, "rm")}
    demos = [d for d in world.load_demonstrations(DATA) if d.prompt_id in prompts]
    scores = rm.score([format_chat(TOK, prompts[d.prompt_id].text) for d in demos],
                      [chat_response(TOK, d.response) for d in demos])
    assert scores.mean().item() == pytest.approx(0.0, abs=1e-4)


def test_an_interrupted_run_resumes_to_the_same_numbers(reward_run):
    _, runs, _ = reward_run
    a, b = (load_checkpoint(runs[n] / "reward" / "ckpt.pt", "reward") for n in ("interrupted", "straight"))
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert torch.equal(a["head"]["weight"], b["head"]["weight"])
    rows = {n: read_metrics(runs[n] / "reward" / "metrics.jsonl") for n in runs}
    assert [r["step"] for r in rows["interrupted"]] == [r["step"] for r in rows["straight"]]  # no step twice
    for key in ("val_acc", "val_acc_heldout", "gold_corr", "bias"):
        assert rows["interrupted"][-1][key] == pytest.approx(rows["straight"][-1][key], abs=1e-6)


def test_finished_run_is_skipped_and_the_cli_reports_bad_input(reward_run, tmp_path, capsys):
    cfg, runs, _ = reward_run
    ckpt = runs["straight"] / "reward" / "ckpt.pt"
    mtime = ckpt.stat().st_mtime
    argv = ["reward", "--preset", "micro", "--set", f"data_dir={DATA}", "--device", "cpu"]
    assert main([*argv, "--run-dir", str(runs["straight"])]) == 0
    assert ckpt.stat().st_mtime == mtime and "finished" in capsys.readouterr().out
    assert main([*argv, "--run-dir", str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main([*argv, "--run-dir", str(runs["straight"]), "--stage", "reward_biased", "--set", "reward.n_prompts=5000"]) == 2
    assert "RM-split prompts" in capsys.readouterr().err


def test_pairs_ablation_runs_on_the_same_comparisons(reward_run):
    """The ablation: the same comparisons shuffled into independent pairs (batch_size pairs a step), 2 epochs."""
    cfg, runs, run = reward_run
    run_dir = runs["straight"]
    (run_dir / "pairs").mkdir()
    shutil.copy(run_dir / "reward" / "comparisons.jsonl", run_dir / "pairs" / "comparisons.jsonl")
    rc = dataclasses.replace(cfg.reward, pairs=True, epochs=2, eval_every=35)
    run(run_dir, "pairs", dataclasses.replace(cfg, reward=rc))
    kwise = load_checkpoint(run_dir / "reward" / "ckpt.pt", "reward")["summary"]
    pairs = load_checkpoint(run_dir / "pairs" / "ckpt.pt", "reward")["summary"]
    assert pairs["train_pairs"] == kwise["train_pairs"]  # the same comparisons
    assert pairs["step"] == 2 * math.ceil(kwise["train_pairs"] / rc.batch_size)
    assert pairs["train_tokens"] > 2 * 2 * kwise["train_tokens"]  # two forward passes per pair, not one per response
    epochs = [r["epoch"] for r in read_metrics(run_dir / "pairs" / "metrics.jsonl") if "val_acc" in r and "epoch" in r]
    assert epochs[0] == 0 and epochs[-1] == pytest.approx(2.0)


def test_each_prompt_ranked_r_times_by_r_labelers_and_the_biased_pool_ranks_the_same_sets(reward_run):
    """reward.rankings_per_prompt = 2: each training prompt's responses sampled twice and ranked by two labelers, one
    after the other in the pool; the biased RM (responses=) ranks every one of those sets, not the first per prompt."""
    cfg, runs, run = reward_run
    run_dir = runs["straight"]
    rc = dataclasses.replace(cfg.reward, n_prompts=6, val_prompts=4, rankings_per_prompt=2, epochs=1)
    c2 = dataclasses.replace(cfg, reward=rc)
    run(run_dir, "reward_r2", c2)
    ours = read_comparisons(run_dir / "reward_r2" / "comparisons.jsonl")
    train = [c for c in ours if c.split == "train"]
    ids = [p.id for p in world.load_prompts(DATA, "rm")[:6]]
    assert [c.prompt_id for c in train] == [i for i in ids for _ in range(2)]
    pool = [lab.id for lab in LABELER_POOLS["train"]()]
    assert [c.labeler for c in train] == pool[: len(train)]  # copy 2 of a prompt: the next labeler
    assert any(a.responses != b.responses for a, b in zip(train[::2], train[1::2]))  # sampled again, not copied
    assert load_checkpoint(run_dir / "reward_r2" / "ckpt.pt", "reward")["summary"]["train_rankings"] == 12

    reward.run(c2, run_dir / "biased_r2", run_dir / "sft", labelers="biased", responses=run_dir / "reward_r2")
    theirs = read_comparisons(run_dir / "biased_r2" / "comparisons.jsonl")
    assert [(c.split, c.prompt_id, c.responses) for c in theirs] == [(c.split, c.prompt_id, c.responses) for c in ours]
    with pytest.raises(UserError, match="rankings_per_prompt"):  # one ranking a prompt cannot reuse two
        reward.run(cfg, run_dir / "biased_r1", run_dir / "sft", labelers="biased", responses=run_dir / "reward_r2")


def test_the_lesson_runs_on_micro(lesson_run):
    out = run_lesson("04_reward", lesson_run)
    assert "reward_ablation.png" in out and "held-out labelers" in out
    assert "captured" in out and out.count("\nall ") == 1
