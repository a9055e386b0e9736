"""The course's recipes: the data, tokenization, model and training that make each of its checkpoints.

``python -m lmlib.course.recipes --list`` prints them; ``python -m lmlib.course.recipes RECIPE`` trains
one with ``lmlib.train`` and writes ``checkpoints/RECIPE.pt`` (float16 weights), its SHA-256 and a JSON
training log; ``load_checkpoint(RECIPE)`` loads it for a chapter after checking the hash and that the
file was made by the recipe as it stands. The same command runs under ``torchrun`` (see the README).

A corpus that is not pinned by a package version (``python_stdlib``: whatever Python runs) is
fingerprinted (``CORPUS_FINGERPRINTS``): the checkpoint and its log record what it was trained on, and
``load_checkpoint`` warns (``CorpusChangedWarning``) when this machine's copy differs.

``--dtype bf16`` trains with bfloat16 matrix products (``lmlib.train.training_precision``: opt-in; the weights
stay float32, and the log records ``"dtype": "bf16"``). The default, float32, made every committed checkpoint:
it is the one that reproduces across CPUs.

This is the course layer: it names corpora, tokenizations and models, so it imports lmlib's models;
the library below it (``lmlib.train``, the models, the tools) never imports it.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from lmlib.checkpoint import check_digest, model_from_state, read_checkpoint, save_release
from lmlib.data import load_corpus, load_python_blocks, stdlib_fingerprint
from lmlib.neural import NeuralLM
from lmlib.tokenize import SPECIALS, BPETokenizer, Vocab, char_tokenize, split_sentences, word_tokenize
from lmlib.train import PRECISIONS, TrainConfig, encode_stream, train, training_precision
from lmlib.transformer import MODERN_BLOCK  # GPTConfig.modern's settings, as plain data

CHECKPOINTS = Path(os.environ.get("LMLIB_CHECKPOINTS", Path(__file__).resolve().parents[2] / "checkpoints"))


@dataclass(frozen=True)
class Recipe:
    """Everything that makes a checkpoint: data, tokenization, model, optimisation, seed."""

    name: str
    description: str
    corpus: str  # an lmlib.data corpus
    tokenization: str  # a key of TOKENIZATIONS
    min_count: int  # rarer training tokens become <unk> (unused where the tokenization has its own vocabulary: "bpe")
    model: str  # a key of MODELS
    model_config: dict = field(default_factory=dict)
    train: TrainConfig = TrainConfig()


def lowercase_word_sentences(corpus: str, split: str) -> list[list[str]]:
    """The n-gram chapter's tokenization, shared by every word-level model compared with it:
    sentences from ``split_sentences``, each lower-cased and split by ``word_tokenize``."""
    return [word_tokenize(s, lowercase=True) for doc in load_corpus(corpus, split) for s in split_sentences(doc)]


def character_sentences(corpus: str, split: str) -> list[list[str]]:
    """Sentences as characters, case kept: English keeps its spaces (one per whitespace run), Chinese
    (``peoples_daily``) has none between its characters."""
    zh = corpus == "peoples_daily"
    return [char_tokenize(s, keep_spaces=not zh) for doc in load_corpus(corpus, split)
            for s in split_sentences(doc, lang="zh" if zh else "en")]


BPE_VOCAB_SIZE = 4000  # entries of the byte-level BPE behind the "bpe" tokenization (bytes and specials included)


@functools.lru_cache(maxsize=4)
def bpe_tokenizer(corpus: str) -> BPETokenizer:
    """The course's byte-level BPE (``BPETokenizer``, ``BPE_VOCAB_SIZE`` entries), trained on the
    corpus's training sentences; training is deterministic, so every call makes the same merges."""
    return BPETokenizer.train(_plain_sentences(corpus, "train"), vocab_size=BPE_VOCAB_SIZE)


def bpe_sentences(corpus: str, split: str) -> list[list[str]]:
    """Sentences as BPE tokens (``bpe_tokenizer``; a space is part of the token after it: ``Ġthe``).

    The sentences are ``character_sentences``' texts, so bits per character compare across the two."""
    bpe = bpe_tokenizer(corpus)
    return [bpe.encode(s) for s in _plain_sentences(corpus, split)]


