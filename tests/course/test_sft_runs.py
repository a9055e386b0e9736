"""lmlib.course.sft_runs: each run trains a few steps and saves a plain GPT that loads back, the committed results
were made with the module's settings and the committed models are the ones scored, and the command line."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lmlib.chat import CHAT_TOKENS
from lmlib.course import sft_runs as SR
from lmlib.instructions import build_instructions
from lmlib.sft import respond
from lmlib.transformer import GPT

ROOT = Path(SR.__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def tokenizer():
    return SR.base_model()[0]


@pytest.mark.parametrize("name", list(SR.RUNS))
def test_each_run_trains_a_few_steps_and_saves_a_plain_gpt(name, tmp_path):
    tokenizer, model = SR.train_run(name, max_steps=2, progress=False)
    _, base = SR.base_model()
    assert type(model) is GPT and model.state_dict().keys() == base.state_dict().keys()  # LoRA merged in
    assert model.vocab.itos[-len(CHAT_TOKENS):] == list(CHAT_TOKENS)
    assert model.history["step"] == [2] and model.history["eval_step"] == [2]
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, base.state_dict()[k])]
    assert changed  # it trained
    if SR.RUNS[name].lora:  # the embedding's old rows stay; the chat tokens' rows learn
        old = len(base.vocab) - len(CHAT_TOKENS)
        assert torch.equal(model.token_embedding.weight[:old], base.token_embedding.weight[:old])
        assert model.history["trainable_parameters"] < base.num_parameters() / 10
    path = SR.save_model(model, name, tmp_path)
    assert path.stat().st_size <= 5_000_000
    again = SR.load_model(name, tmp_path)
    record = SR.scored_records(tokenizer)[0]
    question = record.messages(with_answer=False)
    assert respond(again, tokenizer, question, 8) == respond(model.half().float(), tokenizer, question, 8)


def test_an_altered_or_foreign_model_file_is_refused(tmp_path):
    name = "sft_bpe_wiki"
    for suffix in (".pt", ".pt.sha256"):
        shutil.copy(SR.CHECKPOINTS / f"{name}{suffix}", tmp_path / f"{name}{suffix}")
    with (tmp_path / f"{name}.pt").open("ab") as f:
        f.write(b"0")
    with pytest.raises(ValueError, match="altered or corrupt; regenerate it with: python -m lmlib.course.sft_runs "
                                         "sft_bpe_wiki"):
        SR.load_model(name, tmp_path)
    with pytest.raises(FileNotFoundError, match="sft_bpe_wiki_lora.pt or its .sha256 is missing"):
        SR.load_model("sft_bpe_wiki_lora", tmp_path)
    with pytest.raises(KeyError, match="no run named 'sft'"):
        SR.load_model("sft")


def test_the_data_are_the_english_sft_records_that_fit_the_window(tokenizer):
    records = SR.sft_records(tokenizer, "train")
    everything = build_instructions(seed=SR.SEED)
    english = [r for r in everything.sft("train") if r.lang == "en"]
    assert records == english  # every English chat fits the window of 128
    assert {r.task for r in records} == {r.task for r in english} and "last" not in {r.task for r in records}
    assert "last" in {r.task for r in SR.scored_records(tokenizer)}  # scored, never trained on


@pytest.mark.parametrize("name", list(SR.RUNS))
def test_the_committed_results_were_made_with_the_modules_settings(name, tokenizer):
    committed = SR.load_results(name)
    assert committed["run"] == name and committed["max_steps"] is None
    assert {k: committed[k] for k in SR.settings(name)} == json.loads(json.dumps(SR.settings(name)))
    assert committed["history"]["step"][-1] == SR.RUNS[name].training.steps
    assert committed["history"]["eval_step"][-1] == SR.RUNS[name].training.steps
    assert committed["data"] == SR.data_sizes(tokenizer)
    families = committed["test"]["families"]
    assert sum(row["records"] for row in families.values()) == len(SR.scored_records(tokenizer))


@pytest.mark.parametrize("name", [*SR.RUNS, "base"])
def test_the_committed_models_are_the_ones_scored(name, tokenizer):
    """The recorded example answers, written again by the committed model (or the base model)."""
    model = SR.base_model()[1] if name == "base" else SR.load_model(name)
    if name != "base":
        assert (SR.CHECKPOINTS / f"{name}.pt").stat().st_size <= 5_000_000
    records = {r.id: r for r in SR.scored_records(tokenizer)}
    for examples in SR.load_results(name)["test"]["examples"].values():
        for example in examples:
            question = records[example["id"]].messages(with_answer=False)
            assert respond(model, tokenizer, question) == example["answer"], example["id"]


def test_the_committed_few_shot_answers_are_the_base_models_own(tokenizer):
    """The few-shot control: its recorded answers written again by the base model after the same solved examples
    (drawn again by the seeded rule), and the examples shown per family as recorded."""
    committed = SR.load_results("base_fewshot")
    assert committed["k"] == SR.FEWSHOT_K and committed["max_tokens"] == SR.MAX_TOKENS
    shown = SR.with_examples(SR.scored_records(tokenizer), tokenizer)
    assert all(len(r.context) <= 2 * SR.FEWSHOT_K for r in shown)
    assert all(len(tokenizer.encode_ids(SR.fewshot_text(r.messages(with_answer=False))))
               <= SR.WINDOW - 1 - SR.MAX_TOKENS for r in shown if r.context)
    means = {t: round(sum(len(r.context) // 2 for r in shown if r.task == t) / sum(r.task == t for r in shown), 2)
             for t in committed["examples_shown"]}
    assert means == committed["examples_shown"]
    train = {r.id: r for r in SR.instructions().records("train")}
    by_id = {r.id: r for r in shown}
    model = SR.base_model()[1]
    examples = [e for family in committed["test"]["examples"].values() for e in family[:1]]
    for example in examples:
        record = by_id[example["id"]]
        for turn in record.context[::2]:  # the solved examples are training records of the same family
            assert any(t.prompt == turn["content"] and t.task == record.task for t in train.values())
        assert SR.fewshot_answer(model, tokenizer, record.messages(with_answer=False)) == example["answer"]


def test_the_few_shot_text_is_plain_sentences():
    messages = [{"role": "user", "content": "Write 7 in\nEnglish words."}, {"role": "assistant", "content": "seven"},
                {"role": "user", "content": "Write 8 in English words."}]
    assert SR.fewshot_text(messages) == \
        "Write 7 in English words. Answer: seven. Write 8 in English words. Answer:"


def test_the_runs_differ_only_in_what_they_say():
    full, control, lora = SR.RUNS.values()
    assert dataclasses.replace(control, description=full.description, on="assistant") == full
    assert (lora.on, lora.lora, full.lora) == ("assistant", True, False)


def test_cli_lists_the_runs_and_refuses_unknown_ones():
    def cli(*args):
        return subprocess.run([sys.executable, "-m", "lmlib.course.sft_runs", *args], capture_output=True, text=True,
                              env=ENV)

    out = cli("--list")
    assert out.returncode == 0 and all(name in out.stdout for name in SR.RUNS)
    out = cli("sft_nothing")
    assert out.returncode != 0 and "no run named 'sft_nothing'" in out.stderr
    out = cli("base_nothing")
    assert out.returncode != 0 and "or base or base_fewshot" in out.stderr
    out = cli("sft_bpe_wiki", "--max-steps", "0")
    assert out.returncode != 0 and "--max-steps 0" in out.stderr


def test_a_pipeline_on_the_saved_folder_answers_as_respond(tokenizer, tmp_path):
    """The fine-tuned model saved as a Hugging Face folder (``save_hf_folder``, then the chat tokenizer with its
    template): transformers' ``pipeline("text-generation")``, given the chat itself, answers what lmlib's
    ``respond`` answers, prompts of every family."""
    import transformers

    from lmlib.chat import save_chat_tokenizer
    from lmlib.pretraining import save_hf_folder

    model = SR.load_model("sft_bpe_wiki").eval()
    folder = save_chat_tokenizer(tokenizer, save_hf_folder(model, tokenizer, tmp_path / "sft_bpe_wiki"))
    generator = transformers.pipeline("text-generation", model=str(folder), tokenizer=str(folder), device="cpu")
    stops = [model.vocab.stoi[t] for t in (*CHAT_TOKENS, "<eos>")]  # respond ends at any of them
    records = {r.task: r for r in SR.scored_records(tokenizer)}  # the last test record of each family
    answers = []
    for record in records.values():
        messages = record.messages(with_answer=False)
        [out] = generator(messages, max_new_tokens=32, do_sample=False, eos_token_id=stops)
        assert out["generated_text"][:-1] == messages
        answers.append((out["generated_text"][-1], respond(model, tokenizer, messages)))
    assert [theirs for theirs, _ in answers] == [{"role": "assistant", "content": ours} for _, ours in answers]
    assert len({ours for _, ours in answers}) > 1  # not one constant answer


def test_the_few_shot_length_is_the_encoded_text_s(tokenizer):
    """with_examples counts a few-shot prompt's tokens turn by turn: the same count as encoding the whole text, on
    chats of every family with their solved examples (and on turns that start with punctuation or a space)."""
    length = SR._fewshot_length(tokenizer)
    shown = SR.with_examples(SR.scored_records(tokenizer)[::37], tokenizer)
    odd = [{"role": "user", "content": "'s it (or not)?\n"}, {"role": "assistant", "content": " . 3"},
           {"role": "user", "content": "…and 中文, 1998年"}]
    chats = [r.messages(with_answer=False) for r in shown] + [odd]
    assert any(len(r.context) >= 4 for r in shown)
    for messages in chats:
        assert length(messages) == len(tokenizer.encode_ids(SR.fewshot_text(messages)))
