"""Direct preference optimisation (DPO): teach a chat model which of two answers is better, with no reward model.

From RLHF to DPO. RLHF fine-tunes a policy pi (the model) to earn a high reward r(x, y) for its answer y to a
prompt x while staying close to a reference model pi_ref (the SFT model), with a KL penalty of weight beta:

    max_pi  E_{x, y ~ pi(.|x)} [ r(x, y) ] - beta KL( pi(.|x) || pi_ref(.|x) )

For each prompt this is maximised by (write the objective as -beta KL(pi || pi_ref e^{r/beta} / Z) + beta ln Z)

    pi*(y|x) = pi_ref(y|x) exp( r(x, y) / beta ) / Z(x),        Z(x) = sum_y pi_ref(y|x) exp( r(x, y) / beta )

and, taking logs, the reward is a function of the optimal policy:

    r(x, y) = beta ln( pi*(y|x) / pi_ref(y|x) ) + beta ln Z(x).

Z(x) sums over every possible answer and cannot be computed, but preferences only compare two answers to the
same prompt. In the Bradley-Terry model the probability that the chosen answer y_w beats the rejected y_l is

    P(y_w > y_l | x) = sigma( r(x, y_w) - r(x, y_l) )
                     = sigma( beta ln pi*(y_w|x)/pi_ref(y_w|x) - beta ln pi*(y_l|x)/pi_ref(y_l|x) ),

beta ln Z(x) cancelling in the difference. Put the trained policy pi_theta in place of pi* and maximise the
likelihood of the preferences (Rafailov et al., 2023, "Direct Preference Optimization: Your Language Model is
Secretly a Reward Model", arXiv:2305.18290):

    L_DPO = -E_{(x, y_w, y_l)} ln sigma( beta [ (ln pi_theta(y_w|x) - ln pi_ref(y_w|x))
                                               - (ln pi_theta(y_l|x) - ln pi_ref(y_l|x)) ] )

``dpo_loss`` is this formula. Its *implicit rewards* r_hat(x, y) = beta ln pi_theta(y|x) / pi_ref(y|x) (the reward
model the policy defines, up to beta ln Z(x)), their *margin* r_hat(x, y_w) - r_hat(x, y_l), and the *accuracy*
(the share of pairs with a positive margin) are what a DPO run reports, as TRL's ``DPOTrainer`` does.

What beta does. It is the weight of the KL penalty: the same preference can be bought by a small move of pi_theta
away from pi_ref when beta is large, and needs a larger one (a larger KL) when beta is small. The gradient is

    grad L = -beta E[ sigma( r_hat(x, y_l) - r_hat(x, y_w) ) ( grad ln pi_theta(y_w|x) - grad ln pi_theta(y_l|x) ) ]

each pair weighted by how wrongly the implicit reward ranks it. Limits: pi_theta = pi_ref gives every pair a
margin of 0 and L = ln 2 (a coin flip), whatever beta; beta -> 0 gives L -> ln 2 for any policy; beta -> infinity
turns L into beta max(0, -Delta) (Delta the log-ratio difference), a hinge with no pull once a pair is ranked right.

Log-probabilities. ln pi(y|x) is the sum of ln P(y_t | x, y_<t) over the answer's tokens and its ``<|end|>``
(``completion_logprobs``: the positions whose label is not -100 in ``lmlib.chat``'s convention), read with
teacher forcing through the model's ``hidden_states`` and ``target_logprobs`` (``lmlib.neural``).

Preference pairs from the model's own samples (``make_preference_pairs``): for each instruction record
(``lmlib.instructions``), sample answers from the SFT model (``sample_answers``) and check them (``verify``). The
chosen answer is a correct sample, or the reference answer if no sample is correct; the rejected answer is a wrong
sample, or, when every sample is right, the chosen answer corrupted (``corrupt``: a wrong answer of the kind
asked, made by a seeded rule). The pairs are "on-policy": the rejected answers are the mistakes this model makes.

How far the policy moved: ``sequence_kl`` estimates KL(pi_theta(.|x) || pi_ref(.|x)) = E_{y ~ pi_theta}[ln
pi_theta(y|x) - ln pi_ref(y|x)] from answers sampled from the policy.

Training: ``DPO`` wraps a policy and its frozen reference as one ``lmlib.neural.NeuralLM`` whose ``objective`` is
``"dpo"``; ``lmlib.train`` trains it on ``pair_rows`` (one preference pair a row) with this loss, and its
validation loss is the mean DPO loss. ``beta_sweep`` trains one copy of a policy per beta and reports the
margins, accuracy and KL of each. TRL's ``DPOTrainer`` gives the same loss, rewards and log-probabilities on the
same batch (``tests/test_dpo.py``).
"""

