"""Lesson 05: PPO with a per-token KL penalty. Each test can fail: the numbers are worked out by hand or by a
plain reference loop, and the micro run must raise a known reward by a stated margin."""

import copy
import math
import re
from functools import partial

import pytest
import torch

from conftest import micro_config, run_lesson
from minigpt_rlhf.cli import main
from minigpt_rlhf.ppo import (KLController, by_length, gae, kl_penalised_rewards, make_batch, masked_whiten,
                              policy_loss, response_logprobs, response_values, value_loss)
from ppo_micro import PROMPTS, TOK, make_trainer, mean_reward
from ppo_micro import one_thread  # noqa: F401 (an autouse fixture: micro tests on one thread)


def right_padded_mask(lengths, R):
    return torch.arange(R)[None, :] < torch.tensor(lengths)[:, None]


def reference_gae(r, v, gamma, lam):
    """GAE of one response as a plain loop over its tokens: lists of r_t and V(s_t) -> A_t."""
    a, running = [0.0] * len(r), 0.0
    for t in reversed(range(len(r))):
        next_v = v[t + 1] if t + 1 < len(r) else 0.0  # the episode ends after the last real token
        running = r[t] + gamma * next_v - v[t] + gamma * lam * running
        a[t] = running
    return a


def test_gae_equals_a_plain_reference_loop():
    torch.manual_seed(0)
    lengths, R, gamma, lam = [5, 2, 7, 1], 7, 0.9, 0.8
    rewards, values = torch.randn(4, R), torch.randn(4, R)
    mask = right_padded_mask(lengths, R)
    adv, ret = gae(rewards, values, mask, gamma, lam)
    for i, L in enumerate(lengths):
        r, v = rewards[i, :L].tolist(), values[i, :L].tolist()
        a = reference_gae(r, v, gamma, lam)
        assert adv[i, :L].tolist() == pytest.approx(a, abs=1e-6)
        assert ret[i, :L].tolist() == pytest.approx([a_t + v_t for a_t, v_t in zip(a, v)], abs=1e-6)
        assert adv[i, L:].abs().sum() == 0 and ret[i, L:].abs().sum() == 0


def test_reward_is_the_score_on_the_last_token_and_the_kl_penalty_on_every_token():
    mask = right_padded_mask([3, 1], 3)
    logprobs = torch.tensor([[-1.0, -2.0, -0.5], [-0.3, 9.0, 9.0]])
    ref_logprobs = torch.tensor([[-1.5, -1.0, -0.5], [-0.1, 0.0, 0.0]])
    rewards, kl = kl_penalised_rewards(torch.tensor([2.0, -1.0]), logprobs, ref_logprobs, mask, kl_coef=0.1)
    assert torch.allclose(kl, torch.tensor([[0.5, -1.0, 0.0], [-0.2, 0.0, 0.0]]))
    assert torch.allclose(rewards, torch.tensor([[-0.05, 0.1, 2.0], [-1.0 + 0.02, 0.0, 0.0]]))


def test_clipped_objective_matches_a_hand_worked_example():
    # ε = 0.2. Per token: ratio ρ, advantage A, min(ρA, clip(ρ)A), and the loss −min(...):
    #   ρ=1.5, A=+1: min(1.5, 1.2) = 1.2    -> -1.2   (clipped: no gradient)
    #   ρ=1.5, A=-1: min(-1.5, -1.2) = -1.5 -> +1.5   (unclipped: the pessimistic side keeps its gradient)
    #   ρ=0.5, A=+1: min(0.5, 0.8) = 0.5    -> -0.5   (unclipped)
    #   ρ=0.5, A=-1: min(-0.5, -0.8) = -0.8 -> +0.8   (clipped: no gradient)
    #   ρ=1.1, A=+2: min(2.2, 2.2) = 2.2    -> -2.2   (inside the clip range)
    # loss = (-1.2 + 1.5 - 0.5 + 0.8 - 2.2) / 5 = -0.32; four of five ratios are outside [0.8, 1.2].
    # d loss / d log π_t = -ρ_t·A_t / 5 where unclipped, else 0: [0, 0.3, -0.1, 0, -0.44].
    ratio = torch.tensor([[1.5, 1.5, 0.5, 0.5, 1.1]])
    adv = torch.tensor([[1.0, -1.0, 1.0, -1.0, 2.0]])
    logprobs = ratio.log().requires_grad_()
    mask = torch.ones(1, 5, dtype=torch.bool)
    loss, clipfrac, approx_kl = policy_loss(logprobs, torch.zeros(1, 5), adv, mask, clip_eps=0.2)
    assert loss.item() == pytest.approx(-0.32)
    assert clipfrac.item() == pytest.approx(0.8)
    # approx-KL = mean of (ρ − 1) − log ρ
    expected_kl = sum((r - 1) - math.log(r) for r in [1.5, 1.5, 0.5, 0.5, 1.1]) / 5
    assert approx_kl.item() == pytest.approx(expected_kl) and expected_kl == pytest.approx(0.116011, abs=1e-6)
    loss.backward()
    assert torch.allclose(logprobs.grad, torch.tensor([[0.0, 0.3, -0.1, 0.0, -0.44]]))


