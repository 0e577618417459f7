"""Lesson 01: the GPT, its KV-cache sampling, the tokenizer, checkpoints and config (the foundation)."""

import dataclasses

import pytest
import torch

from conftest import run_lesson
from minigpt_rlhf.cli import main
from minigpt_rlhf.config import load_config
from minigpt_rlhf.model import GPT, GPTConfig, left_pad
from minigpt_rlhf.runtime import (UserError, build_model, check_finite, load_checkpoint, measure_matmul_flops,
                                  mfu, save_checkpoint)
from minigpt_rlhf.tokenizer import Tokenizer, VocabError, format_chat

TOK = Tokenizer()


def tiny(seed=0, **kw):
    torch.manual_seed(seed)
    cfg = dict(vocab_size=TOK.vocab_size, block_size=64, n_layer=2, n_head=2, n_embd=32)
    return GPT(GPTConfig(**{**cfg, **kw})).eval()


# both position encodings: rotary (the presets) and GPT-2's learned table (the ablation of the README)
ROPE = pytest.mark.parametrize("rope", [True, False], ids=["rope", "learned"])


def test_rope_turns_attention_to_relative_positions():
    """With rotary embeddings a query·key product depends only on the distance between the two positions."""
    from minigpt_rlhf.model import rope_tables, rotate

    q, k = torch.randn(1, 1, 1, 8), torch.randn(1, 1, 1, 8)

    def score(i, j):
        ci, si = rope_tables(torch.tensor([[i]]), 8)
        cj, sj = rope_tables(torch.tensor([[j]]), 8)
        return float((rotate(q, ci, si) * rotate(k, cj, sj)).sum())
    assert score(3, 1) == pytest.approx(score(10, 8), abs=1e-4) and score(3, 1) != pytest.approx(score(3, 2), abs=1e-3)
    assert tiny(rope=True).wpe is None and tiny(rope=False).wpe is not None


@ROPE
def test_causal_mask_future_tokens_do_not_change_the_past(rope):
    m = tiny(rope=rope)
    x = torch.randint(0, 96, (2, 20))
    y = x.clone()
    y[:, 11:] = torch.randint(0, 96, (2, 9))
    assert not torch.equal(x, y)
    lx, ly = m(x)[0], m(y)[0]
    assert torch.allclose(lx[:, :11], ly[:, :11], atol=1e-6)
    assert not torch.allclose(lx[:, 11:], ly[:, 11:], atol=1e-3)


def test_bf16_autocast_changes_the_loss_and_gradients_only_by_rounding(monkeypatch):
    """Mixed precision (runtime.autocast, bf16 where the hardware has it): the loss and the gradients of the float32
    weights agree with float32 to bf16's rounding (and differ: bf16 was used), and on the CPU attention stays
    float32."""
    import torch.nn.functional as F

    from minigpt_rlhf import model as model_module, runtime

    m = tiny()
    x = torch.randint(0, 96, (4, 33), generator=torch.Generator().manual_seed(0))
    seen, sdpa = [], F.scaled_dot_product_attention

    def spy(q, k, v, **kw):
        seen.append(q.dtype)
        return sdpa(q, k, v, **kw)

    monkeypatch.setattr(model_module.F, "scaled_dot_product_attention", spy)
    losses, grads = [], []
    for bf16 in (False, True):
        monkeypatch.setattr(runtime, "_precision", "bf16" if bf16 else "fp32")
        m.zero_grad()
        with runtime.autocast(torch.device("cpu")):
            logits, loss = m(x[:, :-1], x[:, 1:])
        loss.backward()
        losses.append(loss.item())
        grads.append(torch.cat([p.grad.flatten() for p in m.parameters()]))
        assert logits.dtype == loss.dtype == torch.float32  # the unembedding is float32 (model.fp32_linear)
        assert all(p.dtype == torch.float32 for p in m.parameters())
    assert seen and all(d == torch.float32 for d in seen)
    assert losses[1] == pytest.approx(losses[0], rel=1e-2) and losses[1] != losses[0]
    cos = F.cosine_similarity(grads[0], grads[1], dim=0)
    assert cos > 0.99, cos


@ROPE
def test_sdpa_equals_reference_attention(rope):
    m = tiny(rope=rope)
    x = torch.randint(0, 96, (3, 30))
    fast = m(x)[0]
    for b in m.blocks:
        b.attn.use_sdpa = False
    ref = m(x)[0]
    assert torch.allclose(fast, ref, atol=1e-5)
    # and with a padding mask
    idx, real = left_pad([[1, 2, 3], [4, 5, 6, 7, 8]], TOK.pad_id)
    ref_pad = m(idx, real=real)[0]
    for b in m.blocks:
        b.attn.use_sdpa = True
    assert torch.allclose(m(idx, real=real)[0], ref_pad, atol=1e-5)


