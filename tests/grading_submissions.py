"""Submissions for the grader's self-tests: right (in several forms), blank, realistically wrong, hostile, broken.

Each builder returns (file name, file bytes, what the grader must report). Notebooks
are made from the exercise's own solution and student notebooks, so "what it
earned" is known: ``points`` is the expected total, or a dict of per-question
points; ``status`` the expected status (a set when the outcome may vary, e.g. a
fork bomb may end as a crash or a timeout) and ``reason`` a text the reason must
contain.
"""

from __future__ import annotations

import json
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

from grading.exercises import ROOT, Exercise

# Realistic wrong answers: question -> [(description, function name, wrong definition)].
# Each replaces the solution's definition of that function.
WRONG_ANSWERS = {
    "text_as_data": {
        "q1": [
            ("forgets to lowercase", "tokenize", """
                def tokenize(text):
                    return [t for t in word_tokenize(text) if any(c.isalnum() for c in t)]
            """),
            ("keeps punctuation", "tokenize", """
                def tokenize(text):
                    return word_tokenize(text, lowercase=True)
            """),
        ],
        "q2": [
            ("min_count off by one (> instead of >=)", "build_vocab", """
                def build_vocab(token_lists, min_count):
                    return Vocab((t for tokens in token_lists for t in tokens), min_count=min_count + 1)
            """),
            ("OOV rate over distinct words, not tokens", "oov_rate", """
                def oov_rate(vocab, tokens):
                    return sum(t not in vocab for t in set(tokens)) / len(set(tokens))
            """),
        ],
        "q3": [
            ("missing the k * len(vocab) smoothing term: probabilities do not sum to 1", "unigram_probs", """
                def unigram_probs(tokens, vocab, k):
                    counts = np.bincount(vocab.encode(tokens), minlength=len(vocab)).astype(float)
                    return (counts + k) / counts.sum()
            """),
            ("unnormalized counts", "unigram_probs", """
                def unigram_probs(tokens, vocab, k):
                    return np.bincount(vocab.encode(tokens), minlength=len(vocab)) + k
            """),
        ],
        "q4": [
            ("wrong axis: regresses log rank on log count", "zipf_exponent", """
                def zipf_exponent(counts, min_rank, max_rank):
                    freqs = np.array(sorted(counts.values(), reverse=True), dtype=float)
                    ranks = np.arange(1, len(freqs) + 1)
                    keep = (ranks >= min_rank) & (ranks <= max_rank)
                    slope, _ = np.polyfit(np.log(freqs[keep]), np.log(ranks[keep]), 1)
                    return float(-slope)
            """),
            ("ranks counted from 0 (off by one)", "zipf_exponent", """
                def zipf_exponent(counts, min_rank, max_rank):
                    freqs = np.array(sorted(counts.values(), reverse=True), dtype=float)
                    ranks = np.arange(len(freqs))
                    keep = (ranks >= min_rank) & (ranks <= max_rank)
                    slope, _ = np.polyfit(np.log(ranks[keep]), np.log(freqs[keep]), 1)
                    return float(-slope)
            """),
            ("cuts ranks min_rank..max_rank, then numbers them again from 1", "zipf_exponent", """
                def zipf_exponent(counts, min_rank, max_rank):
                    freqs = np.array(sorted(counts.values(), reverse=True)[min_rank - 1:max_rank], dtype=float)
                    ranks = np.arange(1, len(freqs) + 1)
                    slope, _ = np.polyfit(np.log(ranks), np.log(freqs), 1)
                    return float(-slope)
            """),
        ],
    },
    "tokenization": {
        "q1": [
            ("ignores the word counts: each word's pairs counted once", "pair_counts", """
                def pair_counts(word_counts):
                    counts = Counter()
                    for word in word_counts:
                        counts.update(pairwise(word))
                    return counts
            """),
            ("picks the least frequent pair: the minus sign of the count forgotten", "merge_step", """
                def merge_step(word_counts, vocab):
                    counts = pair_counts(word_counts)
                    a, b = min(counts, key=lambda pair: (counts[pair], vocab[pair[0]], vocab[pair[1]]))
                    merged = {}
                    for word, n in word_counts.items():
                        symbols, i = [], 0
                        while i < len(word):
                            if i + 1 < len(word) and word[i] == a and word[i + 1] == b:
                                symbols.append(a + b)
                                i += 2
                            else:
                                symbols.append(word[i])
                                i += 1
                        merged[tuple(symbols)] = n
                    return (a, b), merged
            """),
            ("breaks ties by the pair's strings (alphabetical order), not by their ids", "merge_step", """
                def merge_step(word_counts, vocab):
                    counts = pair_counts(word_counts)
                    a, b = min(counts, key=lambda pair: (-counts[pair], pair))
                    merged = {}
                    for word, n in word_counts.items():
                        symbols, i = [], 0
                        while i < len(word):
                            if i + 1 < len(word) and word[i] == a and word[i + 1] == b:
                                symbols.append(a + b)
                                i += 2
                            else:
                                symbols.append(word[i])
                                i += 1
                        merged[tuple(symbols)] = n
                    return (a, b), merged
            """),
            ("merges only the first occurrence of the pair in each word", "merge_step", """
                def merge_step(word_counts, vocab):
                    counts = pair_counts(word_counts)
                    a, b = min(counts, key=lambda pair: (-counts[pair], vocab[pair[0]], vocab[pair[1]]))
                    merged = {}
                    for word, n in word_counts.items():
                        symbols = list(word)
                        for i in range(len(symbols) - 1):
                            if symbols[i] == a and symbols[i + 1] == b:
                                symbols[i:i + 2] = [a + b]
                                break
                        merged[tuple(symbols)] = n
                    return (a, b), merged
            """),
        ],
        "q2": [
            ("merges the leftmost pair that is a merge, whatever its rank", "encode_word", """
                def encode_word(word, merges):
                    known = {tuple(pair) for pair in merges}
                    symbols = list(word)
                    while True:
                        for i in range(len(symbols) - 1):
                            if (symbols[i], symbols[i + 1]) in known:
                                symbols[i:i + 2] = [symbols[i] + symbols[i + 1]]
                                break
                        else:
                            return symbols
            """),
            ("each merge in turn as str.replace on the symbols joined by spaces: 'b c' matches inside 'ab c'",
             "encode_word", """
                def encode_word(word, merges):
                    text = " ".join(word)
                    for a, b in merges:
                        text = text.replace(f"{a} {b}", a + b)
                    return text.split(" ")
            """),
            ("the latest merge first (the largest rank)", "encode_word", """
                def encode_word(word, merges):
                    ranks = {tuple(pair): rank for rank, pair in enumerate(merges)}
                    symbols = list(word)
                    while True:
                        best = max((p for p in pairwise(symbols) if p in ranks), key=ranks.get, default=None)
                        if best is None:
                            return symbols
                        merged, i = [], 0
                        while i < len(symbols):
                            if tuple(symbols[i:i + 2]) == best:
                                merged.append(best[0] + best[1])
                                i += 2
                            else:
                                merged.append(symbols[i])
                                i += 1
                        symbols = merged
            """),
        ],
        "q3": [
            ("characters counted as UTF-8 bytes", "tokens_per_character", """
                def tokens_per_character(texts, tokenize):
                    return sum(len(tokenize(t)) for t in texts) / sum(len(t.encode("utf-8")) for t in texts)
            """),
            ("the mean of each text's ratio, not the ratio of the totals", "tokens_per_character", """
                def tokens_per_character(texts, tokenize):
                    return sum(len(tokenize(t)) / len(t) for t in texts) / len(texts)
            """),
            ("spaces not counted as characters", "tokens_per_character", """
                def tokens_per_character(texts, tokenize):
                    return sum(len(tokenize(t)) for t in texts) / sum(len(t.replace(" ", "")) for t in texts)
            """),
        ],
    },
    "ngram_models": {
        "q1": [
            ("forgets </s>: m bigrams per sentence, not m + 1", "bigrams", """
                def bigrams(sentence):
                    padded = ["<s>", *sentence]
                    return list(zip(padded[:-1], padded[1:]))
            """),
            ("two <s> of context (a trigram model's padding)", "bigrams", """
                def bigrams(sentence):
                    padded = ["<s>", "<s>", *sentence, "</s>"]
                    return list(zip(padded[:-1], padded[1:]))
            """),
            ("pads the whole corpus once: bigrams span sentence boundaries", "count_bigrams", """
                def count_bigrams(sentences):
                    return Counter(bigrams([w for sentence in sentences for w in sentence]))
            """),
        ],
        "q2": [
            ("wrong axis: divides by c(. w), how often w was predicted, not by c(h .)", "mle_prob", """
                def mle_prob(counts, h, w):
                    return counts[(h, w)] / sum(n for (_, second), n in counts.items() if second == w)
            """),
            ("joint, not conditional: divides by the number of all bigrams", "mle_prob", """
                def mle_prob(counts, h, w):
                    return counts[(h, w)] / sum(counts.values())
            """),
            ("divides by the number of distinct words after h (types, not tokens)", "mle_prob", """
                def mle_prob(counts, h, w):
                    return counts[(h, w)] / len({second for first, second in counts if first == h})
            """),
        ],
        "q3": [
            ("missing the k|V| term: the probabilities do not sum to 1", "add_k_prob", """
                def add_k_prob(counts, h, w, k):
                    history_total = sum(n for (first, _), n in counts.items() if first == h)
                    return (counts[(h, w)] + k) / history_total
            """),
            ("counts <s> in V", "vocab_size", """
                def vocab_size(counts):
                    return len({token for bigram in counts for token in bigram}) + 1
            """),
            ("forgets <unk> in V (off by one)", "vocab_size", """
                def vocab_size(counts):
                    return len({w for _, w in counts})
            """),
        ],
        "q4": [
            ("forgets </s>: neither predicted nor counted", "sentence_perplexity", """
                def sentence_perplexity(sentence, prob):
                    padded = ["<s>", *sentence]
                    log_probs = [math.log(prob(h, w)) for h, w in zip(padded[:-1], padded[1:])]
                    return math.exp(-sum(log_probs) / len(log_probs))
            """),
            ("log10 with exp: mixes the bases of the logarithm", "sentence_perplexity", """
                def sentence_perplexity(sentence, prob):
                    padded = ["<s>", *sentence, "</s>"]
                    log_probs = [math.log10(prob(h, w)) for h, w in zip(padded[:-1], padded[1:])]
                    return math.exp(-sum(log_probs) / len(log_probs))
            """),
            ("averages over the m words, not the m + 1 predicted tokens (off by one)", "sentence_perplexity", """
                def sentence_perplexity(sentence, prob):
                    padded = ["<s>", *sentence, "</s>"]
                    log_probs = [math.log(prob(h, w)) for h, w in zip(padded[:-1], padded[1:])]
                    return math.exp(-sum(log_probs) / len(sentence))
            """),
        ],
    },
    "neural_networks": {
        "q1": [
            ("the formula as written: exp overflows (nan) or underflows (-inf) for huge logits", "log_softmax", """
                def log_softmax(logits):
                    return np.log(np.exp(logits) / np.exp(logits).sum())
            """),
            ("subtracts the maximum inside the sum but forgets it outside", "log_softmax", """
                def log_softmax(logits):
                    m = np.max(logits)
                    return logits - np.log(np.sum(np.exp(logits - m)))
            """),
            ("the log of the shifted softmax: a logit far below the maximum underflows to log(0)", "log_softmax", """
                def log_softmax(logits):
                    e = np.exp(logits - np.max(logits))
                    return np.log(e / e.sum())
            """),
            ("the stable formula in float32, which the question rules out: -1000.1269 comes out as -1000.127",
             "log_softmax", """
                def log_softmax(logits):
                    y = torch.as_tensor(logits, dtype=torch.float32)
                    m = y.max()
                    return y - m - torch.log(torch.exp(y - m).sum())
            """),
        ],
        "q2": [
            ("sums over the batch instead of taking the mean", "cross_entropy", """
                def cross_entropy(logits, targets):
                    m = logits.max(axis=1, keepdims=True)
                    logp = logits - m - np.log(np.exp(logits - m).sum(axis=1, keepdims=True))
                    return -logp[np.arange(len(logits)), targets].sum()
            """),
            ("-y_k without the log-sum-exp: the logits taken for log-probabilities", "cross_entropy", """
                def cross_entropy(logits, targets):
                    return -logits[np.arange(len(logits)), targets].mean()
            """),
            ("the mean of -ln p over every entry of the batch, not only the targets", "cross_entropy", """
                def cross_entropy(logits, targets):
                    m = logits.max(axis=1, keepdims=True)
                    return -(logits - m - np.log(np.exp(logits - m).sum(axis=1, keepdims=True))).mean()
            """),
        ],
        "q3": [
            ("forgets to divide by B: the gradient of the summed loss", "cross_entropy_grad", """
                def cross_entropy_grad(logits, targets):
                    p = np.exp(logits - logits.max(axis=1, keepdims=True))
                    p = p / p.sum(axis=1, keepdims=True)
                    p[np.arange(len(logits)), targets] -= 1
                    return p
            """),
            ("wrong sign: onehot - softmax, the direction of steepest ascent of ln p", "cross_entropy_grad", """
                def cross_entropy_grad(logits, targets):
                    p = np.exp(logits - logits.max(axis=1, keepdims=True))
                    p = p / p.sum(axis=1, keepdims=True)
                    return (np.eye(logits.shape[1])[targets] - p) / len(logits)
            """),
            ("wrong axis: softmax down each column (over the batch), not along each row", "cross_entropy_grad", """
                def cross_entropy_grad(logits, targets):
                    p = np.exp(logits - logits.max(axis=0, keepdims=True))
                    p = p / p.sum(axis=0, keepdims=True)
                    p[np.arange(len(logits)), targets] -= 1
                    return p / len(logits)
            """),
        ],
        "q4": [
            ("the lr-scaled velocity (v = mu v + lr g, theta -= v): same parameters, v off by a factor lr",
             "sgd_momentum_step", """
                def sgd_momentum_step(params, grads, velocity, lr, momentum):
                    new_velocity = [momentum * v + lr * g for v, g in zip(velocity, grads)]
                    return [p - v for p, v in zip(params, new_velocity)], new_velocity
            """),
            ("moves with the old velocity, then updates it", "sgd_momentum_step", """
                def sgd_momentum_step(params, grads, velocity, lr, momentum):
                    new_params = [p - lr * v for p, v in zip(params, velocity)]
                    return new_params, [momentum * v + g for v, g in zip(velocity, grads)]
            """),
            ("a moving average (v = mu v + (1 - mu) g, Adam's first moment), not PyTorch's sum",
             "sgd_momentum_step", """
                def sgd_momentum_step(params, grads, velocity, lr, momentum):
                    new_velocity = [momentum * v + (1 - momentum) * g for v, g in zip(velocity, grads)]
                    return [p - lr * v for p, v in zip(params, new_velocity)], new_velocity
            """),
        ],
        "q5": [
            ("concatenates the context newest token first", "mlp_forward", """
                def mlp_forward(C, H, d, U, b, contexts):
                    x = C[contexts[:, ::-1]].reshape(len(contexts), -1)
                    y = b + np.tanh(d + x @ H.T) @ U.T
                    m = y.max(axis=1, keepdims=True)
                    return y - m - np.log(np.exp(y - m).sum(axis=1, keepdims=True))
            """),
            ("forgets the tanh: a linear model", "mlp_forward", """
                def mlp_forward(C, H, d, U, b, contexts):
                    x = C[contexts].reshape(len(contexts), -1)
                    y = b + (d + x @ H.T) @ U.T
                    m = y.max(axis=1, keepdims=True)
                    return y - m - np.log(np.exp(y - m).sum(axis=1, keepdims=True))
            """),
            ("returns the logits y, not log-probabilities", "mlp_forward", """
                def mlp_forward(C, H, d, U, b, contexts):
                    x = C[contexts].reshape(len(contexts), -1)
                    return b + np.tanh(d + x @ H.T) @ U.T
            """),
        ],
    },
    "generating_text": {
        "q1": [
            ("the temperature applied to the probabilities: softmax(p / T)", "temperature_probs", """
                def temperature_probs(logits, T):
                    z = np.asarray(logits, dtype=float)
                    p = np.exp(z - z.max())
                    p = p / p.sum()
                    e = np.exp(p / T - (p / T).max())
                    return e / e.sum()
            """),
            ("divides the probabilities by T and renormalises: p itself, whatever T", "temperature_probs", """
                def temperature_probs(logits, T):
                    z = np.asarray(logits, dtype=float)
                    p = np.exp(z - z.max())
                    p = p / p.sum()
                    return (p / T) / (p / T).sum()
            """),
            ("multiplies the logits by T: softmax(z * T)", "temperature_probs", """
                def temperature_probs(logits, T):
                    scaled = np.asarray(logits, dtype=float) * T
                    e = np.exp(scaled - scaled.max())
                    return e / e.sum()
            """),
            ("the formula as written: exp(z / T) overflows (nan) for logits near 1000", "temperature_probs", """
                def temperature_probs(logits, T):
                    e = np.exp(np.asarray(logits, dtype=float) / T)
                    return e / e.sum()
            """),
        ],
        "q2": [
            ("does not renormalise: the kept probabilities sum to less than 1", "top_k_filter", """
                def top_k_filter(probs, k):
                    p = np.asarray(probs, dtype=float)
                    kept = np.argsort(p)[::-1][:k]
                    filtered = np.zeros_like(p)
                    filtered[kept] = p[kept]
                    return filtered
            """),
            ("keeps the k least probable tokens (argsort is ascending)", "top_k_filter", """
                def top_k_filter(probs, k):
                    p = np.asarray(probs, dtype=float)
                    kept = np.argsort(p)[:k]
                    filtered = np.zeros_like(p)
                    filtered[kept] = p[kept]
                    return filtered / filtered.sum()
            """),
            ("off by one: the threshold is the (k+1)-th largest, so k + 1 tokens are kept", "top_k_filter", """
                def top_k_filter(probs, k):
                    p = np.asarray(probs, dtype=float)
                    threshold = np.sort(p)[::-1][k]
                    filtered = np.where(p >= threshold, p, 0.0)
                    return filtered / filtered.sum()
            """),
        ],
        "q3": [
            ("drops the token that crosses p: keeps only tokens whose running total is < p", "top_p_filter", """
                def top_p_filter(probs, p):
                    probs = np.asarray(probs, dtype=float)
                    order = np.argsort(probs)[::-1]
                    keep = np.cumsum(probs[order]) < p
                    keep[0] = True  # the most probable token, always
                    filtered = np.zeros_like(probs)
                    filtered[order[keep]] = probs[order[keep]]
                    return filtered / filtered.sum()
            """),
            ("sorts ascending: keeps the least probable tokens until their total reaches p", "top_p_filter", """
                def top_p_filter(probs, p):
                    probs = np.asarray(probs, dtype=float)
                    order = np.argsort(probs)
                    m = min(int(np.searchsorted(np.cumsum(probs[order]), p)) + 1, len(probs))
                    filtered = np.zeros_like(probs)
                    filtered[order[:m]] = probs[order[:m]]
                    return filtered / filtered.sum()
            """),
            ("forgets to sort: the running total in vocabulary order", "top_p_filter", """
                def top_p_filter(probs, p):
                    probs = np.asarray(probs, dtype=float)
                    m = min(int(np.searchsorted(np.cumsum(probs), p)) + 1, len(probs))
                    filtered = np.zeros_like(probs)
                    filtered[:m] = probs[:m]
                    return filtered / filtered.sum()
            """),
        ],
        "q4": [
            ("the best width extensions of each beam, not of all beams together", "beam_step", """
                def beam_step(beams, next_logprobs, width):
                    kept = []
                    for (tokens, score), logprobs in zip(beams, next_logprobs):
                        extensions = [(tuple(tokens) + (t,), score + lp) for t, lp in logprobs.items()]
                        kept += sorted(extensions, key=lambda b: b[1], reverse=True)[:width]
                    return sorted(kept, key=lambda b: b[1], reverse=True)
            """),
            ("multiplies the log-probabilities instead of adding them", "beam_step", """
                def beam_step(beams, next_logprobs, width):
                    extensions = [(tuple(tokens) + (t,), score * lp)
                                  for (tokens, score), logprobs in zip(beams, next_logprobs)
                                  for t, lp in logprobs.items()]
                    return sorted(extensions, key=lambda b: b[1], reverse=True)[:width]
            """),
            ("keeps only the best extension of each beam", "beam_step", """
                def beam_step(beams, next_logprobs, width):
                    best = []
                    for (tokens, score), logprobs in zip(beams, next_logprobs):
                        token = max(logprobs, key=logprobs.get)
                        best.append((tuple(tokens) + (token,), score + logprobs[token]))
                    return sorted(best, key=lambda b: b[1], reverse=True)[:width]
            """),
        ],
    },
    "applications": {
        "q1": [
            ("forgets to clip: every hypothesis n-gram found in the reference is a match", "clipped_precision", """
                def clipped_precision(hypotheses, references, n):
                    matches = total = 0
                    for hypothesis, reference in zip(hypotheses, references):
                        ref_grams = {tuple(reference[i:i + n]) for i in range(len(reference) - n + 1)}
                        hyp_grams = [tuple(hypothesis[i:i + n]) for i in range(len(hypothesis) - n + 1)]
                        matches += sum(gram in ref_grams for gram in hyp_grams)
                        total += len(hyp_grams)
                    return matches / total if total else 0.0
            """),
            ("no brevity penalty: short hypotheses score too high", "corpus_bleu", """
                def corpus_bleu(hypotheses, references):
                    precisions = [clipped_precision(hypotheses, references, n) for n in range(1, 5)]
                    if min(precisions) == 0:
                        return 0.0
                    return 100 * math.exp(sum(math.log(p) for p in precisions) / 4)
            """),
            ("the arithmetic mean of the precisions, not the geometric mean", "corpus_bleu", """
                def corpus_bleu(hypotheses, references):
                    precisions = [clipped_precision(hypotheses, references, n) for n in range(1, 5)]
                    c = sum(len(h) for h in hypotheses)
                    r = sum(len(x) for x in references)
                    brevity_penalty = 1.0 if c >= r else math.exp(1 - r / c)
                    return 100 * brevity_penalty * sum(precisions) / 4
            """),
            ("the mean of the sentences' BLEU scores, not corpus BLEU", "corpus_bleu", """
                def corpus_bleu(hypotheses, references):
                    scores = []
                    for hypothesis, reference in zip(hypotheses, references):
                        precisions = [clipped_precision([hypothesis], [reference], n) for n in range(1, 5)]
                        if min(precisions) == 0:
                            scores.append(0.0)
                            continue
                        c, r = len(hypothesis), len(reference)
                        brevity_penalty = 1.0 if c >= r else math.exp(1 - r / c)
                        scores.append(100 * brevity_penalty * math.exp(sum(math.log(p) for p in precisions) / 4))
                    return sum(scores) / len(scores)
            """),
        ],
        "q2": [
            ("the longest common substring (adjacent tokens), not the longest common subsequence", "lcs_length", """
                def lcs_length(a, b):
                    best = 0
                    previous = [0] * (len(b) + 1)
                    for x in a:
                        current = [0]
                        for j, y in enumerate(b, start=1):
                            current.append(previous[j - 1] + 1 if x == y else 0)
                        best = max(best, *current)
                        previous = current
                    return best
            """),
            ("precision and recall swapped: LCS / |reference| called precision", "rouge_l", """
                def rouge_l(hypothesis, reference):
                    if not hypothesis or not reference:
                        return 0.0, 0.0, 0.0
                    lcs = lcs_length(hypothesis, reference)
                    precision, recall = lcs / len(reference), lcs / len(hypothesis)
                    fmeasure = 2 * precision * recall / (precision + recall) if lcs else 0.0
                    return precision, recall, fmeasure
            """),
            ("F as the arithmetic mean of P and R, not their harmonic mean", "rouge_l", """
                def rouge_l(hypothesis, reference):
                    if not hypothesis or not reference:
                        return 0.0, 0.0, 0.0
                    lcs = lcs_length(hypothesis, reference)
                    precision, recall = lcs / len(hypothesis), lcs / len(reference)
                    return precision, recall, (precision + recall) / 2
            """),
        ],
        "q3": [
            ("hit@k looks at the first k - 1 candidates only (off by one)", "hit_at_k", """
                def hit_at_k(rankings, relevant, k):
                    hits = [any(c in rel for c in ranking[:k - 1]) for ranking, rel in zip(rankings, relevant)]
                    return sum(hits) / len(hits)
            """),
            ("hit@k counts every relevant id in the top k: a question can count twice", "hit_at_k", """
                def hit_at_k(rankings, relevant, k):
                    found = sum(c in rel for ranking, rel in zip(rankings, relevant) for c in ranking[:k])
                    return found / len(rankings)
            """),
            ("MRR returns inside the loop: only the first question is scored", "mean_reciprocal_rank", """
                def mean_reciprocal_rank(rankings, relevant):
                    total = 0.0
                    for ranking, rel in zip(rankings, relevant):
                        for rank, candidate in enumerate(ranking, start=1):
                            if candidate in rel:
                                total += 1 / rank
                                break
                        return total / len(rankings)
            """),
            ("MRR leaves out the questions whose answer is not ranked, instead of counting them as 0",
             "mean_reciprocal_rank", """
                def mean_reciprocal_rank(rankings, relevant):
                    reciprocal_ranks = []
                    for ranking, rel in zip(rankings, relevant):
                        ranks = [rank for rank, candidate in enumerate(ranking, start=1) if candidate in rel]
                        if ranks:
                            reciprocal_ranks.append(1 / ranks[0])
                    return sum(reciprocal_ranks) / len(reciprocal_ranks)
            """),
        ],
    },
    "recurrent_networks": {
        "q1": [
            ("gates read in the order i, f, o, g: the third block taken as the output gate", "lstm_step", """
                def lstm_step(x, h, c, W_ih, W_hh, b_ih, b_hh):
                    a = x @ W_ih.T + b_ih + h @ W_hh.T + b_hh
                    a_i, a_f, a_o, a_g = np.split(a, 4, axis=1)
                    c_new = 1 / (1 + np.exp(-a_f)) * c + 1 / (1 + np.exp(-a_i)) * np.tanh(a_g)
                    return 1 / (1 + np.exp(-a_o)) * np.tanh(c_new), c_new
            """),
            ("no input gate: c_new = f * c + g", "lstm_step", """
                def lstm_step(x, h, c, W_ih, W_hh, b_ih, b_hh):
                    a = x @ W_ih.T + b_ih + h @ W_hh.T + b_hh
                    a_i, a_f, a_g, a_o = np.split(a, 4, axis=1)
                    c_new = 1 / (1 + np.exp(-a_f)) * c + np.tanh(a_g)
                    return 1 / (1 + np.exp(-a_o)) * np.tanh(c_new), c_new
            """),
            ("no tanh on the cell: h_new = o * c_new", "lstm_step", """
                def lstm_step(x, h, c, W_ih, W_hh, b_ih, b_hh):
                    a = x @ W_ih.T + b_ih + h @ W_hh.T + b_hh
                    a_i, a_f, a_g, a_o = np.split(a, 4, axis=1)
                    c_new = 1 / (1 + np.exp(-a_f)) * c + 1 / (1 + np.exp(-a_i)) * np.tanh(a_g)
                    return 1 / (1 + np.exp(-a_o)) * c_new, c_new
            """),
            ("a sigmoid on the candidate g as well, like the three gates", "lstm_step", """
                def lstm_step(x, h, c, W_ih, W_hh, b_ih, b_hh):
                    i, f, g, o = np.split(1 / (1 + np.exp(-(x @ W_ih.T + b_ih + h @ W_hh.T + b_hh))), 4, axis=1)
                    c_new = f * c + i * g
                    return o * np.tanh(c_new), c_new
            """),
            ("the hidden-to-hidden bias b_hh left out", "lstm_step", """
                def lstm_step(x, h, c, W_ih, W_hh, b_ih, b_hh):
                    a = x @ W_ih.T + b_ih + h @ W_hh.T
                    a_i, a_f, a_g, a_o = np.split(a, 4, axis=1)
                    c_new = 1 / (1 + np.exp(-a_f)) * c + 1 / (1 + np.exp(-a_i)) * np.tanh(a_g)
                    return 1 / (1 + np.exp(-a_o)) * np.tanh(c_new), c_new
            """),
        ],
        "q2": [
            ("clips each tensor by its own norm", "clip_by_global_norm", """
                def clip_by_global_norm(grads, max_norm):
                    return [g * min(1.0, max_norm / np.linalg.norm(g)) for g in grads]
            """),
            ("always rescales to max_norm, also gradients that are shorter (scales them up)",
             "clip_by_global_norm", """
                def clip_by_global_norm(grads, max_norm):
                    total_norm = np.sqrt(sum(np.sum(g ** 2) for g in grads))
                    return [g * max_norm / total_norm for g in grads]
            """),
            ("the sum of the tensors' norms instead of the root of the sum of all squares",
             "clip_by_global_norm", """
                def clip_by_global_norm(grads, max_norm):
                    total_norm = sum(np.linalg.norm(g) for g in grads)
                    if total_norm > max_norm:
                        return [g * max_norm / total_norm for g in grads]
                    return grads
            """),
        ],
        "q3": [
            ("lanes interleaved: token j goes to lane j % batch_size", "bptt_blocks", """
                def bptt_blocks(stream, batch_size, block):
                    lane = len(stream) // batch_size
                    lanes = np.asarray(stream)[: lane * batch_size].reshape(lane, batch_size).T
                    return [(lanes[:, s : s + block], lanes[:, s + 1 : s + block + 1])
                            for s in range(0, lane - block, block)]
            """),
            ("targets not shifted: each position is its own target", "bptt_blocks", """
                def bptt_blocks(stream, batch_size, block):
                    lane = len(stream) // batch_size
                    lanes = np.asarray(stream)[: lane * batch_size].reshape(batch_size, lane)
                    return [(lanes[:, s : s + block], lanes[:, s : s + block]) for s in range(0, lane - block, block)]
            """),
            ("windows of block + 1 that do not overlap: the token between two steps is never a target",
             "bptt_blocks", """
                def bptt_blocks(stream, batch_size, block):
                    lane = len(stream) // batch_size
                    lanes = np.asarray(stream)[: lane * batch_size].reshape(batch_size, lane)
                    return [(lanes[:, s : s + block], lanes[:, s + 1 : s + block + 1])
                            for s in range(0, lane - block, block + 1)]
            """),
            ("keeps the last, shorter block", "bptt_blocks", """
                def bptt_blocks(stream, batch_size, block):
                    lane = len(stream) // batch_size
                    lanes = np.asarray(stream)[: lane * batch_size].reshape(batch_size, lane)
                    return [(lanes[:, s : s + block], lanes[:, s + 1 : s + block + 1])
                            for s in range(0, lane - 1, block)]
            """),
        ],
    },
    "word_embeddings": {
        "q1": [
            ("power 1: the unigram distribution itself", "noise_distribution", """
                def noise_distribution(counts):
                    return counts / counts.sum()
            """),
            ("not normalised: the counts to the power 0.75", "noise_distribution", """
                def noise_distribution(counts):
                    return np.asarray(counts, dtype=float) ** 0.75
            """),
            ("the unigram probabilities to the power 0.75, not normalised again", "noise_distribution", """
                def noise_distribution(counts):
                    return (counts / counts.sum()) ** 0.75
            """),
        ],
        "q2": [
            ("sign error on the noise words: -ln sigma(u . v_nk), without the minus inside", "sgns_loss", """
                def sgns_loss(u, v_c, v_noise):
                    log_sigmoid = lambda x: -np.logaddexp(0.0, -x)
                    return -log_sigmoid(u @ v_c) - log_sigmoid(v_noise @ u).sum()
            """),
            ("the mean over the noise words, not the sum", "sgns_loss", """
                def sgns_loss(u, v_c, v_noise):
                    log_sigmoid = lambda x: -np.logaddexp(0.0, -x)
                    return -log_sigmoid(u @ v_c) - log_sigmoid(-(v_noise @ u)).mean()
            """),
            ("the log-likelihood: the loss without its minus signs", "sgns_loss", """
                def sgns_loss(u, v_c, v_noise):
                    sigmoid = lambda x: 1 / (1 + np.exp(-x))
                    return np.log(sigmoid(u @ v_c)) + np.log(sigmoid(-(v_noise @ u))).sum()
            """),
        ],
        "q3": [
            ("the noise words' contribution left out: (sigma(u . v_c) - 1) v_c only", "sgns_grad_input", """
                def sgns_grad_input(u, v_c, v_noise):
                    return (1 / (1 + np.exp(-(u @ v_c))) - 1) * v_c
            """),
            ("sign error on the real pair's term: (1 - sigma(u . v_c)) v_c", "sgns_grad_input", """
                def sgns_grad_input(u, v_c, v_noise):
                    sigmoid = lambda x: 1 / (1 + np.exp(-x))
                    return (1 - sigmoid(u @ v_c)) * v_c + sigmoid(v_noise @ u) @ v_noise
            """),
            ("the noise words weighted by sigma(-u . v_nk) instead of sigma(u . v_nk)", "sgns_grad_input", """
                def sgns_grad_input(u, v_c, v_noise):
                    sigmoid = lambda x: 1 / (1 + np.exp(-x))
                    return (sigmoid(u @ v_c) - 1) * v_c + sigmoid(-(v_noise @ u)) @ v_noise
            """),
        ],
        "q4": [
            ("neighbours by the dot product, not the cosine", "nearest_neighbours", """
                def nearest_neighbours(E, words, query, n):
                    q = words.index(query)
                    scores = E @ E[q]
                    return [(words[i], float(scores[i])) for i in np.argsort(-scores) if i != q][:n]
            """),
            ("the query word itself included (cosine 1, first)", "nearest_neighbours", """
                def nearest_neighbours(E, words, query, n):
                    unit = E / np.linalg.norm(E, axis=1, keepdims=True)
                    cosines = unit @ unit[words.index(query)]
                    return [(words[i], float(cosines[i])) for i in np.argsort(-cosines)[:n]]
            """),
            ("normalised over the wrong axis: each column divided by its norm, not each row",
             "nearest_neighbours", """
                def nearest_neighbours(E, words, query, n):
                    unit = E / np.linalg.norm(E, axis=0, keepdims=True)
                    q = words.index(query)
                    cosines = unit @ unit[q]
                    return [(words[i], float(cosines[i])) for i in np.argsort(-cosines) if i != q][:n]
            """),
            ("the query's vector not divided by its length: the right order, the cosines scaled by |E[query]|",
             "nearest_neighbours", """
                def nearest_neighbours(E, words, query, n):
                    q = words.index(query)
                    scores = E @ E[q] / np.linalg.norm(E, axis=1)
                    return [(words[i], float(scores[i])) for i in np.argsort(-scores) if i != q][:n]
            """),
        ],
    },
    "transformer": {
        "q1": [
            ("no sqrt(d_k): softmax(Q K^T) V", "attention", """
                def attention(Q, K, V, mask=None):
                    scores = Q @ K.T
                    if mask is not None:
                        scores = np.where(mask, scores, -np.inf)
                    weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
                    return weights / weights.sum(axis=-1, keepdims=True) @ V
            """),
            ("divides by d_k instead of sqrt(d_k)", "attention", """
                def attention(Q, K, V, mask=None):
                    scores = Q @ K.T / Q.shape[-1]
                    if mask is not None:
                        scores = np.where(mask, scores, -np.inf)
                    weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
                    return weights / weights.sum(axis=-1, keepdims=True) @ V
            """),
            ("mask applied after the softmax: weights zeroed, rows not renormalised", "attention", """
                def attention(Q, K, V, mask=None):
                    scores = Q @ K.T / np.sqrt(Q.shape[-1])
                    weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
                    weights = weights / weights.sum(axis=-1, keepdims=True)
                    if mask is not None:
                        weights = weights * mask
                    return weights @ V
            """),
            ("mask read the other way round (True = hidden, nn.MultiheadAttention's convention)", "attention", """
                def attention(Q, K, V, mask=None):
                    scores = Q @ K.T / np.sqrt(Q.shape[-1])
                    if mask is not None:
                        scores = np.where(mask, -np.inf, scores)
                    weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
                    return weights / weights.sum(axis=-1, keepdims=True) @ V
            """),
            ("softmax over the queries (axis 0), not over the keys", "attention", """
                def attention(Q, K, V, mask=None):
                    scores = Q @ K.T / np.sqrt(Q.shape[-1])
                    if mask is not None:
                        scores = np.where(mask, scores, -np.inf)
                    weights = np.exp(scores - scores.max(axis=0, keepdims=True))
                    return weights / weights.sum(axis=0, keepdims=True) @ V
            """),
        ],
        "q2": [
            ("diagonal excluded: a position may not look at itself", "causal_mask", """
                def causal_mask(t_q, t_k):
                    return np.tri(t_q, t_k, k=t_k - t_q - 1, dtype=bool)
            """),
            ("off by one the other way: each query also sees the next position", "causal_mask", """
                def causal_mask(t_q, t_k):
                    return np.tri(t_q, t_k, k=t_k - t_q + 1, dtype=bool)
            """),
            ("aligned to the first positions: np.tril of ones, right only when t_q = t_k", "causal_mask", """
                def causal_mask(t_q, t_k):
                    return np.tril(np.ones((t_q, t_k), dtype=bool))
            """),
            ("the upper triangle: True where a query may NOT look (the future), an additive mask's layout",
             "causal_mask", """
                def causal_mask(t_q, t_k):
                    return np.triu(np.ones((t_q, t_k), dtype=bool), k=t_k - t_q + 1)
            """),
        ],
        "q3": [
            ("split: reshape straight to [B, h, T, d_k], no transpose", "split_heads", """
                def split_heads(x, n_heads):
                    B, T, width = x.shape
                    return x.reshape(B, n_heads, T, width // n_heads)
            """),
            ("split: heads take interleaved coordinates (head i gets i, i + h, i + 2h, ...)", "split_heads", """
                def split_heads(x, n_heads):
                    B, T, width = x.shape
                    return x.reshape(B, T, width // n_heads, n_heads).transpose(0, 3, 1, 2)
            """),
            ("merge: reshape straight to [B, T, h d_k], no transpose (heads merged in the wrong order)",
             "merge_heads", """
                def merge_heads(x):
                    B, h, T, d_k = x.shape
                    return x.reshape(B, T, h * d_k)
            """),
            ("merge: the heads' coordinates interleaved ([B, T, d_k, h] flattened)", "merge_heads", """
                def merge_heads(x):
                    B, h, T, d_k = x.shape
                    return x.transpose(0, 2, 3, 1).reshape(B, T, h * d_k)
            """),
        ],
        "q4": [
            ("pairs of neighbours (x_2i, x_2i+1), the paper's interleaved layout, not the halves", "rope", """
                def rope(x, t, theta):
                    angles = t * theta ** (-2 * np.arange(len(x) // 2) / len(x))
                    even, odd = x[0::2], x[1::2]
                    out = np.empty(len(x))
                    out[0::2] = even * np.cos(angles) - odd * np.sin(angles)
                    out[1::2] = odd * np.cos(angles) + even * np.sin(angles)
                    return out
            """),
            ("turned by -t theta_i: rotate_half with its signs swapped", "rope", """
                def rope(x, t, theta):
                    half = len(x) // 2
                    angles = np.tile(t * theta ** (-2 * np.arange(half) / len(x)), 2)
                    rotated = np.concatenate([x[half:], -x[:half]])
                    return x * np.cos(angles) + rotated * np.sin(angles)
            """),
            ("frequencies theta^(-i/d_k): the factor 2 in the exponent left out", "rope", """
                def rope(x, t, theta):
                    half = len(x) // 2
                    angles = t * theta ** (-np.arange(half) / len(x))
                    cos, sin = np.cos(angles), np.sin(angles)
                    return np.concatenate([x[:half] * cos - x[half:] * sin, x[half:] * cos + x[:half] * sin])
            """),
        ],
    },
    "pretraining": {
        "q1": [
            ("no label shift: position t scored on its own token ids[:, t]", "causal_lm_loss", """
                def causal_lm_loss(logits, ids, pad_id):
                    log_probs = logits - logits.max(axis=-1, keepdims=True)
                    log_probs = log_probs - np.log(np.exp(log_probs).sum(axis=-1, keepdims=True))
                    picked = np.take_along_axis(log_probs, ids[..., None], axis=-1)[..., 0]
                    return -picked[ids != pad_id].mean()
            """),
            ("padding targets averaged in", "causal_lm_loss", """
                def causal_lm_loss(logits, ids, pad_id):
                    z = logits[:, :-1]
                    log_probs = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
                    return -np.take_along_axis(log_probs, ids[:, 1:, None], axis=-1).mean()
            """),
            ("log base 2 (bits, not nats)", "causal_lm_loss", """
                def causal_lm_loss(logits, ids, pad_id):
                    z, targets = logits[:, :-1], ids[:, 1:]
                    log_probs = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
                    picked = np.take_along_axis(log_probs, targets[..., None], axis=-1)[..., 0]
                    return -picked[targets != pad_id].mean() / np.log(2)
            """),
            ("the sum over the scored targets, not their mean", "causal_lm_loss", """
                def causal_lm_loss(logits, ids, pad_id):
                    z, targets = logits[:, :-1], ids[:, 1:]
                    log_probs = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
                    picked = np.take_along_axis(log_probs, targets[..., None], axis=-1)[..., 0]
                    return -picked[targets != pad_id].sum()
            """),
        ],
        "q2": [
            ("special tokens can be chosen (the special mask ignored)", "bert_masking", """
                def bert_masking(ids, special, u_choose, u_mask, u_random, random_ids, mask_id):
                    chosen = u_choose < 0.15
                    masked = chosen & (u_mask < 0.8)
                    randomised = chosen & ~masked & (u_random < 0.5)
                    return np.where(masked, mask_id, np.where(randomised, random_ids, ids)), np.where(chosen, ids, -100)
            """),
            ("the 80/10/10 split applied to every token, not only to the chosen ones", "bert_masking", """
                def bert_masking(ids, special, u_choose, u_mask, u_random, random_ids, mask_id):
                    chosen = (u_choose < 0.15) & ~special
                    masked = u_mask < 0.8
                    randomised = ~masked & (u_random < 0.5)
                    return np.where(masked, mask_id, np.where(randomised, random_ids, ids)), np.where(chosen, ids, -100)
            """),
            ("labels keep every token (no -100)", "bert_masking", """
                def bert_masking(ids, special, u_choose, u_mask, u_random, random_ids, mask_id):
                    chosen = (u_choose < 0.15) & ~special
                    masked = chosen & (u_mask < 0.8)
                    randomised = chosen & ~masked & (u_random < 0.5)
                    return np.where(masked, mask_id, np.where(randomised, random_ids, ids)), ids.copy()
            """),
            ("random replacement when u_random < 0.1 (the 10 % not rescaled to the 20 % left)", "bert_masking", """
                def bert_masking(ids, special, u_choose, u_mask, u_random, random_ids, mask_id):
                    chosen = (u_choose < 0.15) & ~special
                    masked = chosen & (u_mask < 0.8)
                    randomised = chosen & ~masked & (u_random < 0.1)
                    return np.where(masked, mask_id, np.where(randomised, random_ids, ids)), np.where(chosen, ids, -100)
            """),
            ("labels only where the input changed: the kept tokens get -100", "bert_masking", """
                def bert_masking(ids, special, u_choose, u_mask, u_random, random_ids, mask_id):
                    chosen = (u_choose < 0.15) & ~special
                    masked = chosen & (u_mask < 0.8)
                    randomised = chosen & ~masked & (u_random < 0.5)
                    inputs = np.where(masked, mask_id, np.where(randomised, random_ids, ids))
                    return inputs, np.where(masked | randomised, ids, -100)
            """),
        ],
        "q3": [
            ("padding averaged in: a plain mean over the T positions", "mean_pooling", """
                def mean_pooling(hidden, attention_mask):
                    return hidden.mean(axis=1)
            """),
            ("padding left out of the sum, but divided by T, not by the number of real tokens", "mean_pooling", """
                def mean_pooling(hidden, attention_mask):
                    return (hidden * attention_mask[:, :, None]).sum(axis=1) / hidden.shape[1]
            """),
            ("pooled over the wrong axis: the batch (axis 0), not the positions", "mean_pooling", """
                def mean_pooling(hidden, attention_mask):
                    weights = attention_mask[:, :, None]
                    return (hidden * weights).sum(axis=0) / weights.sum(axis=0)
            """),
        ],
    },
    "finetuning": {
        "q1": [
            ("pooled at position T - 1 (the padding's state in a padded text), not the last real token",
             "head_loss", """
                def head_loss(hidden, attention_mask, W, b, labels):
                    logits = hidden[:, -1] @ W.T + b
                    log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
                    return -log_probs[np.arange(len(labels)), labels].mean()
            """),
            ("mean pooling over the real tokens, not the last real token", "head_loss", """
                def head_loss(hidden, attention_mask, W, b, labels):
                    m = attention_mask[:, :, None]
                    logits = (hidden * m).sum(axis=1) / m.sum(axis=1) @ W.T + b
                    log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
                    return -log_probs[np.arange(len(labels)), labels].mean()
            """),
            ("no bias: W h only", "head_loss", """
                def head_loss(hidden, attention_mask, W, b, labels):
                    h = hidden[np.arange(len(hidden)), attention_mask.sum(axis=1) - 1]
                    logits = h @ W.T
                    log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
                    return -log_probs[np.arange(len(labels)), labels].mean()
            """),
            ("softmax without the log: minus the mean probability of the label", "head_loss", """
                def head_loss(hidden, attention_mask, W, b, labels):
                    h = hidden[np.arange(len(hidden)), attention_mask.sum(axis=1) - 1]
                    logits = h @ W.T + b
                    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
                    return -probs[np.arange(len(labels)), labels].mean()
            """),
            ("log base 2 (bits, not nats)", "head_loss", """
                def head_loss(hidden, attention_mask, W, b, labels):
                    h = hidden[np.arange(len(hidden)), attention_mask.sum(axis=1) - 1]
                    logits = h @ W.T + b
                    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
                    return -np.log2(probs[np.arange(len(labels)), labels]).mean()
            """),
            ("W not transposed: h @ W (an error unless C = d, and then the wrong logits)", "head_loss", """
                def head_loss(hidden, attention_mask, W, b, labels):
                    h = hidden[np.arange(len(hidden)), attention_mask.sum(axis=1) - 1]
                    logits = h @ W + b
                    log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
                    return -log_probs[np.arange(len(labels)), labels].mean()
            """),
        ],
        "q2": [
            ("counts each parameter's dimensions (len of the shape), not its numbers", "trainable_numbers", """
                def trainable_numbers(shapes, trainable):
                    return sum(len(shape) for name, shape in shapes.items() if name.startswith(trainable))
            """),
            ("LoRA with the head left frozen: the head's numbers not counted", "lora_numbers", """
                def lora_numbers(shapes, r, targets):
                    return sum(r * (shape[0] + shape[1]) for name, shape in shapes.items()
                               if name.endswith(".weight") and name.removesuffix(".weight").endswith(targets))
            """),
            ("LoRA counted as r * d_in * d_out", "lora_numbers", """
                def lora_numbers(shapes, r, targets):
                    lora = sum(r * shape[0] * shape[1] for name, shape in shapes.items()
                               if name.endswith(".weight") and name.removesuffix(".weight").endswith(targets))
                    return lora + trainable_numbers(shapes, ("head.",))
            """),
            ("LoRA counted as r * d_in * 2 (A and B taken to be the same size)", "lora_numbers", """
                def lora_numbers(shapes, r, targets):
                    lora = sum(r * shape[1] * 2 for name, shape in shapes.items()
                               if name.endswith(".weight") and name.removesuffix(".weight").endswith(targets))
                    return lora + trainable_numbers(shapes, ("head.",))
            """),
            ("the wrapped layers' biases counted as trainable", "lora_numbers", """
                def lora_numbers(shapes, r, targets):
                    total = trainable_numbers(shapes, ("head.",))
                    for name, shape in shapes.items():
                        layer, _, kind = name.rpartition(".")
                        if layer.endswith(targets):
                            total += r * (shape[0] + shape[1]) if kind == "weight" else math.prod(shape)
                    return total
            """),
        ],
        "q3": [
            ("forward: the scale alpha / r omitted", "lora_forward", """
                def lora_forward(x, W, b, A, B, alpha):
                    return x @ W.T + b + x @ A.T @ B.T
            """),
            ("forward: scaled by alpha, not alpha / r", "lora_forward", """
                def lora_forward(x, W, b, A, B, alpha):
                    return x @ W.T + b + alpha * x @ A.T @ B.T
            """),
            ("forward: x @ (B A), the update not transposed (runs only when d_in = d_out)", "lora_forward", """
                def lora_forward(x, W, b, A, B, alpha):
                    return x @ W.T + b + alpha / A.shape[0] * x @ (B @ A)
            """),
            ("merge: B A added without the scale alpha / r", "lora_merge", """
                def lora_merge(W, A, B, alpha):
                    return W + B @ A
            """),
            ("merge: A B instead of B A (runs when d_in = d_out and r = 1, broadcast over W)", "lora_merge", """
                def lora_merge(W, A, B, alpha):
                    return W + alpha / A.shape[0] * (A @ B)
            """),
            ("merge: (B A) transposed, A^T B^T (runs when d_in = d_out)", "lora_merge", """
                def lora_merge(W, A, B, alpha):
                    return W + alpha / A.shape[0] * (A.T @ B.T)
            """),
        ],
    },
    "assistant": {
        "q1": [
            ("a newline after each message's <|end|> (a habit of other chat templates)", "format_chat", """
                def format_chat(messages, add_generation_prompt=False):
                    role_token = {"system": "<|system|>", "user": "<|user|>", "assistant": "<|assistant|>"}
                    text = "<bos>" + "".join(role_token[m["role"]] + m["content"] + "<|end|>\\n" for m in messages)
                    return text + "<|assistant|>" if add_generation_prompt else text
            """),
            ("<bos> left out", "format_chat", """
                def format_chat(messages, add_generation_prompt=False):
                    role_token = {"system": "<|system|>", "user": "<|user|>", "assistant": "<|assistant|>"}
                    text = "".join(role_token[m["role"]] + m["content"] + "<|end|>" for m in messages)
                    return text + "<|assistant|>" if add_generation_prompt else text
            """),
            ("each text stripped of its leading and trailing spaces and newlines", "format_chat", """
                def format_chat(messages, add_generation_prompt=False):
                    role_token = {"system": "<|system|>", "user": "<|user|>", "assistant": "<|assistant|>"}
                    text = "<bos>" + "".join(role_token[m["role"]] + m["content"].strip() + "<|end|>" for m in messages)
                    return text + "<|assistant|>" if add_generation_prompt else text
            """),
            ("the generation prompt added whatever add_generation_prompt says", "format_chat", """
                def format_chat(messages, add_generation_prompt=False):
                    role_token = {"system": "<|system|>", "user": "<|user|>", "assistant": "<|assistant|>"}
                    text = "<bos>" + "".join(role_token[m["role"]] + m["content"] + "<|end|>" for m in messages)
                    return text + "<|assistant|>"
            """),
            ("the system message written with <|user|> (only the assistant gets a token of its own)", "format_chat", """
                def format_chat(messages, add_generation_prompt=False):
                    text = "<bos>"
                    for m in messages:
                        role = "<|assistant|>" if m["role"] == "assistant" else "<|user|>"
                        text += role + m["content"] + "<|end|>"
                    return text + "<|assistant|>" if add_generation_prompt else text
            """),
            ("<|end|> only after the assistant's messages", "format_chat", """
                def format_chat(messages, add_generation_prompt=False):
                    text = "<bos>"
                    for m in messages:
                        text += "<|" + m["role"] + "|>" + m["content"] + ("<|end|>" if m["role"] == "assistant" else "")
                    return text + "<|assistant|>" if add_generation_prompt else text
            """),
        ],
        "q2": [
            ("the assistant's <|end|> not scored: the model never learns to stop", "ids_and_labels", """
                def ids_and_labels(messages, encode, special):
                    role_token = {"system": "<|system|>", "user": "<|user|>", "assistant": "<|assistant|>"}
                    ids, labels = [special["<bos>"]], [-100]
                    for message in messages:
                        text = list(encode(message["content"]))
                        ids += [special[role_token[message["role"]]], *text, special["<|end|>"]]
                        labels += [-100] + (text if message["role"] == "assistant" else [-100] * len(text)) + [-100]
                    return ids, labels
            """),
            ("the <|assistant|> role token scored too", "ids_and_labels", """
                def ids_and_labels(messages, encode, special):
                    role_token = {"system": "<|system|>", "user": "<|user|>", "assistant": "<|assistant|>"}
                    ids, labels = [special["<bos>"]], [-100]
                    for message in messages:
                        turn = [special[role_token[message["role"]]], *encode(message["content"]), special["<|end|>"]]
                        ids += turn
                        labels += turn if message["role"] == "assistant" else [-100] * len(turn)
                    return ids, labels
            """),
            ("labels shifted by one (each position gets the next token's label): the model shifts them itself",
             "ids_and_labels", """
                def ids_and_labels(messages, encode, special):
                    role_token = {"system": "<|system|>", "user": "<|user|>", "assistant": "<|assistant|>"}
                    ids, labels = [special["<bos>"]], [-100]
                    for message in messages:
                        turn = [*encode(message["content"]), special["<|end|>"]]
                        ids += [special[role_token[message["role"]]], *turn]
                        labels += [-100] + (turn if message["role"] == "assistant" else [-100] * len(turn))
                    return ids, labels[1:] + [-100]
            """),
            ("only the last assistant turn scored", "ids_and_labels", """
                def ids_and_labels(messages, encode, special):
                    role_token = {"system": "<|system|>", "user": "<|user|>", "assistant": "<|assistant|>"}
                    last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
                    ids, labels = [special["<bos>"]], [-100]
                    for i, message in enumerate(messages):
                        turn = [*encode(message["content"]), special["<|end|>"]]
                        ids += [special[role_token[message["role"]]], *turn]
                        labels += [-100] + (turn if i == last else [-100] * len(turn))
                    return ids, labels
            """),
            ("0 instead of -100 where a token is not scored", "ids_and_labels", """
                def ids_and_labels(messages, encode, special):
                    role_token = {"system": "<|system|>", "user": "<|user|>", "assistant": "<|assistant|>"}
                    ids, labels = [special["<bos>"]], [0]
                    for message in messages:
                        turn = [*encode(message["content"]), special["<|end|>"]]
                        ids += [special[role_token[message["role"]]], *turn]
                        labels += [0] + (turn if message["role"] == "assistant" else [0] * len(turn))
                    return ids, labels
            """),
            ("no mask: every token scored but <bos> (the labels of pretraining)", "ids_and_labels", """
                def ids_and_labels(messages, encode, special):
                    role_token = {"system": "<|system|>", "user": "<|user|>", "assistant": "<|assistant|>"}
                    ids = [special["<bos>"]]
                    for message in messages:
                        ids += [special[role_token[message["role"]]], *encode(message["content"]), special["<|end|>"]]
                    return ids, [-100] + ids[1:]
            """),
            ("the system message scored too (every message that is not the user's)", "ids_and_labels", """
                def ids_and_labels(messages, encode, special):
                    role_token = {"system": "<|system|>", "user": "<|user|>", "assistant": "<|assistant|>"}
                    ids, labels = [special["<bos>"]], [-100]
                    for message in messages:
                        turn = [*encode(message["content"]), special["<|end|>"]]
                        ids += [special[role_token[message["role"]]], *turn]
                        labels += [-100] + (turn if message["role"] != "user" else [-100] * len(turn))
                    return ids, labels
            """),
            ("<bos> left out of the ids and the labels", "ids_and_labels", """
                def ids_and_labels(messages, encode, special):
                    role_token = {"system": "<|system|>", "user": "<|user|>", "assistant": "<|assistant|>"}
                    ids, labels = [], []
                    for message in messages:
                        turn = [*encode(message["content"]), special["<|end|>"]]
                        ids += [special[role_token[message["role"]]], *turn]
                        labels += [-100] + (turn if message["role"] == "assistant" else [-100] * len(turn))
                    return ids, labels
            """),
        ],
        "q3": [
            ("chosen and rejected swapped: -ln sigma(r_rejected - r_chosen)", "dpo_loss", """
                def dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta):
                    margins = beta * ((policy_rejected - ref_rejected) - (policy_chosen - ref_chosen))
                    return np.logaddexp(0.0, -margins).mean()
            """),
            ("beta outside the log-sigmoid: -beta ln sigma(the log-ratios' difference)", "dpo_loss", """
                def dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta):
                    delta = (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)
                    return beta * np.logaddexp(0.0, -delta).mean()
            """),
            ("no reference model: -ln sigma(beta (ln pi_w - ln pi_l))", "dpo_loss", """
                def dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta):
                    margins = beta * (policy_chosen - policy_rejected)
                    return np.logaddexp(0.0, -margins).mean()
            """),
            ("the sum over the pairs, not the mean", "dpo_loss", """
                def dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta):
                    margins = beta * ((policy_chosen - ref_chosen) - (policy_rejected - ref_rejected))
                    return np.logaddexp(0.0, -margins).sum()
            """),
            ("ln sigma without the minus sign: a negative loss", "dpo_loss", """
                def dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta):
                    margins = beta * ((policy_chosen - ref_chosen) - (policy_rejected - ref_rejected))
                    return -np.logaddexp(0.0, -margins).mean()
            """),
            ("-ln sigma(z) computed as written: sigma(z) = 0 (e^-z overflows) once z < -709, a loss of inf",
             "dpo_loss", """
                def dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta):
                    margins = beta * ((policy_chosen - ref_chosen) - (policy_rejected - ref_rejected))
                    sigma = 1 / (1 + np.exp(-margins))
                    return -np.log(sigma).mean()
            """),
            ("rewards: beta (ln pi_ref - ln pi_theta), the sign flipped", "implicit_rewards", """
                def implicit_rewards(policy_logps, ref_logps, beta):
                    return beta * (ref_logps - policy_logps)
            """),
            ("rewards: the log-ratio read as a ratio of the logs, beta ln pi_theta / ln pi_ref", "implicit_rewards", """
                def implicit_rewards(policy_logps, ref_logps, beta):
                    return beta * (policy_logps / ref_logps)
            """),
        ],
    },
}