from __future__ import annotations

import copy
import math
import random
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from lmlib.chat import CHAT_TOKENS, chat_ids, chat_token_ids
from lmlib.generate import sample
from lmlib.instructions import SENTIMENT_WORDS, Record, check_messages, normalize, verify
from lmlib.lm import model_device
from lmlib.neural import NeuralLM
from lmlib.pretraining import IGNORE_INDEX
from lmlib.tokenize import EOS, BPETokenizer

# --- the loss ----------------------------------------------------------------------------------------------------


@dataclass
class DPOResult:
    """The DPO loss of a batch of pairs and what it is made of, per pair ([B] tensors) and on average."""

    loss: torch.Tensor  # scalar: the mean of ``losses``
    losses: torch.Tensor  # [B] -ln sigma(beta Delta)
    chosen_rewards: torch.Tensor  # [B] beta (ln pi(y_w|x) - ln pi_ref(y_w|x)), no gradient
    rejected_rewards: torch.Tensor  # [B] beta (ln pi(y_l|x) - ln pi_ref(y_l|x)), no gradient

    @property
    def margins(self) -> torch.Tensor:
        """[B] r_hat(x, y_w) - r_hat(x, y_l)."""
        return self.chosen_rewards - self.rejected_rewards

    @property
    def accuracy(self) -> float:
        """The share of pairs whose chosen answer earns the higher implicit reward."""
        return (self.margins > 0).double().mean().item()

    def summary(self) -> dict[str, float]:
        """The batch means, under TRL's metric names."""
        return {"loss": self.loss.item(), "rewards/chosen": self.chosen_rewards.mean().item(),
                "rewards/rejected": self.rejected_rewards.mean().item(), "rewards/margins": self.margins.mean().item(),
                "rewards/accuracies": self.accuracy}


def dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor,
             ref_chosen: torch.Tensor, ref_rejected: torch.Tensor,
             beta: float) -> DPOResult:
    """[B] sequence log-probabilities ln pi(y|x) of the chosen and rejected answers under
    the policy and the reference -> the DPO loss
    -ln sigma(beta [(ln pi_w - ln ref_w) - (ln pi_l - ln ref_l)]), averaged over the B
    pairs, and the implicit rewards beta (ln pi - ln ref)."""
    check_beta(beta)
    four = (policy_chosen, policy_rejected, ref_chosen, ref_rejected)
    shapes = {tuple(t.shape) for t in four}
    if len(shapes) != 1 or len(next(iter(shapes))) != 1:
        raise ValueError("the four log-probabilities must be [B] tensors of one shape "
                         f"(one per pair), got shapes {sorted(shapes)}")
    chosen_logratios = policy_chosen - ref_chosen  # [B]
    rejected_logratios = policy_rejected - ref_rejected  # [B]
    losses = -F.logsigmoid(beta * (chosen_logratios - rejected_logratios))  # [B]
    return DPOResult(losses.mean(), losses, beta * chosen_logratios.detach(),
                     beta * rejected_logratios.detach())


def check_beta(beta: float) -> float:
    """``beta`` if it is a finite number > 0, else ``ValueError``."""
    if not (isinstance(beta, (int, float)) and not isinstance(beta, bool) and beta > 0 and math.isfinite(beta)):
        raise ValueError(f"beta must be a number > 0 (the weight of the KL penalty; DPO papers use 0.1), got {beta!r}")
    return beta


# --- the batches: prompt, response, labels ----------------------------------------------------------------------


@dataclass
class ResponseBatch:
    """Prompts and responses read together: ``ids`` [N, T] rows ``<bos> prompt response`` right-padded with
    ``<pad>``, ``labels`` [N, T] the ids where the response is, ``IGNORE_INDEX`` (-100) elsewhere
    (``lmlib.chat``'s convention). A batch of pairs holds the B chosen rows, then the B rejected rows."""

    ids: torch.Tensor
    labels: torch.Tensor

    def to(self, device: torch.device | str) -> ResponseBatch:
        return ResponseBatch(self.ids.to(device), self.labels.to(device))

    def chunk(self) -> tuple[ResponseBatch, ResponseBatch]:
        """(chosen rows, rejected rows) of a batch of pairs."""
        (ids_w, ids_l), (labels_w, labels_l) = self.ids.chunk(2), self.labels.chunk(2)
        return ResponseBatch(ids_w, labels_w), ResponseBatch(ids_l, labels_l)


