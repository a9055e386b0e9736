"""The classification chapter's runs: every classifier of its table on one task, written with each test example's
probability to ``checkpoints/classification_{task}.json``, which the chapter loads (its intervals, paired
comparisons and error analysis are computed from those probabilities).

    python -m lmlib.course.classification_runs reviews_zh    # train on 13,888 Chinese reviews, test on 1,735
    python -m lmlib.course.classification_runs polarity_en   # 200 English sentences, 5-fold cross-validation
    python -m lmlib.course.classification_runs --list
    options: --only METHOD ... (a subset of METHODS), --limit N (N examples per split: a quick check), --out DIR,
             --seeds S ... (re-run with other seeds: classification_{task}_seeds.json, the seed-to-seed spread)

The classifiers (``METHODS``): the majority class; logistic regression on bag-of-words counts, on averaged
Word2Vec vectors (lmlib's ``Word2Vec``, trained here without labels) and on all-MiniLM-L6-v2's frozen sentence
embeddings; the articles' Keras LSTM, run with Keras 3 on the torch backend, and the same network in lmlib
(``lmlib.rnn.LSTMClassifier``); a GPT fine-tuned with the fine-tuning chapter's head and settings
(``lmlib.course.finetune_runs``: mean pooling, full fine-tuning at its chosen learning rate). Chinese is read as
jieba words, except by the GPT, which reads the characters its People's Daily pretraining saw.

The articles' Keras 2 code does not run as written on Keras 3: ``keras.preprocessing.text.Tokenizer`` is gone, and
its successor ``keras.layers.TextVectorization`` needs TensorFlow, which a torch-backend install does not have;
``WordIndex`` below does what ``Tokenizer`` did. ``pad_sequences`` runs under both names,
``keras.preprocessing.sequence.pad_sequences`` (the articles') and ``keras.utils.pad_sequences`` (the one Keras 3
documents): they are the same function. ``Embedding``'s ``input_length`` is deprecated (a warning: remove it); the
rest of the articles' model, ``compile`` and ``fit`` run as written.

Shares measured on the scored examples (``test_words_known``, ``test_unknown_token_share``, ``cut_short``) cover
every fold's test examples, with each fold's in ``..._by_fold`` where there are several folds.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from lmlib.course.recipes import CHECKPOINTS

LABELS = ("neg", "pos")  # class 1 is positive; every probability stored is P(positive)
FOLD_SEED = 0  # polarity_en's folds, and the --limit samples: the fine-tuning chapter's, whatever the models' seed


@dataclasses.dataclass(frozen=True)
class ClassifyConfig:
    # the articles' Keras network and training, and lmlib's copy of it
    num_words: int = 5000  # Tokenizer(num_words=...): the 4,999 most frequent training words get ids 1..4999
    maxlen: int = 100  # pad_sequences(maxlen=...): a longer text keeps its last 100 words (truncating="pre")
    d_embed: int = 128
    units: int = 64  # LSTM(64)
    epochs: int = 5
    batch_size: int = 32
    lr: float = 1e-3  # Adam's default learning rate in Keras
    # averaged Word2Vec: skip-gram vectors trained without labels (English: wiki + news; Chinese: the training
    # reviews' words)
    w2v_size: int = 100
    w2v_epochs: int = 5
    w2v_min_count: int = 3
    # the fine-tuned GPT: the fine-tuning chapter's settings (finetune_runs.RunConfig), at its chosen rate
    gpt_body_zh: str = "gpt_chars_peoples_daily"  # the fine-tuning chapter's body
    gpt_body_en: str = "gpt_bpe_wiki"
    folds: int = 5  # polarity_en: the fine-tuning chapter's stratified folds (FOLD_SEED)
    seed: int = 0  # the models' initialisation and batch order (--seeds re-runs with others)


# --- the articles' pipeline: Tokenizer -> pad_sequences -> Embedding -> LSTM(64) -> Dense(sigmoid) -------------

KERAS_FILTERS = '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'  # Tokenizer's default: removed before splitting


def text_to_word_sequence(text: str, filters: str = KERAS_FILTERS,
                          lower: bool = True) -> list[str]:
    """Keras 2's ``text_to_word_sequence``: lower-case, turn each filtered character
    into a space, split on spaces."""
    if lower:
        text = text.lower()
    spaced = text.translate(str.maketrans(dict.fromkeys(filters, " ")))
    return [w for w in spaced.split(" ") if w]


class WordIndex:
    """What the articles' ``keras.preprocessing.text.Tokenizer(num_words)`` did (Keras 2;
    gone in Keras 3): ``fit_on_texts`` numbers the words by frequency from 1 (ties: first
    seen first; 0 stays free for padding), ``texts_to_sequences`` keeps the ids below
    ``num_words`` and drops every other word."""

    def __init__(self, num_words: int | None = None):
        if num_words is not None and num_words < 2:
            raise ValueError(f"num_words must be >= 2 (0 is padding), got {num_words}")
        self.num_words, self.word_index = num_words, {}

    def fit_on_texts(self, texts: Sequence[str]) -> None:
        _check_texts(texts)
        counts = Counter(w for text in texts for w in text_to_word_sequence(text))
        ranked = sorted(counts, key=counts.get, reverse=True)  # stable: ties keep order
        self.word_index = {w: i for i, w in enumerate(ranked, start=1)}

    def texts_to_sequences(self, texts: Sequence[str]) -> list[list[int]]:
        _check_texts(texts)
        if not self.word_index:
            raise ValueError("the word index is empty: call fit_on_texts(texts) first")
        limit = self.num_words or len(self.word_index) + 1
        ids = [[self.word_index.get(w, limit) for w in text_to_word_sequence(text)]
               for text in texts]
        return [[i for i in row if i < limit] for row in ids]


def _check_texts(texts: Sequence[str]) -> None:
    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
        raise TypeError("expected a list of texts (strings); for one text, pass [text]")


def import_keras():
    """Keras 3 on the torch backend, imported only where it is used (``import lmlib`` never imports it)."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras

    if keras.backend.backend() != "torch":
        raise RuntimeError(f"Keras runs on the {keras.backend.backend()!r} backend here; the course runs it on "
                           "torch: set KERAS_BACKEND=torch before Keras is first imported")
    return keras