# Realistic alternative correct answers: question -> [(description, function name, definition)],
# in the same form as WRONG_ANSWERS. Each must earn the question's full points, in grader.check,
# in otter's own run of all the tests, and in `make grade`: a right answer in another legitimate
# form (NumPy instead of pure Python, a tuple instead of a list, loops instead of comprehensions,
# another algorithm) must never lose points.
ALTERNATIVE_ANSWERS = {
    "text_as_data": {
        "q1": [
            ("a loop, and a regular expression for 'has a letter or digit'", "tokenize", """
                import re

                def tokenize(text):
                    words = []
                    for token in word_tokenize(text, lowercase=True):
                        if re.search(r"[^\\W_]", token):  # a word character that is not _
                            words.append(token)
                    return words
            """),
            ("a tuple, made with filter", "tokenize", """
                def tokenize(text):
                    return tuple(filter(lambda t: any(map(str.isalnum, t)), word_tokenize(text, lowercase=True)))
            """),
            ("a NumPy array of strings, selected with a boolean mask", "tokenize", """
                def tokenize(text):
                    tokens = np.array(word_tokenize(text, lowercase=True), dtype=str)
                    keep = np.array([any(c.isalnum() for c in t) for t in tokens], dtype=bool)
                    return tokens[keep]
            """),
        ],
        "q2": [
            ("NumPy: the mean of a boolean array (a np.float64)", "build_vocab", """
                import itertools

                def build_vocab(token_lists, min_count):
                    return Vocab(itertools.chain.from_iterable(token_lists), min_count=min_count)

                def oov_rate(vocab, tokens):
                    return (np.array(vocab.encode(tokens)) == vocab.unk_id).mean()
            """),
            ("loops: counts kept by hand, then membership", "build_vocab", """
                def build_vocab(token_lists, min_count):
                    counts = Counter()
                    for tokens in token_lists:
                        for t in tokens:
                            counts[t] += 1
                    kept = []
                    for tokens in token_lists:
                        for t in tokens:
                            if counts[t] >= min_count:
                                kept.append(t)
                    return Vocab(kept)

                def oov_rate(vocab, tokens):
                    unknown = 0
                    for t in tokens:
                        if t not in vocab:
                            unknown += 1
                    return unknown / len(tokens)
            """),
            ("list.count of <unk> ids", "oov_rate", """
                def oov_rate(vocab, tokens):
                    ids = vocab.encode(list(tokens))
                    return ids.count(vocab.unk_id) / len(ids)
            """),
        ],
        "q3": [
            ("pure Python: a Counter of ids and a list", "unigram_probs", """
                def unigram_probs(tokens, vocab, k):
                    counts = Counter(vocab.encode(tokens))
                    total = len(tokens) + k * len(vocab)
                    return [(counts[i] + k) / total for i in range(len(vocab))]
            """),
            ("a NumPy loop, normalised by the sum", "unigram_probs", """
                def unigram_probs(tokens, vocab, k):
                    counts = np.zeros(len(vocab))
                    for i in vocab.encode(tokens):
                        counts[i] += 1
                    smoothed = counts + k
                    return smoothed / smoothed.sum()
            """),
            ("a tuple of floats, one per id", "unigram_probs", """
                def unigram_probs(tokens, vocab, k):
                    ids = vocab.encode(tokens)
                    return tuple((ids.count(i) + k) / (len(ids) + k * len(vocab)) for i in range(len(vocab)))
            """),
        ],
        "q4": [
            ("pure Python least squares (closed form), loops", "zipf_exponent", """
                import math

                def zipf_exponent(counts, min_rank, max_rank):
                    xs, ys = [], []
                    for rank, f in enumerate(sorted(counts.values(), reverse=True), start=1):
                        if min_rank <= rank <= max_rank:
                            xs.append(math.log(rank))
                            ys.append(math.log(f))
                    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
                    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
                    return -slope
            """),
            ("the chapter's lmlib.analysis.zipf_exponent on the sorted counts", "zipf_exponent", """
                from lmlib import analysis

                def zipf_exponent(counts, min_rank, max_rank):
                    freqs = np.array(sorted(counts.values(), reverse=True), dtype=float)
                    return analysis.zipf_exponent(freqs, min_rank=min_rank, max_rank=max_rank)
            """),
            ("np.linalg.lstsq on log10 axes, returns a np.float64", "zipf_exponent", """
                def zipf_exponent(counts, min_rank, max_rank):
                    freqs = np.sort(np.array(list(counts.values()), dtype=float))[::-1]
                    ranks = np.arange(1, len(freqs) + 1)[min_rank - 1:max_rank]
                    freqs = freqs[min_rank - 1:max_rank]
                    design = np.stack([np.log10(ranks), np.ones(len(ranks))], axis=1)
                    (slope, _), *_ = np.linalg.lstsq(design, np.log10(freqs), rcond=None)
                    return -slope
            """),
        ],
    },
    "tokenization": {
        "q1": [
            ("Counter over zip(word, word[1:]); max with the key (count, -id, -id); words merged on a stack; "
             "the table a Counter", "merge_step", """
                def pair_counts(word_counts):
                    counts = Counter()
                    for word, n in word_counts.items():
                        for pair in zip(word, word[1:]):
                            counts[pair] += n
                    return counts

                def merge_step(word_counts, vocab):
                    counts = pair_counts(word_counts)
                    a, b = max(counts, key=lambda pair: (counts[pair], -vocab[pair[0]], -vocab[pair[1]]))
                    merged = Counter()
                    for word, n in word_counts.items():
                        out = []
                        for symbol in word:
                            if out and out[-1] == a and symbol == b:  # a merged symbol is never a itself
                                out[-1] = a + b
                            else:
                                out.append(symbol)
                        merged[tuple(out)] += n
                    return (a, b), merged
            """),
            ("a dict counted by index; sorted() by (-count, ids); a recursive merge of each word; the pair as a list",
             "merge_step", """
                def pair_counts(word_counts):
                    counts = {}
                    for word, n in word_counts.items():
                        for i in range(len(word) - 1):
                            counts[word[i], word[i + 1]] = counts.get((word[i], word[i + 1]), 0) + n
                    return counts

                def merge_step(word_counts, vocab):
                    counts = pair_counts(word_counts)
                    ranked = sorted(counts.items(), key=lambda item: (-item[1], vocab[item[0][0]], vocab[item[0][1]]))
                    a, b = ranked[0][0]

                    def merge(word):
                        if len(word) < 2:
                            return word
                        if word[0] == a and word[1] == b:
                            return (a + b,) + merge(word[2:])
                        return word[:1] + merge(word[1:])

                    return [a, b], {merge(word): n for word, n in word_counts.items()}
            """),
            ("defaultdict and itertools.pairwise; the best pair kept in a loop; words merged in place by index",
             "merge_step", """
                from collections import defaultdict

                def pair_counts(word_counts):
                    counts = defaultdict(int)
                    for word, n in word_counts.items():
                        for a, b in pairwise(word):
                            counts[a, b] += n
                    return dict(counts)

                def merge_step(word_counts, vocab):
                    best, best_key = None, None
                    for pair, n in pair_counts(word_counts).items():
                        key = (-n, vocab[pair[0]], vocab[pair[1]])
                        if best_key is None or key < best_key:
                            best, best_key = pair, key
                    a, b = best
                    merged = {}
                    for word, n in word_counts.items():
                        symbols, i = list(word), 0
                        while i < len(symbols) - 1:
                            if symbols[i] == a and symbols[i + 1] == b:
                                symbols[i:i + 2] = [a + b]
                            i += 1
                        merged[tuple(symbols)] = n
                    return best, merged
            """),
        ],
        "q2": [
            ("recursion: merge the best pair everywhere, then encode the result again; tuples", "encode_word", """
                def encode_word(word, merges):
                    rank = {}
                    for r, pair in enumerate(merges):
                        rank.setdefault(tuple(pair), r)

                    def step(symbols):
                        candidates = [p for p in zip(symbols, symbols[1:]) if p in rank]
                        if not candidates:
                            return tuple(symbols)
                        a, b = min(candidates, key=rank.__getitem__)
                        out, i = [], 0
                        while i < len(symbols):
                            if i + 1 < len(symbols) and symbols[i] == a and symbols[i + 1] == b:
                                out.append(a + b)
                                i += 2
                            else:
                                out.append(symbols[i])
                                i += 1
                        return step(out)

                    return step(list(word))

                def encode(text, merges):
                    pieces = bpe.pretokenize(text)
                    return tuple(t for piece in pieces for t in encode_word(bpe.to_symbols(piece), merges))
            """),
            ("one merge at a time, at the leftmost occurrence of the best pair (as tokenizers' Rust code does)",
             "encode_word", """
                def encode_word(word, merges):
                    ranks = {tuple(pair): rank for rank, pair in reversed(list(enumerate(merges)))}
                    symbols = list(word)
                    while True:
                        best = None
                        for i in range(len(symbols) - 1):
                            rank = ranks.get((symbols[i], symbols[i + 1]))
                            if rank is not None and (best is None or rank < best[0]):
                                best = (rank, i)
                        if best is None:
                            return symbols
                        i = best[1]
                        symbols[i:i + 2] = [symbols[i] + symbols[i + 1]]
            """),
            ("the best pair found with sorted() over the set of pairs; words merged on a stack; itertools.chain",
             "encode_word", """
                from itertools import chain

                def encode_word(word, merges):
                    ranks = {}
                    for rank, (a, b) in enumerate(merges):
                        if (a, b) not in ranks:
                            ranks[a, b] = rank
                    symbols = tuple(word)
                    while True:
                        found = sorted((ranks[p], p) for p in set(pairwise(symbols)) if p in ranks)
                        if not found:
                            return symbols
                        a, b = found[0][1]
                        merged = []
                        for s in symbols:
                            if merged and merged[-1] == a and s == b:
                                merged[-1] = a + b
                            else:
                                merged.append(s)
                        symbols = tuple(merged)

                def encode(text, merges):
                    return list(chain.from_iterable(encode_word(w, merges) for w in bpe.byte_words(text)))
            """),
        ],
        "q3": [
            ("NumPy sums", "tokens_per_character", """
                import numpy as np

                def tokens_per_character(texts, tokenize):
                    return np.sum([len(tokenize(t)) for t in texts]) / np.sum([len(t) for t in texts])
            """),
            ("an exact Fraction; the characters as len(''.join(texts))", "tokens_per_character", """
                from fractions import Fraction

                def tokens_per_character(texts, tokenize):
                    return Fraction(sum(len(tokenize(t)) for t in texts), len("".join(texts)))
            """),
            ("a loop that counts both as it goes; the tokens through list()", "tokens_per_character", """
                def tokens_per_character(texts, tokenize):
                    n_tokens = n_characters = 0
                    for text in texts:
                        n_tokens += len(list(tokenize(text)))
                        n_characters += len(text)
                    return n_tokens / n_characters
            """),
        ],
    },
    "ngram_models": {
        "q1": [
            ("loops, a running previous token and Counter.update", "bigrams", """
                def bigrams(sentence):
                    pairs, previous = [], "<s>"
                    for word in [*sentence, "</s>"]:
                        pairs.append((previous, word))
                        previous = word
                    return pairs

                def count_bigrams(sentences):
                    counts = Counter()
                    for sentence in sentences:
                        counts.update(bigrams(sentence))
                    return counts
            """),
            ("a tuple of pairs by index, and itertools.chain", "bigrams", """
                import itertools

                def bigrams(sentence):
                    padded = ("<s>",) + tuple(sentence) + ("</s>",)
                    return tuple((padded[i], padded[i + 1]) for i in range(len(padded) - 1))

                def count_bigrams(sentences):
                    return Counter(itertools.chain.from_iterable(map(bigrams, sentences)))
            """),
            ("nltk's padded bigrams, a generator", "bigrams", """
                import nltk

                def bigrams(sentence):
                    return nltk.bigrams(sentence, pad_left=True, pad_right=True,
                                        left_pad_symbol="<s>", right_pad_symbol="</s>")
            """),
        ],
        "q2": [
            ("a loop over the counts, Counter.get", "mle_prob", """
                def mle_prob(counts, h, w):
                    history_total = 0
                    for (first, _), n in counts.items():
                        if first == h:
                            history_total += n
                    return counts.get((h, w), 0) / history_total
            """),
            ("NumPy sums (a np.float64)", "mle_prob", """
                import numpy as np

                def mle_prob(counts, h, w):
                    after_h = np.array([n for (first, _), n in counts.items() if first == h])
                    return np.float64(counts[(h, w)]) / after_h.sum()
            """),
        ],
        "q3": [
            ("|V| as all tokens but <s>, plus <unk>; NumPy floats", "vocab_size", """
                import numpy as np

                def vocab_size(counts):
                    tokens = {t for bigram in counts for t in bigram}
                    return len(tokens - {"<s>"} | {"<unk>"})

                def add_k_prob(counts, h, w, k):
                    history_total = np.sum([n for (first, _), n in counts.items() if first == h])
                    return (np.float64(counts[(h, w)]) + k) / (history_total + k * vocab_size(counts))
            """),
            ("np.unique for |V| (a NumPy int), loops for the counts", "vocab_size", """
                import numpy as np

                def vocab_size(counts):
                    return np.unique([w for _, w in counts]).size + np.int64(1)

                def add_k_prob(counts, h, w, k):
                    history_total, seen = 0, 0
                    for (first, second), n in counts.items():
                        if first == h:
                            history_total += n
                            if second == w:
                                seen = n
                    return (seen + k) / (history_total + k * vocab_size(counts))
            """),
        ],
        "q4": [
            ("product of the probabilities, then the N-th root", "sentence_perplexity", """
                def sentence_perplexity(sentence, prob):
                    padded = ["<s>", *sentence, "</s>"]
                    p = 1.0
                    for h, w in zip(padded[:-1], padded[1:]):
                        p *= prob(h, w)
                    return p ** (-1 / (len(sentence) + 1))
            """),
            ("NumPy mean of the log-probabilities (a np.float64)", "sentence_perplexity", """
                import numpy as np

                def sentence_perplexity(sentence, prob):
                    padded = ["<s>", *sentence, "</s>"]
                    return np.exp(-np.mean(np.log([prob(h, w) for h, w in zip(padded, padded[1:])])))
            """),
            ("bits: log2 and 2 ** H", "sentence_perplexity", """
                def sentence_perplexity(sentence, prob):
                    padded = ["<s>", *sentence, "</s>"]
                    bits = [-math.log2(prob(padded[i], padded[i + 1])) for i in range(len(padded) - 1)]
                    return 2 ** (sum(bits) / len(bits))
            """),
        ],
    },
    "neural_networks": {
        "q1": [
            ("pure Python: max, math.exp and math.log in loops, a list", "log_softmax", """
                import math

                def log_softmax(logits):
                    m = max(logits)
                    total = 0.0
                    for y in logits:
                        total += math.exp(y - m)
                    return [y - m - math.log(total) for y in logits]
            """),
            ("torch operations on a tensor that requires grad", "log_softmax", """
                def log_softmax(logits):
                    y = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
                    m = y.max()
                    return y - m - torch.log(torch.exp(y - m).sum())
            """),
            ("a generator of floats, with math.fsum and log1p of the non-maximal terms", "log_softmax", """
                import math

                def log_softmax(logits):
                    values = [float(y) for y in logits]
                    top = values.index(max(values))
                    rest = math.fsum(math.exp(y - values[top]) for i, y in enumerate(values) if i != top)
                    lse = values[top] + math.log1p(rest)
                    return (y - lse for y in values)
            """),
        ],
        "q2": [
            ("torch operations, logsumexp written out, a 0-dim tensor that requires grad", "cross_entropy", """
                def cross_entropy(logits, targets):
                    y = torch.as_tensor(logits).clone().requires_grad_(True)
                    m = y.max(dim=1, keepdim=True).values
                    logp = y - m - torch.log(torch.exp(y - m).sum(dim=1, keepdim=True))
                    return -logp[torch.arange(len(y)), torch.as_tensor(targets)].mean()
            """),
            ("pure Python: a loop over the rows, a float", "cross_entropy", """
                import math

                def cross_entropy(logits, targets):
                    total = 0.0
                    for row, k in zip(logits, targets):
                        m = max(row)
                        total += -(row[k] - m - math.log(sum(math.exp(y - m) for y in row)))
                    return total / len(targets)
            """),
            ("calls log_softmax (Question 1) row by row; NumPy mean (a np.float64)", "cross_entropy", """
                def cross_entropy(logits, targets):
                    return np.mean([-float(list(log_softmax(row))[k]) for row, k in zip(logits, targets)])
            """),
        ],
        "q3": [
            ("autograd: F.cross_entropy, .backward(), the leaf's .grad", "cross_entropy_grad", """
                def cross_entropy_grad(logits, targets):
                    y = torch.tensor(logits, requires_grad=True)
                    F.cross_entropy(y, torch.as_tensor(targets)).backward()
                    return y.grad
            """),
            ("pure Python: nested loops, a list of lists", "cross_entropy_grad", """
                import math

                def cross_entropy_grad(logits, targets):
                    B = len(logits)
                    grad = []
                    for row, k in zip(logits, targets):
                        m = max(row)
                        exps = [math.exp(y - m) for y in row]
                        total = sum(exps)
                        grad.append([(e / total - (1.0 if i == k else 0.0)) / B for i, e in enumerate(exps)])
                    return grad
            """),
            ("scipy.special.softmax and a one-hot matrix from np.eye", "cross_entropy_grad", """
                from scipy.special import softmax

                def cross_entropy_grad(logits, targets):
                    onehot = np.eye(logits.shape[1])[targets]
                    return (softmax(logits, axis=1) - onehot) / logits.shape[0]
            """),
        ],
        "q4": [
            ("torch.optim.SGD itself, the velocity passed in as its momentum_buffer", "sgd_momentum_step", """
                def sgd_momentum_step(params, grads, velocity, lr, momentum):
                    tensors = [torch.tensor(p, requires_grad=True) for p in params]
                    optimizer = torch.optim.SGD(tensors, lr=lr, momentum=momentum)
                    for t, g, v in zip(tensors, grads, velocity):
                        t.grad = torch.as_tensor(g, dtype=t.dtype)
                        optimizer.state[t]["momentum_buffer"] = torch.tensor(v, dtype=t.dtype)
                    optimizer.step()
                    return tensors, [optimizer.state[t]["momentum_buffer"] for t in tensors]
            """),
            ("in place, in a loop: updates the given arrays, returns them in tuples", "sgd_momentum_step", """
                def sgd_momentum_step(params, grads, velocity, lr, momentum):
                    for p, g, v in zip(params, grads, velocity):
                        v *= momentum
                        v += g
                        p -= lr * v
                    return tuple(params), tuple(velocity)
            """),
            ("torch tensors, a list of tensors per output", "sgd_momentum_step", """
                def sgd_momentum_step(params, grads, velocity, lr, momentum):
                    new_velocity = [momentum * torch.as_tensor(v) + torch.as_tensor(g) for v, g in zip(velocity, grads)]
                    return [torch.as_tensor(p) - lr * v for p, v in zip(params, new_velocity)], new_velocity
            """),
            ("nested Python lists (np.ndarray.tolist), which the question allows", "sgd_momentum_step", """
                def sgd_momentum_step(params, grads, velocity, lr, momentum):
                    new_velocity = [(momentum * np.asarray(v) + np.asarray(g)).tolist()
                                    for v, g in zip(velocity, grads)]
                    new_params = [(np.asarray(p) - lr * np.asarray(v)).tolist() for p, v in zip(params, new_velocity)]
                    return new_params, new_velocity
            """),
        ],
        "q5": [
            ("a NumPy loop over the contexts, np.concatenate, scipy's log_softmax", "mlp_forward", """
                from scipy.special import log_softmax as scipy_log_softmax

                def mlp_forward(C, H, d, U, b, contexts):
                    rows = []
                    for context in contexts:
                        x = np.concatenate([C[i] for i in context])
                        rows.append(scipy_log_softmax(b + U @ np.tanh(d + H @ x)))
                    return np.stack(rows)
            """),
            ("torch: F.embedding, F.linear and torch.log_softmax on nn.Parameters (the result requires grad)",
             "mlp_forward", """
                def mlp_forward(C, H, d, U, b, contexts):
                    C, H, d, U, b = (torch.nn.Parameter(torch.as_tensor(a)) for a in (C, H, d, U, b))
                    x = F.embedding(torch.as_tensor(contexts), C).flatten(1)
                    y = F.linear(torch.tanh(F.linear(x, H, d)), U, b)
                    return torch.log_softmax(y, dim=-1)
            """),
            ("pure Python lists and math, a list of lists", "mlp_forward", """
                import math

                def mlp_forward(C, H, d, U, b, contexts):
                    out = []
                    for context in contexts:
                        x = [float(v) for i in context for v in C[i]]
                        h = [math.tanh(d[j] + sum(H[j][i] * x[i] for i in range(len(x)))) for j in range(len(d))]
                        y = [b[k] + sum(U[k][j] * h[j] for j in range(len(h))) for k in range(len(b))]
                        m = max(y)
                        lse = m + math.log(sum(math.exp(v - m) for v in y))
                        out.append([v - lse for v in y])
                    return out
            """),
        ],
    },
    "generating_text": {
        "q1": [
            ("pure Python: math.exp in loops, a list", "temperature_probs", """
                import math

                def temperature_probs(logits, T):
                    scaled = [float(z) / T for z in logits]
                    m = max(scaled)
                    exps = [math.exp(s - m) for s in scaled]
                    total = sum(exps)
                    return [e / total for e in exps]
            """),
            ("scipy.special.softmax of z / T", "temperature_probs", """
                from scipy.special import softmax

                def temperature_probs(logits, T):
                    return softmax(np.asarray(logits) / T)
            """),
            ("torch.softmax on a float64 tensor", "temperature_probs", """
                def temperature_probs(logits, T):
                    return torch.softmax(torch.as_tensor(logits) / T, dim=0)
            """),
        ],
        "q2": [
            ("pure Python: indices sorted by probability, a list", "top_k_filter", """
                def top_k_filter(probs, k):
                    ranked = sorted(range(len(probs)), key=lambda i: probs[i], reverse=True)
                    kept = set(ranked[:k])
                    total = sum(probs[i] for i in kept)
                    return [probs[i] / total if i in kept else 0.0 for i in range(len(probs))]
            """),
            ("heapq.nlargest and math.fsum, a tuple", "top_k_filter", """
                import heapq
                import math

                def top_k_filter(probs, k):
                    kept = heapq.nlargest(k, range(len(probs)), key=lambda i: probs[i])
                    total = math.fsum(probs[i] for i in kept)
                    return tuple(probs[i] / total if i in kept else 0.0 for i in range(len(probs)))
            """),
            ("torch.topk, scattered into a zero tensor", "top_k_filter", """
                def top_k_filter(probs, k):
                    p = torch.as_tensor(probs)
                    values, indices = torch.topk(p, k)
                    return torch.zeros_like(p).scatter(0, indices, values / values.sum())
            """),
        ],
        "q3": [
            ("pure Python: a loop that stops once the total reaches p", "top_p_filter", """
                def top_p_filter(probs, p):
                    order = sorted(range(len(probs)), key=lambda i: probs[i], reverse=True)
                    kept, total = [], 0.0
                    for i in order:
                        kept.append(i)
                        total += probs[i]
                        if total >= p:
                            break
                    return [probs[i] / total if i in kept else 0.0 for i in range(len(probs))]
            """),
            ("Hugging Face's way, in torch: sort ascending, drop the tokens whose total is <= 1 - p",
             "top_p_filter", """
                def top_p_filter(probs, p):
                    probs = torch.as_tensor(probs)
                    sorted_probs, order = torch.sort(probs)  # least probable first
                    remove = torch.cumsum(sorted_probs, dim=0) <= 1 - p
                    remove[-1] = False  # the most probable token stays
                    kept = probs.masked_fill(remove.scatter(0, order, remove), 0.0)
                    return kept / kept.sum()
            """),
            ("NumPy: keep a token while the mass of the more probable ones is < p", "top_p_filter", """
                def top_p_filter(probs, p):
                    probs = np.asarray(probs, dtype=float)
                    order = np.argsort(-probs)
                    sorted_probs = probs[order]
                    keep = np.zeros(len(probs), dtype=bool)
                    keep[order] = np.cumsum(sorted_probs) - sorted_probs < p
                    return np.where(keep, probs, 0.0) / probs[keep].sum()
            """),
        ],
        "q4": [
            ("heapq.nlargest over a generator, beams as lists", "beam_step", """
                import heapq

                def beam_step(beams, next_logprobs, width):
                    candidates = ([list(tokens) + [token], score + logprob]
                                  for (tokens, score), logprobs in zip(beams, next_logprobs)
                                  for token, logprob in logprobs.items())
                    return heapq.nlargest(width, candidates, key=lambda c: c[1])
            """),
            ("NumPy: an array of scores and argsort (np.float64 scores)", "beam_step", """
                def beam_step(beams, next_logprobs, width):
                    tokens, scores = [], []
                    for (prefix, score), logprobs in zip(beams, next_logprobs):
                        for token, logprob in logprobs.items():
                            tokens.append((*prefix, token))
                            scores.append(score + logprob)
                    scores = np.array(scores)
                    return [(tokens[i], scores[i]) for i in np.argsort(-scores)[:width]]
            """),
            ("loops that keep at most width (score, tokens) pairs sorted, a tuple of beams", "beam_step", """
                def beam_step(beams, next_logprobs, width):
                    best = []  # (score, tokens), highest score first
                    for b, (tokens, score) in enumerate(beams):
                        for token, logprob in next_logprobs[b].items():
                            best.append((score + logprob, tuple(tokens) + (token,)))
                            best.sort(reverse=True)
                            del best[width:]
                    return tuple((tokens, score) for score, tokens in best)
            """),
        ],
    },
    "applications": {
        "q1": [
            ("sacrebleu itself (tokenize='none', no smoothing): its score, and p_n from its counts and totals",
             "corpus_bleu", """
                import sacrebleu

                def sacrebleu_of(hypotheses, references):
                    return sacrebleu.corpus_bleu([" ".join(h) for h in hypotheses], [[" ".join(r) for r in references]],
                                                 tokenize="none", smooth_method="none")

                def clipped_precision(hypotheses, references, n):
                    bleu = sacrebleu_of(hypotheses, references)
                    return bleu.counts[n - 1] / bleu.totals[n - 1] if bleu.totals[n - 1] else 0

                def corpus_bleu(hypotheses, references):
                    return sacrebleu_of(hypotheses, references).score
            """),
            ("NumPy: n-grams by zipping shifted lists, clipping as a Counter intersection (&), "
             "the geometric mean as a product to the power 1/4", "corpus_bleu", """
                def clipped_precision(hypotheses, references, n):
                    matches, totals = [], []
                    for hypothesis, reference in zip(hypotheses, references):
                        hyp = Counter(zip(*[hypothesis[i:] for i in range(n)]))
                        ref = Counter(zip(*[reference[i:] for i in range(n)]))
                        matches.append(sum((hyp & ref).values()))
                        totals.append(sum(hyp.values()))
                    total = np.sum(totals)
                    return np.sum(matches) / total if total > 0 else np.float64(0.0)

                def corpus_bleu(hypotheses, references):
                    p = np.array([clipped_precision(hypotheses, references, n) for n in (1, 2, 3, 4)])
                    if np.any(p == 0):
                        return np.float64(0.0)
                    c, r = sum(map(len, hypotheses)), sum(map(len, references))
                    return 100 * np.exp(min(0.0, 1 - r / c)) * np.prod(p) ** 0.25
            """),
            ("exact fractions (fractions.Fraction) from dicts counted by hand; the logs summed from p_4 down",
             "corpus_bleu", """
                from fractions import Fraction

                def clipped_precision(hypotheses, references, n):
                    matches = total = 0
                    for hypothesis, reference in zip(hypotheses, references):
                        ref_counts, hyp_counts = {}, {}
                        for i in range(len(reference) - n + 1):
                            ref_counts[tuple(reference[i:i + n])] = ref_counts.get(tuple(reference[i:i + n]), 0) + 1
                        for i in range(len(hypothesis) - n + 1):
                            hyp_counts[tuple(hypothesis[i:i + n])] = hyp_counts.get(tuple(hypothesis[i:i + n]), 0) + 1
                        for gram, count in hyp_counts.items():
                            matches += min(count, ref_counts.get(gram, 0))
                            total += count
                    return Fraction(matches, total) if total else Fraction(0)

                def corpus_bleu(hypotheses, references):
                    precisions = [clipped_precision(hypotheses, references, n) for n in range(4, 0, -1)]
                    if 0 in precisions:
                        return 0
                    c = sum(len(h) for h in hypotheses)
                    r = sum(len(x) for x in references)
                    log_brevity_penalty = 0 if c >= r else 1 - r / c
                    return 100 * math.exp(log_brevity_penalty + sum(math.log(p) for p in precisions) / 4)
            """),
        ],
        "q2": [
            ("memoized recursion (functools.cache) for the LCS; (P, R, F) as a list", "rouge_l", """
                from functools import cache

                def lcs_length(a, b):
                    @cache
                    def lcs(i, j):  # the LCS of a[i:] and b[j:]
                        if i == len(a) or j == len(b):
                            return 0
                        if a[i] == b[j]:
                            return lcs(i + 1, j + 1) + 1
                        return max(lcs(i + 1, j), lcs(i, j + 1))

                    return lcs(0, 0)

                def rouge_l(hypothesis, reference):
                    lcs = lcs_length(hypothesis, reference) if hypothesis and reference else 0
                    if lcs == 0:
                        return [0, 0, 0]
                    p, r = lcs / len(hypothesis), lcs / len(reference)
                    return [p, r, 2 * p * r / (p + r)]
            """),
            ("the whole (|a| + 1) x (|b| + 1) table in NumPy; (P, R, F) as a NumPy array", "rouge_l", """
                def lcs_length(a, b):
                    table = np.zeros((len(a) + 1, len(b) + 1), dtype=int)
                    for i in range(1, len(a) + 1):
                        for j in range(1, len(b) + 1):
                            if a[i - 1] == b[j - 1]:
                                table[i, j] = table[i - 1, j - 1] + 1
                            else:
                                table[i, j] = max(table[i - 1, j], table[i, j - 1])
                    return table[-1, -1]

                def rouge_l(hypothesis, reference):
                    if len(hypothesis) == 0 or len(reference) == 0:
                        return np.zeros(3)
                    lcs = lcs_length(hypothesis, reference)
                    p, r = lcs / len(hypothesis), lcs / len(reference)
                    return np.array([p, r, 2 * p * r / (p + r) if p + r > 0 else 0.0])
            """),
            ("rouge-score's RougeScorer with a tokenizer that splits on spaces (its Score, a named tuple); "
             "the LCS from a dict of prefix lengths", "rouge_l", """
                from rouge_score import rouge_scorer

                class SplitOnSpaces:
                    def tokenize(self, text):
                        return text.split()

                def rouge_l(hypothesis, reference):
                    scorer = rouge_scorer.RougeScorer(["rougeL"], tokenizer=SplitOnSpaces())
                    return scorer.score(" ".join(reference), " ".join(hypothesis))["rougeL"]

                def lcs_length(a, b):
                    table = {}
                    for i in range(len(a) + 1):
                        for j in range(len(b) + 1):
                            if i == 0 or j == 0:
                                table[i, j] = 0
                            elif a[i - 1] == b[j - 1]:
                                table[i, j] = table[i - 1, j - 1] + 1
                            else:
                                table[i, j] = max(table[i - 1, j], table[i, j - 1])
                    return table[len(a), len(b)]
            """),
        ],
        "q3": [
            ("NumPy: the mean of a list of booleans; the first relevant rank from list.index",
             "mean_reciprocal_rank", """
                def hit_at_k(rankings, relevant, k):
                    return np.mean([len(set(ranking[:k]) & set(rel)) > 0 for ranking, rel in zip(rankings, relevant)])

                def mean_reciprocal_rank(rankings, relevant):
                    reciprocal = np.zeros(len(rankings))
                    for q, (ranking, rel) in enumerate(zip(rankings, relevant)):
                        positions = [ranking.index(r) for r in rel if r in ranking]
                        if positions:
                            reciprocal[q] = 1 / (min(positions) + 1)
                    return reciprocal.mean()
            """),
            ("exact fractions (Fraction), set.isdisjoint and next() over a generator", "mean_reciprocal_rank", """
                from fractions import Fraction

                def hit_at_k(rankings, relevant, k):
                    hits = sum(1 for ranking, rel in zip(rankings, relevant) if not set(rel).isdisjoint(ranking[:k]))
                    return Fraction(hits, len(rankings))

                def mean_reciprocal_rank(rankings, relevant):
                    total = sum(next((Fraction(1, rank) for rank, c in enumerate(ranking, 1) if c in rel), Fraction(0))
                                for ranking, rel in zip(rankings, relevant))
                    return total / len(rankings)
            """),
            ("a dict from id to rank for each question; statistics.fmean", "mean_reciprocal_rank", """
                import statistics

                def hit_at_k(rankings, relevant, k):
                    return statistics.fmean(float(any(r in set(ranking[:k]) for r in rel))
                                            for ranking, rel in zip(rankings, relevant))

                def mean_reciprocal_rank(rankings, relevant):
                    scores = []
                    for ranking, rel in zip(rankings, relevant):
                        rank_of = {candidate: rank for rank, candidate in enumerate(ranking, start=1)}
                        ranks = [rank_of[r] for r in rel if r in rank_of]
                        scores.append(1 / min(ranks) if ranks else 0.0)
                    return statistics.fmean(scores)
            """),
        ],
    },
    "recurrent_networks": {
        "q1": [
            ("torch.nn.LSTMCell itself, loaded with the given weights (float32 tensors out)", "lstm_step", """
                def lstm_step(x, h, c, W_ih, W_hh, b_ih, b_hh):
                    cell = torch.nn.LSTMCell(W_ih.shape[1], W_hh.shape[1])
                    with torch.no_grad():
                        for p, w in zip([cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh],
                                        [W_ih, W_hh, b_ih, b_hh]):
                            p.copy_(torch.as_tensor(w))
                        h_new, c_new = cell(torch.as_tensor(x, dtype=torch.float32),
                                            (torch.as_tensor(h, dtype=torch.float32),
                                             torch.as_tensor(c, dtype=torch.float32)))
                    return h_new, c_new
            """),
            ("pure Python: loops over rows and units, math.exp and math.tanh, lists of lists", "lstm_step", """
                import math

                def lstm_step(x, h, c, W_ih, W_hh, b_ih, b_hh):
                    H = len(W_hh[0])
                    sigmoid = lambda z: 1 / (1 + math.exp(-z))
                    h_new, c_new = [], []
                    for xb, hb, cb in zip(x, h, c):
                        a = [sum(w * v for w, v in zip(W_ih[k], xb)) + b_ih[k]
                             + sum(w * v for w, v in zip(W_hh[k], hb)) + b_hh[k] for k in range(4 * H)]
                        cs = [sigmoid(a[H + j]) * cb[j] + sigmoid(a[j]) * math.tanh(a[2 * H + j]) for j in range(H)]
                        h_new.append([sigmoid(a[3 * H + j]) * math.tanh(cs[j]) for j in range(H)])
                        c_new.append(cs)
                    return h_new, c_new
            """),
            ("NumPy, one weight matrix per gate, scipy.special.expit, a list [h, c]", "lstm_step", """
                from scipy.special import expit

                def lstm_step(x, h, c, W_ih, W_hh, b_ih, b_hh):
                    H = h.shape[1]
                    pre = [x @ W_ih[k * H:(k + 1) * H].T + h @ W_hh[k * H:(k + 1) * H].T
                           + b_ih[k * H:(k + 1) * H] + b_hh[k * H:(k + 1) * H] for k in range(4)]
                    i, f, o = expit(pre[0]), expit(pre[1]), expit(pre[3])
                    g = np.tanh(pre[2])
                    c_new = f * c + i * g
                    return [o * np.tanh(c_new), c_new]
            """),
        ],
        "q2": [
            ("torch.nn.utils.clip_grad_norm_ on parameters holding the gradients (its + 1e-6)",
             "clip_by_global_norm", """
                def clip_by_global_norm(grads, max_norm):
                    params = [torch.zeros(np.shape(g), dtype=torch.float64, requires_grad=True) for g in grads]
                    for p, g in zip(params, grads):
                        p.grad = torch.tensor(g)
                    torch.nn.utils.clip_grad_norm_(params, max_norm)
                    return [p.grad for p in params]
            """),
            ("loops: math.fsum of the squares and math.sqrt, scale min(1, max_norm / norm), a tuple",
             "clip_by_global_norm", """
                import math

                def clip_by_global_norm(grads, max_norm):
                    total = math.sqrt(math.fsum(float(v) ** 2 for g in grads for v in np.ravel(g)))
                    scale = min(1.0, max_norm / total)
                    return tuple(np.asarray(g) * scale for g in grads)
            """),
            ("the norm of the tensors' norms, in torch float32, in place", "clip_by_global_norm", """
                def clip_by_global_norm(grads, max_norm):
                    tensors = [torch.tensor(g, dtype=torch.float32) for g in grads]
                    total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(t) for t in tensors]))
                    if total > max_norm:
                        for t in tensors:
                            t.mul_(max_norm / total)
                    return tensors
            """),
        ],
        "q3": [
            ("pure Python loops over lists, a pair of lists per step", "bptt_blocks", """
                def bptt_blocks(stream, batch_size, block):
                    tokens = [int(t) for t in stream]
                    n = len(tokens) // batch_size
                    lanes = [tokens[b * n:(b + 1) * n] for b in range(batch_size)]
                    steps = []
                    start = 0
                    while start + block + 1 <= n:
                        steps.append([[lane[start:start + block] for lane in lanes],
                                      [lane[start + 1:start + block + 1] for lane in lanes]])
                        start += block
                    return steps
            """),
            ("torch: view and unfold into windows of block + 1 with step block, a generator", "bptt_blocks", """
                def bptt_blocks(stream, batch_size, block):
                    t = torch.as_tensor(stream)
                    lane = len(t) // batch_size
                    lanes = t[: lane * batch_size].view(batch_size, lane)
                    windows = lanes.unfold(1, block + 1, block)  # [B, steps, block + 1]
                    return ((windows[:, s, :-1], windows[:, s, 1:]) for s in range(windows.shape[1]))
            """),
            ("lmlib.train.sequential_lanes itself, split into inputs and targets", "bptt_blocks", """
                from lmlib.train import sequential_lanes

                def bptt_blocks(stream, batch_size, block):
                    return [(w[:, :-1], w[:, 1:]) for w in sequential_lanes(torch.as_tensor(stream), batch_size, block)]
            """),
        ],
    },
    "word_embeddings": {
        "q1": [
            ("pure Python: ** 0.75 in a list comprehension, sum, a list", "noise_distribution", """
                def noise_distribution(counts):
                    weights = [int(c) ** 0.75 for c in counts]
                    total = sum(weights)
                    return [w / total for w in weights]
            """),
            ("the unigram probabilities to the power 0.75, normalised again, in torch float32",
             "noise_distribution", """
                def noise_distribution(counts):
                    unigram = torch.as_tensor(counts, dtype=torch.float32) / float(sum(counts))
                    weights = unigram ** 0.75
                    return weights / weights.sum()
            """),
            ("math.pow and math.fsum, a generator", "noise_distribution", """
                def noise_distribution(counts):
                    weights = [math.pow(c, 3 / 4) for c in counts]
                    total = math.fsum(weights)
                    return (w / total for w in weights)
            """),
        ],
        "q2": [
            ("pure Python: math.exp and math.log in loops, a float", "sgns_loss", """
                def sgns_loss(u, v_c, v_noise):
                    dot = lambda a, b: sum(float(x) * float(y) for x, y in zip(a, b))
                    loss = -math.log(1 / (1 + math.exp(-dot(u, v_c))))
                    for v_k in v_noise:
                        loss -= math.log(1 / (1 + math.exp(dot(u, v_k))))
                    return loss
            """),
            ("torch: F.logsigmoid on tensors that require grad, a 0-d tensor", "sgns_loss", """
                def sgns_loss(u, v_c, v_noise):
                    v = torch.tensor(u, requires_grad=True)
                    return -F.logsigmoid(v @ torch.as_tensor(v_c)) - F.logsigmoid(-(torch.as_tensor(v_noise) @ v)).sum()
            """),
            ("lmlib.word2vec.sgns_loss on a batch of one pair", "sgns_loss", """
                from lmlib.word2vec import sgns_loss as batch_sgns_loss

                def sgns_loss(u, v_c, v_noise):
                    return batch_sgns_loss(*(torch.as_tensor(x)[None] for x in (u, v_c, v_noise)))[0]
            """),
        ],
        "q3": [
            ("pure Python loops, the real pair's term as -sigma(-u . v_c) v_c, a list", "sgns_grad_input", """
                def sgns_grad_input(u, v_c, v_noise):
                    dot = lambda a, b: sum(float(x) * float(y) for x, y in zip(a, b))
                    sigmoid = lambda x: 1 / (1 + math.exp(-x))
                    grad = [-sigmoid(-dot(u, v_c)) * float(x) for x in v_c]
                    for v_k in v_noise:
                        weight = sigmoid(dot(u, v_k))
                        grad = [g + weight * float(x) for g, x in zip(grad, v_k)]
                    return grad
            """),
            ("torch autograd of the loss, the .grad tensor", "sgns_grad_input", """
                def sgns_grad_input(u, v_c, v_noise):
                    v = torch.tensor(u, requires_grad=True)
                    loss = -F.logsigmoid(v @ torch.as_tensor(v_c)) - F.logsigmoid(-(torch.as_tensor(v_noise) @ v)).sum()
                    loss.backward()
                    return v.grad
            """),
            ("NumPy: scipy.special.expit, one noise word at a time, a tuple", "sgns_grad_input", """
                from scipy.special import expit

                def sgns_grad_input(u, v_c, v_noise):
                    grad = (expit(np.dot(u, v_c)) - 1) * v_c
                    for v_k in v_noise:
                        grad = grad + expit(np.dot(u, v_k)) * v_k
                    return tuple(grad)
            """),
            ("central finite differences of the loss (h = 1e-6)", "sgns_grad_input", """
                def sgns_grad_input(u, v_c, v_noise):
                    def loss(v):
                        return np.logaddexp(0.0, -(v @ v_c)) + np.logaddexp(0.0, v_noise @ v).sum()
                    h, grad = 1e-6, np.zeros(len(u))
                    for i in range(len(u)):
                        step = np.zeros(len(u))
                        step[i] = h
                        grad[i] = (loss(u + step) - loss(u - step)) / (2 * h)
                    return grad
            """),
        ],
        "q4": [
            ("gensim's KeyedVectors.most_similar itself (float32 cosines)", "nearest_neighbours", """
                from gensim.models import KeyedVectors

                def nearest_neighbours(E, words, query, n):
                    kv = KeyedVectors(vector_size=E.shape[1])
                    kv.add_vectors(words, E)
                    return kv.most_similar(query, topn=n)
            """),
            ("pure Python: math.sqrt, sorted with a key, a tuple of lists [word, cosine]", "nearest_neighbours", """
                def nearest_neighbours(E, words, query, n):
                    rows = [[float(x) for x in row] for row in E]
                    norm = lambda a: math.sqrt(sum(x * x for x in a))
                    q = rows[words.index(query)]
                    scored = [[w, sum(x * y for x, y in zip(row, q)) / (norm(row) * norm(q))]
                              for w, row in zip(words, rows) if w != query]
                    return tuple(sorted(scored, key=lambda pair: pair[1], reverse=True)[:n])
            """),
            ("torch: F.cosine_similarity and torch.topk of n + 1, the query dropped, np.str_ words",
             "nearest_neighbours", """
                def nearest_neighbours(E, words, query, n):
                    E = torch.as_tensor(E)
                    q = words.index(query)
                    cosines = F.cosine_similarity(E, E[q][None], dim=1)
                    top = torch.topk(cosines, n + 1)
                    names = np.array(words)
                    return [(names[i], c) for c, i in zip(top.values, top.indices.tolist()) if i != q][:n]
            """),
        ],
    },
    "transformer": {
        "q1": [
            ("pure Python: loops, math.exp without subtracting the maximum (naive softmax), lists", "attention", """
                def attention(Q, K, V, mask=None):
                    d_k = len(Q[0])
                    out = []
                    for i, q in enumerate(Q):
                        scores = [sum(float(a) * float(b) for a, b in zip(q, k)) / math.sqrt(d_k) for k in K]
                        weights = [math.exp(s) if mask is None or mask[i][j] else 0.0 for j, s in enumerate(scores)]
                        total = sum(weights)
                        out.append([sum(w * float(v[c]) for w, v in zip(weights, V)) / total
                                    for c in range(len(V[0]))])
                    return out
            """),
            ("F.scaled_dot_product_attention on float64 tensors (boolean attn_mask), a tensor", "attention", """
                def attention(Q, K, V, mask=None):
                    return F.scaled_dot_product_attention(
                        torch.as_tensor(Q), torch.as_tensor(K), torch.as_tensor(V),
                        attn_mask=None if mask is None else torch.as_tensor(mask))
            """),
            ("the mask applied after the softmax, then each row renormalised (the same weights), a tuple",
             "attention", """
                from scipy.special import softmax

                def attention(Q, K, V, mask=None):
                    weights = softmax(Q @ K.T / np.sqrt(K.shape[1]), axis=1)
                    if mask is not None:
                        weights = weights * mask
                        weights = weights / weights.sum(axis=1, keepdims=True)
                    return tuple(weights @ V)
            """),
            ("torch float32: masked_fill with -1e9 instead of -inf, einsum", "attention", """
                def attention(Q, K, V, mask=None):
                    q, k, v = (torch.as_tensor(a, dtype=torch.float32) for a in (Q, K, V))
                    scores = torch.einsum("id,jd->ij", q, k) / q.shape[-1] ** 0.5
                    if mask is not None:
                        scores = scores.masked_fill(~torch.as_tensor(mask), -1e9)
                    return scores.softmax(dim=-1) @ v
            """),
        ],
        "q2": [
            ("pure Python: a list comprehension of comparisons", "causal_mask", """
                def causal_mask(t_q, t_k):
                    return [[j <= i + t_k - t_q for j in range(t_k)] for i in range(t_q)]
            """),
            ("np.tri with the offset t_k - t_q: 1.0 and 0.0 (floats, np.tri's default)", "causal_mask", """
                def causal_mask(t_q, t_k):
                    return np.tri(t_q, t_k, k=t_k - t_q)
            """),
            ("torch: the last t_q rows of the square T_k x T_k mask, a bool tensor", "causal_mask", """
                def causal_mask(t_q, t_k):
                    return torch.tril(torch.ones(t_k, t_k, dtype=torch.bool))[t_k - t_q:]
            """),
            ("lmlib.transformer.causal_mask itself", "causal_mask", """
                from lmlib.transformer import causal_mask as lmlib_causal_mask

                def causal_mask(t_q, t_k):
                    return lmlib_causal_mask(t_q, t_k)
            """),
        ],
        "q3": [
            ("pure Python nested lists, indices computed", "split_heads", """
                def split_heads(x, n_heads):
                    d_k = len(x[0][0]) // n_heads
                    return [[[list(row[i * d_k:(i + 1) * d_k]) for row in seq] for i in range(n_heads)] for seq in x]

                def merge_heads(x):
                    return [[[v for head in heads for v in head[t]] for t in range(len(heads[0]))] for heads in x]
            """),
            ("torch: view, transpose, contiguous, view (tensors)", "split_heads", """
                def split_heads(x, n_heads):
                    x = torch.as_tensor(x)
                    B, T, width = x.shape
                    return x.view(B, T, n_heads, width // n_heads).transpose(1, 2)

                def merge_heads(x):
                    x = torch.as_tensor(x)
                    B, h, T, d_k = x.shape
                    return x.transpose(1, 2).contiguous().view(B, T, h * d_k)
            """),
            ("NumPy: np.stack of the slices, np.concatenate of the heads, np.moveaxis; a list and a tuple",
             "split_heads", """
                def split_heads(x, n_heads):
                    return list(np.stack(np.split(x, n_heads, axis=-1), axis=1))

                def merge_heads(x):
                    return tuple(np.concatenate(list(np.moveaxis(x, 1, 0)), axis=-1))
            """),
            ("lmlib.transformer's split_heads and merge_heads on tensors", "split_heads", """
                from lmlib import transformer

                def split_heads(x, n_heads):
                    return transformer.split_heads(torch.as_tensor(x), n_heads)

                def merge_heads(x):
                    return transformer.merge_heads(torch.as_tensor(x))
            """),
        ],
        "q4": [
            ("pure Python: math.cos and math.sin pair by pair, a list", "rope", """
                def rope(x, t, theta):
                    d = len(x)
                    out = [0.0] * d
                    for i in range(d // 2):
                        a = t * theta ** (-2 * i / d)
                        out[i] = x[i] * math.cos(a) - x[i + d // 2] * math.sin(a)
                        out[i + d // 2] = x[i + d // 2] * math.cos(a) + x[i] * math.sin(a)
                    return out
            """),
            ("complex numbers: (x_i + i x_{i+d/2}) e^{i t theta_i}", "rope", """
                def rope(x, t, theta):
                    half = len(x) // 2
                    z = (x[:half] + 1j * x[half:]) * np.exp(1j * t * theta ** (-2 * np.arange(half) / len(x)))
                    return np.concatenate([z.real, z.imag])
            """),
            ("lmlib's rope_angles and apply_rope (angles in float32, as Hugging Face computes them)", "rope", """
                from lmlib.transformer import apply_rope, rope_angles

                def rope(x, t, theta):
                    cos, sin = rope_angles(t + 1, len(x), theta)
                    return apply_rope(torch.as_tensor(x), cos[t].double(), sin[t].double())
            """),
            ("torch float64: rotate_half written out, cos and sin of the angles repeated", "rope", """
                def rope(x, t, theta):
                    x = torch.as_tensor(x, dtype=torch.float64)
                    d = x.shape[0]
                    angles = t * theta ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
                    angles = torch.cat([angles, angles])
                    x1, x2 = x[: d // 2], x[d // 2:]
                    return x * angles.cos() + torch.cat([-x2, x1]) * angles.sin()
            """),
        ],
    },
    "pretraining": {
        "q1": [
            ("pure Python: loops, math.log of a sum of math.exp (no maximum subtracted), a float", "causal_lm_loss", """
                def causal_lm_loss(logits, ids, pad_id):
                    total, n = 0.0, 0
                    for seq_logits, seq in zip(logits, ids):
                        for t in range(len(seq) - 1):
                            target = int(seq[t + 1])
                            if target == pad_id:
                                continue
                            z = [float(v) for v in seq_logits[t]]
                            total += math.log(sum(math.exp(v) for v in z)) - z[target]
                            n += 1
                    return total / n
            """),
            ("F.cross_entropy(..., ignore_index=-100) on float32 tensors, a 0-d tensor", "causal_lm_loss", """
                def causal_lm_loss(logits, ids, pad_id):
                    z = torch.as_tensor(logits, dtype=torch.float32)[:, :-1]
                    targets = torch.as_tensor(ids)[:, 1:].clone()
                    targets[targets == pad_id] = -100
                    return F.cross_entropy(z.reshape(-1, z.shape[-1]), targets.reshape(-1), ignore_index=-100)
            """),
            ("scipy's log_softmax, a weighted mean with 0/1 weights, a 0-d array", "causal_lm_loss", """
                from scipy.special import log_softmax

                def causal_lm_loss(logits, ids, pad_id):
                    log_probs = log_softmax(logits[:, :-1], axis=-1)
                    picked = np.take_along_axis(log_probs, ids[:, 1:, None], axis=-1)[..., 0]
                    return np.asarray(-np.average(picked, weights=(ids[:, 1:] != pad_id).astype(float)))
            """),
            ("Hugging Face's own loss: ForCausalLMLoss on labels = ids with padding set to -100 (it shifts)",
             "causal_lm_loss", """
                from transformers.loss.loss_utils import ForCausalLMLoss

                def causal_lm_loss(logits, ids, pad_id):
                    labels = torch.as_tensor(ids).masked_fill(torch.as_tensor(ids == pad_id), -100)
                    return ForCausalLMLoss(torch.as_tensor(logits), labels, vocab_size=logits.shape[-1])
            """),
        ],
        "q2": [
            ("pure Python: loops over positions, nested lists, a tuple", "bert_masking", """
                def bert_masking(ids, special, u_choose, u_mask, u_random, random_ids, mask_id):
                    inputs, labels = [], []
                    for b in range(len(ids)):
                        row_in, row_lab = [], []
                        for t in range(len(ids[b])):
                            token = int(ids[b][t])
                            if special[b][t] or not u_choose[b][t] < 0.15:
                                row_in.append(token)
                                row_lab.append(-100)
                                continue
                            if u_mask[b][t] < 0.8:
                                row_in.append(mask_id)
                            elif u_random[b][t] < 0.5:
                                row_in.append(int(random_ids[b][t]))
                            else:
                                row_in.append(token)
                            row_lab.append(token)
                        inputs.append(row_in)
                        labels.append(row_lab)
                    return inputs, labels
            """),
            ("torch: masked_fill and where, a list of two tensors", "bert_masking", """
                def bert_masking(ids, special, u_choose, u_mask, u_random, random_ids, mask_id):
                    ids, special = torch.as_tensor(ids), torch.as_tensor(special)
                    chosen = (torch.as_tensor(u_choose) < 0.15) & ~special
                    masked = chosen & (torch.as_tensor(u_mask) < 0.8)
                    randomised = chosen & ~masked & (torch.as_tensor(u_random) < 0.5)
                    inputs = ids.masked_fill(masked, mask_id).where(~randomised, torch.as_tensor(random_ids))
                    return [inputs, ids.masked_fill(~chosen, -100)]
            """),
            ("NumPy: copies changed in place by boolean indexing, labels as floats", "bert_masking", """
                def bert_masking(ids, special, u_choose, u_mask, u_random, random_ids, mask_id):
                    chosen = np.logical_and(u_choose < 0.15, np.logical_not(special))
                    inputs = ids.copy()
                    inputs[chosen & (u_mask < 0.8)] = mask_id
                    randomised = chosen & (u_mask >= 0.8) & (u_random < 0.5)
                    inputs[randomised] = random_ids[randomised]
                    labels = np.full(ids.shape, -100.0)
                    labels[chosen] = ids[chosen]
                    return inputs, labels
            """),
            ("np.select over the three cases, the pair stacked into one [2, B, T] array", "bert_masking", """
                def bert_masking(ids, special, u_choose, u_mask, u_random, random_ids, mask_id):
                    chosen = (u_choose < 0.15) & ~special
                    inputs = np.select([chosen & (u_mask < 0.8), chosen & (u_random < 0.5)], [mask_id, random_ids],
                                       default=ids)
                    return np.stack([inputs, np.where(chosen, ids, -100)])
            """),
        ],
        "q3": [
            ("pure Python: loops, a list of lists", "mean_pooling", """
                def mean_pooling(hidden, attention_mask):
                    out = []
                    for vectors, mask in zip(hidden, attention_mask):
                        real = [v for v, m in zip(vectors, mask) if m == 1]
                        out.append([sum(float(v[i]) for v in real) / len(real) for i in range(len(vectors[0]))])
                    return out
            """),
            ("torch float32: masked sum over a clamped count (sentence-transformers' way), a tensor",
             "mean_pooling", """
                def mean_pooling(hidden, attention_mask):
                    h = torch.as_tensor(hidden, dtype=torch.float32)
                    m = torch.as_tensor(attention_mask).unsqueeze(-1).expand(h.size()).float()
                    return torch.sum(h * m, 1) / torch.clamp(m.sum(1), min=1e-9)
            """),
            ("np.average row by row with the mask as weights, a list of arrays", "mean_pooling", """
                def mean_pooling(hidden, attention_mask):
                    return [np.average(h, axis=0, weights=m) for h, m in zip(hidden, attention_mask)]
            """),
            ("boolean indexing of each row's real tokens, a tuple", "mean_pooling", """
                def mean_pooling(hidden, attention_mask):
                    return tuple(h[m.astype(bool)].mean(axis=0) for h, m in zip(hidden, attention_mask))
            """),
            ("einsum over the positions, divided by the count", "mean_pooling", """
                def mean_pooling(hidden, attention_mask):
                    return np.einsum("btd,bt->bd", hidden, attention_mask) / attention_mask.sum(axis=1, keepdims=True)
            """),
        ],
    },
    "finetuning": {
        "q1": [
            ("pure Python: loops, the last 1 of the mask found by scanning, math.log of a sum of math.exp, a float",
             "head_loss", """
                def head_loss(hidden, attention_mask, W, b, labels):
                    total = 0.0
                    for states, mask, label in zip(hidden, attention_mask, labels):
                        last = max(t for t, m in enumerate(mask) if m == 1)
                        h = [float(v) for v in states[last]]
                        z = [sum(w * v for w, v in zip(row, h)) + float(bias) for row, bias in zip(W, b)]
                        total += math.log(sum(math.exp(v) for v in z)) - z[int(label)]
                    return total / len(labels)
            """),
            ("torch float32: gather at n - 1, F.linear and F.cross_entropy, a 0-d tensor", "head_loss", """
                def head_loss(hidden, attention_mask, W, b, labels):
                    h = torch.as_tensor(hidden, dtype=torch.float32)
                    last = torch.as_tensor(attention_mask).sum(dim=1) - 1
                    pooled = h[torch.arange(h.shape[0]), last]
                    logits = F.linear(pooled, torch.as_tensor(W, dtype=torch.float32),
                                      torch.as_tensor(b, dtype=torch.float32))
                    return F.cross_entropy(logits, torch.as_tensor(labels).long())
            """),
            ("the last real position found from the end (argmax of the reversed mask), einsum, scipy's logsumexp",
             "head_loss", """
                from scipy.special import logsumexp

                def head_loss(hidden, attention_mask, W, b, labels):
                    last = attention_mask.shape[1] - 1 - np.argmax(attention_mask[:, ::-1], axis=1)
                    logits = np.einsum("bd,cd->bc", hidden[np.arange(len(hidden)), last], W) + b
                    return np.mean(logsumexp(logits, axis=1) - logits[np.arange(len(labels)), labels])
            """),
            ("one-hot pooling (mask minus the mask shifted left), a one-hot label matrix, np.float32", "head_loss", """
                def head_loss(hidden, attention_mask, W, b, labels):
                    m = attention_mask.astype(np.float32)
                    is_last = m - np.concatenate([m[:, 1:], np.zeros((len(m), 1), np.float32)], axis=1)
                    pooled = (hidden.astype(np.float32) * is_last[:, :, None]).sum(axis=1)
                    logits = pooled @ W.T.astype(np.float32) + b.astype(np.float32)
                    log_probs = logits - logits.max(axis=1, keepdims=True)
                    log_probs -= np.log(np.exp(log_probs).sum(axis=1, keepdims=True))
                    one_hot = np.eye(W.shape[0], dtype=np.float32)[labels]
                    return np.float32(-(one_hot * log_probs).sum() / len(labels))
            """),
        ],
        "q2": [
            ("pure Python: loops, a running product, the prefixes tested one by one", "trainable_numbers", """
                def trainable_numbers(shapes, trainable):
                    total = 0
                    for name in shapes:
                        if any(name.startswith(prefix) for prefix in trainable):
                            n = 1
                            for size in shapes[name]:
                                n *= size
                            total += n
                    return total

                def lora_numbers(shapes, r, targets):
                    total = trainable_numbers(shapes, ("head.",))
                    for name, shape in shapes.items():
                        if not name.endswith(".weight"):
                            continue
                        layer = name[: -len(".weight")]
                        if any(layer.endswith(suffix) for suffix in targets):
                            d_out, d_in = shape
                            total += r * d_in + d_out * r  # A, then B
                    return total
            """),
            ("NumPy: np.prod of each shape (a float for the scalar's empty shape), an np.int64 or np.float64",
             "trainable_numbers", """
                def trainable_numbers(shapes, trainable):
                    return np.sum([np.prod(s) for n, s in shapes.items() if n.startswith(trainable)])

                def lora_numbers(shapes, r, targets):
                    weights = [s for n, s in shapes.items()
                               if n.rpartition(".")[2] == "weight" and n.rpartition(".")[0].endswith(targets)]
                    head = np.sum([np.prod(s) for n, s in shapes.items() if n.startswith("head.")])
                    return r * np.sum(weights) + head  # each (d_out, d_in) summed: d_out + d_in
            """),
            ("torch: torch.Size(shape).numel(), A and B as shapes (r, d_in) and (d_out, r), a tensor",
             "trainable_numbers", """
                import re

                def trainable_numbers(shapes, trainable):
                    return torch.tensor(sum(torch.Size(s).numel() for n, s in shapes.items()
                                            if n.startswith(trainable)))

                def lora_numbers(shapes, r, targets):
                    pattern = re.compile("(" + "|".join(map(re.escape, targets)) + r")\\.weight$")
                    lora = sum(torch.Size((r, s[1])).numel() + torch.Size((s[0], r)).numel()
                               for n, s in shapes.items() if pattern.search(n))
                    return torch.tensor(lora) + trainable_numbers(shapes, ("head.",))
            """),
        ],
        "q3": [
            ("pure Python: loops over lists, the rank-r code x A^T first", "lora_forward", """
                def lora_forward(x, W, b, A, B, alpha):
                    scale = alpha / len(A)
                    out = []
                    for row in x:
                        code = [sum(a * v for a, v in zip(a_row, row)) for a_row in A]
                        out.append([sum(w * v for w, v in zip(w_row, row)) + float(bias)
                                    + scale * sum(bb * c for bb, c in zip(b_row, code))
                                    for w_row, bias, b_row in zip(W, b, B)])
                    return out

                def lora_merge(W, A, B, alpha):
                    scale = alpha / len(A)
                    return [[float(W[i][j]) + scale * sum(float(B[i][k]) * float(A[k][j]) for k in range(len(A)))
                             for j in range(len(W[0]))] for i in range(len(W))]
            """),
            ("torch float32: F.linear twice for the update; torch.addmm for the merge", "lora_forward", """
                def lora_forward(x, W, b, A, B, alpha):
                    x, W, b, A, B = (torch.as_tensor(t, dtype=torch.float32) for t in (x, W, b, A, B))
                    return F.linear(x, W, b) + alpha / A.shape[0] * F.linear(F.linear(x, A), B)

                def lora_merge(W, A, B, alpha):
                    W, A, B = (torch.as_tensor(t, dtype=torch.float32) for t in (W, A, B))
                    return torch.addmm(W, B, A, alpha=alpha / A.shape[0])
            """),
            ("NumPy: merge first, then one linear layer; B A as a sum of r outer products, a tuple of rows",
             "lora_forward", """
                def lora_merge(W, A, B, alpha):
                    r = B.shape[1]
                    return tuple(W + alpha / r * sum(np.outer(B[:, k], A[k]) for k in range(r)))

                def lora_forward(x, W, b, A, B, alpha):
                    return np.dot(x, np.array(lora_merge(W, A, B, alpha)).T) + b
            """),
        ],
    },
    "assistant": {
        "q1": [
            ("pure Python: a loop with +=, each role token built from the role's name ('<|' + role + '|>', as the "
             "Jinja template does)", "format_chat", """
                def format_chat(messages, add_generation_prompt=False):
                    text = "<bos>"
                    for message in messages:
                        text += "<|" + message["role"] + "|>"
                        text += message["content"]
                        text += "<|end|>"
                    if add_generation_prompt:
                        text += "<|assistant|>"
                    return text
            """),
            ("f-strings in a list joined once, the generation prompt a part repeated 0 or 1 times; a NumPy string",
             "format_chat", """
                def format_chat(messages, add_generation_prompt=False):
                    parts = ["<bos>", *(f"<|{m['role']}|>{m['content']}<|end|>" for m in messages)]
                    parts += ["<|assistant|>"] * int(add_generation_prompt)
                    return np.str_("".join(parts))
            """),
            ("lmlib.chat.format_chat itself (the grader accepts theirs)", "format_chat", """
                from lmlib.chat import format_chat as lmlib_format_chat

                def format_chat(messages, add_generation_prompt=False):
                    return lmlib_format_chat(messages, add_generation_prompt=add_generation_prompt)
            """),
            ("Jinja: lmlib.chat.CHAT_TEMPLATE rendered by jinja2 with bos_token '<bos>' (without Hugging Face's "
             "{% generation %} markers, which jinja2 does not know)", "format_chat", """
                import jinja2
                from lmlib.chat import CHAT_TEMPLATE

                def format_chat(messages, add_generation_prompt=False):
                    source = CHAT_TEMPLATE.replace("{%- generation -%}", "").replace("{%- endgeneration -%}", "")
                    template = jinja2.Environment().from_string(source)
                    return template.render(messages=messages, bos_token="<bos>",
                                           add_generation_prompt=add_generation_prompt)
            """),
        ],
        "q2": [
            ("NumPy: a list of which positions the assistant writes, np.where(scored, ids, -100); two arrays",
             "ids_and_labels", """
                def ids_and_labels(messages, encode, special):
                    role_ids = {"system": special["<|system|>"], "user": special["<|user|>"],
                                "assistant": special["<|assistant|>"]}
                    ids, scored = [special["<bos>"]], [False]
                    for m in messages:
                        written = list(encode(m["content"])) + [special["<|end|>"]]
                        ids += [role_ids[m["role"]]] + written
                        scored += [False] + [m["role"] == "assistant"] * len(written)
                    ids = np.array(ids)
                    return ids, np.where(np.array(scored), ids, -100)
            """),
            ("torch: each message a tensor, masked_fill where the assistant does not write; one 2 x T tensor, whose "
             "two rows unpack as (ids, labels)", "ids_and_labels", """
                def ids_and_labels(messages, encode, special):
                    pieces, written = [torch.tensor([special["<bos>"]])], [torch.tensor([False])]
                    for m in messages:
                        turn = torch.tensor([special[f"<|{m['role']}|>"], *encode(m["content"]), special["<|end|>"]])
                        by_assistant = torch.full(turn.shape, m["role"] == "assistant")
                        by_assistant[0] = False  # the role token is given, not written
                        pieces.append(turn)
                        written.append(by_assistant)
                    ids, written = torch.cat(pieces), torch.cat(written)
                    return torch.stack([ids, ids.masked_fill(~written, -100)])
            """),
            ("pure Python: the ids first, the assistant's spans as ranges, then the labels by a comprehension; "
             "tuples", "ids_and_labels", """
                def ids_and_labels(messages, encode, special):
                    ids, spans = [special["<bos>"]], []
                    for m in messages:
                        ids.append(special["<|" + m["role"] + "|>"])
                        start = len(ids)
                        ids.extend(encode(m["content"]))
                        ids.append(special["<|end|>"])
                        if m["role"] == "assistant":
                            spans.append(range(start, len(ids)))
                    labels = [i if any(t in span for span in spans) else -100 for t, i in enumerate(ids)]
                    return tuple(ids), tuple(labels)
            """),
            ("who wrote each position, then a copy of the ids set to -100 where it is not the assistant; a list "
             "[ids, labels]", "ids_and_labels", """
                def ids_and_labels(messages, encode, special):
                    ids, writer = [special["<bos>"]], ["given"]
                    for m in messages:
                        text = encode(m["content"])
                        ids += [special["<|" + m["role"] + "|>"], *text, special["<|end|>"]]
                        writer += ["given"] + [m["role"]] * (len(text) + 1)
                    labels = ids.copy()
                    for t, who in enumerate(writer):
                        if who != "assistant":
                            labels[t] = -100
                    return [ids, labels]
            """),
        ],
        "q3": [
            ("pure Python: loops, ln(1 + e^-z) as max(-z, 0) + log1p(e^-|z|), a float; the rewards a list",
             "dpo_loss", """
                def implicit_rewards(policy_logps, ref_logps, beta):
                    return [beta * (float(p) - float(r)) for p, r in zip(policy_logps, ref_logps)]

                def dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta):
                    total = 0.0
                    for pw, pl, rw, rl in zip(policy_chosen, policy_rejected, ref_chosen, ref_rejected):
                        z = beta * ((float(pw) - float(rw)) - (float(pl) - float(rl)))
                        total += max(-z, 0.0) + math.log1p(math.exp(-abs(z)))
                    return total / len(policy_chosen)
            """),
            ("torch float32: the rewards as tensors, -F.logsigmoid of their difference, a 0-d tensor", "dpo_loss", """
                def implicit_rewards(policy_logps, ref_logps, beta):
                    policy = torch.as_tensor(policy_logps, dtype=torch.float32)
                    return beta * (policy - torch.as_tensor(ref_logps, dtype=torch.float32))

                def dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta):
                    chosen = implicit_rewards(policy_chosen, ref_chosen, beta)
                    rejected = implicit_rewards(policy_rejected, ref_rejected, beta)
                    return -F.logsigmoid(chosen - rejected).mean()
            """),
            ("SciPy: -log_expit of beta ((ln pi_w - ln pi_l) - (ln ref_w - ln ref_l)), the policy's difference "
             "first; the rewards a tuple of NumPy floats", "dpo_loss", """
                from scipy.special import log_expit

                def implicit_rewards(policy_logps, ref_logps, beta):
                    return tuple(beta * np.subtract(policy_logps, ref_logps))

                def dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta):
                    policy_gap = np.subtract(policy_chosen, policy_rejected)
                    logits = beta * (policy_gap - np.subtract(ref_chosen, ref_rejected))
                    return -np.mean(log_expit(logits))
            """),
            ("lmlib.dpo.dpo_loss itself on tensors (the grader accepts theirs); the rewards its chosen_rewards",
             "dpo_loss", """
                from lmlib import dpo as lmlib_dpo

                def implicit_rewards(policy_logps, ref_logps, beta):
                    policy, ref = torch.as_tensor(policy_logps), torch.as_tensor(ref_logps)
                    return lmlib_dpo.dpo_loss(policy, policy, ref, ref, beta).chosen_rewards

                def dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta):
                    logps = [torch.as_tensor(x) for x in (policy_chosen, policy_rejected, ref_chosen, ref_rejected)]
                    return lmlib_dpo.dpo_loss(*logps, beta).loss
            """),
        ],
    },
}