def bpe_vocab(corpus: str) -> Vocab:
    """``bpe_tokenizer(corpus)``'s own vocabulary as a course ``Vocab``: id i is the tokenizer's id i (its special
    tokens come first, in the course's order), so the model's ids are the ones a Hugging Face tokenizer made
    from the same ``tokenizers`` file gives."""
    itos = bpe_tokenizer(corpus).tokens_by_id()
    if tuple(itos[: len(SPECIALS)]) != SPECIALS:
        raise ValueError(f"the BPE tokenizer's first ids are {itos[:4]}, not the course's special tokens {SPECIALS}")
    return Vocab.from_itos(itos)


def _plain_sentences(corpus: str, split: str) -> list[str]:
    return ["".join(chars) for chars in character_sentences(corpus, split)]


def code_characters(corpus: str, split: str) -> list[list[str]]:
    """A code corpus's top-level blocks (``lmlib.data.python_blocks``) as characters, every one kept: in
    Python, spaces, indentation and line breaks are syntax. Each block is read apart, as a sentence is."""
    if corpus != "python_stdlib":
        raise ValueError(f"the code tokenization reads the corpus 'python_stdlib', got {corpus!r}")
    return [list(block) for block in load_python_blocks(split)]


TOKENIZATIONS: dict[str, Callable[[str, str], list[list[str]]]] = {
    "words_lower": lowercase_word_sentences, "chars": character_sentences, "bpe": bpe_sentences,
    "code_chars": code_characters}
# Tokenizations that come with their own vocabulary (a recipe's min_count does not apply to them).
TOKENIZER_VOCABULARIES: dict[str, Callable[[str], Vocab]] = {"bpe": bpe_vocab}


@functools.cache
def numeral_splits() -> dict[str, list]:
    """``lmlib.numerals.make_splits(seed=0)``: the translation task's splits the recipes train and are tested on."""
    from lmlib.numerals import make_splits

    return make_splits(seed=0)


def character_pairs(corpus: str, split: str, direction: str,
                    max_source: int | None = None) -> list[tuple[list[str], list[str]]]:
    """A translation corpus's (source, target) pairs as characters; the one corpus is ``numerals``
    (``lmlib.numerals``: English and Chinese numbers and dates), ``direction`` "en-zh" or "zh-en".
    ``max_source``: keep only the pairs whose source has at most that many characters."""
    from lmlib.numerals import token_pairs

    if corpus != "numerals":
        raise ValueError(f"the translation recipes read the corpus 'numerals' (lmlib.numerals), got {corpus!r}")
    pairs = token_pairs(numeral_splits()[split], direction)
    return pairs if max_source is None else [(x, y) for x, y in pairs if len(x) <= max_source]


# The length-only control's longest source: its training pairs stop 15 characters short of the longest training
# source (55), as the "longer" split's sources reach 17 beyond it, and its test sources keep the patterns it trained on.
SHORT_SOURCE = 40

# Tokenizations of translation corpora: (corpus, split) -> (source tokens, target tokens) pairs, for a seq2seq model.
PAIR_TOKENIZATIONS: dict[str, Callable[[str, str], list[tuple[list[str], list[str]]]]] = {
    "chars_en_zh": functools.partial(character_pairs, direction="en-zh"),
    "chars_zh_en": functools.partial(character_pairs, direction="zh-en"),
    "chars_en_zh_short": functools.partial(character_pairs, direction="en-zh", max_source=SHORT_SOURCE)}


def _mlp() -> type[NeuralLM]:
    from lmlib.mlp import MLPLM

    return MLPLM


def _rnn() -> type[NeuralLM]:
    from lmlib.rnn import RNNLanguageModel

    return RNNLanguageModel


def _gpt() -> type[NeuralLM]:
    from lmlib.transformer import GPT

    return GPT