def keras_lstm(config: ClassifyConfig):
    """The articles' network, compiled as they compile it."""
    keras = import_keras()
    model = keras.Sequential([
        keras.Input(shape=(config.maxlen,), dtype="int32"),  # count_params() before fit
        keras.layers.Embedding(config.num_words, config.d_embed),  # no input_length
        keras.layers.LSTM(config.units),
        keras.layers.Dense(1, activation="sigmoid"),
    ])
    model.compile(loss="binary_crossentropy", optimizer=keras.optimizers.Adam(config.lr),
                  metrics=["accuracy"])
    return model


def lmlib_lstm(config: ClassifyConfig):
    """The same network in lmlib: Embedding -> LSTM -> Dense(1), the same numbers of parameters."""
    from lmlib.rnn import LSTMClassifier, LSTMClassifierConfig

    return LSTMClassifier(LSTMClassifierConfig(config.num_words, config.d_embed, config.units))


# LSTMClassifier's parameters in the order of the Keras model's get_weights(): embeddings, kernel,
# recurrent_kernel, bias, then Dense's kernel and bias; Keras stores its kernels transposed
KERAS_ORDER = ("embed.weight", "weight_ih", "weight_hh", "bias", "head.weight", "head.bias")


def copy_keras_weights(keras_model, model) -> None:
    """Put a Keras model's weights (``keras_lstm``) into an ``LSTMClassifier``: the kernels
    transposed, the gates in the same order (i, f, g, o)."""
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, weight in zip(KERAS_ORDER, keras_model.get_weights(), strict=True):
            theirs = torch.as_tensor(np.asarray(weight))
            theirs = theirs.T if theirs.ndim == 2 and name != "embed.weight" else theirs
            if params[name].shape != theirs.shape:
                raise ValueError(f"the Keras model has a weight of shape {tuple(theirs.shape)} where the lmlib "
                                 f"model's {name} is {tuple(params[name].shape)}: build both from one ClassifyConfig")
            params[name].copy_(theirs)