# Right answers in styles that once cost points in `make grade`: names the notebook binds that
# shadow builtins (the tests and their helpers must still see the real ones), a default dtype the
# question allows, a function that never returns (it costs its own question, nothing else).
# Each style adds `cell` to the solution notebook (at index `at`; None: last) and, where the solution's
# own code would break under it (torch's `sum` does not take a generator), answers in that style.
@dataclass(frozen=True)
class Style:
    name: str
    what: str
    cell: str
    at: int | None = None
    definitions: tuple[tuple[str, str], ...] = ()  # (function, definition written for this style)


STYLES = {
    "finetuning": [
        Style("style-from-torch-import-star", "`from torch import *` (rebinds compile, float, int, bool, sum, ...)",
              "from torch import *", definitions=(
                  ("trainable_numbers", """
                      def trainable_numbers(shapes, trainable):
                          total = 0
                          for name, shape in shapes.items():
                              if name.startswith(tuple(trainable)):
                                  total += math.prod(shape)
                          return total
                  """),
                  ("lora_numbers", """
                      def lora_numbers(shapes, r, targets):
                          total = trainable_numbers(shapes, ("head.",))
                          for name, shape in shapes.items():
                              if name.endswith(".weight") and name[: -len(".weight")].endswith(tuple(targets)):
                                  d_out, d_in = shape
                                  total += r * (d_in + d_out)
                          return total
                  """),
              )),
    ],
    "generating_text": [
        Style("style-list-rebound", "`list = [...]` in an ungraded cell", "list = [0.25, 0.5, 0.25]"),
        Style("style-round-as-loop-variable", "`for round in range(3):`", "for round in range(3):\n    print(round)"),
    ],
    "word_embeddings": [
        Style("style-from-numpy-import-star", "`from numpy import *` (rebinds round, sum, max, abs, ...)",
              "from numpy import *"),
    ],
    "neural_networks": [
        Style("style-float64-by-default", "`torch.set_default_dtype(torch.float64)`, as 'compute in float64' allows",
              "torch.set_default_dtype(torch.float64)", at=3),
    ],
}
HANGS = "finetuning", "q2", "trainable_numbers"  # exercise, question, function that never returns