def response_batch(prompts: Sequence[Sequence[int]], responses: Sequence[Sequence[int]], pad_id: int,
                   window: int | None = None) -> ResponseBatch:
    """Token ids of prompts (``<bos>`` first) and of their responses -> a ``ResponseBatch``. ``window``: the
    longest prompt + response a model can read (its ``block_size``); a longer one raises ``ValueError``."""
    if len(prompts) != len(responses) or not prompts:
        raise ValueError(f"give one response per prompt, at least one: got {len(prompts)} prompts and "
                         f"{len(responses)} responses")
    for i, (prompt, response) in enumerate(zip(prompts, responses, strict=True)):
        if not response:
            raise ValueError(f"response {i} is empty: there is nothing to score; leave the pair out")
        if window is not None and len(prompt) + len(response) > window:
            raise ValueError(f"row {i} is {len(prompt)} prompt + {len(response)} response tokens, longer than the "
                             f"model's window of {window}: leave it out, shorten the prompt or the answer, or use a "
                             "model with a larger block_size")
    rows = [[*p, *r] for p, r in zip(prompts, responses, strict=True)]
    width = max(map(len, rows))
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    for i, (prompt, row) in enumerate(zip(prompts, rows, strict=True)):
        ids[i, : len(row)] = torch.tensor(row)
        labels[i, len(prompt) : len(row)] = ids[i, len(prompt) : len(row)]
    return ResponseBatch(ids, labels)


def completion_logprobs(model: NeuralLM, batch: ResponseBatch) -> torch.Tensor:
    """[N] ln pi(response | prompt) of each row: the sum of ln P(y_t | x, y_<t) over the
    positions whose label is not -100, by teacher forcing (with gradients; wrap in
    ``torch.no_grad()`` to score only)."""
    vocab = model.require_vocab("completion_logprobs")
    batch = batch.to(model_device(model))
    h = model.hidden_states(batch.ids[:, :-1])[0]  # [N, T-1, d]
    labels = batch.labels[:, 1:]  # [N, T-1]: the token each position predicts, or -100
    targets = labels.masked_fill(labels == IGNORE_INDEX, vocab.pad_id)  # <pad>: gives 0
    return model.target_logprobs(h, targets).sum(dim=1)  # [N]


# --- preference pairs -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PreferencePair:
    """A prompt (a chat ending with a user turn) and two answers to it, the chosen one better.

    ``chosen_from``: "sample" (the model's own correct answer) or "reference" (the record's answer);
    ``rejected_from``: "sample" (the model's own wrong answer) or "corrupted" (the chosen answer, corrupted)."""

    prompt: tuple[dict[str, str], ...]
    chosen: str
    rejected: str
    record_id: str = ""
    chosen_from: str = ""
    rejected_from: str = ""

    def trl(self) -> dict:
        """The pair in TRL's conversational preference format (a row of a ``DPOTrainer`` data set)."""
        return {"prompt": [dict(m) for m in self.prompt], "chosen": [{"role": "assistant", "content": self.chosen}],
                "rejected": [{"role": "assistant", "content": self.rejected}]}


def check_pair(pair: PreferencePair, i: int = 0) -> PreferencePair:
    """``pair`` if it can be trained on, else ``ValueError`` naming it (number ``i``) and the fix."""
    where = f"pair {i}{f' ({pair.record_id})' if pair.record_id else ''}"
    for name in ("chosen", "rejected"):
        if not isinstance(getattr(pair, name), str) or not getattr(pair, name).strip():
            raise ValueError(f"{where} has an empty {name} answer: DPO compares two answers; leave the pair out")
    if normalize(pair.chosen) == normalize(pair.rejected):
        raise ValueError(f"{where}: the chosen and rejected answers are the same ({pair.chosen!r}): a pair "
                         "teaches nothing unless its answers differ")
    check_messages(pair.prompt, where)
    if pair.prompt[-1]["role"] != "user":
        raise ValueError(f"{where}: the prompt ends with a {pair.prompt[-1]['role']} turn; it must end with the "
                         "user's message the two answers reply to")
    return pair