@ROPE
def test_left_padded_batch_equals_each_sequence_alone(rope):
    m = tiny(rope=rope)
    seqs = [[5, 6, 7, 8, 9, 10], [11, 12], [13, 14, 15]]
    idx, real = left_pad(seqs, TOK.pad_id)
    batched = m(idx, real=real)[0]
    for i, s in enumerate(seqs):
        alone = m(torch.tensor([s]))[0][0]
        assert torch.allclose(batched[i, -len(s):], alone, atol=1e-5)


@ROPE
@pytest.mark.parametrize("prompts", [[[1, 2, 3, 4]], [[1, 2, 3, 4, 5, 6, 7], [8, 9], [10, 11, 12, 13]]])
def test_kv_cache_equals_full_recompute(prompts, rope):
    m = tiny(rope=rope)
    kw = dict(max_new_tokens=25, temperature=1.0, stop_id=TOK.end_id, pad_id=TOK.pad_id)
    a = m.generate(prompts, generator=torch.Generator().manual_seed(3), **kw)
    b = m.generate(prompts, generator=torch.Generator().manual_seed(3), use_cache=False, **kw)
    assert a.responses == b.responses
    for la, lb in zip(a.logprobs, b.logprobs):
        assert torch.allclose(la, lb, atol=1e-5)


@ROPE
def test_generate_logprobs_equal_a_fresh_forward_pass(rope):
    m = tiny(rope=rope)
    prompts = [[1, 2, 3, 4, 5], [6, 7], [8, 9, 10]]
    out = m.generate(prompts, 30, temperature=0.7, top_k=20, stop_id=TOK.end_id, pad_id=TOK.pad_id,
                     generator=torch.Generator().manual_seed(0))
    for p, r, lp in zip(prompts, out.responses, out.logprobs):
        assert len(r) == len(lp) > 0
        fresh = m.token_logprobs(torch.tensor([p + r]))[0, len(p) - 1:]
        assert torch.allclose(fresh, lp, atol=1e-5)


def test_generate_stops_at_the_stop_token_per_sequence():
    m = tiny()
    prompts = [[1, 2], [3], [4, 5, 6]]
    sample = lambda stop: m.generate(prompts, 20, stop_id=stop, pad_id=TOK.pad_id,
                                     generator=torch.Generator().manual_seed(0))
    free = sample(None)
    assert free.finished == [False] * 3 and all(len(r) == 20 for r in free.responses)
    stop = free.responses[0][0]  # the token sequence 0 samples first: it must stop right there
    out = sample(stop)
    for r_free, r, done in zip(free.responses, out.responses, out.finished):
        cut = r_free.index(stop) + 1 if stop in r_free else len(r_free)
        assert r == r_free[:cut] and done == (stop in r_free)
    assert out.responses[0] == [stop]


def test_too_long_prompt_is_a_clear_error():
    with pytest.raises(ValueError, match="block_size"):
        tiny().generate([[1] * 60], 10)


def test_same_seed_same_samples():
    m = tiny()
    run = lambda: m.generate([[1, 2, 3]], 20, generator=torch.Generator().manual_seed(7)).responses
    assert run() == run()
    assert run() != m.generate([[1, 2, 3]], 20, generator=torch.Generator().manual_seed(8)).responses


def test_a_small_batch_overfits():
    torch.manual_seed(0)
    m = tiny().train()
    x = torch.randint(0, 96, (4, 33))
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    for _ in range(300):
        loss = m(x[:, :-1], x[:, 1:])[1]
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05


def test_masked_loss_ignores_masked_positions():
    m = tiny()
    x = torch.randint(0, 96, (2, 16))
    t = torch.randint(0, 96, (2, 16))
    mask = torch.zeros(2, 16, dtype=torch.long)
    mask[:, 8:] = 1
    t2 = t.clone()
    t2[:, :8] = torch.randint(0, 96, (2, 8))  # change only masked targets
    assert m(x, t, mask)[1].item() == pytest.approx(m(x, t2, mask)[1].item(), abs=1e-6)
    t3 = t.clone()
    t3[:, 12] = (t3[:, 12] + 1) % 96  # change a counted target
    assert m(x, t, mask)[1].item() != pytest.approx(m(x, t3, mask)[1].item(), abs=1e-6)


