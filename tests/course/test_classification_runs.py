"""lmlib.course.classification_runs: the articles' Keras network and lmlib's LSTMClassifier are the same network
(the same parameter count, the same outputs and loss from the same weights), WordIndex does what Keras 2's
Tokenizer did, the committed results match the code's settings, and the CLI runs end to end on a tiny sample."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from lmlib.course import classification_runs as C
from lmlib.course.recipes import CHECKPOINTS
from lmlib.data import load_corpus

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # inside Keras

SMALL = C.ClassifyConfig(num_words=40, maxlen=9, d_embed=6, units=5)


def _models(config: C.ClassifyConfig, seed: int = 0, **keras_layers):
    keras = C.import_keras()
    keras.utils.set_random_seed(seed)
    theirs = C.keras_lstm(config)
    ours = C.lmlib_lstm(config)
    C.copy_keras_weights(theirs, ours)
    return keras, theirs, ours


@pytest.mark.parametrize("config", [C.ClassifyConfig(), SMALL], ids=["the chapter's", "small"])
def test_lmlib_s_network_has_keras_s_parameter_count(config):
    keras = C.import_keras()
    theirs, ours = C.keras_lstm(config), C.lmlib_lstm(config)
    assert ours.num_parameters() == theirs.count_params()
    assert [w.shape for w in theirs.get_weights()] == [w.shape for w in C.weights_for_keras(ours)]
    assert keras.backend.backend() == "torch"


def test_same_weights_give_keras_s_probabilities_and_loss():
    """The articles' model (no mask) on texts that fill all maxlen columns, so neither model meets padding."""
    keras, theirs, ours = _models(SMALL)
    ids = np.random.default_rng(0).integers(1, SMALL.num_words, size=(7, SMALL.maxlen))
    labels = np.array([0, 1, 1, 0, 1, 0, 1])
    expected = theirs.predict(ids, verbose=0)[:, 0]
    with torch.no_grad():
        z = ours.logit(torch.as_tensor(ids))
        np.testing.assert_allclose(torch.sigmoid(z).numpy(), expected, rtol=0, atol=1e-6)
        from lmlib.finetune import classification_loss

        keras_loss = float(keras.losses.BinaryCrossentropy()(labels[:, None].astype("float32"), expected[:, None]))
        ours_loss = float(classification_loss(ours(torch.as_tensor(ids)), torch.as_tensor(labels)))
    assert abs(ours_loss - keras_loss) < 1e-5


def test_right_padding_read_by_lmlib_equals_keras_with_mask_zero_on_pre_padding():
    """lmlib skips the padding: Keras does the same with Embedding(mask_zero=True), whichever side pads."""
    keras, _, ours = _models(SMALL)
    masked = keras.Sequential([keras.Input(shape=(SMALL.maxlen,), dtype="int32"),
                               keras.layers.Embedding(SMALL.num_words, SMALL.d_embed, mask_zero=True),
                               keras.layers.LSTM(SMALL.units), keras.layers.Dense(1, activation="sigmoid")])
    masked.set_weights(C.weights_for_keras(ours))
    texts = [[5, 6, 7], [8], list(range(1, 10)), [3, 3, 30, 31, 2]]
    pre = keras.utils.pad_sequences(texts, maxlen=SMALL.maxlen, padding="pre")
    post = keras.utils.pad_sequences(texts, maxlen=SMALL.maxlen, padding="post")
    with torch.no_grad():
        ours_p = torch.sigmoid(ours.logit(torch.as_tensor(post))).numpy()
    np.testing.assert_allclose(ours_p, masked.predict(pre, verbose=0)[:, 0], rtol=0, atol=1e-6)


def test_word_index_numbers_words_as_keras_2_s_tokenizer():
    index = C.WordIndex(num_words=4)
    index.fit_on_texts(["The cat, the HAT.", "a cat's hat!", "dog"])
    # by count, ties first seen first; lower-cased; Keras's filters remove , . ! but not the apostrophe
    assert index.word_index == {"the": 1, "hat": 2, "cat": 3, "a": 4, "cat's": 5, "dog": 6}
    # ids below num_words are kept, others dropped, unknown words dropped (no oov_token)
    assert index.texts_to_sequences(["the dog ate a cat", "zebra"]) == [[1, 3], []]
    unlimited = C.WordIndex()
    unlimited.fit_on_texts(["b a b"])
    assert unlimited.texts_to_sequences(["a b c"]) == [[2, 1]]
    assert C.text_to_word_sequence("Hello,world\tand\nmore--") == ["hello", "world", "and", "more"]