def pair_ids(pair: PreferencePair, tokenizer: BPETokenizer) -> tuple[list[int], list[int], list[int]]:
    """(prompt ids ending with ``<|assistant|>``, chosen ids, rejected ids), each answer's ids followed by
    ``<|end|>``: the chat format of ``lmlib.chat``, split where the answer begins (as TRL splits it)."""
    prompt = chat_ids(pair.prompt, tokenizer, add_generation_prompt=True)
    answers = []
    for answer in (pair.chosen, pair.rejected):
        ids = chat_ids([*pair.prompt, {"role": "assistant", "content": answer}], tokenizer)
        if ids[: len(prompt)] != prompt:
            raise RuntimeError("the chat's ids do not begin with its prompt's ids")
        answers.append(ids[len(prompt) :])
    return prompt, answers[0], answers[1]


def collate_pairs(pairs: Sequence[PreferencePair], tokenizer: BPETokenizer,
                  window: int | None = None) -> ResponseBatch:
    """B pairs -> a ``ResponseBatch`` of 2B rows: the chosen answers after their prompts, then the rejected ones.
    ``window``: refuse a prompt + answer longer than that (the model's ``block_size``)."""
    if not pairs:
        raise ValueError("no pairs to collate")
    ids = [pair_ids(check_pair(p, i), tokenizer) for i, p in enumerate(pairs)]
    prompts = [p for p, _, _ in ids]
    try:
        return response_batch(prompts * 2, [w for _, w, _ in ids] + [r for _, _, r in ids],
                              tokenizer.tokenizer.token_to_id("<pad>"), window)
    except ValueError as error:  # name the pair, not the row
        raise ValueError(f"{error} (rows 0..{len(pairs) - 1} are the chosen answers of the pairs, the rest the "
                         "rejected ones)") from None


def pair_rows(pairs: Sequence[PreferencePair], tokenizer: BPETokenizer, window: int | None = None) -> torch.Tensor:
    """The pairs as ``lmlib.train`` reads them: [N, 4L] ids, one pair a row, holding its chosen and rejected ids,
    then their labels, each padded to L columns (``rows_batch`` undoes it)."""
    batch = collate_pairs(pairs, tokenizer, window)
    (chosen, rejected), (chosen_labels, rejected_labels) = batch.ids.chunk(2), batch.labels.chunk(2)
    return torch.cat([chosen, rejected, chosen_labels, rejected_labels], dim=1)  # [N, 4L]


def rows_batch(rows: torch.Tensor, pad_id: int) -> ResponseBatch:
    """[B, 4L] ``pair_rows`` -> the ``ResponseBatch`` of 2B rows, less the columns that are padding in every row."""
    if rows.ndim != 2 or rows.shape[1] % 4:
        raise ValueError(f"pair rows are [B, 4L] (pair_rows), got shape {tuple(rows.shape)}")
    chosen, rejected, chosen_labels, rejected_labels = rows.chunk(4, dim=1)  # each [B, L]
    ids, labels = torch.cat([chosen, rejected]), torch.cat([chosen_labels, rejected_labels])  # [2B, L]
    width = int((ids != pad_id).sum(dim=0).nonzero().max()) + 1
    return ResponseBatch(ids[:, :width], labels[:, :width])


def corrupt(record: Record, answer: str, rng: random.Random) -> str | None:
    """A wrong answer of the kind asked, made from ``answer`` by the first of these that ``verify`` rejects: the
    other sentiment label; an integer one more or one less (``rng`` picks); two neighbouring items (words in
    English, characters in Chinese) that differ, swapped (``rng`` picks which); another item of the passage.
    None if none of them is wrong."""
    for candidate in _corruptions(record, answer, rng):
        if candidate.strip() and not verify(record, candidate):
            return candidate
    return None