def test_clipped_value_loss_matches_a_hand_worked_example():
    # V_old = 0, return R = 1, clip 0.2.  V = 0.5: clipped to 0.2, errors 0.25 and 0.64 -> 0.64.
    # V = -0.5: clipped to -0.2, errors 2.25 and 1.44 -> 2.25.  Loss = ½ · (0.64 + 2.25) / 2 = 0.7225.
    loss = value_loss(torch.tensor([[0.5, -0.5]]), torch.zeros(1, 2), torch.ones(1, 2),
                      torch.ones(1, 2, dtype=torch.bool), clip_value=0.2)
    assert loss.item() == pytest.approx(0.7225)


def test_kl_and_its_penalty_are_exactly_zero_when_the_policy_is_the_reference():
    tr = make_trainer(rollout_batch=8)
    assert tr.policy is not tr.ref
    ro, stats = tr.rollout()
    assert torch.equal(ro.logprobs, ro.ref_logprobs)
    assert torch.count_nonzero(ro.kl) == 0 and stats["kl"] == 0.0 and stats["non_score_reward"] == 0.0
    expected = torch.zeros_like(ro.rewards)
    expected[torch.arange(8), ro.mask.sum(1) - 1] = ro.score
    assert torch.equal(ro.rewards, expected)


def test_rollout_logprobs_equal_a_recomputation():
    tr = make_trainer(rollout_batch=8, max_new_tokens=12)
    ro, stats = tr.rollout()
    assert stats["logprob_gap"] < 1e-5  # sampling-time log-probs vs the padded batch's forward pass
    for i, (p, r) in enumerate(zip([PROMPTS[j] for j in ro.prompt_index], ro.responses)):
        alone = tr.policy.token_logprobs(torch.tensor([p + r]))[0, len(p) - 1:]  # each sequence alone, no pads
        assert torch.allclose(ro.logprobs[i, : len(r)], alone, atol=1e-5)
    # the responses are what was sampled: <|end|> closes exactly the finished ones
    for r, done in zip(ro.responses, ro.finished.tolist()):
        assert (r[-1] == TOK.end_id) == done and TOK.end_id not in r[:-1]


def test_a_tempered_policy_scores_its_samples_at_its_temperature():
    T = 0.5
    tr = make_trainer(rollout_batch=8, max_new_tokens=12, temperature=T)
    ro, stats = tr.rollout()
    assert stats["logprob_gap"] < 1e-5  # generate's T = 1 log-probs, recovered from the tempered ones
    assert torch.count_nonzero(ro.kl) == 0  # π^RL = π^SFT at the same temperature
    for i, (p, r) in enumerate(zip([PROMPTS[j] for j in ro.prompt_index], ro.responses)):
        logits = tr.policy(torch.tensor([p + r[:-1]]))[0][0, len(p) - 1:]
        tempered = (logits / T).log_softmax(-1).gather(1, torch.tensor(r)[:, None]).squeeze(1)
        assert torch.allclose(ro.logprobs[i, : len(r)], tempered, atol=1e-5)
        assert not torch.allclose(ro.logprobs[i, : len(r)], logits.log_softmax(-1).gather(
            1, torch.tensor(r)[:, None]).squeeze(1), atol=1e-3)  # not the model's own log-probs