def _masked_lm() -> type[NeuralLM]:
    from lmlib.pretraining import MaskedLM

    return MaskedLM


def _seq2seq() -> type[NeuralLM]:
    from lmlib.seq2seq import Seq2Seq

    return Seq2Seq


# A recipe's model: the class, imported when a recipe needs it (a chapter on n-grams loads no Transformer).
MODELS: dict[str, Callable[[], type[NeuralLM]]] = {"mlp": _mlp, "rnn": _rnn, "gpt": _gpt, "masked_lm": _masked_lm,
                                                   "seq2seq": _seq2seq}

# The course's small GPT: 4 layers of width 128 over a window of 128 tokens, each sentence read apart (as the
# n-gram models read them), the window sliding by half over a longer text.
SMALL_GPT = {"block_size": 128, "d_model": 128, "n_layers": 4, "n_heads": 4, "dropout": 0.1,
             "reset_at_bos": True, "window_stride": 64}
GPT_TRAINING = TrainConfig(steps=3000, batch_size=16, block=128, lr=2e-3, warmup=200, eval_every=1000, seed=0)
LSTM_TRAINING = TrainConfig(steps=2000, batch_size=16, block=128, lr=3e-3, warmup=100, eval_every=500, seed=0,
                            layout="sequential")
GPT_CHARS_WIKI = Recipe(
    name="gpt_chars_wiki",
    description="character-level GPT (GPT-2 block) on wiki (case and spaces kept)",
    corpus="wiki", tokenization="chars", min_count=2, model="gpt", model_config=SMALL_GPT, train=GPT_TRAINING,
)

SEQ2SEQ_EN_ZH = Recipe(
    name="seq2seq_numerals_en_zh",
    description="encoder-decoder (post-norm, BART's layout) translating English numbers and dates into "
                "Chinese (lmlib.numerals, characters)",
    corpus="numerals", tokenization="chars_en_zh", min_count=1, model="seq2seq",
    # 96 positions: the longest source of the "longer" test set (72 characters) fits
    model_config={"max_positions": 96, "d_model": 64, "n_heads": 4, "n_encoder_layers": 2,
                  "n_decoder_layers": 2, "dropout": 0.1},
    train=TrainConfig(steps=3000, batch_size=64, lr=2e-3, warmup=200, eval_every=1000, seed=0),
)
# The code model: gpt_chars_wiki_modern's width and depth over a window of 256 characters (about 8 lines of code),
# one top-level block at a time. Characters, not BPE: the parse-rate protocol's prompt "def " is a character
# string (byte-level BPE would end it on a lone "Ġ", a boundary its training never stops at), and the Kneser-Ney
# baseline reads the very same tokens. 3,600 steps of 32 x 256: about 30 minutes of two CPU cores (0.85 CPU
# seconds a step, measured over 20 steps, plus four evaluations of the 500,000 validation characters).
CODE_GPT = {**MODERN_BLOCK, "block_size": 256, "d_model": 128, "n_layers": 4, "n_heads": 4, "dropout": 0.0,
            "reset_at_bos": True, "window_stride": 128}
CODE_TRAINING = TrainConfig(steps=3600, batch_size=32, block=256, lr=2e-3, warmup=200, eval_every=900, seed=0)

RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in [
        Recipe(
            name="mlp_wiki",
            description="Bengio MLP LM, 4-gram context, on wiki words (the n-gram chapter's vocabulary)",
            corpus="wiki", tokenization="words_lower", min_count=2, model="mlp",
            model_config={"context": 3, "d_embed": 32, "d_hidden": 96, "dropout": 0.1},
            train=TrainConfig(steps=3000, batch_size=16, block=64, lr=3e-3, warmup=100, eval_every=500, seed=0),
        ),
        Recipe(
            name="lstm_words_wiki",
            description="LSTM LM on wiki words (the n-gram chapter's vocabulary), tied embeddings",
            corpus="wiki", tokenization="words_lower", min_count=2, model="rnn",
            model_config={"cell": "lstm", "d_embed": 128, "d_hidden": 128, "dropout": 0.2, "tie_weights": True},
            train=dataclasses.replace(LSTM_TRAINING, steps=3000, block=64),
        ),
        Recipe(
            name="lstm_chars_wiki",
            description="character-level LSTM LM on wiki (case and spaces kept)",
            corpus="wiki", tokenization="chars", min_count=2, model="rnn",
            model_config={"cell": "lstm", "d_embed": 32, "d_hidden": 256, "dropout": 0.1},
            train=dataclasses.replace(LSTM_TRAINING, batch_size=32),
        ),
        Recipe(
            name="lstm_chars_peoples_daily",
            description="character-level LSTM LM on People's Daily (Chinese characters)",
            corpus="peoples_daily", tokenization="chars", min_count=2, model="rnn",
            model_config={"cell": "lstm", "d_embed": 64, "d_hidden": 256, "dropout": 0.1},
            train=LSTM_TRAINING,
        ),
        GPT_CHARS_WIKI,
        dataclasses.replace(  # the chapter's measured comparison of the two blocks: all else equal
            GPT_CHARS_WIKI, name="gpt_chars_wiki_modern",
            description="character-level GPT (modern block) on wiki (case and spaces kept): gpt_chars_wiki's twin",
            model_config={**MODERN_BLOCK, **SMALL_GPT},
        ),
        dataclasses.replace(
            GPT_CHARS_WIKI, name="gpt_bpe_wiki", tokenization="bpe", min_count=1,
            description="GPT (GPT-2 block) on wiki, byte-level BPE tokens (bpe_tokenizer's 4,000 ids)",
        ),
        Recipe(
            name="gpt_words_wiki",
            description="GPT (modern block) on wiki words (the n-gram chapter's vocabulary), tied embeddings",
            corpus="wiki", tokenization="words_lower", min_count=2, model="gpt",
            model_config={**MODERN_BLOCK, **SMALL_GPT, "block_size": 64, "d_model": 96, "dropout": 0.2,
                          "window_stride": 32},
            train=dataclasses.replace(GPT_TRAINING, block=64),
        ),
        dataclasses.replace(
            GPT_CHARS_WIKI, name="gpt_chars_peoples_daily", corpus="peoples_daily",
            description="character-level GPT (modern block) on People's Daily (Chinese characters)",
            model_config={**MODERN_BLOCK, **SMALL_GPT},
        ),
        Recipe(
            name="masked_chars_wiki",
            description="masked LM (BERT's objective: the GPT body without the causal mask, rotary positions) "
                        "on wiki characters",
            corpus="wiki", tokenization="chars", min_count=2, model="masked_lm",
            # gpt_chars_wiki's size, with rotary positions: without the causal mask, learned positions kept the
            # model at the unigram plateau (a trial with d_model=64, 2 layers, 400 steps: valid loss 2.94 with
            # learned positions, 2.17 with RoPE); every position reads the whole window, no sentences apart
            model_config={"block_size": 128, "d_model": 128, "n_layers": 4, "n_heads": 4, "dropout": 0.1,
                          "positions": "rope"},
            train=dataclasses.replace(GPT_TRAINING, steps=2000),
        ),
        SEQ2SEQ_EN_ZH,
        dataclasses.replace(
            SEQ2SEQ_EN_ZH, name="seq2seq_numerals_zh_en", tokenization="chars_zh_en",
            description="seq2seq_numerals_en_zh's twin the other way: Chinese numbers and dates into English",
        ),
        dataclasses.replace(  # the translation chapter's length-only control
            SEQ2SEQ_EN_ZH, name="seq2seq_numerals_en_zh_short", tokenization="chars_en_zh_short",
            description=f"seq2seq_numerals_en_zh trained only on the pairs whose English has at most {SHORT_SOURCE} "
                        "characters",
        ),
        Recipe(
            name="gpt_chars_python_stdlib",
            description="character-level GPT (modern block) on the Python standard library's modules, "
                        "one top-level block at a time",
            corpus="python_stdlib", tokenization="code_chars", min_count=2, model="gpt", model_config=CODE_GPT,
            train=CODE_TRAINING,
        ),
    ]
}