def _corruptions(record: Record, answer: str, rng: random.Random):
    labels = SENTIMENT_WORDS[record.lang].values() if record.lang in SENTIMENT_WORDS else ()
    if record.task == "sentiment":
        yield from (w for w in labels if normalize(w) != normalize(answer))
    text = answer.strip()
    if text.isdigit():
        step = rng.choice((-1, 1))
        yield from (str(int(text) + s) for s in (step, -step) if int(text) + s >= 0)
    english = record.lang == "en"
    items = text.split() if english else [c for c in text if not c.isspace()]
    join = " ".join if english else "".join
    swaps = [i for i in range(len(items) - 1) if normalize(items[i]) != normalize(items[i + 1])]
    if swaps:
        i = rng.choice(swaps)
        yield join([*items[:i], items[i + 1], items[i], *items[i + 2 :]])
    passage = record.passage.split() if english else [c for c in record.passage if not c.isspace()]
    others = sorted({p for p in passage if normalize(p) != normalize(text)})
    rng.shuffle(others)
    yield from others


def make_preference_pairs(records: Sequence[Record], samples: Mapping[str, Sequence[str]],
                          seed: int = 0) -> list[PreferencePair]:
    """One pair per record from the model's own answers ``samples[record.id]`` (e.g. ``sample_answers``):

    chosen   a sample that ``verify`` accepts, else the record's reference answer;
    rejected a sample it rejects, else ``corrupt(record, chosen)``.

    Each record draws its choices from its own ``random.Random`` seeded by (``seed``, its id), so the pairs do
    not depend on the order of the records. Empty samples are left out (a chat has no empty message); a record
    whose answer cannot be corrupted and has no wrong sample gets no pair."""
    pairs = []
    for record in records:
        rng = random.Random(f"{seed}-{record.id}")
        answers = [a for a in samples.get(record.id, ()) if a.strip()]
        right = [a for a in answers if verify(record, a)]
        wrong = [a for a in answers if not verify(record, a)]
        chosen, chosen_from = (rng.choice(right), "sample") if right else (record.answer, "reference")
        rejected, rejected_from = (rng.choice(wrong), "sample") if wrong else (corrupt(record, chosen, rng),
                                                                                "corrupted")
        if rejected is not None:
            pairs.append(PreferencePair(tuple(record.messages(with_answer=False)), chosen, rejected, record.id,
                                        chosen_from, rejected_from))
    return pairs


# --- sampling from the model -----------------------------------------------------------------------------------


def sample_responses(model: NeuralLM, tokenizer: BPETokenizer, prompt: Sequence[dict[str, str]], n: int,
                     max_tokens: int = 32, temperature: float = 1.0,
                     generator: torch.Generator | None = None) -> tuple[list[int], list[list[int]]]:
    """(the prompt's ids, n sampled responses' ids): each response ends at the first chat token or ``<eos>`` the
    model writes (kept: the model chose to end its turn there), or after ``max_tokens`` tokens, fewer if the
    model's window would not hold the prompt and the response."""
    prompt_ids = chat_ids(prompt, tokenizer, add_generation_prompt=True)
    window = getattr(model, "window", None)
    room = max_tokens if window is None else min(max_tokens, window - len(prompt_ids))
    if room < 1:
        raise ValueError(f"the prompt is {len(prompt_ids)} tokens, which leaves no room for an answer in the "
                         f"model's window of {window}: leave it out or use a model with a larger block_size")
    stops = {*(chat_token_ids(tokenizer)[t] for t in CHAT_TOKENS), tokenizer.tokenizer.token_to_id(EOS)}
    tokens = [model.vocab.itos[i] for i in prompt_ids[1:]]  # the decoder puts <bos> first itself
    drawn = sample(model, tokens, room, temperature=temperature, num_samples=n, generator=generator)
    responses = []
    for generation in drawn:
        end = next((t + 1 for t, i in enumerate(generation.ids) if i in stops), len(generation.ids))
        responses.append(generation.ids[:end])
    return prompt_ids, responses


def sample_answers(model: NeuralLM, tokenizer: BPETokenizer, records: Sequence[Record], n: int = 4,
                   max_tokens: int = 32, temperature: float = 1.0, seed: int = 0) -> dict[str, list[str]]:
    """record id -> the text of n answers sampled from ``model`` (a chat model) to the record's prompt, each cut
    where the model ends its turn (``sample_responses``). Record i draws from a generator seeded by (seed, id)."""
    stops = {chat_token_ids(tokenizer)[t] for t in CHAT_TOKENS} | {tokenizer.tokenizer.token_to_id(EOS)}
    answers = {}
    for record in records:
        generator = torch.Generator().manual_seed(_seed(seed, record.id))
        _, responses = sample_responses(model, tokenizer, record.messages(with_answer=False), n, max_tokens,
                                        temperature, generator)
        answers[record.id] = [tokenizer.decode([i for i in r if i not in stops]) for r in responses]
    return answers