def weights_for_keras(model) -> list[np.ndarray]:
    """An ``LSTMClassifier``'s parameters as a Keras model's ``set_weights`` takes them."""
    params = {name: p.detach().cpu().numpy() for name, p in model.named_parameters()}
    return [params[name].T if params[name].ndim == 2 and name != "embed.weight" else params[name]
            for name in KERAS_ORDER]


def sequences(texts: Sequence[str], index: WordIndex, maxlen: int, padding: str) -> np.ndarray:
    """[N, maxlen] ids: ``keras.utils.pad_sequences`` as the articles call it (``padding="pre"``), or
    right-padded (``"post"``) for lmlib; both keep a long text's last ``maxlen`` words."""
    keras = import_keras()
    return keras.utils.pad_sequences(index.texts_to_sequences(texts), maxlen=maxlen, padding=padding,
                                     truncating="pre")


def article_texts(texts: Sequence[str], lang: str, words: Sequence[Sequence[str]] | None = None) -> list[str]:
    """What the articles hand to ``Tokenizer``: English as it is, Chinese cut into words by jieba
    and joined with spaces (``Tokenizer`` splits on spaces); ``words``: jieba's words, if at hand."""
    if lang == "zh":
        from lmlib.tokenize import segment_zh

        return [" ".join(w) for w in words] if words is not None else [" ".join(segment_zh(t)) for t in texts]
    return list(texts)


# --- the classifiers: each fits on training examples and gives P(positive) for test examples -----------------


@dataclasses.dataclass
class Task:
    name: str
    lang: str
    texts: list[str]
    labels: np.ndarray  # [N] 0/1
    folds: list[tuple[np.ndarray, np.ndarray]]  # (train rows, test rows); the test rows of all folds, in order,
    valid: np.ndarray | None  # are the examples scored; rows for Keras's per-epoch validation (or None)
    words: list[list[str]] = dataclasses.field(default_factory=list)  # each text's words (jieba / lower-cased)

    @property
    def test_rows(self) -> np.ndarray:
        return np.concatenate([test for _, test in self.folds])


def load_task(name: str, config: ClassifyConfig, limit: int | None = None) -> Task:
    """``reviews_zh``: train on the train split, score the test split (the valid split: Keras's validation data).
    ``polarity_en``: all 200 sentences, each scored by the model of the fold that held it out.
    ``limit``: a stratified sample of that many examples per split (or in all), for a quick check."""
    from lmlib.data import load_corpus
    from lmlib.finetune import stratified_subset

    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; the tasks are {', '.join(TASKS)}")
    splits = ("train", "valid", "test") if name == "reviews_zh" else ("all",)
    texts, labels, rows = [], [], {}
    for split in splits:
        pairs = load_corpus(name, split)
        if limit is not None:
            pairs = [pairs[i] for i in stratified_subset([y for _, y in pairs], min(limit, len(pairs)), FOLD_SEED)]
        rows[split] = np.arange(len(texts), len(texts) + len(pairs))
        texts += [t for t, _ in pairs]
        labels += [LABELS.index(y) for _, y in pairs]
    labels = np.array(labels)
    if name == "reviews_zh":
        folds, valid = [(rows["train"], rows["test"])], rows["valid"]
    else:
        from sklearn.model_selection import StratifiedKFold

        splitter = StratifiedKFold(config.folds, shuffle=True, random_state=FOLD_SEED)
        folds, valid = [(train, test) for train, test in splitter.split(texts, labels)], None
    task = Task(name, TASKS[name], texts, labels, folds, valid)
    task.words = _words(texts, task.lang)
    return task


def _words(texts: list[str], lang: str) -> list[list[str]]:
    from lmlib.tokenize import segment_zh, word_tokenize

    return [segment_zh(t) if lang == "zh" else word_tokenize(t, lowercase=True) for t in texts]