def styles(exercise: Exercise) -> list[Submission]:
    """STYLES' submissions, and for HANGS[0] one whose HANGS[2] never returns and is called from three
    cells (its question's check cell, an optional comparison cell of the student's, check_all)."""
    solution = answered(load_nb(exercise.solution_notebook), load_nb(exercise.student_notebook))
    full = {q.name: q.points for q in exercise.questions}
    subs = []
    for style in STYLES.get(exercise.name, []):
        nb = solution
        for function, definition in style.definitions:
            nb = replace_definition(nb, function, definition)
        subs.append(Submission(f"{style.name}.ipynb", dump(with_cell(nb, style.cell, style.at)), full))
    name, question, function = HANGS
    if exercise.name == name:
        nb = replace_definition(solution, function, f"""
            def {function}(*args, **kwargs):
                while True:
                    pass
        """)
        at = next(i for i, c in enumerate(nb["cells"]) if f"def {function}(" in "".join(c["source"])) + 1
        nb = with_cell(nb, f"{function}({{'head.weight': (2, 4)}}, ('head.',))  # comparing by hand", at)
        sources = ["".join(c["source"]) for c in nb["cells"]]
        assert f'grader.check("{question}")' in sources and "grader.check_all()" in sources, "no check cells"
        subs.append(Submission("style-hangs.ipynb", dump(nb), {**full, question: 0.0}, "ok", "cell time limit"))
    return subs


