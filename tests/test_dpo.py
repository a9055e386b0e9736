"""lmlib.dpo: the DPO loss and its implicit rewards equal TRL's ``DPOTrainer`` on the same batch (the same tiny
model through ``to_hf``, the same beta, the same reference model, TRL's own tokenisation from the folder
``save_chat_tokenizer`` writes), the completion log-probabilities equal TRL's, the loss has its known limits and
moves when chosen and rejected swap, preference pairs come from verified samples (seeded corruption otherwise),
bad input is refused by name, and a few steps of ``lmlib.train`` widen the margins."""

from __future__ import annotations

import copy
import math
import random

import pytest
import torch

from lmlib import chat as C
from lmlib import dpo as D
from lmlib.instructions import Record, in_format, verify
from lmlib.pretraining import IGNORE_INDEX
from lmlib.tokenize import BPETokenizer, Vocab
from lmlib.train import TrainConfig, train
from lmlib.transformer import GPT, GPTConfig

WINDOW = 96
# TRL 1.16 asks transformers 5.23 for is_gradient_checkpointing, which transformers has renamed
pytestmark = pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")


def _record(task: str, lang: str, prompt: str, answer: str, passage: str, i: int = 0) -> Record:
    return Record(f"{task}/{lang}/train/{i}", task, lang, "train", "test", prompt, answer, passage)


RECORDS = [
    _record("sentiment", "en", "Is this movie review positive or negative?\nReview: a witty film", "positive",
            "a witty film"),
    _record("sentiment", "zh", "这条商品评论是正面的还是负面的？\n评论：屏幕很清晰", "正面", "屏幕很清晰"),
    _record("count", "en", "How many words are in this text?\nText: the cat sat", "3", "the cat sat"),
    _record("reverse", "en", "Write the words of this text in reverse order.\nText: the cat sat on the mat",
            "mat the on sat cat the", "the cat sat on the mat"),
    _record("reverse", "zh", "把这段文字倒过来写。\n文字：屏幕很清晰", "晰清很幕屏", "屏幕很清晰"),
    _record("first", "en", "What is the first word of this text?\nText: the cat sat", "the", "the cat sat"),
    _record("number", "en", "Write 417 in English words.", "four hundred and seventeen", "417"),
    _record("number", "zh", "把四百一十七写成阿拉伯数字。", "417", "417"),
    _record("span", "en", "Which year does this passage mention?\nPassage: In 1998 the bridge opened.", "1998",
            "In 1998 the bridge opened."),
]
TEXTS = [f"{r.prompt} {r.answer}" for r in RECORDS] * 4


@pytest.fixture(scope="module")
def tokenizer_and_model() -> tuple[BPETokenizer, GPT]:
    base = BPETokenizer.train(TEXTS, vocab_size=300)
    torch.manual_seed(0)
    model = GPT(GPTConfig(len(base.tokens_by_id()), block_size=WINDOW, d_model=16, n_layers=2, n_heads=2),
                Vocab.from_itos(base.tokens_by_id())).eval()
    return C.add_chat_tokens(base, model)


@pytest.fixture(scope="module")
def tokenizer(tokenizer_and_model) -> BPETokenizer:
    return tokenizer_and_model[0]


@pytest.fixture(scope="module")
def policy(tokenizer_and_model) -> GPT:
    return tokenizer_and_model[1]


@pytest.fixture(scope="module")
def reference(policy) -> GPT:
    """The policy with its weights moved a little: a reference that differs from the policy (nonzero rewards)."""
    reference = copy.deepcopy(policy)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in reference.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=generator, dtype=p.dtype))
    return reference.eval()


SAMPLES = {  # the model's answers, as sample_answers gives them
    "sentiment/en/train/0": ["negative", "positive", "neutral"],
    "sentiment/zh/train/0": ["正面"],
    "count/en/train/0": ["3", "three", "4"],
    "reverse/en/train/0": ["the cat sat on the mat"],
    "reverse/zh/train/0": [],
    "first/en/train/0": ["the"],
    "number/en/train/0": ["four hundred seventeen"],
    "number/zh/train/0": ["417", ""],
    "span/en/train/0": ["1998"],
}


@pytest.fixture(scope="module")
def pairs() -> list[D.PreferencePair]:
    return D.make_preference_pairs(RECORDS, SAMPLES, seed=0)


# --- TRL's DPOTrainer on the same batch -------------------------------------------------------------------------