# Corpora read from what this machine happens to have (not from a pinned package's data): what a checkpoint
# was trained on is recorded, and checked when it is loaded.
CORPUS_FINGERPRINTS: dict[str, Callable[[], dict]] = {"python_stdlib": stdlib_fingerprint}


class CorpusChangedWarning(UserWarning):
    """A checkpoint's corpus, as read on this machine, is not the one it was trained on."""


def recipe_named(name: str) -> Recipe:
    if name not in RECIPES:
        raise KeyError(f"no recipe named {name!r}; the recipes are {', '.join(RECIPES)} "
                       "(python -m lmlib.course.recipes --list)")
    return RECIPES[name]


def recipe_data(recipe: Recipe) -> tuple[Vocab, torch.Tensor, torch.Tensor]:
    """The recipe's vocabulary (from its training split) and its train and valid streams (for a translation
    recipe: rows of (source, target) pairs, ``lmlib.seq2seq.encode_pairs``, one vocabulary for both sides)."""
    if recipe.tokenization in PAIR_TOKENIZATIONS:
        from lmlib.seq2seq import encode_pairs

        pairs = {split: PAIR_TOKENIZATIONS[recipe.tokenization](recipe.corpus, split) for split in ("train", "valid")}
        vocab = Vocab((t for x, y in pairs["train"] for t in (*x, *y)), min_count=recipe.min_count)
        width = recipe.model_config.get("max_positions")
        return vocab, *(encode_pairs(vocab, pairs[split], width) for split in ("train", "valid"))
    tokenize = TOKENIZATIONS[recipe.tokenization]
    train_sents, valid_sents = tokenize(recipe.corpus, "train"), tokenize(recipe.corpus, "valid")
    if recipe.tokenization in TOKENIZER_VOCABULARIES:
        vocab = TOKENIZER_VOCABULARIES[recipe.tokenization](recipe.corpus)
    else:
        vocab = Vocab((t for s in train_sents for t in s), min_count=recipe.min_count)
    for token in MODELS[recipe.model]().input_tokens:  # e.g. a masked LM's <mask>
        vocab = Vocab.from_itos([*vocab.itos, token])
    return vocab, encode_stream(vocab, train_sents), encode_stream(vocab, valid_sents)


def build_model(recipe: Recipe, vocab: Vocab) -> NeuralLM:
    """A freshly initialised model of the recipe (seeded by the recipe)."""
    model_class = MODELS[recipe.model]()
    torch.manual_seed(recipe.train.seed)
    return model_class(model_class.config_class(vocab_size=len(vocab), **recipe.model_config), vocab)


def run_recipe(recipe: Recipe, out: Path = CHECKPOINTS, max_steps: int | None = None, device: str = "cpu",
               resume: Path | None = None, progress: bool | None = None, dtype: str = "fp32") -> Path:
    """Train a recipe; write OUT/NAME.pt (weights), OUT/NAME.pt.sha256, OUT/NAME.json (log), OUT/NAME.state.pt.
    ``dtype``: "fp32", or "bf16" for bfloat16 matrix products in the training steps (``training_precision``)."""
    vocab, train_stream, valid_stream = recipe_data(recipe)
    model = build_model(recipe, vocab)
    state = out / f"{recipe.name}.state.pt"
    with training_precision(model, dtype):
        history = train(model, train_stream, valid_stream, recipe.train, checkpoint=state, resume=resume,
                        max_steps=max_steps, progress=progress, device=device)
    if int(os.environ.get("RANK", "0")) != 0:
        return out / f"{recipe.name}.pt"
    model.to("cpu")
    fingerprint = CORPUS_FINGERPRINTS.get(recipe.corpus)
    trained_on = {"corpus": fingerprint()} if fingerprint else {}  # travels with the weights, as model.history
    if dtype != "fp32":
        trained_on["dtype"] = dtype
    # The release file keeps float16 weights only, to stay within the course's 5 MB per checkpoint.
    weights = save_release(out / f"{recipe.name}.pt", model, recipe.train, history["step"][-1],
                           {**history, **trained_on})
    log = {"recipe": recipe.name, "parameters": model.num_parameters(), **trained_on, **history}
    (out / f"{recipe.name}.json").write_text(json.dumps(log, indent=1) + "\n")
    return weights