HOSTILE = [  # the files hostile() makes, one test each
    "hostile-sys-exit", "hostile-os-exit", "hostile-infinite-loop", "hostile-loop-ignores-interrupt",
    "hostile-patches-otter", "hostile-always-equal", "hostile-rebinds-builtins",
    "hostile-tampers-builtins-module", "hostile-prints-success", "broken-invalid-json",
    "broken-binary", "broken-not-a-notebook", "broken-unknown-kernel", "broken-no-otter-metadata",
    "broken-wrong-assignment", "hostile-reads-hidden-tests", "hostile-writes-outside",
    "hostile-huge-allocation", "hostile-memory-creep", "hostile-fork-bomb",
]


@dataclass
class Submission:
    name: str
    data: bytes
    points: float | dict | None  # None: do not check the points
    status: str | set[str] = "ok"
    reason: str = ""


def load_nb(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def dump(nb: dict) -> bytes:
    return json.dumps(nb, indent=1).encode()


def code_cell(source: str) -> dict:
    return {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
            "source": textwrap.dedent(source).strip()}


def with_cell(nb: dict, source: str, at: int | None = None) -> dict:
    nb = json.loads(json.dumps(nb))
    cells = nb["cells"]
    cells.insert(len(cells) if at is None else at, code_cell(source))
    for i, cell in enumerate(cells):
        cell["id"] = f"c{i}"
    return nb


def replace_definition(nb: dict, function: str, wrong: str) -> dict:
    """The notebook with the wrong definition appended to the cell defining ``function``."""
    nb = json.loads(json.dumps(nb))
    for cell in nb["cells"]:
        src = "".join(cell["source"])
        if cell["cell_type"] == "code" and f"def {function}(" in src:
            cell["source"] = src + "\n\n\n" + textwrap.dedent(wrong).strip() + "\n"
            return nb
    raise AssertionError(f"no cell defines {function}")


TEACHER_ONLY = re.compile(r"^[ \t]*# BEGIN SOLUTION NO PROMPT[ \t]*\n.*?^[ \t]*# END SOLUTION[ \t]*(\n|\Z)",
                          re.M | re.S)


def answered(solution: dict, blank: dict) -> dict:
    """The solution notebook as a student who answered every question holds it: without the teacher's own
    cross-checks (``# BEGIN SOLUTION NO PROMPT`` blocks: the answers against peft, sentence-transformers,
    gensim, ...), which otter-assign leaves out of the student notebook. Those imports cost seconds per
    notebook and no student submission has them."""
    nb = json.loads(json.dumps(solution))
    for i, cell in enumerate(nb["cells"]):
        src = "".join(cell["source"])
        if cell["cell_type"] == "code" and TEACHER_ONLY.search(src):
            cell["source"] = TEACHER_ONLY.sub("", src)
            # the student notebook has the same cells, where this one is left as otter-assign leaves it
            assert "".join(blank["cells"][i]["source"]).strip() == cell["source"].strip(), (i, cell["source"])
    return nb


# --- which wrong answers can share a notebook ------------------------------------------------------
#
# One sandbox run per wrong answer is most of this suite's time. Wrong answers to two questions share a
# notebook when neither question's tests can reach what the other's wrong answer defines, nor reach
# the same notebook data (a wrong answer could change it in place), as exercises/teachers.md asks
# ("a question's tests call lmlib, not the student's answers to other questions"). Then the grade of
# each question in that notebook depends on its own answer only, and the notebook still shows what
# one notebook per wrong answer showed: each question with a wrong answer in it loses points, every
# other question keeps them all. Where tests do reach another question's answer, those wrong answers
# get notebooks of their own, and a double penalty shows as a lost point in a right question.
#
# "Reach" follows names, as Python looks them up: the tests read names, a function's body reads the
# module names it does not bind itself, a statement binds names and reads others, and a statement
# that is not a definition may change the notebook data it reads (``counts.update(...)``). A cell
# stops at its first error, so whatever a cell binds also depends on what its earlier statements
# read. Beyond names, and so beyond this analysis: global random generators, and objects that tests
# get from a library (a corpus lmlib caches) and an answer changes in place. The tests of the packed
# exercises make their own inputs and generators.


def _names(code: str) -> tuple[set[str], set[str]]:
    """(module names ``code`` reads, module names it binds), from Python's own symbol tables: a nested
    function, class or comprehension reads the module names it does not bind itself."""
    import symtable

    table = symtable.symtable(code, "<cell>", "exec")
    reads = {s.get_name() for s in table.get_symbols() if s.is_referenced()}
    binds = {s.get_name() for s in table.get_symbols() if s.is_assigned() or s.is_imported() or s.is_namespace()}
    nested = list(table.get_children())
    while nested:
        scope = nested.pop()
        nested += scope.get_children()
        for s in scope.get_symbols():
            if s.is_global() and s.is_referenced():
                reads.add(s.get_name())
            if s.is_declared_global() and s.is_assigned():
                binds.add(s.get_name())
    return reads, binds


@dataclass(frozen=True)
class Dependencies:
    """A notebook's names: what each can reach, and which are data (bound other than by def, class, import).
    ``unread``: the magics whose code the analysis cannot read (then every question is tied to every other)."""
    edges: dict[str, frozenset[str]]
    data: frozenset[str]
    unread: tuple[str, ...] = ()

    def reach(self, code: list[str]) -> set[str]:
        """The notebook names that ``code`` (a question's tests) can reach."""
        todo, seen = set().union(*(_names(c)[0] | _names(c)[1] for c in code)), set()
        while todo:
            name = todo.pop()
            if name not in seen:
                seen.add(name)
                todo |= self.edges.get(name, frozenset())
        return seen


def _magic_code(node, unread: list[str]) -> list[str]:
    """The Python code run by the IPython magics in ``node`` (``%time``, ``%%capture``, ...), as IPython
    rewrites them: ``get_ipython().run_line_magic("time", "x = f(1)")``."""
    import ast

    code = []
    for call in ast.walk(node):
        method = call.func.attr if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) else None
        if method not in ("run_line_magic", "run_cell_magic"):
            continue
        args = [a.value if isinstance(a, ast.Constant) else None for a in call.args]
        magic, line, cell = (args + [None, None])[:3] if method == "run_cell_magic" else (*args[:2], None)
        if magic in ("time", "capture") and method == "run_cell_magic" and not (line or "").startswith("-"):
            code += [cell, *(f"{name} = None" for name in (line or "").split()[:1])]  # %%capture out binds out
        elif magic == "time" and method == "run_line_magic":
            code.append(line)
        else:
            unread.append(f"%{magic}")
    return [c for c in code if isinstance(c, str)]


