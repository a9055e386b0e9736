"""lmlib.course.chat_cli: the terminal chat, run as a program with scripted input (a pipe, and a pseudo-terminal).

The model is a tiny GPT given the chat tokens and trained for a second on three chats (``chat_files`` in
tests/course/conftest.py), so it answers them and ends its turn; it is saved in the course's checkpoint format.
Each transcript is checked against one built here independently: every answer is ``lmlib.generate.greedy`` (or
``sample`` with the session's one generator) on the chat as this file keeps it, the oldest turns dropped by this
file's own rule.
"""

from __future__ import annotations

import io
import os
import pty
import re
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from lmlib import generate as G
from lmlib.chat import CHAT_TOKENS, chat_ids, with_chat_tokens
from lmlib.course import chat_cli as CLI
from lmlib.tokenize import BPETokenizer

ROOT = Path(__file__).resolve().parents[2]
WINDOW = 48  # the tiny chat model's (tests/course/conftest.py)


@pytest.fixture(scope="module")
def files(chat_files) -> Path:
    return chat_files


@pytest.fixture(scope="module")
def chat_model(chat_files):
    """(model, tokenizer) as the program loads them: the float16 weights back in float32."""
    model = CLI.read_model(chat_files / "chat.pt")
    assert model.window == WINDOW
    return model, BPETokenizer.load(chat_files / "tokenizer.json")