def load_checkpoint(name: str, directory: Path | None = None) -> NeuralLM:
    """The model a recipe made, from ``checkpoints/NAME.pt``, after checking its recorded SHA-256."""
    recipe = recipe_named(name)
    directory = CHECKPOINTS if directory is None else Path(directory)
    path = directory / f"{name}.pt"
    remake = f"regenerate it with: python -m lmlib.course.recipes {name}  (or: make checkpoints)"
    check_digest(path, remake)
    state = read_checkpoint(path)
    made_by = {**state["train_config"], **state["model_config"]}
    wanted = {**dataclasses.asdict(recipe.train), **recipe.model_config}
    differ = sorted(k for k in wanted if made_by.get(k) != wanted[k])
    if differ:
        detail = ", ".join(f"{k}: file {made_by.get(k)!r} vs recipe {wanted[k]!r}" for k in differ)
        raise ValueError(f"{path} was not made by recipe {name!r} as it stands ({detail}); {remake}")
    model = model_from_state(state, MODELS[recipe.model]())
    if recipe.corpus in CORPUS_FINGERPRINTS:
        check_corpus_fingerprint(path, recipe, model.history.get("corpus"))
    return model


def check_corpus_fingerprint(path: Path, recipe: Recipe, trained_on: dict | None) -> None:
    """Warn (``CorpusChangedWarning``) when the recipe's corpus, read on this machine, is not the copy the
    checkpoint at ``path`` was trained on: the model works, but its figures on the held-out text may differ."""
    here = CORPUS_FINGERPRINTS[recipe.corpus]()
    if trained_on == here:
        return
    if trained_on is None:
        what = "records no fingerprint of its corpus"
    else:
        differ = ", ".join(f"{k}: {str(trained_on.get(k))[:12]} vs {str(v)[:12]}"
                           for k, v in here.items() if trained_on.get(k) != v)
        what = (f"was trained on {recipe.corpus} as Python {trained_on.get('python')} ships it, and this machine's "
                f"copy differs (checkpoint vs here: {differ})")
    warnings.warn(f"{path} {what}. The model loads and runs, but its held-out modules and scores are not the "
                  f"ones recorded in {path.with_suffix('.json').name}; to match this machine, retrain: "
                  f"python -m lmlib.course.recipes {recipe.name}", CorpusChangedWarning, stacklevel=3)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lmlib.course.recipes",
                                     description="Train one of the course's recipes.")
    parser.add_argument("recipe", nargs="?", help="the recipe's name (see --list)")
    parser.add_argument("--list", action="store_true", help="list the recipes and exit")
    parser.add_argument("--out", type=Path, default=CHECKPOINTS, help="output folder (default: checkpoints/)")
    parser.add_argument("--max-steps", type=int, help="stop after N steps (the schedule still spans the recipe's)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument("--resume", type=Path, help="a NAME.state.pt to continue from")
    parser.add_argument("--dtype", choices=list(PRECISIONS), default="fp32",
                        help="bf16: bfloat16 matrix products, float32 weights (default: fp32, as the checkpoints)")
    args = parser.parse_args(argv)
    if args.list or not args.recipe:
        for r in RECIPES.values():
            print(f"{r.name:<{max(map(len, RECIPES))}}  {r.description} ({r.train.steps} steps)")
        return
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available to this PyTorch build; use --device cpu")
    if args.max_steps is not None and args.max_steps <= 0:
        parser.error("--max-steps must be > 0")
    try:
        recipe = recipe_named(args.recipe)
    except KeyError as e:
        parser.error(e.args[0])
    path = run_recipe(recipe, args.out, args.max_steps, args.device, args.resume, dtype=args.dtype)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