def logistic_regression(train_features, train_labels, test_features, seed: int = 0) -> np.ndarray:
    """P(positive) from scikit-learn's logistic regression (every feature set's classifier here, as in the
    fine-tuning chapter)."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(max_iter=2000, random_state=seed).fit(train_features, train_labels)
    return model.predict_proba(test_features)[:, 1]


def majority(task: Task, train, test, config: ClassifyConfig, info: dict) -> np.ndarray:
    """Always the most frequent training class (its probability: that class's share)."""
    share = task.labels[train].mean()
    info["parameters"] = 1
    return np.full(len(test), share)


def bag_of_words(task: Task, train, test, config: ClassifyConfig, info: dict) -> np.ndarray:
    """Word counts: English as scikit-learn's ``CountVectorizer`` splits it (the fine-tuning chapter's baseline),
    Chinese as jieba's words."""
    from sklearn.feature_extraction.text import CountVectorizer

    if task.lang == "zh":
        vectorizer, docs = CountVectorizer(analyzer=lambda words: words), task.words
    else:
        vectorizer, docs = CountVectorizer(), task.texts
    features = vectorizer.fit_transform([docs[i] for i in train])
    info.setdefault("parameters_by_fold", []).append(features.shape[1] + 1)  # each fold's own vocabulary
    info["parameters"] = max(info["parameters_by_fold"])
    return logistic_regression(features, task.labels[train], vectorizer.transform([docs[i] for i in test]))


def averaged_word2vec(task: Task, train, test, config: ClassifyConfig, info: dict) -> np.ndarray:
    """Each text as the mean of its words' Word2Vec vectors (``lmlib.word2vec.average_vectors``)."""
    from lmlib.word2vec import Word2Vec, average_vectors

    if task.lang == "zh":  # in-domain text, without its labels
        sentences = [task.words[i] for i in train]
        kv = Word2Vec(vector_size=config.w2v_size, sg=1, min_count=config.w2v_min_count,
                      epochs=config.w2v_epochs, seed=config.seed).fit(sentences, progress=False).to_keyed_vectors()
    else:  # 160 sentences are too few to learn vectors from: the course's English text, the same for every fold
        sentences, kv = _english_word2vec(config)
    known = [sum(w in kv.key_to_index for w in task.words[i]) / max(1, len(task.words[i])) for i in test]
    _add_share(info, "test_words_known", sum(known), len(test))  # the mean over texts of each text's share
    info |= {"parameters": config.w2v_size + 1, "word2vec_words": len(kv), "word2vec_corpus_words":
             sum(map(len, sentences))}
    return logistic_regression(average_vectors([task.words[i] for i in train], kv), task.labels[train],
                               average_vectors([task.words[i] for i in test], kv))


@functools.cache
def _english_word2vec(config: ClassifyConfig):
    from lmlib.course.recipes import lowercase_word_sentences
    from lmlib.word2vec import Word2Vec

    sentences = lowercase_word_sentences("wiki", "train") + lowercase_word_sentences("news", "train")
    return sentences, Word2Vec(vector_size=config.w2v_size, sg=1, min_count=config.w2v_min_count,
                               epochs=config.w2v_epochs, seed=config.seed).fit(sentences, progress=False
                                                                               ).to_keyed_vectors()


def minilm_embeddings(task: Task, train, test, config: ClassifyConfig, info: dict) -> np.ndarray:
    """all-MiniLM-L6-v2's frozen sentence embeddings (mean pooling; ``lmlib.pretraining``)."""
    from lmlib.pretraining import load_minilm, sentence_embeddings

    tokenizer, encoder = load_minilm()
    rows = np.concatenate([train, test])
    embedded = dict(zip(rows.tolist(), sentence_embeddings([task.texts[i] for i in rows], tokenizer,
                                                           encoder).numpy(), strict=True))
    ids = tokenizer([task.texts[i] for i in test], truncation=True, max_length=256)["input_ids"]
    _add_share(info, "test_unknown_token_share", sum(t == tokenizer.unk_token_id for row in ids for t in row),
               sum(len(r) - 2 for r in ids))  # of all the tokens, [CLS] and [SEP] left out
    info["parameters"] = encoder.config.hidden_size + 1
    return logistic_regression(np.stack([embedded[i] for i in train]), task.labels[train],
                               np.stack([embedded[i] for i in test]))


def keras_lstm_run(task: Task, train, test, config: ClassifyConfig, info: dict) -> np.ndarray:
    """The articles' code: Tokenizer (here ``WordIndex``) -> pad_sequences -> the Keras model -> fit -> predict."""
    keras = import_keras()
    texts = article_texts(task.texts, task.lang, task.words)
    index = WordIndex(config.num_words)
    index.fit_on_texts([texts[i] for i in train])
    keras.utils.set_random_seed(config.seed)
    model = keras_lstm(config)

    def data(rows):
        return sequences([texts[i] for i in rows], index, config.maxlen, "pre"), task.labels[rows]

    valid = data(task.valid) if task.valid is not None else None
    history = model.fit(*data(train), epochs=config.epochs, batch_size=config.batch_size, validation_data=valid,
                        verbose=2)
    info.setdefault("train_loss", []).append([round(v, 5) for v in history.history["loss"]])
    if valid is not None:
        info["valid_accuracy"] = [round(v, 5) for v in history.history["val_accuracy"]]
    info["parameters"] = model.count_params()
    return model.predict(data(test)[0], batch_size=128, verbose=0)[:, 0]


def lmlib_lstm_run(task: Task, train, test, config: ClassifyConfig, info: dict) -> np.ndarray:
    """The same data (``WordIndex``, the last ``maxlen`` words, right-padded) through ``LSTMClassifier``, trained
    by ``lmlib.finetune.train_classifier`` with Keras's settings: Adam (no weight decay), learning rate, batch
    size, epochs."""
    from lmlib import finetune as FT

    texts = article_texts(task.texts, task.lang, task.words)
    index = WordIndex(config.num_words)
    index.fit_on_texts([texts[i] for i in train])
    torch.manual_seed(config.seed)
    model = lmlib_lstm(config)

    def ids(rows):
        return torch.as_tensor(sequences([texts[i] for i in rows], index, config.maxlen, "post"), dtype=torch.long)

    losses = FT.train_classifier(model, ids(train), torch.as_tensor(task.labels[train]), epochs=config.epochs,
                                 lr=config.lr, batch_size=config.batch_size, seed=config.seed, weight_decay=0.0)
    info.setdefault("train_loss", []).append([round(v, 5) for v in losses])
    if task.valid is not None:
        info["valid_accuracy_final"] = round(FT.accuracy(model, ids(task.valid), torch.as_tensor(
            task.labels[task.valid])), 5)
    info["parameters"] = model.num_parameters()
    return FT.predict_proba(model, ids(test))[:, 1].numpy()


def fine_tuned_gpt(task: Task, train, test, config: ClassifyConfig, info: dict) -> np.ndarray:
    """The fine-tuning chapter's classifier (``finetune_runs.classifier``: a GPT body, a new head, mean pooling),
    fully fine-tuned at the learning rate that chapter chose for full fine-tuning on the valid split."""
    from lmlib import finetune as FT
    from lmlib.course import finetune_runs as R
    from lmlib.course.recipes import bpe_tokenizer, load_checkpoint
    from lmlib.lm import encode_batch
    from lmlib.tokenize import char_tokenize

    run = R.RunConfig()
    lr = json.loads((CHECKPOINTS / "finetune_reviews_zh.json").read_text())["chosen_lr"]["full"]
    body_name = config.gpt_body_zh if task.lang == "zh" else config.gpt_body_en
    body = load_checkpoint(body_name)
    if task.lang == "zh":  # characters without spaces, as the People's Daily model reads
        tokens = [char_tokenize(task.texts[i], keep_spaces=False) for i in range(len(task.texts))]
    else:  # the wiki GPT's byte-level BPE
        tokens = [bpe_tokenizer("wiki").encode(t) for t in task.texts]
    ids = encode_batch(body.vocab, tokens, eos=False, max_tokens=run.max_tokens)
    labels = torch.as_tensor(task.labels)
    model = R.classifier(body, "full", seed=config.seed, config=run)
    row = R.fine_tune(model, "full", (ids[train], labels[train]), {}, lr=lr, seed=config.seed, config=run,
                      device="cpu")
    _add_share(info, "cut_short", sum(len(tokens[i]) >= run.max_tokens for i in test), len(test))
    info |= {"parameters": row["trainable"], "body": body_name, "lr": lr}
    info.setdefault("train_loss_final", []).append(row["final_train_loss"])
    info.setdefault("epochs", []).append(row["epochs"])
    return FT.predict_proba(model, ids[test])[:, 1].numpy()


def _add_share(info: dict, key: str, hits: float, total: float) -> None:
    """A share measured on a fold's test examples: ``info[key]`` is hits / total summed over the folds so far
    (every scored example's, not the last fold's), ``info[key + "_by_fold"]`` each fold's."""
    sums = info.setdefault("_sums", {}).setdefault(key, [0.0, 0.0])  # removed by run_task
    sums[0], sums[1] = sums[0] + hits, sums[1] + total
    info.setdefault(f"{key}_by_fold", []).append(round(float(hits / total), 4))
    info[key] = round(float(sums[0] / sums[1]), 4)


# key -> (name in the chapter's table, the classifier)
METHODS: dict[str, tuple[str, Callable]] = {
    "majority": ("majority class", majority),
    "bow": ("bag of words + logistic regression", bag_of_words),
    "word2vec": ("averaged Word2Vec + logistic regression", averaged_word2vec),
    "minilm": ("MiniLM embeddings + logistic regression", minilm_embeddings),
    "keras_lstm": ("LSTM, Keras (the articles' code)", keras_lstm_run),
    "lmlib_lstm": ("LSTM, lmlib", lmlib_lstm_run),
    "gpt": ("GPT, fine-tuned", fine_tuned_gpt),
}
TASKS = {"reviews_zh": "zh", "polarity_en": "en"}


def run_task(name: str, config: ClassifyConfig = ClassifyConfig(), only: Sequence[str] | None = None,
             limit: int | None = None) -> dict:
    """Every classifier in ``only`` (default: all of ``METHODS``) on the task: P(positive) for each scored example,
    its 0/1 prediction, what it trained and how long it took."""
    unknown = sorted(set(only or ()) - set(METHODS))
    if unknown:
        raise ValueError(f"unknown methods {unknown}; choose among {', '.join(METHODS)}")
    task = load_task(name, config, limit)
    results = {}
    for key in only or METHODS:
        title, fit = METHODS[key]
        info: dict = {}
        start = time.perf_counter()
        probability = np.zeros(len(task.texts))
        for train, test in task.folds:
            probability[test] = fit(task, train, test, config, info)
        info.pop("_sums", None)
        if len(task.folds) == 1:  # one fold: its figures are the task's
            info = {k: v for k, v in info.items() if not k.endswith("_by_fold")}
        scored = probability[task.test_rows]
        info |= {"name": title, "seconds": round(time.perf_counter() - start, 1),
                 "probability": [round(float(p), 4) for p in scored],
                 "predicted": "".join("1" if p > 0.5 else "0" for p in scored)}  # from the unrounded probabilities
        accuracy = float(np.mean((scored > 0.5) == task.labels[task.test_rows]))
        print(json.dumps({"method": key, "accuracy": round(accuracy, 4), "seconds": info["seconds"]}), flush=True)
        results[key] = info
    return {"task": name, "config": dataclasses.asdict(config), "limit": limit,
            "scored": "the test split" if name == "reviews_zh" else f"all, out of {config.folds} folds",
            "labels": "".join(str(y) for y in task.labels[task.test_rows]), "methods": results}


# --- reading the results (the chapter) --------------------------------------------------------------------------


def load_results(task: str, directory: Path = CHECKPOINTS, seeds: bool = False) -> dict:
    """The committed results of ``task`` (``seeds``: of its ``--seeds`` re-runs)."""
    path = directory / f"classification_{task}{'_seeds' if seeds else ''}.json"
    if not path.exists():
        command = f"python -m lmlib.course.classification_runs {task}" + (" --only keras_lstm lmlib_lstm --seeds 1 2"
                                                                           if seeds else "")
        raise FileNotFoundError(f"{path} is missing: make it with {command}")
    return json.loads(path.read_text())


def outcomes(result: dict, key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A method's gold labels, predictions and P(positive), each [N], in the order the examples were scored."""
    if key not in result["methods"]:
        raise KeyError(f"no method {key!r} in the results; they hold {', '.join(result['methods'])}")
    info = result["methods"][key]
    return (np.array([int(c) for c in result["labels"]]), np.array([int(c) for c in info["predicted"]]),
            np.array(info["probability"]))


def scored_texts(task: str, config: ClassifyConfig = ClassifyConfig()) -> list[str]:
    """The texts of ``task`` in the order its results score them (``polarity_en``: fold by fold)."""
    from lmlib.data import load_corpus

    if task == "reviews_zh":
        return [text for text, _ in load_corpus(task, "test")]
    from sklearn.model_selection import StratifiedKFold

    texts, labels = zip(*load_corpus(task, "all"), strict=True)
    folds = StratifiedKFold(config.folds, shuffle=True, random_state=FOLD_SEED).split(texts, labels)
    return [texts[i] for _, test in folds for i in test]


def committed_fine_tuned_minilm(directory: Path = CHECKPOINTS, loop: str = "lmlib loop") -> list[int]:
    """The fine-tuning chapter's MiniLM fine-tuned on ``polarity_en`` (``finetune_polarity_en.json``, the same five
    folds): how many of each fold's 40 test sentences it got right. Only the accuracies were kept, not the
    predictions."""
    result = json.loads((directory / "finetune_polarity_en.json").read_text())
    per_fold = result["examples"] // result["config"]["folds"]
    return [round(row[f"MiniLM fine-tuned, {loop}"] * per_fold) for row in result["rows"]]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lmlib.course.classification_runs",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("task", nargs="?", choices=sorted(TASKS))
    parser.add_argument("--list", action="store_true")
    parser.add_argument("--only", nargs="+", metavar="METHOD", help=f"some of: {' '.join(METHODS)}")
    parser.add_argument("--limit", type=int, help="a stratified sample of N examples per split: a quick check")
    parser.add_argument("--seeds", type=int, nargs="+", metavar="SEED",
                        help="re-run with these seeds instead (the models' initialisation and batch order); writes "
                             "classification_TASK_seeds.json, predictions without probabilities")
    parser.add_argument("--out", type=Path, default=CHECKPOINTS)
    args = parser.parse_args(argv)
    if args.list or not args.task:
        print("\n".join(sorted(TASKS)))
        return
    if args.only:
        unknown = sorted(set(args.only) - set(METHODS))
        if unknown:
            parser.error(f"unknown methods {unknown}; choose among: {' '.join(METHODS)}")
    if args.limit is not None and args.limit < 10:
        parser.error(f"--limit {args.limit}: use at least 10 examples per split (both classes in every fold)")
    torch.set_num_threads(2)  # the course's laptop
    start = time.perf_counter()
    if args.seeds:
        runs = [run_task(args.task, dataclasses.replace(ClassifyConfig(), seed=seed), args.only, args.limit)
                for seed in args.seeds]
        for run in runs:
            for info in run["methods"].values():
                del info["probability"]
        seeds = [{"seed": seed, "methods": run.pop("methods")} for seed, run in zip(args.seeds, runs, strict=True)]
        result = {**runs[0], "config": dataclasses.asdict(ClassifyConfig()), "seeds": seeds}
    else:
        result = run_task(args.task, only=args.only, limit=args.limit)
    result |= {"wall_seconds": round(time.perf_counter() - start, 1), "device": f"CPU, {torch.get_num_threads()} "
               f"threads", "load_average": [round(x, 1) for x in os.getloadavg()], "torch": torch.__version__}
    path = args.out / f"classification_{args.task}{'_seeds' if args.seeds else ''}.json"
    path.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