def run_cli(files: Path, lines: list[str], *options: str, checkpoint: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_WAIT_POLICY": "PASSIVE"}
    return subprocess.run([sys.executable, "-m", "lmlib.course.chat_cli", checkpoint or str(files / "chat.pt"),
                           "--tokenizer", str(files / "tokenizer.json"), *options],
                          input="".join(line + "\n" for line in lines), capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=120)


def specials(tokenizer: BPETokenizer) -> list[str]:
    return [t.content for t in tokenizer.tokenizer.get_added_tokens_decoder().values() if t.special]


def reference_transcript(model, tokenizer, lines: list[str], max_tokens: int = 32, system: str | None = None,
                         temperature: float = 0.0, top_p: float | None = None, seed: int = 0) -> tuple[str, list]:
    """The transcript the program should print, built here: each answer from ``greedy`` (or ``sample``, one
    generator for the session, reseeded at /reset) on the chat kept here, whole turns dropped oldest first
    while the prompt and max_tokens overflow the window. Also returns how many turns each answer dropped."""
    head = [{"role": "system", "content": system}] if system else []
    turns: list[dict] = []
    generator = torch.Generator().manual_seed(seed)
    out, drops = [], []
    for line in lines:
        out.append(f"you> {line}\n")
        if line == "/reset":
            turns, generator = [], torch.Generator().manual_seed(seed)
            out.append("[the chat is forgotten: a new one begins]\n")
            continue
        turns.append({"role": "user", "content": line})
        dropped = 0
        while len(chat_ids([*head, *turns], tokenizer, add_generation_prompt=True)) + max_tokens > WINDOW:
            turns, dropped = turns[2:], dropped + 1
        drops.append(dropped)
        if dropped:
            out.append(f"[the chat outgrew the window of {WINDOW} tokens: the oldest {dropped} "
                       f"turn{'s' if dropped > 1 else ''} dropped]\n")
        tokens = [model.vocab.itos[i] for i in chat_ids([*head, *turns], tokenizer, add_generation_prompt=True)[1:]]
        if temperature == 0:
            g = G.greedy(model, tokens, max_tokens, stop=specials(tokenizer))
        else:
            [g] = G.sample(model, tokens, max_tokens, temperature=temperature, top_p=top_p,
                           stop=specials(tokenizer), generator=generator)
        answer = tokenizer.decode(g.ids[:-1] if g.finished else g.ids)
        out.append(f"assistant> {answer}\n")
        if not g.finished:
            out.append(f"[cut at {max_tokens} tokens, the longest answer allowed (max_tokens)]\n")
        turns.append({"role": "assistant", "content": answer})
    out.append("you> \n")
    return "".join(out), drops


def transcript(stdout: str) -> str:
    """The chat after the banner line."""
    return stdout.split("\n", 1)[1]


# --- through a pipe ----------------------------------------------------------------------------------------------


def test_the_streamed_answers_are_the_greedy_decode_of_the_chat(files, chat_model):
    lines = ["hi", "how are you?", "bye"]
    result = run_cli(files, lines, "--max-tokens", "8")
    assert result.returncode == 0, result.stderr
    expected, drops = reference_transcript(*chat_model, lines, max_tokens=8)
    assert drops == [0, 0, 0]  # the whole chat fits: each answer reads every turn before it
    assert transcript(result.stdout) == expected
    assert "assistant> hel" in expected and "[cut at 8 tokens," in expected  # it learnt the chats; one is cut
    assert result.stdout.startswith(f"Chatting with {files / 'chat.pt'} (")
    assert "a window of 48 tokens; answers of up to 8 tokens, greedy" in result.stdout.splitlines()[0]


def test_the_oldest_turns_are_dropped_when_the_window_fills_and_the_system_message_stays(files, chat_model):
    lines = ["hi", "how are you?", "bye", "hi"]
    system = "be brief"
    # the longest answers for which some message reads an earlier turn and another drops two (room for fewer
    # answer tokens would not drop, room for more would leave no history)
    for max_tokens in range(12, 30):
        expected, drops = reference_transcript(*chat_model, lines, max_tokens, system=system)
        if 2 in drops and drops.index(2) < len(drops) - 1 and drops[-1] == 0:
            break
    else:
        pytest.fail("no --max-tokens makes the chat drop turns and keep one: the tiny model answers otherwise")
    result = run_cli(files, lines, "--max-tokens", str(max_tokens), "--system", system)
    assert result.returncode == 0, result.stderr
    assert transcript(result.stdout) == expected
    assert "[the chat outgrew the window of 48 tokens: the oldest 2 turns dropped]" in result.stdout


def test_reset_forgets_the_chat_and_the_seeded_sampling_repeats(files, chat_model):
    lines = ["hi", "hi", "/reset", "hi", "how are you?"]
    options = ["--temperature", "1.5", "--top-p", "0.95", "--seed", "3", "--max-tokens", "10"]
    first, again = run_cli(files, lines, *options), run_cli(files, lines, *options)
    assert first.returncode == 0, first.stderr
    expected, _ = reference_transcript(*chat_model, lines, max_tokens=10, temperature=1.5, top_p=0.95, seed=3)
    assert transcript(first.stdout) == expected
    assert first.stdout == again.stdout  # the same seed, the same chat
    answers = [line for line in first.stdout.splitlines() if line.startswith("assistant> ")]
    assert answers[2] == answers[0]  # after /reset the chat starts over: the first answer again
    assert answers[1] != answers[0]  # while without it, the same message got another answer
    other = run_cli(files, lines, *options[:-4], "--seed", "4", "--max-tokens", "10")
    assert transcript(other.stdout) != transcript(first.stdout)  # the seed is what repeats it


def test_quit_ends_the_chat_before_the_rest_of_the_input(files):
    result = run_cli(files, ["hi", "/quit", "bye"])
    assert result.returncode == 0 and transcript(result.stdout).count("assistant> ") == 1
    assert transcript(result.stdout).endswith("you> /quit\n")


def test_checkpoint_errors_name_the_problem_and_the_fix(files, tmp_path):
    missing = run_cli(files, ["hi"], checkpoint=str(tmp_path / "nowhere.pt"))
    assert missing.returncode == 2 and "no checkpoint" in missing.stderr and "python -m lmlib.course.sft_runs" \
        in missing.stderr and "nowhere.pt" in missing.stderr
    foreign = subprocess.run([sys.executable, "-m", "lmlib.course.chat_cli", str(files / "plain.pt"), "--tokenizer",
                              str(files / "plain_tokenizer.json")], input="hi\n", capture_output=True, text=True,
                             env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT, timeout=120)
    assert foreign.returncode == 2 and foreign.stdout == ""
    assert "plain.pt is not a chat model: its vocabulary has no <|system|>, <|user|>, <|assistant|>, <|end|>" \
        in foreign.stderr and "lmlib.chat.add_chat_tokens" in foreign.stderr


# --- through a pseudo-terminal -----------------------------------------------------------------------------------


def _read_until(fd: int, wanted: bytes, seen: bytearray, timeout: float = 60) -> bytes:
    deadline = time.monotonic() + timeout
    while wanted not in seen:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            raise AssertionError(f"no {wanted!r} from the chat after {timeout} s; it wrote {bytes(seen)!r}")
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        seen.extend(chunk)
    return bytes(seen)


def test_a_terminal_session_streams_the_answer_and_ctrl_d_ends_it(files, chat_model):
    expected, _ = reference_transcript(*chat_model, ["hi"], max_tokens=8)
    answer = expected.splitlines()[1]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_WAIT_POLICY": "PASSIVE", "TERM": "dumb"}
    pid, fd = pty.fork()
    if pid == 0:  # the child: the chat, on the terminal
        os.chdir(ROOT)
        os.execve(sys.executable, [sys.executable, "-m", "lmlib.course.chat_cli", str(files / "chat.pt"),
                                   "--tokenizer", str(files / "tokenizer.json"), "--max-tokens", "8"], env)
    seen = bytearray()
    try:
        _read_until(fd, b"you> ", seen)
        os.write(fd, b"hi\r")
        _read_until(fd, answer.encode() + b"\r\nyou> ", seen)
        os.write(fd, b"\x04")  # Ctrl-D: the end of input
        _read_until(fd, b"\xff", seen, timeout=30)  # read until the child closes the terminal
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0
    text = bytes(seen).decode().replace("\r\n", "\n")
    assert text.count("you> hi\n") == 1  # the terminal echoes what is typed; the chat does not echo it again
    assert f"you> hi\n{answer}\nyou> \n" in text


# --- in the process: options, messages, streaming ------------------------------------------------------------------


@pytest.mark.parametrize("option, value, message", [
    ("--temperature", "-1", "must be >= 0"), ("--top-p", "1.5", r"must be in \(0, 1\]"),
    ("--top-k", "0", "must be an integer >= 1"), ("--max-tokens", "ten", "invalid _positive_int value"),
    ("--repetition-penalty", "0", "must be > 0"), ("--seed", "x", "invalid int value")])
def test_a_bad_decoding_option_is_an_argparse_error(option, value, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        CLI.main(["whatever.pt", option, value])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: python -m lmlib.course.chat_cli") and option in err
    assert re.search(message, err)


def test_the_options_reach_the_decoder(files, monkeypatch):
    seen = {}
    monkeypatch.setattr(CLI, "run", lambda chat, read: seen.update(decoding=chat.decoding, system=chat.system))
    CLI.main([str(files / "chat.pt"), "--tokenizer", str(files / "tokenizer.json"), "--temperature", "0.7",
              "--top-k", "5", "--top-p", "0.9", "--repetition-penalty", "1.2", "--seed", "7", "--max-tokens", "12",
              "--system", "be kind"])
    assert seen["decoding"] == CLI.Decoding(max_tokens=12, temperature=0.7, top_k=5, top_p=0.9,
                                            repetition_penalty=1.2, seed=7)
    assert seen["system"] == [{"role": "system", "content": "be kind"}]


def test_bad_checkpoints_are_refused_with_the_fix(files, tmp_path, capsys):
    def error(*argv: str) -> str:
        with pytest.raises(SystemExit) as exit_:
            CLI.main(list(argv))
        assert exit_.value.code == 2
        return capsys.readouterr().err

    tokenizer = ["--tokenizer", str(files / "tokenizer.json")]
    assert "neither that file nor" in error("no_such_model", *tokenizer)
    with pytest.raises(FileNotFoundError, match="python -m lmlib.course.recipes gpt_bpe_wiki"):
        CLI.checkpoint_path("gpt_bpe_wiki", tmp_path)  # a recipe's name: its own command remakes it
    assert "checkpoints/gpt_bpe_wiki.pt is not a chat model" in error("gpt_bpe_wiki")  # the course's pretrained GPT
    altered = tmp_path / "chat.pt"
    shutil.copy(files / "chat.pt", altered)
    shutil.copy(files / "chat.pt.sha256", tmp_path / "chat.pt.sha256")
    with altered.open("ab") as f:
        f.write(b"\0")
    assert "altered or corrupt" in error(str(altered), *tokenizer)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    assert "not a readable lmlib checkpoint" in error(str(tmp_path / "junk.pt"), *tokenizer)
    assert "is not a chat model" in error(str(files / "plain.pt"), *tokenizer)  # before any tokenizer is read
    assert "has no <|system|>" in error(str(files / "chat.pt"), "--tokenizer", str(files / "plain_tokenizer.json"))
    other = BPETokenizer.train(["some other text entirely"] * 3, vocab_size=280)
    with_chat_tokens(other).save(tmp_path / "other.json")
    assert "is not the tokenizer's" in error(str(files / "chat.pt"), "--tokenizer", str(tmp_path / "other.json"))
    assert "no tokenizer at" in error(str(files / "chat.pt"), "--tokenizer", str(tmp_path / "none.json"))


def test_a_name_is_looked_up_in_the_checkpoints_folder(files):
    assert CLI.checkpoint_path("chat", files) == files / "chat.pt"
    with pytest.raises(FileNotFoundError, match="python -m lmlib.course.sft_runs sft_bpe_wiki"):
        CLI.checkpoint_path("sft_bpe_wiki", files / "nowhere")


def _session(chat: CLI.Chat, lines: list[str]) -> str:
    out, script = io.StringIO(), iter(lines)

    def read(prompt: str) -> str:
        out.write(prompt)
        return next(script)  # StopIteration ends the script: raise EOFError as input() does

    def reading(prompt: str) -> str:
        try:
            return read(prompt)
        except StopIteration:
            raise EOFError from None

    CLI.run(chat, reading, out)
    return out.getvalue()


def test_a_message_too_long_or_with_a_chat_token_is_refused_and_the_chat_goes_on(chat_model):
    model, tokenizer = chat_model
    chat = CLI.Chat(model, tokenizer, CLI.Decoding(max_tokens=8))
    text = _session(chat, ["word " * 60, "say <|end|> now", "hi"])
    assert "[the message is too long: with room for the answer it needs" in text
    assert "contains the special token '<|end|>'" in text
    assert [m["role"] for m in chat.messages] == ["user", "assistant"] and chat.messages[0]["content"] == "hi"
    with pytest.raises(ValueError, match="leaves no room"):
        CLI.Chat(model, tokenizer, CLI.Decoding(max_tokens=WINDOW))
    with pytest.raises(ValueError, match="too long"):  # a system message with no room left for a question
        CLI.Chat(model, tokenizer, CLI.Decoding(max_tokens=20), system="word " * 40)


def test_the_answer_is_decoded_one_step_per_token_on_the_cache(chat_model, monkeypatch):
    model, tokenizer = chat_model
    chat = CLI.Chat(model, tokenizer, CLI.Decoding(max_tokens=8))
    calls = []
    original = model.decode_step
    monkeypatch.setattr(model, "decode_step", lambda ids, cache: calls.append(ids.shape[1]) or original(ids, cache))
    answer = chat.ask("hi")
    pieces = iter(answer)
    assert calls == []
    first = next(pieces)
    assert calls == [len(answer.prompt_ids)] and first == tokenizer.decode(answer.ids)  # the prompt, once
    rest = list(pieces)
    assert calls[1:] == [1] * len(answer.ids)  # one token a step (the last one is the <|end|> it stops at)
    assert first + "".join(rest) == answer.text and answer.ended and not answer.cut
    assert chat.messages[-1] == {"role": "assistant", "content": answer.text}


def test_a_character_is_shown_once_its_bytes_are_written(chat_model, monkeypatch):
    model, tokenizer = chat_model
    ids = tokenizer.encode_ids("é你!")
    assert len(ids) > 3  # bytes, not characters: the tiny BPE has no merges for them
    end = tokenizer.tokenizer.token_to_id("<|end|>")
    monkeypatch.setattr(CLI, "stream", lambda *args, **kwargs: iter([*ids, end]))
    chat = CLI.Chat(model, tokenizer)
    answer = chat.ask("hi")
    assert list(answer) == ["é", "你", "!"] and answer.text == "é你!"


def test_an_empty_answer_is_left_out_of_the_chat(chat_model, monkeypatch):
    model, tokenizer = chat_model
    end = tokenizer.tokenizer.token_to_id(CHAT_TOKENS[-1])
    monkeypatch.setattr(CLI, "stream", lambda *args, **kwargs: iter([end]))
    chat = CLI.Chat(model, tokenizer)
    text = _session(chat, ["hi"])
    assert "assistant> \n[an empty answer: this turn is left out of the chat]" in text and chat.messages == []


def test_an_interrupted_answer_keeps_what_was_written(chat_model):
    model, tokenizer = chat_model
    chat = CLI.Chat(model, tokenizer, CLI.Decoding(max_tokens=8))
    answer = chat.ask("hi")
    pieces = iter(answer)
    first = next(pieces)
    pieces.close()  # as Ctrl-C leaves the loop that reads it
    assert answer.cut is False and answer.done and chat.messages[-1] == {"role": "assistant", "content": first}


def test_fit_to_window_drops_whole_turns_oldest_first_and_keeps_the_system_message():
    system, u1, a1, u2, a2, u3 = ({"role": r, "content": str(i)} for i, r in
                                  enumerate(["system", "user", "assistant", "user", "assistant", "user"]))
    chat = [system, u1, a1, u2, a2, u3]
    assert CLI.fit_to_window(chat, len, 6) == (chat, 0)
    assert CLI.fit_to_window(chat, len, 5) == ([system, u2, a2, u3], 1)
    assert CLI.fit_to_window(chat, len, 2) == ([system, u3], 2)
    assert CLI.fit_to_window(chat[1:], len, 1) == ([u3], 2)
    with pytest.raises(ValueError, match="the message is too long: with the system message and room for the answer "
                                         "it needs 1 tokens more"):
        CLI.fit_to_window(chat, len, 1)