def test_value_warmup_trains_the_value_model_and_leaves_the_policy_as_it_was():
    tr = make_trainer(rollout_batch=8)
    policy, value = copy.deepcopy(tr.policy.state_dict()), copy.deepcopy(tr.value.state_dict())
    ro, _ = tr.rollout()
    before = float(((ro.values - ro.returns) ** 2 * ro.mask).sum())
    for _ in range(3):
        tr.update(ro, train_policy=False)
    assert all(torch.equal(v, tr.policy.state_dict()[k]) for k, v in policy.items())
    assert any(not torch.equal(v, tr.value.state_dict()[k]) for k, v in value.items())
    with torch.no_grad():
        values = by_length(partial(response_values, tr.value), ro.seq, ro.real, ro.mask)
    assert float(((values - ro.returns) ** 2 * ro.mask).sum()) < before  # V moved towards the returns
    tr.update(ro)
    assert any(not torch.equal(v, tr.policy.state_dict()[k]) for k, v in policy.items())


def test_padding_never_enters_the_kl_the_reward_or_the_losses():
    tr = make_trainer(rollout_batch=8, max_new_tokens=12)
    ro, _ = tr.rollout()
    pads = ~ro.mask
    assert pads.any(), "the batch needs responses of different lengths"

    # 1. pad tokens in the sequence: whatever their ids, real positions get the same log-probs
    seq = ro.seq.masked_fill(~ro.real, 7)
    R = ro.mask.size(1)
    clean, dirty = (response_logprobs(tr.policy, s, ro.real, R) for s in (ro.seq, seq))
    assert torch.allclose(clean[ro.mask], dirty[ro.mask], atol=1e-6)

    # 2. garbage in every per-token tensor's pad positions changes no reward, advantage, statistic or loss
    def garbage(x):
        return torch.where(pads, torch.full_like(x, 123.0), x)

    def everything(logprobs, ref_logprobs, values, old_values, returns, advantages):
        rewards, kl = kl_penalised_rewards(ro.score, logprobs, ref_logprobs, ro.mask, 0.1)
        adv, ret = gae(rewards, values, ro.mask, 1.0, 0.95)
        pg = policy_loss(logprobs, ref_logprobs, advantages, ro.mask, 0.2)
        vf = value_loss(values, old_values, returns, ro.mask, 0.2)
        return [rewards[ro.mask], kl.sum(1), adv[ro.mask], ret[ro.mask], masked_whiten(adv, ro.mask)[ro.mask],
                *pg, vf]

    args = [ro.logprobs, ro.ref_logprobs, ro.values, ro.values + 0.1, ro.returns, ro.advantages]
    for clean, dirty in zip(everything(*args), everything(*map(garbage, args))):
        assert torch.allclose(clean, dirty, atol=1e-6)

    # 3. the whole minibatch loss of the trainer, garbage in all stored pad positions
    dirty = copy.copy(ro)
    for name in ("logprobs", "ref_logprobs", "values", "returns", "advantages", "rewards", "kl"):
        setattr(dirty, name, garbage(getattr(ro, name)))
    dirty.seq = seq
    rows = torch.arange(8)
    assert tr.minibatch_loss(ro, rows)[0].item() == pytest.approx(tr.minibatch_loss(dirty, rows)[0].item(), abs=1e-6)


def test_chunks_of_similar_length_give_the_whole_batchs_values_and_gradients():
    tr = make_trainer(rollout_batch=8, max_new_tokens=12)
    ro, _ = tr.rollout()
    prompt_lens = ro.real[:, : ro.seq.size(1) - ro.mask.size(1)].sum(1)
    assert len(set(prompt_lens.tolist())) > 1 and len(set(ro.mask.sum(1).tolist())) > 1, "needs ragged rows"
    R, m = ro.mask.size(1), ro.mask
    for model, fn in ((tr.policy, response_logprobs), (tr.value, response_values)):
        outs, grads = [], []
        whole, chunked = fn(model, ro.seq, ro.real, R), by_length(partial(fn, model), ro.seq, ro.real, m, rows=3)
        for y in (whole, chunked):
            model.zero_grad()
            w = torch.randn(y.shape, generator=torch.Generator().manual_seed(0))  # a loss that weighs every output
            (y * w)[m].sum().backward()
            outs.append(y[m])
            grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
        assert torch.allclose(outs[0], outs[1], atol=1e-5)
        assert torch.allclose(grads[0], grads[1], rtol=1e-4, atol=1e-5) and grads[0].abs().sum() > 0


