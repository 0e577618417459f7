"""Lesson 03: supervised fine-tuning on the labelers' demonstrations."""

import dataclasses

import pytest
import torch

from conftest import micro_config, run_lesson
from minigpt_rlhf import sft
from minigpt_rlhf.cli import main
from minigpt_rlhf.model import GPT, GPTConfig
from minigpt_rlhf.runtime import UserError, load_checkpoint, read_metrics, save_checkpoint
from minigpt_rlhf.tokenizer import Tokenizer, format_chat

TOK = Tokenizer()


def test_the_loss_mask_covers_exactly_the_response_tokens():
    examples = [sft.encode_example(TOK, "What is 2 + 3?", "5.", 256), sft.encode_example(TOK, "Hi", "Hello!", 256)]
    idx, targets, mask = sft.collate(examples, TOK.pad_id)
    for i, (ids, n_prompt) in enumerate(examples):
        counted = targets[i][mask[i].bool()].tolist()
        assert counted == ids[n_prompt:]  # every response token and <|end|>, nothing of the prompt
        assert counted[-1] == TOK.end_id
    assert n_prompt == len(format_chat(TOK, "Hi"))


def test_changing_prompt_targets_leaves_the_loss_unchanged():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=TOK.vocab_size, block_size=64, n_layer=1, n_head=2, n_embd=16)).eval()
    idx, targets, mask = sft.collate([sft.encode_example(TOK, "Reverse the word moss.", "ssom", 64)], TOK.pad_id)
    loss = model(idx, targets, mask)[1]
    scrambled = targets.clone()
    scrambled[mask == 0] = torch.randint(0, 96, (int((mask == 0).sum()),))
    assert model(idx, scrambled, mask)[1].item() == pytest.approx(loss.item(), abs=1e-7)
    changed = targets.clone()
    changed[mask == 1] = (changed[mask == 1] + 1) % 96
    assert model(idx, changed, mask)[1].item() != pytest.approx(loss.item(), abs=1e-3)


def test_epoch_batches_hold_every_example_once_and_pad_less_than_random_batches():
    lengths = torch.randint(10, 150, (1000,), generator=torch.Generator().manual_seed(0)).tolist()
    g = torch.Generator().manual_seed(1)
    batches = sft.epoch_batches(lengths, 32, g)
    assert len(batches) == 32 and {len(b) for b in batches} <= {31, 32}
    assert sorted(i for b in batches for i in b) == list(range(1000))

    def real_share(bs):  # real tokens over the tokens of the padded batches
        return sum(lengths[i] for b in bs for i in b) / sum(len(b) * max(lengths[i] for i in b) for b in bs)

    shuffled = torch.randperm(1000, generator=torch.Generator().manual_seed(2)).tensor_split(32)
    assert real_share([b.tolist() for b in shuffled]) < 0.65 < 0.9 < real_share(batches)
    assert sft.epoch_batches(lengths, 32, g) != batches  # the next epoch draws other batches


def test_sft_raises_the_gold_score_over_its_starting_model(micro_run):
    _, run_dir = micro_run
    rows = [r for r in read_metrics(run_dir / "sft" / "metrics.jsonl") if "gold" in r]
    start, chosen = rows[0]["gold"], max(r["gold"] for r in rows[1:])
    assert chosen > start + 0.02, (start, chosen)
    ckpt = load_checkpoint(run_dir / "sft" / "ckpt.pt", "sft")
    assert ckpt["finished"] and ckpt["gold"] == pytest.approx(chosen, abs=1e-3)  # the stated selection rule


def test_wrong_kind_or_missing_checkpoint_is_a_clear_error(tmp_path, capsys):
    cfg = micro_config()
    with pytest.raises(UserError, match="does not exist"):
        sft.run(cfg, tmp_path / "sft", tmp_path / "pretrain")
    m = GPT(GPTConfig(vocab_size=TOK.vocab_size, n_layer=1, n_head=1, n_embd=8))
    save_checkpoint(tmp_path / "pretrain" / "ckpt.pt", "reward", model=m.state_dict(),
                    model_config=dataclasses.asdict(m.config), tokenizer=TOK.state_dict())
    with pytest.raises(UserError, match="'reward' checkpoint, but a 'pretrain'"):
        sft.run(cfg, tmp_path / "sft", tmp_path / "pretrain")
    assert main(["sft", "--preset", "micro", "--run-dir", str(tmp_path), "--set", f"data_dir={cfg.data_dir}"]) == 2
    assert "'reward' checkpoint" in capsys.readouterr().err


def test_chat_handles_bad_input_without_a_traceback(micro_run, monkeypatch, capsys):
    _, run_dir = micro_run
    lines = iter(["", "caf\u00e9?", "What does the zorbin eat?"])

    def fake_input(prompt=""):
        try:
            return next(lines)
        except StopIteration:
            raise EOFError

    monkeypatch.setattr("builtins.input", fake_input)
    assert main(["chat", "--ckpt", str(run_dir / "sft" / "ckpt.pt"), "--max-new-tokens", "8", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "empty" in out and "position 3" in out and out.count("model> ") == 1 and "bye" in out


def test_the_lesson_runs_on_micro(lesson_run):
    out = run_lesson("03_sft", lesson_run)
    assert "chosen: step" in out and out.count("helpful") == 2