def dependencies(nb: dict) -> Dependencies:
    import ast

    from IPython.core.inputtransformer2 import TransformerManager

    cells, unread = [], []  # per code cell: (is a definition or an import, names read, names bound) per statement
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            statements = []
            for node in ast.parse(TransformerManager().transform_cell("".join(cell["source"]))).body:
                reads, binds = _names(ast.unparse(node))
                for code in _magic_code(node, unread):
                    try:
                        more = _names(code)
                    except SyntaxError:
                        unread.append(code[:40])
                        continue
                    reads, binds = reads | more[0], binds | more[1]
                is_def = isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Import,
                                           ast.ImportFrom))
                statements.append((is_def, reads, binds))
            cells.append(statements)
    data = frozenset().union(*(binds for statements in cells for is_def, _, binds in statements if not is_def))
    edges: dict[str, set[str]] = {}
    for statements in cells:
        earlier: set[str] = set()
        for is_def, reads, binds in statements:
            for name in binds | (set() if is_def else reads & data):
                edges.setdefault(name, set()).update(reads | earlier)
            earlier |= reads
    return Dependencies({k: frozenset(v) for k, v in edges.items()}, data, tuple(unread))


def tests_code(exercise: Exercise, question: str) -> list[str]:
    return [step.code for q in exercise.questions if q.name == question for case in q.cases for step in case.steps]