def test_make_batch_lays_prompt_left_padded_and_response_right_padded():
    seq, real, mask = make_batch([[1, 2, 3], [4]], [[5], [6, 7]], TOK.pad_id, "cpu")
    P = TOK.pad_id
    assert seq.tolist() == [[1, 2, 3, 5, P], [P, P, 4, 6, 7]]
    assert real.tolist() == [[True] * 4 + [False], [False, False, True, True, True]]
    assert mask.tolist() == [[True, False], [True, True]]


def test_kl_controller_moves_beta_the_right_way():
    fixed = KLController(0.1)
    fixed.update(kl=100.0, n=32)
    assert fixed.beta == 0.1
    high, low = KLController(0.1, target=6.0, horizon=100), KLController(0.1, target=6.0, horizon=100)
    high.update(kl=12.0, n=32)  # error clipped to +0.2: β · (1 + 0.2 · 32/100)
    low.update(kl=3.0, n=32)  # error -0.5 clipped to -0.2
    assert high.beta == pytest.approx(0.1 * 1.064) and low.beta == pytest.approx(0.1 * 0.936)


def test_adaptive_beta_rises_while_the_policy_drifts_past_its_target():
    tr = make_trainer(rollout_batch=16, minibatch=8, lr=1e-3, value_lr=1e-3, kl_coef=0.01, kl_target=0.5,
                      kl_horizon=16)
    for _ in range(8):
        tr.update(tr.rollout()[0])
    assert tr.kl_ctl.beta > 0.01 * 1.1


def test_ppo_raises_a_known_reward_on_micro():
    tr = make_trainer(rollout_batch=16, minibatch=8, lr=1e-3, value_lr=1e-3, kl_coef=0.01)
    before = mean_reward(tr)
    for _ in range(20):
        ro, stats = tr.rollout()
        tr.update(ro)
    after = mean_reward(tr)
    assert before < 0.1  # about 1/26: the policy writes random letters
    assert after > before + 0.4, (before, after)
    assert stats["kl"] > 0 and stats["entropy"] < 3.3


def test_same_seed_same_run():
    def three_iterations():
        tr = make_trainer(seed=3)
        out = []
        for _ in range(3):
            ro, stats = tr.rollout()
            out.append((ro.responses, tr.update(ro)["loss"]))
        return out

    assert three_iterations() == three_iterations()


def test_cli_ppo_without_an_sft_run_is_a_clear_error(tmp_path, capsys):
    assert main(["ppo", "--preset", "micro", "--run-dir", str(tmp_path), "--device", "cpu"]) == 2
    assert "sft" in capsys.readouterr().err
    assert main(["ppo", "--preset", "micro", "--set", "ppo.nope=1"]) == 2
    assert "valid keys" in capsys.readouterr().err


def test_the_lesson_runs_on_micro(lesson_run):
    out = run_lesson("05_ppo", lesson_run, needs=("reward",))
    assert "on evaluation prompts:" in out and "rollout share" in out
    assert "grpo " in out and "ppo_gold " in out and "gold, judge picks" in out
    check_the_update_by_hand(out, torch.load(lesson_run / "ppo_update_by_hand.pt"))