def _hf_twin(model: GPT):
    """``model`` as a Hugging Face GPT2LMHeadModel that gives the same distribution: lmlib's GPT never predicts
    <pad> and <bos> (logit -inf), so the HF model's output layer gets a bias of -1e4 on those two tokens (exp of it
    is 0 in float32: the same softmax) and 0 elsewhere; its weight stays tied to the embedding."""
    hf = model.to_hf()
    head = torch.nn.Linear(hf.lm_head.in_features, hf.lm_head.out_features, bias=True, dtype=hf.dtype)
    head.weight = hf.transformer.wte.weight
    with torch.no_grad():
        head.bias.zero_()
        head.bias[model.never_predicted] = -1e4
    hf.lm_head = head
    return hf.eval()


@pytest.fixture(scope="module")
def trl_trainer(tokenizer, policy, reference, pairs, tmp_path_factory):
    """TRL's DPOTrainer built from the tokenizer folder, the policy and the reference, on the pairs (beta 0.1)."""
    trl = pytest.importorskip("trl")
    transformers = pytest.importorskip("transformers")
    datasets = pytest.importorskip("datasets")
    assert trl.__version__ == "1.16.0"  # the version these numbers were checked against (pyproject pins it)
    folder = tmp_path_factory.mktemp("dpo_model")
    C.save_chat_tokenizer(tokenizer, folder)
    hf_tokenizer = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
    args = trl.DPOConfig(output_dir=str(folder / "out"), beta=0.1, report_to="none", use_cpu=True, bf16=False,
                         max_length=None, activation_checkpointing=False, per_device_train_batch_size=len(pairs))
    return trl.DPOTrainer(model=_hf_twin(policy), ref_model=_hf_twin(reference), args=args,
                          processing_class=hf_tokenizer,
                          train_dataset=datasets.Dataset.from_list([p.trl() for p in pairs]))


def _trl_batch(trainer, rows: list[int]) -> dict:
    return trainer.data_collator([trainer.train_dataset[i] for i in rows])


def test_the_pairs_tokenise_as_trl_tokenises_them(trl_trainer, tokenizer, pairs):
    prepared = trl_trainer.train_dataset
    assert prepared["prompt_ids"] == [D.pair_ids(p, tokenizer)[0] for p in pairs]
    assert prepared["chosen_ids"] == [D.pair_ids(p, tokenizer)[1] for p in pairs]
    assert prepared["rejected_ids"] == [D.pair_ids(p, tokenizer)[2] for p in pairs]
    batch, ours = _trl_batch(trl_trainer, list(range(len(pairs)))), D.collate_pairs(pairs, tokenizer, WINDOW)
    assert torch.equal(batch["input_ids"], ours.ids)  # chosen rows then rejected rows, padded with <pad>
    assert torch.equal(batch["completion_mask"].bool(), ours.labels != IGNORE_INDEX)


def _trl_logps(trainer, batch: dict) -> tuple[torch.Tensor, ...]:
    """TRL's per-sequence ln pi(y|x) of the batch: (policy chosen, policy rejected, reference chosen, reference
    rejected), by the trainer's own fused-head forward pass (which ``compute_loss`` runs too)."""
    return (*trainer.compute_ref_log_probs(trainer.model, batch), *trainer.compute_ref_log_probs(trainer.ref_model,
                                                                                                  batch))


