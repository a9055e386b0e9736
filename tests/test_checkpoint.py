"""lmlib.checkpoint: a training state written atomically, read back safely, checked against the model, and a
model rebuilt through the seam of lmlib.neural."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from lmlib import train as T
from lmlib.checkpoint import check_digest, load_model, read_checkpoint, save_checkpoint, save_release
from lmlib.mlp import MLPLM
from lmlib.tokenize import Vocab
from tests.train_script import toy_setup


def test_checkpoint_of_another_configuration_names_the_differing_keys(tmp_path):
    model, train_stream, valid_stream, config = toy_setup(steps=2)
    T.train(model, train_stream, None, config, checkpoint=tmp_path / "s.pt", progress=False)
    other = MLPLM(dataclasses.replace(model.config, d_hidden=17, context=3), model.vocab)
    with pytest.raises(ValueError, match=r"another configuration \(context: checkpoint 2 vs model 3, d_hidden"):
        T.train(other, train_stream, None, config, resume=tmp_path / "s.pt", progress=False)
    with pytest.raises(ValueError, match="another TrainConfig.*lr"):
        T.train(toy_setup()[0], train_stream, None, dataclasses.replace(config, lr=0.5),
                resume=tmp_path / "s.pt", progress=False)


def test_checkpoints_are_written_atomically_and_corrupt_files_are_named(tmp_path):
    model, train_stream, _, config = toy_setup(steps=2)
    T.train(model, train_stream, None, config, checkpoint=tmp_path / "s.pt", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.pt"]  # no .partial left behind
    broken = tmp_path / "broken.pt"
    broken.write_bytes((tmp_path / "s.pt").read_bytes()[:1000])
    with pytest.raises(ValueError, match="broken.pt is not a readable lmlib checkpoint"):
        read_checkpoint(broken)
    torch.save({"weights": torch.zeros(2)}, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match="is not an lmlib checkpoint"):
        read_checkpoint(tmp_path / "foreign.pt")


def test_a_half_precision_release_stores_tied_weights_once(tmp_path):
    from lmlib.rnn import RNNConfig, RNNLanguageModel

    vocab = Vocab([f"w{i}" for i in range(300)])
    sizes = {}
    for tied in (False, True):
        torch.manual_seed(0)
        model = RNNLanguageModel(RNNConfig(len(vocab), d_embed=32, d_hidden=32, tie_weights=tied), vocab)
        path = save_checkpoint(tmp_path / f"tied-{tied}.pt", model, None, T.TrainConfig(), 0, {}, half=True)
        sizes[tied] = path.stat().st_size
        weights = read_checkpoint(path)["model"]
        assert (weights["embed.weight"].data_ptr() == weights["out.weight"].data_ptr()) == tied
        restored = RNNLanguageModel(model.config, vocab)
        restored.load_state_dict({k: v.float() for k, v in weights.items()})
        assert torch.equal(restored.out.weight, model.out.weight.half().float())
    assert sizes[True] < 0.8 * sizes[False]  # the 300 x 32 table is stored once


def test_a_release_records_its_sha256_and_an_altered_copy_is_refused(tmp_path):
    import hashlib

    model, _, _, config = toy_setup(steps=2)
    path = save_release(tmp_path / "m.pt", model, config, 0, {})
    digest, name = (tmp_path / "m.pt.sha256").read_text().split()
    assert (digest, name) == (hashlib.sha256(path.read_bytes()).hexdigest(), "m.pt")  # sha256sum's format
    assert read_checkpoint(path)["optimizer"] is None
    check_digest(path, "remake it")  # as recorded: passes
    path.write_bytes(path.read_bytes() + b"0")
    with pytest.raises(ValueError, match=r"m\.pt has SHA-256 .* recorded in m\.pt\.sha256: the file is altered or "
                                         r"corrupt; remake it"):
        check_digest(path, "remake it")
    (tmp_path / "m.pt.sha256").unlink()
    check_digest(path, "remake it", required=False)  # no record to check against
    with pytest.raises(FileNotFoundError, match=r"m\.pt or its \.sha256 is missing; remake it"):
        check_digest(path, "remake it")
    with pytest.raises(FileNotFoundError, match="is missing"):
        check_digest(tmp_path / "none.pt", "remake it", required=False)


def test_load_model_rebuilds_the_saved_model_through_the_seam(tmp_path):
    model, train_stream, _, config = toy_setup(steps=2)
    T.train(model, train_stream, None, config, checkpoint=tmp_path / "s.pt", progress=False)
    loaded = load_model(tmp_path / "s.pt", MLPLM)
    assert loaded.config == model.config and loaded.vocab.itos == model.vocab.itos and not loaded.training
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_bad_loads_and_saves_say_what_is_wrong(tmp_path):
    from lmlib.rnn import RNNLanguageModel
    from lmlib.transformer import GPT, GPTConfig

    model, train_stream, _, config = toy_setup(steps=2)
    T.train(model, train_stream, None, config, checkpoint=tmp_path / "s.pt", progress=False)
    with pytest.raises(ValueError, match=r"holds a lmlib.mlp.MLPLM, not a lmlib.rnn.RNNLanguageModel"):
        load_model(tmp_path / "s.pt", RNNLanguageModel)
    save_checkpoint(tmp_path / "release.pt", model, None, config, 2, {}, half=True)
    with pytest.raises(ValueError, match="release file .* resume from the NAME.state.pt"):
        T.train(model, train_stream, None, config, resume=tmp_path / "release.pt", progress=False)
    with pytest.raises(ValueError, match="has no vocabulary"):
        save_checkpoint(tmp_path / "bare.pt", GPT(GPTConfig(vocab_size=10)), None, config, 0, {})


def test_a_config_saved_before_its_defaults_were_resolved_is_the_same_config(tmp_path):
    """GPTConfig once saved n_kv_heads and d_ff as None (their defaults); a training state from then resumes."""
    from lmlib.checkpoint import check_saved_config
    from lmlib.transformer import GPT, GPTConfig

    vocab = Vocab(["a", "b", "c"])
    model = GPT(GPTConfig(vocab_size=len(vocab), d_model=16, n_heads=2, block_size=8), vocab)
    old = {**dataclasses.asdict(model.config), "n_kv_heads": None, "d_ff": None}
    check_saved_config(old, model, tmp_path / "s.pt")
    with pytest.raises(ValueError, match=r"d_ff: checkpoint 128 vs model 64, d_model: checkpoint 32 vs model 16"):
        check_saved_config({**old, "d_model": 32}, model, tmp_path / "s.pt")