def check_the_update_by_hand(out, h):
    """The lesson's one PPO update by hand, saved by it, against plain loops over its tokens."""
    mask, mb, eps = h["mask"], h["mb"], h["clip_eps"]
    lengths = mask.sum(1).tolist()
    assert min(lengths) < max(lengths), "the lesson's 8 responses should have different lengths"
    for i, L in enumerate(lengths):  # r_t: −β·kl_t on every token, the score on the last; then GAE
        kl = (h["old_logprobs"][i, :L] - h["ref_logprobs"][i, :L]).tolist()
        score = float(h["score"][i])
        r = [-h["beta"] * k + (score if t == L - 1 else 0.0) for t, k in enumerate(kl)]
        assert h["rewards"][i, :L].tolist() == pytest.approx(r, abs=1e-6)
        v = h["values"][i, :L].tolist()
        a = reference_gae(r, v, h["gamma"], h["lam"])
        assert h["raw_advantages"][i, :L].tolist() == pytest.approx(a, rel=1e-5, abs=1e-4)
        R_t = [x + y for x, y in zip(a, v)]
        assert h["returns"][i, :L].tolist() == pytest.approx(R_t, rel=1e-5, abs=1e-4)
    adv = h["advantages"][mask]
    assert h["whiten"] and float(adv.mean()) == pytest.approx(0, abs=1e-5)
    assert float(adv.std(unbiased=False)) == pytest.approx(1, abs=1e-4)

    # before the step the policy is π_old: every ratio is 1; L^CLIP and L^V by hand, token by token
    m = mask[mb]
    ratio = (h["new_logprobs"] - h["old_logprobs"][mb]).exp()
    assert (ratio[m] - 1).abs().max() < 1e-5
    A, terms, vf_terms = h["advantages"][mb], [], []
    V, V_old, ret = h["new_values"], h["values"][mb], h["returns"][mb]
    for i, t in m.nonzero().tolist():
        rho, a = float(ratio[i, t]), float(A[i, t])
        terms.append(-min(rho * a, min(max(rho, 1 - eps), 1 + eps) * a))
        v, v_old, R_t, c = float(V[i, t]), float(V_old[i, t]), float(ret[i, t]), h["clip_value"]
        clipped = v_old + min(max(v - v_old, -c), c)
        vf_terms.append(0.5 * max((v - R_t) ** 2, (clipped - R_t) ** 2))
    by_hand = sum(terms) / len(terms)
    printed = float(re.search(r"L\^CLIP = (-?[0-9.]+)", out).group(1))
    assert printed == pytest.approx(by_hand, abs=2e-6)
    assert h["pg_loss"] == pytest.approx(by_hand, abs=1e-6)
    assert h["vf_loss"] == pytest.approx(sum(vf_terms) / len(vf_terms), rel=1e-5)

    # after one optimizer step: the ratios moved, the clip fraction is in [0, 1], both losses fell
    ratio = (h["after"] - h["old_logprobs"]).exp()[mask]
    assert (ratio - 1).abs().max() > 1e-3
    assert 0 <= h["clipfrac_after"] <= 1
    assert h["clipfrac_after"] == pytest.approx(float(((ratio - 1).abs() > eps).float().mean()))
    mean, low = float(ratio.mean()), float(ratio.min())
    assert re.search(rf"ratio on all 8 *: mean {mean:.4f}  min {low:.4f}", out)
    assert h["pg_after"] < h["pg_loss"] and h["vf_after"] < h["vf_loss"]


# ---- best-of-n: PPO's no-training rival on the same KL axis ----------------------------------------------------
def test_best_of_n_picks_the_argmax_and_its_expected_value_equals_a_brute_force_over_subsets():
    import itertools

    from minigpt_rlhf.best_of_n import expected_best, pick

    scores = torch.tensor([[0.1, 0.9, 0.5, -1.0, 0.7], [3.0, 2.0, 1.0, 0.0, -1.0]])
    values = torch.tensor([[1.0, 2.0, 3.0, 4.0, 5.0], [10.0, 20.0, 30.0, 40.0, 50.0]])
    assert pick(scores).tolist() == [1, 0]
    for n in range(1, 6):
        brute = [sum(values[p, max(s, key=lambda i: scores[p, i])] for s in itertools.combinations(range(5), n))
                 / math.comb(5, n) for p in range(2)]
        assert expected_best(scores, values, n).tolist() == pytest.approx([float(b) for b in brute])
    assert expected_best(scores, values, 1).tolist() == pytest.approx(values.mean(1).tolist())  # n = 1: the mean