def _seed(seed: int, name: str) -> int:
    """A generator seed for (seed, name) that is the same in every Python process (``hash`` is not)."""
    return zlib.crc32(f"{seed}-{name}".encode())


@torch.no_grad()
def sequence_kl(policy: NeuralLM, reference: NeuralLM, tokenizer: BPETokenizer,
                prompts: Sequence[Sequence[dict[str, str]]], n: int = 4, max_tokens: int = 32,
                seed: int = 0) -> tuple[float, float]:
    """(estimate, its standard error) of the mean over ``prompts`` of KL(pi(.|x) || pi_ref(.|x)) in nats per
    answer: the mean of ln pi(y|x) - ln pi_ref(y|x) over n answers y sampled from the policy (temperature 1) for
    each prompt x. An answer cut at ``max_tokens`` counts as that prefix (the KL of the first tokens)."""
    if not prompts or n < 1:
        raise ValueError("sequence_kl needs at least one prompt and n >= 1 answers per prompt")
    was_training = policy.training
    policy.eval()
    log_ratios = []
    for i, prompt in enumerate(prompts):
        generator = torch.Generator().manual_seed(_seed(seed, str(i)))
        prompt_ids, responses = sample_responses(policy, tokenizer, prompt, n, max_tokens, 1.0, generator)
        batch = response_batch([prompt_ids] * n, responses, policy.vocab.pad_id)
        log_ratios.append(completion_logprobs(policy, batch).double() - completion_logprobs(reference, batch).double())
    policy.train(was_training)
    ratios = torch.cat(log_ratios)
    stderr = ratios.std().item() / math.sqrt(len(ratios)) if len(ratios) > 1 else float("nan")
    return ratios.mean().item(), stderr


# --- training with lmlib.train ----------------------------------------------------------------------------------


class DPO(NeuralLM):
    """A policy and its frozen reference, trained by ``lmlib.train`` with the DPO loss on ``pair_rows``.

    The reference is frozen (no gradients, evaluation mode throughout); both read the same vocabulary. Scoring
    and decoding are the policy's. In the history, ``train_loss`` and ``valid_loss`` are DPO losses and
    ``tokens`` counts pairs. Afterwards ``.policy`` is the trained model (save it, not the wrapper)."""

    objective = "dpo"

    def __init__(self, policy: NeuralLM, reference: NeuralLM, beta: float = 0.1):
        super().__init__()
        if policy.vocab is None or reference.vocab is None or policy.vocab.itos != reference.vocab.itos:
            raise ValueError("the policy and the reference must have the same vocabulary: the reference is the "
                             "policy before DPO (e.g. copy.deepcopy of the SFT model)")
        if policy is reference:
            raise ValueError("the reference must be a copy of the policy, not the policy itself (it would move "
                             "with it): DPO(policy, copy.deepcopy(policy))")
        if policy.takes_state or policy.objective != "causal":
            raise ValueError("DPO trains a causal language model that takes no state (a GPT)")
        self.policy, self.reference = policy, reference.eval().requires_grad_(False)
        self.beta = check_beta(beta)
        self.config, self.context_size = policy.config, policy.context_size
        self.window = getattr(policy, "window", None)
        self.register_vocab(policy.vocab, len(policy.vocab))

    def train(self, mode: bool = True) -> DPO:
        super().train(mode)
        self.reference.eval()  # the reference's distribution is its evaluation-mode one, without dropout
        return self

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        """[B, 4L] ``pair_rows`` -> [2B] the policy's ln pi(y|x) of the chosen, then the rejected answers."""
        return completion_logprobs(self.policy, rows_batch(rows, self.vocab.pad_id))

    def pair_losses(self, rows: torch.Tensor, policy_logps: torch.Tensor) -> DPOResult:
        """The DPO loss of ``rows`` given the policy's log-probabilities ``forward(rows)`` (what ``lmlib.train``
        calls: the forward pass is the policy's, so DistributedDataParallel sees it)."""
        with torch.no_grad():
            ref_logps = completion_logprobs(self.reference, rows_batch(rows, self.vocab.pad_id))
        return dpo_loss(*policy_logps.chunk(2), *ref_logps.chunk(2), self.beta)

    @torch.no_grad()
    def preference_logprob(self, rows: torch.Tensor, batch_size: int = 32) -> tuple[float, int]:
        """(sum over the pairs of ln sigma(beta Delta), number of pairs): minus the summed DPO loss, what
        ``lmlib.train`` evaluates (its valid_loss is the mean DPO loss; valid_ppl, exp of it, is 1 / the geometric
        mean of the probability the implicit reward gives the chosen answer)."""
        was_training = self.training
        self.eval()
        total = sum(-self.pair_losses(b, self(b)).losses.double().sum().item() for b in rows.split(batch_size))
        self.train(was_training)
        return total, len(rows)

    def hidden_states(self, ids: torch.Tensor, state: object | None = None) -> tuple[torch.Tensor, object]:
        return self.policy.hidden_states(ids, state)

    def output(self, h: torch.Tensor) -> torch.Tensor:
        return self.policy.output(h)

    def sequence_logprobs(self, ids: torch.Tensor) -> torch.Tensor:
        return self.policy.sequence_logprobs(ids)

    def next_token_logprobs(self, contexts: torch.Tensor) -> torch.Tensor:
        return self.policy.next_token_logprobs(contexts)