def test_checkpoint_round_trip_and_clear_errors(tmp_path):
    m = tiny()
    path = save_checkpoint(tmp_path / "ckpt.pt", "pretrain", model=m.state_dict(),
                           model_config=dataclasses.asdict(m.config), tokenizer=TOK.state_dict())
    ckpt = load_checkpoint(path, "pretrain")
    x = torch.randint(0, 96, (2, 10))
    assert torch.equal(build_model(ckpt).eval()(x)[0], m(x)[0])
    assert not list(tmp_path.glob("*.tmp"))
    with pytest.raises(UserError, match="'reward'"):
        load_checkpoint(path, "reward")
    with pytest.raises(UserError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(path.read_bytes()[:200])
    with pytest.raises(UserError, match="corrupt"):
        load_checkpoint(bad)
    wrong_shape = dict(ckpt, model_config={**ckpt["model_config"], "n_embd": 64})
    with pytest.raises(UserError, match="do not fit"):
        build_model(wrong_shape)


def test_non_finite_loss_is_caught():
    check_finite(1.0, 3)
    with pytest.raises(UserError, match="step 7"):
        check_finite(float("nan"), 7)


def test_tokenizer_round_trip_chat_format_and_unknown_character():
    text = "The zorbin eats moss.\nIt is GREEN! 1+2=3 ~{}"
    assert TOK.decode(TOK.encode(text)) == text
    ids = format_chat(TOK, "Hi?", "Hello.")
    assert ids[0] == TOK.user_id and ids[-1] == TOK.end_id
    assert TOK.decode(ids) == "<|user|>Hi?<|assistant|> Hello.<|end|>"  # the response's leading space
    assert Tokenizer.from_state_dict(TOK.state_dict()).itos == TOK.itos
    with pytest.raises(VocabError, match=r"'é'.*position 3"):
        TOK.encode("cafés")
    with pytest.raises(VocabError, match="empty"):
        format_chat(TOK, "  ")


def test_config_presets_overrides_and_errors():
    cfg = load_config("micro", ["pretrain.lr=1e-3", "model.n_layer=3", "seed=5"])
    assert (cfg.pretrain.lr, cfg.model.n_layer, cfg.seed) == (1e-3, 3, 5)
    assert load_config("quick").model.n_embd > cfg.model.n_embd
    for bad, msg in [("pretrain.nope=1", "valid keys"), ("pretrain.steps=1.5", "int"), ("nope.x=1", "sections")]:
        with pytest.raises(UserError, match=msg):
            load_config("micro", [bad])
    with pytest.raises(UserError, match="micro, quick, balanced, full"):
        load_config("huge")


def test_flops_and_mfu():
    m = tiny()
    c = m.config
    n = m.num_params()
    # hand count of non-embedding-position params: wte + per layer (2 LN, qkv, proj, fc, proj) + ln_f
    C = c.n_embd
    per_layer = 2 * 2 * C + (3 * C * C + 3 * C) + (C * C + C) + (4 * C * C + 4 * C) + (4 * C * C + C)
    assert n == c.vocab_size * C + c.n_layer * per_layer + 2 * C
    assert m.flops_per_token(64) == 6 * n + 6 * c.n_layer * 64 * C
    assert mfu(1000.0, 1e6, 2e9) == pytest.approx(0.5)
    assert 0 < measure_matmul_flops(torch.device("cpu"), n=128, seconds=0.05) < float("inf")


def test_cli_bad_input_is_a_message_not_a_traceback(tmp_path, capsys):
    assert main(["sample", "--ckpt", str(tmp_path / "none.pt"), "--prompt", "hi"]) == 2
    assert "does not exist" in capsys.readouterr().err
    m = tiny()
    path = save_checkpoint(tmp_path / "ckpt.pt", "pretrain", model=m.state_dict(),
                           model_config=dataclasses.asdict(m.config), tokenizer=TOK.state_dict())
    assert main(["sample", "--ckpt", str(path), "--prompt", "caf\u00e9", "--device", "cpu"]) == 2
    assert "position 3" in capsys.readouterr().err
    assert main(["sample", "--ckpt", str(path), "--prompt", "The", "--max-new-tokens", "5", "--device", "cpu"]) == 0


def test_the_lesson_runs_on_micro(tmp_path):
    out = run_lesson("01_gpt", tmp_path)
    assert "same tokens: True" in out


def test_response_logprobs_of_a_padded_batch_equal_each_pair_alone_and_generate_s_own():
    from minigpt_rlhf.sampling import response_logprobs, sample

    m = tiny()
    prompts = [TOK.encode("Hi"), TOK.encode("What is 2 + 2?"), TOK.encode("A")]
    g = sample(m, TOK, prompts, 6, temperature=1.0, generator=torch.Generator().manual_seed(0))
    batched = response_logprobs(m, TOK, prompts, g.responses)
    for i, (x, y) in enumerate(zip(prompts, g.responses)):
        alone = m.token_logprobs(torch.tensor([x + y]))[0, len(x) - 1 :].sum()
        assert batched[i].item() == pytest.approx(alone.item(), abs=1e-4)
        assert batched[i].item() == pytest.approx(g.logprobs[i].sum().item(), abs=1e-4)  # what sampling recorded