def test_cli_best_of_n_lists_the_answers_best_first_and_marks_the_argmax(lesson_run, capsys):
    from minigpt_rlhf.pipeline import run_stage
    from minigpt_rlhf.stages import recipe

    run_stage(next(s for s in recipe() if s.name == "reward"), micro_config(), lesson_run)  # done before: kept
    capsys.readouterr()
    assert main(["best-of-n", "--ckpt", str(lesson_run / "sft" / "ckpt.pt"), "--reward",
                 str(lesson_run / "reward" / "ckpt.pt"), "--prompt", "What does the zorbin eat?", "--n", "6",
                 "--max-new-tokens", "8", "--device", "cpu"]) == 0
    lines = capsys.readouterr().out.splitlines()[1:]
    scores = [float(line[1:].split()[0]) for line in lines]
    assert len(scores) == 6 and scores == sorted(scores, reverse=True)
    assert lines[0].startswith("→") and not any(line.startswith("→") for line in lines[1:])
    assert main(["best-of-n", "--ckpt", str(lesson_run / "sft" / "ckpt.pt"), "--reward",
                 str(lesson_run / "sft" / "ckpt.pt"), "--prompt", "hi", "--device", "cpu"]) == 2  # not an RM


def test_best_of_n_kl_formula_matches_a_monte_carlo_estimate():
    """A toy continuous reward: scores uniform on [0, 1]. The best of n has density n·u^(n−1); its KL to the
    uniform base, estimated from 400k draws binned into 40 bins, matches log n − (n−1)/n."""
    from minigpt_rlhf.best_of_n import kl_best_of_n

    g = torch.Generator().manual_seed(0)
    for n in (1, 2, 4, 16):
        best = torch.rand(400_000, n, generator=g).max(1).values
        freq = torch.histc(best, bins=40, min=0, max=1) / len(best)
        kl = float((freq[freq > 0] * (freq[freq > 0] * 40).log()).sum())
        assert kl == pytest.approx(kl_best_of_n(n), abs=0.02), n
    assert kl_best_of_n(1) == 0 and kl_best_of_n(64) == pytest.approx(math.log(64) - 63 / 64)


# ---- GRPO: the same loop, a group baseline instead of a value model ------------------------------------------------
def test_grpo_advantages_are_standardised_within_each_group_and_zero_on_padding():
    from minigpt_rlhf.ppo import group_advantages

    mask = right_padded_mask([3, 1, 2, 2, 4, 1], 4)
    rewards = torch.where(mask, torch.randn(6, 4, generator=torch.Generator().manual_seed(0)), 0.0)
    A = group_advantages(rewards, mask, 3)
    R = rewards.sum(1).view(2, 3)
    for g in range(2):
        a = A[3 * g : 3 * g + 3, 0]  # every token of a response carries its response's advantage
        assert a.mean().item() == pytest.approx(0.0, abs=1e-6) and a.std().item() == pytest.approx(1.0, abs=1e-4)
        assert torch.allclose(a, (R[g] - R[g].mean()) / R[g].std(), atol=1e-5)
    assert torch.equal(A[~mask], torch.zeros(int((~mask).sum())))
    assert all(torch.all(A[i, mask[i]] == A[i, 0]) for i in range(6))


def test_grpo_needs_no_value_model_and_raises_a_known_reward():
    tr = make_trainer(baseline="group", group_size=4, rollout_batch=16, minibatch=8, lr=1e-3, kl_coef=0.01)
    ro, stats = tr.rollout()
    assert tr.value is None and "explained_var" not in stats
    assert all(len(set(ro.prompt_index[i : i + 4])) == 1 for i in range(0, 16, 4))
    before = mean_reward(tr)
    for _ in range(20):
        tr.update(tr.rollout()[0])
    assert mean_reward(tr) > before + 0.4
    assert len(tr.optimizer.param_groups) == 1  # only the policy trains


def test_the_gold_loop_reads_no_reward_model_and_its_value_starts_at_zero(lesson_run):
    from minigpt_rlhf import ppo

    cfg = micro_config()
    tr, prompts = ppo.build_trainer(cfg, lesson_run / "sft", None, oracle=True)  # no reward folder at all
    policy_state = tr.policy.state_dict()
    assert all(torch.equal(v, policy_state[k]) for k, v in tr.value.trunk.state_dict().items())
    assert tr.value.trunk is not tr.policy and tr.value.head.weight.abs().sum() == 0
    ro, stats = tr.rollout()
    assert torch.equal(ro.values, torch.zeros_like(ro.values))  # V = 0 before its first update
    assert stats["rm_score"] == pytest.approx(float(ro.score[ro.finished].mean()) / tr.score_scale, abs=1e-5)
    assert tr.update(ro)["vf_loss"] > 0