def wrong_definitions(exercise: Exercise, question: str) -> set[str]:
    """The names the question's wrong answers (re)define."""
    return set().union(*(_names(textwrap.dedent(code))[1] | {function}
                         for _, function, code in WRONG_ANSWERS[exercise.name][question]))


def tied(exercise: Exercise, deps: Dependencies, a: str, b: str) -> list[str]:
    """Why wrong answers to questions ``a`` and ``b`` cannot share a notebook (empty: they can)."""
    if deps.unread:
        return [f"the notebook runs {', '.join(deps.unread)}, whose code this analysis cannot read"]
    reach = {q: deps.reach(tests_code(exercise, q)) for q in (a, b)}
    why = [f"{q}'s tests reach {name}, which {p}'s wrong answers define"
           for p, q in [(a, b), (b, a)] for name in sorted(wrong_definitions(exercise, p) & reach[q])]
    return why + [f"the tests of {a} and {b} both reach the data {name}"
                  for name in sorted(reach[a] & reach[b] & deps.data)]


def with_wrong_answers(exercise: Exercise, nb: dict, packed: dict[str, int]) -> dict:
    """``nb`` with the wrong answer ``packed[question]`` to each question in ``packed``."""
    for question, i in packed.items():
        _, function, wrong = WRONG_ANSWERS[exercise.name][question][i]
        nb = replace_definition(nb, function, wrong)
    return nb


