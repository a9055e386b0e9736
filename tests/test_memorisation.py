"""lmlib.memorisation: exposure on cases computed by hand, and every candidate's score equal to scoring
each candidate sequence on its own (the tree with a KV cache, and without one)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from lmlib import memorisation as MEM
from lmlib.lm import encode_batch
from lmlib.ngram import NGramLM
from lmlib.tokenize import Vocab
from lmlib.transformer import GPT, GPTConfig

ALPHABET = ("1", "2", "3")


@pytest.fixture(scope="module")
def vocab() -> Vocab:
    return Vocab(list("my PIN is 0123456789"), min_count=1)


@pytest.fixture(scope="module")
def gpt(vocab) -> GPT:
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=len(vocab), block_size=16, d_model=16, n_layers=2, n_heads=2), vocab).eval()
    for p in model.parameters():  # larger weights than GPT-2's init: distributions far from uniform
        p.data.mul_(20)
    return model


def brute_force(model, prefix: str, length: int) -> torch.Tensor:
    """Each candidate scored as its own sequence by sequence_logprobs: the secret's last `length` entries."""
    candidates = [list(prefix) + list(c) for c in itertools.product(ALPHABET, repeat=length)]
    ids = encode_batch(model.vocab, candidates, eos=False)  # [N, 1 + T]
    return model.sequence_logprobs(ids)[:, -length:].double().sum(1)


def test_exposure_by_hand():
    # eight candidates; the canary (index 5) is third: two candidates score higher, one ties with it
    logprobs = torch.tensor([-9.0, -1.0, -7.0, -2.0, -8.0, -3.0, -3.0, -6.0], dtype=torch.float64)
    assert MEM.rank_of(logprobs, 5) == 3  # -1 and -2 are higher; the tie at -3 counts in its favour
    assert MEM.exposure(logprobs, 5) == pytest.approx(3 - math.log2(3))  # log2 8 - log2 3 = 1.415
    assert MEM.exposure(logprobs, 1) == 3.0  # ranked first: every bit of log2 |R|
    assert MEM.exposure(logprobs, 0) == 0.0  # ranked last


def test_rank_is_scipys_rank_with_ties_at_their_best():
    from scipy.stats import rankdata

    logprobs = torch.tensor([-4.0, -1.5, -2.0, -2.0, -9.0, -1.5, -0.5, -3.0], dtype=torch.float64)
    ranks = rankdata(-logprobs.numpy(), method="min")  # most probable first; ties share the best place
    assert [MEM.rank_of(logprobs, i) for i in range(8)] == ranks.tolist()


def test_secret_index_reads_the_secret_as_a_number():
    assert MEM.secret_index("000120") == 120
    assert MEM.secret_index("321", ALPHABET) == 2 * 9 + 1 * 3 + 0
    with pytest.raises(ValueError, match="outside the alphabet"):
        MEM.secret_index("12a")


def test_random_secrets_are_seeded_distinct_and_of_the_alphabet():
    secrets = MEM.random_secrets(50, length=6, seed=3)
    assert secrets == MEM.random_secrets(50, length=6, seed=3) != MEM.random_secrets(50, length=6, seed=4)
    assert len(set(secrets)) == 50 and all(len(s) == 6 and s.isdigit() for s in secrets)
    with pytest.raises(ValueError, match="only 9 different"):
        MEM.random_secrets(10, length=2, alphabet=ALPHABET)


@pytest.mark.parametrize("max_rows", [3, 9, 10_000])  # chunks of one parent, of three, all at once
def test_every_candidate_scored_as_on_its_own(gpt, max_rows):
    tree = MEM.candidate_logprobs(gpt, list("my PIN is "), length=4, alphabet=ALPHABET, max_rows=max_rows)
    assert tree.shape == (81,) and tree.dtype == torch.float64
    assert torch.allclose(tree, brute_force(gpt, "my PIN is ", 4), atol=1e-5)
    assert abs(tree.exp().sum().item()) < 1  # a distribution over all tokens: the digits 1-3 share part of it
    assert tree.std() > 0.5  # the scores differ: a wrong order would show


def test_a_model_without_a_cache_gives_the_same_scores(vocab):
    text = [list("my PIN is 1213"), list("my PIN is 3321"), list("my PIN is 1111")]
    trigram = NGramLM(3, smoothing="add_k", k=0.5).fit(text)
    tree = MEM.candidate_logprobs(trigram, list("my PIN is "), length=3, alphabet=ALPHABET, max_rows=4)
    assert torch.allclose(tree, brute_force(trigram, "my PIN is ", 3), atol=1e-9)
    # "1" follows "my PIN is " in two training lines of three: the most likely candidates start with it
    assert int(tree.argmax()) // 9 == 0


def test_bad_inputs_are_named(gpt):
    with pytest.raises(ValueError, match=r"not in it: \[.x.\]"):
        MEM.candidate_logprobs(gpt, list("x is "), length=2, alphabet=ALPHABET)
    with pytest.raises(ValueError, match="distinct"):
        MEM.candidate_logprobs(gpt, list("is "), length=2, alphabet=("1", "1"))