def test_completion_logprobs_equal_trl(trl_trainer, tokenizer, policy, reference, pairs):
    batch = _trl_batch(trl_trainer, list(range(len(pairs))))
    ours = D.collate_pairs(pairs, tokenizer, WINDOW)
    policy_w, policy_l, ref_w, ref_l = _trl_logps(trl_trainer, batch)
    with torch.no_grad():
        mine_policy, mine_ref = D.completion_logprobs(policy, ours), D.completion_logprobs(reference, ours)
    # TRL projects onto the vocabulary in float32 (trl.kernels): sums of up to ~100 token log-probabilities agree
    # to float32 round-off, 1e-6 relative
    torch.testing.assert_close(mine_policy, torch.cat([policy_w, policy_l]), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(mine_ref, torch.cat([ref_w, ref_l]), rtol=1e-6, atol=1e-6)
    assert (mine_policy < -1).all() and (mine_policy - mine_ref).abs().mean() > 0.5  # whole answers; two models


def test_the_dpo_loss_and_rewards_equal_trl_on_the_same_batch(trl_trainer, tokenizer, policy, reference, pairs):
    mode = "train" if trl_trainer.model.training else "eval"
    metrics = trl_trainer._metrics[mode]
    ours = D.collate_pairs(pairs, tokenizer, WINDOW)
    with torch.no_grad():
        logps = (*D.completion_logprobs(policy, ours).chunk(2), *D.completion_logprobs(reference, ours).chunk(2))
    whole = D.dpo_loss(*logps, beta=0.1)
    assert whole.losses.std() > 0.01 and whole.margins.abs().min() > 1e-3  # a batch with something to compare
    for rows in [list(range(len(pairs)))] + [[i] for i in range(len(pairs))]:  # the batch, then pair by pair
        batch = _trl_batch(trl_trainer, rows)
        with torch.no_grad():
            trl_loss = trl_trainer.compute_loss(trl_trainer.model, batch).item()
            same_logps = D.dpo_loss(*_trl_logps(trl_trainer, batch), beta=0.1)  # lmlib's formula, TRL's log-probs
        trl_metrics = {name: metrics[name][-1] for name in same_logps.summary() if name != "loss"}
        # the formula: on TRL's own log-probabilities, lmlib's loss and rewards are TRL's
        assert abs(same_logps.loss.item() - trl_loss) < 1e-6
        for name, value in same_logps.summary().items():
            assert abs(trl_metrics.get(name, trl_loss) - value) < 1e-6, name
        # end to end, with lmlib's log-probabilities: the loss to 1e-6; a reward is beta times a difference of two
        # sums each good to float32 round-off (above), so to 1e-5
        mine = D.dpo_loss(*(x[rows] for x in logps), beta=0.1)
        assert abs(mine.loss.item() - trl_loss) < 1e-6
        for name, value in mine.summary().items():
            assert abs(trl_metrics.get(name, trl_loss) - value) < 1e-5, name


def test_the_loss_gradient_is_the_formula(policy, reference, tokenizer, pairs):
    """d L / d ln pi(y_w|x) = -beta sigma(-beta Delta) / B: autograd through dpo_loss agrees with the derivation."""
    ours = D.collate_pairs(pairs, tokenizer, WINDOW)
    with torch.no_grad():
        logps, ref = D.completion_logprobs(policy, ours), D.completion_logprobs(reference, ours)
    logps.requires_grad_(True)
    result = D.dpo_loss(*logps.chunk(2), *ref.chunk(2), beta=0.5)
    result.loss.backward()
    weight = torch.sigmoid(-result.margins) * 0.5 / len(pairs)  # margins are beta Delta
    assert torch.allclose(logps.grad, torch.cat([-weight, weight]), atol=1e-7)


# --- the loss can fail: swaps and limits ------------------------------------------------------------------------


def test_swapping_chosen_and_rejected_changes_the_loss(policy, reference, tokenizer, pairs):
    ours = D.collate_pairs(pairs, tokenizer, WINDOW)
    with torch.no_grad():
        pw, pl = D.completion_logprobs(policy, ours).chunk(2)
        rw, rl = D.completion_logprobs(reference, ours).chunk(2)
    right, swapped = D.dpo_loss(pw, pl, rw, rl, 0.1), D.dpo_loss(pl, pw, rl, rw, 0.1)
    assert torch.allclose(swapped.margins, -right.margins)
    assert not torch.allclose(swapped.losses, right.losses, atol=1e-4)
    # -ln sigma(z) - (-ln sigma(-z)) = -z: the two losses differ by exactly the margin
    assert torch.allclose(swapped.losses - right.losses, right.margins, atol=1e-6)
    assert right.accuracy + swapped.accuracy == pytest.approx(1.0)


def test_the_known_limits(policy, tokenizer, pairs):
    ours = D.collate_pairs(pairs, tokenizer, WINDOW)
    with torch.no_grad():
        pw, pl = D.completion_logprobs(policy, ours).chunk(2)
    for beta in (1e-3, 0.1, 10.0):  # the policy is its own reference: every margin 0, the loss ln 2
        same = D.dpo_loss(pw, pl, pw, pl, beta)
        assert same.loss.item() == pytest.approx(math.log(2), abs=1e-7) and same.margins.abs().max() == 0
    delta = torch.tensor([2.0, -3.0, 0.5])  # log-ratio differences; reference 0
    zeros = torch.zeros(3)
    assert D.dpo_loss(delta, zeros, zeros, zeros, 1e-6).loss.item() == pytest.approx(math.log(2), abs=1e-5)
    big = D.dpo_loss(delta, zeros, zeros, zeros, 1e3)  # beta -> infinity: beta max(0, -Delta)
    assert torch.allclose(big.losses, 1e3 * torch.relu(-delta), atol=1e-4)
    assert torch.allclose(big.chosen_rewards, 1e3 * delta) and big.accuracy == pytest.approx(2 / 3)


# --- preference pairs from samples ------------------------------------------------------------------------------


def test_pairs_choose_verified_samples_and_reject_wrong_ones(pairs):
    by_id = {p.record_id: p for p in pairs}
    records = {r.id: r for r in RECORDS}
    assert set(by_id) == set(records)  # every record gets a pair
    for p in pairs:
        record = records[p.record_id]
        assert verify(record, p.chosen) and not verify(record, p.rejected)
        assert p.prompt == tuple(record.messages(with_answer=False))
        answers = [a for a in SAMPLES[record.id] if a.strip()]
        assert p.chosen_from == ("sample" if any(verify(record, a) for a in answers) else "reference")
        assert p.rejected_from == ("sample" if any(not verify(record, a) for a in answers) else "corrupted")
        if p.rejected_from == "sample":
            assert p.rejected in answers
    assert by_id["reverse/zh/train/0"].chosen_from == "reference"  # no samples: the reference answer
    assert by_id["number/zh/train/0"].rejected_from == "corrupted"  # its only wrong sample is empty
    assert by_id["sentiment/en/train/0"].rejected in ("negative", "neutral")


def test_the_corruption_is_seeded_wrong_and_of_the_asked_kind():
    for record in RECORDS:
        made = [D.corrupt(record, record.answer, random.Random(seed)) for seed in range(6)]
        assert made == [D.corrupt(record, record.answer, random.Random(seed)) for seed in range(6)]
        for wrong in made:
            assert wrong is not None and not verify(record, wrong), (record.id, wrong)
            if record.task in ("sentiment", "count", "reverse", "first", "number"):
                assert in_format(record, wrong), (record.id, wrong)
    assert D.corrupt(RECORDS[0], "positive", random.Random(0)) == "negative"
    assert D.corrupt(RECORDS[2], "3", random.Random(0)) in ("2", "4")
    swapped = ("清晰很幕屏", "晰很清幕屏", "晰清幕很屏", "晰清很屏幕")  # two neighbouring characters swapped
    assert D.corrupt(RECORDS[4], "晰清很幕屏", random.Random(0)) in swapped
    one_item = _record("first", "en", "What is the first word of this text?\nText: go", "go", "go")
    assert D.corrupt(one_item, "go", random.Random(0)) is None  # nothing wrong to make: no pair
    assert D.make_preference_pairs([one_item], {one_item.id: ["go"]}) == []
    # the pairs depend on the seed and each record, not on the order of the records
    assert D.make_preference_pairs(RECORDS[::-1], SAMPLES, seed=0)[::-1] == D.make_preference_pairs(RECORDS, SAMPLES)


# --- bad input ---------------------------------------------------------------------------------------------------


def test_bad_input_is_refused_by_name(tokenizer, pairs, policy, reference):
    prompt = pairs[0].prompt
    with pytest.raises(ValueError, match="pair 0 .* has an empty rejected answer"):
        D.collate_pairs([D.PreferencePair(prompt, "positive", " ", "sentiment/en/train/0")], tokenizer)
    with pytest.raises(ValueError, match="chosen and rejected answers are the same"):
        D.collate_pairs([D.PreferencePair(prompt, "positive", "Positive.")], tokenizer)
    with pytest.raises(ValueError, match="ends with a assistant turn"):
        D.collate_pairs([D.PreferencePair((*prompt, {"role": "assistant", "content": "x"}), "a", "b")], tokenizer)
    with pytest.raises(ValueError, match="response 1 is empty"):
        D.response_batch([[2, 5], [2, 5]], [[7], []], pad_id=0)
    long = D.PreferencePair(prompt, "positive " * 60, "negative")
    with pytest.raises(ValueError, match=f"longer than the model's window of {WINDOW}.*block_size"):
        D.collate_pairs([pairs[1], long], tokenizer, WINDOW)
    with pytest.raises(ValueError, match="beta must be a number > 0"):
        D.dpo_loss(*torch.zeros(4, 2), beta=0)
    with pytest.raises(ValueError, match="one shape"):
        D.dpo_loss(torch.zeros(2), torch.zeros(3), torch.zeros(2), torch.zeros(2), beta=0.1)
    with pytest.raises(ValueError, match="copy of the policy"):
        D.DPO(policy, policy)
    rows = D.pair_rows(pairs, tokenizer, WINDOW)
    with pytest.raises(TypeError, match="preference pairs for DPO, one pair a row"):
        train(D.DPO(copy.deepcopy(policy), reference), rows[0], None, TrainConfig(steps=1))


# --- training through lmlib.train -------------------------------------------------------------------------------


def test_pair_rows_round_trip(tokenizer, pairs):
    rows = D.pair_rows(pairs, tokenizer, WINDOW)
    batch = D.collate_pairs(pairs, tokenizer, WINDOW)
    back = D.rows_batch(rows, tokenizer.tokenizer.token_to_id("<pad>"))
    assert rows.shape[0] == len(pairs) and torch.equal(back.ids, batch.ids) and torch.equal(back.labels, batch.labels)


def test_a_few_steps_of_lmlib_train_widen_the_margins(policy, tokenizer, pairs):
    torch.manual_seed(0)
    start = copy.deepcopy(policy)
    reference = copy.deepcopy(policy)
    before = D.evaluate_pairs(start, reference, pairs, tokenizer, beta=0.1)
    assert before.loss.item() == pytest.approx(math.log(2), abs=1e-6)
    model = D.DPO(start, reference, beta=0.1)
    config = TrainConfig(steps=30, batch_size=4, lr=3e-3, warmup=3, eval_every=15, log_every=5)
    history = train(model, D.pair_rows(pairs, tokenizer, WINDOW), D.pair_rows(pairs, tokenizer, WINDOW), config,
                    progress=False)
    after = D.evaluate_pairs(model.policy, reference, pairs, tokenizer, beta=0.1)
    assert after.margins.mean() > 0.2 and after.accuracy == 1.0  # from 0 and 0
    assert after.chosen_rewards.mean() > 0 > after.rejected_rewards.mean()
    assert history["valid_loss"][-1] == pytest.approx(after.loss.item(), abs=1e-5)  # the loop's evaluation is DPO's
    assert history["valid_loss"][-1] < history["valid_loss"][0] < math.log(2)
    assert all(not p.requires_grad for p in reference.parameters())
    assert torch.equal(reference.lm_head.weight, policy.lm_head.weight)  # the reference did not move
    kl, stderr = D.sequence_kl(model.policy, reference, tokenizer, [p.prompt for p in pairs], n=4, max_tokens=8)
    assert kl > 0 and stderr >= 0
    assert D.sequence_kl(reference, reference, tokenizer, [pairs[0].prompt], n=2, max_tokens=8)[0] == 0


def test_sampled_answers_are_seeded_and_end_at_the_turn(policy, tokenizer):
    first = D.sample_answers(policy, tokenizer, RECORDS[:3], n=3, max_tokens=6, seed=0)
    assert first == D.sample_answers(policy, tokenizer, RECORDS[:3], n=3, max_tokens=6, seed=0)
    assert set(first) == {r.id for r in RECORDS[:3]} and all(len(a) == 3 for a in first.values())
    assert first != D.sample_answers(policy, tokenizer, RECORDS[:3], n=3, max_tokens=6, seed=1)
    prompt_ids, responses = D.sample_responses(policy, tokenizer, RECORDS[0].messages(False), 4, max_tokens=6,
                                               generator=torch.Generator().manual_seed(0))
    stops = {tokenizer.tokenizer.token_to_id(t) for t in (*C.CHAT_TOKENS, "<eos>")}
    for r in responses:
        assert 1 <= len(r) <= 6 and not stops & set(r[:-1])  # a chat token ends the answer, and only at the end


def test_the_kl_estimate_agrees_with_the_exact_kl_of_one_token(policy, reference, tokenizer, pairs):
    """With one-token answers KL(pi || pi_ref) = sum_v pi(v|x) ln(pi(v|x) / pi_ref(v|x)) can be summed exactly."""
    prompt = pairs[0].prompt
    context = torch.tensor([C.chat_ids(prompt, tokenizer, add_generation_prompt=True)])
    p, q = policy.next_token_logprobs(context)[0], reference.next_token_logprobs(context)[0]
    seen = p > float("-inf")
    exact = (p[seen].exp() * (p[seen] - q[seen])).sum().item()
    estimate, stderr = D.sequence_kl(policy, reference, tokenizer, [prompt], n=2000, max_tokens=1)
    assert exact > 0.1 and 0 < stderr < 0.2 * exact
    assert abs(estimate - exact) < 4 * stderr


def test_beta_sweep_reports_margins_and_kl_per_beta(policy, tokenizer, pairs):
    config = TrainConfig(steps=10, batch_size=4, lr=3e-3, warmup=2, eval_every=10, log_every=5)
    points = D.beta_sweep(policy, pairs, tokenizer, [0.05, 0.5], config, kl_samples=2, max_tokens=6)
    assert [p.beta for p in points] == [0.05, 0.5]
    for p in points:
        assert p.margin > 0 and p.loss < math.log(2) and p.kl > 0 and math.isfinite(p.kl_stderr)
        assert type(p.policy) is type(policy) and not p.policy.training
        assert any(not torch.equal(a, b) for a, b in zip(p.policy.parameters(), policy.parameters(), strict=True))