@torch.no_grad()
def evaluate_pairs(policy: NeuralLM, reference: NeuralLM, pairs: Sequence[PreferencePair],
                   tokenizer: BPETokenizer, beta: float, batch_size: int = 32) -> DPOResult:
    """The DPO loss, rewards and margins of ``policy`` on ``pairs`` (evaluation mode, no gradients)."""
    was_training = policy.training
    policy.eval()
    parts = []
    for start in range(0, len(pairs), batch_size):
        batch = collate_pairs(pairs[start : start + batch_size], tokenizer, getattr(policy, "window", None))
        parts.append((*completion_logprobs(policy, batch).chunk(2), *completion_logprobs(reference, batch).chunk(2)))
    policy.train(was_training)
    return dpo_loss(*(torch.cat(column) for column in zip(*parts, strict=True)), beta)


@dataclass
class SweepPoint:
    """One beta of ``beta_sweep``: the trained policy's DPO metrics on the evaluation pairs, its KL, and itself."""

    beta: float
    loss: float
    chosen_reward: float
    rejected_reward: float
    margin: float
    accuracy: float
    kl: float  # nats per answer, sequence_kl's estimate
    kl_stderr: float
    history: dict = field(repr=False, default_factory=dict)
    policy: NeuralLM | None = field(repr=False, default=None)  # the trained copy (to score or save it)


def beta_sweep(policy: NeuralLM, pairs: Sequence[PreferencePair], tokenizer: BPETokenizer,
               betas: Sequence[float], config, eval_pairs: Sequence[PreferencePair] | None = None,
               kl_samples: int = 4, max_tokens: int = 32) -> list[SweepPoint]:
    """Train a copy of ``policy`` with DPO for each beta (``lmlib.train`` with ``config``, the same seed and batches
    for every beta), against ``policy`` itself as the frozen reference, and report each trained copy's rewards,
    margin and accuracy on ``eval_pairs`` (default: ``pairs``), its KL to the reference on their prompts, and the
    trained copy itself (``SweepPoint.policy``, in evaluation mode)."""
    from lmlib.train import train

    eval_pairs = pairs if eval_pairs is None else eval_pairs
    window = getattr(policy, "window", None)
    rows = pair_rows(pairs, tokenizer, window)
    reference = copy.deepcopy(policy).eval().requires_grad_(False)
    points = []
    for beta in betas:
        model = DPO(copy.deepcopy(policy), reference, beta)
        history = train(model, rows, None, config, progress=False)
        result = evaluate_pairs(model.policy, reference, eval_pairs, tokenizer, beta)
        kl, kl_stderr = sequence_kl(model.policy, reference, tokenizer, [p.prompt for p in eval_pairs], kl_samples,
                                    max_tokens, seed=config.seed)
        means = result.summary()
        points.append(SweepPoint(beta, means["loss"], means["rewards/chosen"], means["rewards/rejected"],
                                 means["rewards/margins"], means["rewards/accuracies"], kl, kl_stderr, history,
                                 model.policy))
    return points