def packed_wrong_answers(exercise: Exercise) -> list[dict[str, int]]:
    """The wrong answers' notebooks: each a {question: index in WRONG_ANSWERS} of questions that are not
    ``tied``, first come first packed. Ties are found in the notebook that holds every wrong answer at
    once: it has every statement of each packed notebook, in the same order, so it reaches at least as far."""
    wrongs = WRONG_ANSWERS.get(exercise.name, {})
    every = answered(load_nb(exercise.solution_notebook), load_nb(exercise.student_notebook))
    for cases in wrongs.values():
        for _, function, wrong in cases:
            every = replace_definition(every, function, wrong)
    deps = dependencies(every)
    free = {(a, b): not tied(exercise, deps, a, b) for a in wrongs for b in wrongs if a != b}
    notebooks: list[dict[str, int]] = []
    for question, cases in wrongs.items():
        for i in range(len(cases)):
            nb = next((nb for nb in notebooks if question not in nb and all(free[question, q] for q in nb)), None)
            if nb is None:
                notebooks.append(nb := {})
            nb[question] = i
    return notebooks


def wrong_notebook(exercise: Exercise, question: str, i: int) -> str:
    """The notebook that holds wrong answer ``i`` to ``question``."""
    return next(f"wrong-{k}.ipynb" for k, packed in enumerate(packed_wrong_answers(exercise))
                if packed.get(question) == i)


def correctness(exercise: Exercise) -> list[Submission]:
    """The solution, the untouched student notebook, each realistic wrong and alternative right answer.

    Besides the solution itself, the notebooks are the solution as a student submits it (``answered``)."""
    solution, blank = load_nb(exercise.solution_notebook), load_nb(exercise.student_notebook)
    full = {q.name: q.points for q in exercise.questions}
    subs = [Submission("solution.ipynb", dump(solution), full),
            Submission("blank.ipynb", dump(blank), dict.fromkeys(full, 0.0))]
    answers = answered(solution, blank)
    # Wrong answers, packed (see packed_wrong_answers): notebook k gives the wrong answers of
    # packed[k] and the solution's answers to every other question. Each question with a wrong
    # answer there must lose points ("less than full", None here); every other one keeps them all.
    for k, packed in enumerate(packed_wrong_answers(exercise)):
        subs.append(Submission(f"wrong-{k}.ipynb", dump(with_wrong_answers(exercise, answers, packed)),
                               {**full, **dict.fromkeys(packed)}))
    # Alternative right answers, batched: notebook j answers every question with its j-th
    # alternative, so it must earn full marks, question by question. The first one has no cell ids
    # (nbformat warns about such notebooks): it must be graded like any other one, silently.
    alternatives = ALTERNATIVE_ANSWERS.get(exercise.name, {})
    for j in range(max(map(len, alternatives.values()), default=0)):
        nb = answers
        for answers_j in alternatives.values():
            if j < len(answers_j):
                nb = replace_definition(nb, answers_j[j][1], answers_j[j][2])
        subs.append(Submission(f"right-{j}.ipynb", dump(without_ids(nb) if j == 0 else nb), full))
    if without_cell_ids(exercise) == NO_IDS_ALONE:  # no alternatives (yet): the solution without ids
        subs.append(Submission(NO_IDS_ALONE, dump(without_ids(solution)), full))
    return subs


def without_ids(nb: dict) -> dict:
    nb = json.loads(json.dumps(nb))
    for cell in nb["cells"]:
        cell.pop("id", None)
    return nb


NO_IDS_ALONE = "solution-without-cell-ids.ipynb"


def without_cell_ids(exercise: Exercise) -> str:
    """The notebook graded without cell ids: right-0, or the solution alone if there are no alternatives."""
    return "right-0.ipynb" if any(ALTERNATIVE_ANSWERS.get(exercise.name, {}).values()) else NO_IDS_ALONE


def alternatives_in(exercise: Exercise, j: int) -> dict[str, str]:
    """question -> description of the alternative answer that notebook right-{j} gives."""
    return {q: answers[j][0] for q, answers in ALTERNATIVE_ANSWERS.get(exercise.name, {}).items()
            if j < len(answers)}


def hostile(exercise: Exercise, submissions_dir: Path, canary: str) -> list[Submission]:
    """Every row of the table in shared/notes/otter-grader.md, plus memory and fork bombs."""
    solution, blank = load_nb(exercise.solution_notebook), load_nb(exercise.student_notebook)
    total = exercise.points
    source_nb = ROOT / "exercises" / f"{exercise.name}.ipynb"
    build = exercise.build_dir
    no_kernel = json.loads(json.dumps(solution))
    no_kernel["metadata"]["kernelspec"] = {"name": "julia-1.9", "display_name": "Julia",
                                           "language": "julia"}
    no_meta = json.loads(json.dumps(solution))
    del no_meta["metadata"]["otter"]
    other = json.loads(json.dumps(solution))
    other["metadata"]["otter"]["assignment_name"] = "some_other_exercise"
    reader = f"""
        # Read the solutions or the hidden tests, and use them when found.
        import glob, json, zipfile
        found = []
        for pattern in ["{source_nb}", "{ROOT}/exercises/*.ipynb", "{build}/*/*.ipynb",
                        "{build}/*/*.zip", "/tmp/*/tests/q1.py"]:
            found += glob.glob(pattern)
        for path in found:
            try:
                if path.endswith(".zip"):
                    print(zipfile.ZipFile(path).read("tests/q1.py")[:100])
                elif "/student/" not in path:  # the student version has no answers
                    nb = json.load(open(path))
                    for cell in nb["cells"]:
                        src = "".join(cell["source"])
                        if cell["cell_type"] == "code" and "def " in src:
                            exec(src)
            except Exception as e:
                print(path, e)
        print("found", found)
    """
    writer = f"""
        import os
        for path in ["{submissions_dir}/{canary}", "{ROOT}/exercises/{canary}", "/tmp/{canary}",
                     os.path.expanduser("~/../{canary}"), "{source_nb}"]:
            try:
                with open(path, "a") as f:
                    f.write("pwned")
            except OSError as e:
                print(path, e)
        for name in os.listdir("{submissions_dir}") if os.path.isdir("{submissions_dir}") else []:
            open(os.path.join("{submissions_dir}", name), "w").write("pwned")
    """
    patch_otter = """
        # Make otter (in this kernel) report full marks.
        import doctest
        import otter.test_files.abstract_test as at
        at.TestFile.passed_all = property(lambda self: True)
        at.TestFile.score = property(lambda self: self.possible)
        doctest.DocTestRunner.run = lambda self, *a, **k: doctest.TestResults(0, 1)
        doctest.OutputChecker.check_output = lambda self, *a: True
        grader.check_all()
    """
    always_equal = """
        class AlwaysEqual(list):
            def __eq__(self, other):
                return True
            __hash__ = None
        class Yes(float):
            def __eq__(self, other):
                return True
            __hash__ = float.__hash__
            def __round__(self, n=0):
                return self
        def tokenize(text): return AlwaysEqual()
        def build_vocab(docs, min_count): return AlwaysEqual()
        def oov_rate(vocab, docs): return Yes(0.123)  # float(Yes(x)) is x: not the right answer
        def unigram_probs(tokens, vocab, k): return AlwaysEqual()
        def zipf_exponent(counts, min_rank, max_rank): return Yes(0.123)
    """
    return [
        Submission("hostile-sys-exit.ipynb", dump(with_cell(solution, "import sys\nsys.exit(0)", at=3)),
                   total),
        Submission("hostile-os-exit.ipynb", dump(with_cell(solution, "import os\nos._exit(0)")), 0,
                   "crashed", "kernel died"),
        Submission("hostile-infinite-loop.ipynb", dump(with_cell(solution, "while True:\n    pass")),
                   total, "ok", "cell time limit"),
        Submission("hostile-loop-ignores-interrupt.ipynb", dump(with_cell(solution, """
            import signal
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            while True:
                pass
        """)), 0, "timeout", "ignored interrupts"),
        Submission("hostile-patches-otter.ipynb", dump(with_cell(blank, patch_otter)), 0),
        Submission("hostile-always-equal.ipynb", dump(with_cell(blank, always_equal)), 0),
        # Names the tests use, shadowed in the notebook: the tests still see the real builtins.
        Submission("hostile-rebinds-builtins.ipynb", dump(with_cell(solution, """
            isinstance = lambda *args: True
            round = lambda *args, **kwargs: 0.5
            max = min
        """)), total),
        # The builtins module itself: this breaks the kernel; a blank notebook gains nothing.
        Submission("hostile-tampers-builtins-module.ipynb", dump(with_cell(blank, """
            import builtins
            builtins.isinstance = lambda *args: True
            builtins.round = lambda *args, **kwargs: 1.0
        """)), 0, {"ok", "crashed", "timeout"}),
        Submission("hostile-prints-success.ipynb", dump(with_cell(blank, """
            from IPython.display import HTML, display
            print("All tests passed!")
            for q in ["q1", "q2", "q3", "q4"]:
                display(HTML(f"<p><strong><pre style='display: inline;'>{q}</pre></strong> passed! 🎉</p>"))
        """)), 0),
        Submission("broken-invalid-json.ipynb", b'{"cells": [', 0, "not a notebook", "JSON"),
        Submission("broken-binary.ipynb", bytes(range(256)) * 10, 0, "not a notebook", "JSON"),
        Submission("broken-not-a-notebook.ipynb", b'{"hello": "world"}', 0, "not a notebook",
                   "not a Jupyter notebook"),
        Submission("broken-unknown-kernel.ipynb", dump(no_kernel), total, "ok", "julia-1.9"),
        Submission("broken-no-otter-metadata.ipynb", dump(no_meta), total, "ok", "no otter metadata"),
        Submission("broken-wrong-assignment.ipynb", dump(other), 0, "wrong assignment",
                   "some_other_exercise"),
        Submission("hostile-reads-hidden-tests.ipynb", dump(with_cell(blank, reader)), 0),
        Submission("hostile-writes-outside.ipynb", dump(with_cell(blank, writer)), 0),
        Submission("hostile-huge-allocation.ipynb", dump(with_cell(solution, """
            huge = bytearray(64 * 1024**3)
        """)), total, "ok", "MemoryError"),
        Submission("hostile-memory-creep.ipynb", dump(with_cell(blank, """
            chunks = []
            while True:
                chunks.append(bytearray(50 * 1024**2))
        """)), 0, "out of memory", "used up the memory limit"),
        Submission("hostile-fork-bomb.ipynb", dump(with_cell(blank, """
            import os
            while True:
                os.fork()
        """)), 0, {"ok", "crashed", "timeout"}),
    ]