def test_pad_sequences_keep_the_last_words_on_either_side():
    index = C.WordIndex(num_words=10)
    index.fit_on_texts(["a b c d e"])
    pre = C.sequences(["a b c d e", "a"], index, maxlen=3, padding="pre")
    post = C.sequences(["a b c d e", "a"], index, maxlen=3, padding="post")
    assert pre.tolist() == [[3, 4, 5], [0, 0, 1]] and post.tolist() == [[3, 4, 5], [1, 0, 0]]


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: C.WordIndex(num_words=1), ValueError, "num_words must be >= 2"),
        (lambda: C.WordIndex().fit_on_texts("one text"), TypeError, "a list of texts"),
        (lambda: C.WordIndex().texts_to_sequences(["a"]), ValueError, "call fit_on_texts"),
        (lambda: C.run_task("polarity_en", only=["svm"]), ValueError, "unknown methods"),
        (lambda: C.load_task("imdb", C.ClassifyConfig()), ValueError, "unknown task 'imdb'"),
        (lambda: C.copy_keras_weights(C.keras_lstm(SMALL), C.lmlib_lstm(C.ClassifyConfig())), ValueError,
         "build both from one ClassifyConfig"),
    ],
)
def test_bad_input_gets_a_clear_error(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_the_cli_names_bad_options(capsys):
    for argv, message in [(["polarity_en", "--only", "svm"], "unknown methods"),
                          (["polarity_en", "--limit", "4"], "at least 10")]:
        with pytest.raises(SystemExit):
            C.main(argv)
        assert message in capsys.readouterr().err


def test_the_cli_runs_end_to_end_on_a_tiny_sample(tmp_path):
    C.main(["polarity_en", "--limit", "20", "--only", "majority", "bow", "lmlib_lstm", "keras_lstm",
            "--out", str(tmp_path)])
    result = json.loads((tmp_path / "classification_polarity_en.json").read_text())
    assert result["limit"] == 20 and len(result["labels"]) == 20 and result["labels"].count("1") == 10
    methods = result["methods"]
    assert list(methods) == ["majority", "bow", "lmlib_lstm", "keras_lstm"]
    for info in methods.values():
        p = np.array(info["probability"])
        assert len(p) == 20 and ((0 <= p) & (p <= 1)).all() and set(info["predicted"]) <= {"0", "1"}
    assert methods["lmlib_lstm"]["parameters"] == methods["keras_lstm"]["parameters"] == 689_473
    assert len(methods["keras_lstm"]["train_loss"]) == 5  # one curve per fold


def _short_texts(task, train, test, config, info):
    """A stand-in classifier that measures a share on its test examples, as word2vec, minilm and gpt do."""
    C._add_share(info, "short", sum(len(task.words[i]) < 15 for i in test), len(test))
    return np.full(len(test), 0.5)


def test_a_share_covers_every_fold_s_test_examples_not_the_last_fold_s(monkeypatch):
    monkeypatch.setitem(C.METHODS, "short", ("short texts", _short_texts))
    info = C.run_task("polarity_en", only=["short"])["methods"]["short"]
    task = C.load_task("polarity_en", C.ClassifyConfig())
    by_fold = [np.mean([len(task.words[i]) < 15 for i in test]) for _, test in task.folds]
    assert info["short_by_fold"] == [round(float(x), 4) for x in by_fold] and len(set(by_fold)) > 1
    assert info["short"] == round(float(np.mean([len(w) < 15 for w in task.words])), 4)
    assert "_sums" not in info
    one_fold = C.run_task("reviews_zh", only=["short"], limit=20)["methods"]["short"]
    assert "short_by_fold" not in one_fold and 0 <= one_fold["short"] <= 1


def test_the_committed_shares_cover_every_fold():
    result = C.load_results("polarity_en")["methods"]
    for key, share in (("word2vec", "test_words_known"), ("minilm", "test_unknown_token_share"), ("gpt", "cut_short")):
        by_fold = result[key][f"{share}_by_fold"]
        assert len(by_fold) == 5 and abs(result[key][share] - np.mean(by_fold)) < 1e-4  # folds of 40 each


@pytest.mark.parametrize("task", ["reviews_zh", "polarity_en"])
def test_the_committed_results_were_made_with_the_code_s_settings_on_the_task_s_examples(task):
    path = CHECKPOINTS / f"classification_{task}.json"
    if not path.exists():
        pytest.fail(f"{path} is missing: run python -m lmlib.course.classification_runs {task}")
    result = json.loads(path.read_text())
    assert result["config"] == json.loads(json.dumps(dataclasses.asdict(C.ClassifyConfig()))), (
        f"{path.name} was made with other settings than the code has now: re-run "
        f"python -m lmlib.course.classification_runs {task}")
    assert result["limit"] is None and list(result["methods"]) == list(C.METHODS)
    label_of = dict(load_corpus(task, "all"))
    gold = [C.LABELS.index(label_of[text]) for text in C.scored_texts(task)]
    assert result["labels"] == "".join(map(str, gold))
    for info in result["methods"].values():
        p = np.array(info["probability"])
        assert len(p) == len(gold) and len(info["predicted"]) == len(gold)
        sure = np.abs(p - 0.5) > 1e-4  # the stored prediction is the unrounded probability's side of 1/2
        assert ((p[sure] > 0.5) == np.array([c == "1" for c in info["predicted"]])[sure]).all()


def test_the_cli_reruns_other_seeds_into_their_own_file(tmp_path):
    C.main(["reviews_zh", "--limit", "12", "--only", "majority", "lmlib_lstm", "--seeds", "1", "2",
            "--out", str(tmp_path)])
    assert not (tmp_path / "classification_reviews_zh.json").exists()
    result = json.loads((tmp_path / "classification_reviews_zh_seeds.json").read_text())
    assert [run["seed"] for run in result["seeds"]] == [1, 2] and len(result["labels"]) == 12
    for run in result["seeds"]:
        assert list(run["methods"]) == ["majority", "lmlib_lstm"]
        lstm = run["methods"]["lmlib_lstm"]
        assert "probability" not in lstm and len(lstm["predicted"]) == 12


def test_the_committed_seed_reruns_were_made_with_the_code_s_settings():
    result = C.load_results("reviews_zh", seeds=True)
    assert result["config"] == json.loads(json.dumps(dataclasses.asdict(C.ClassifyConfig())))
    assert result["limit"] is None and [run["seed"] for run in result["seeds"]] == [1, 2]
    assert result["labels"] == C.load_results("reviews_zh")["labels"]
    for run in result["seeds"]:
        assert list(run["methods"]) == ["keras_lstm", "lmlib_lstm"]


def test_importing_lmlib_does_not_import_keras():
    import subprocess
    import sys

    code = ("import sys, lmlib, lmlib.rnn, lmlib.finetune, lmlib.course.classification_runs; "
            "print('keras' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
