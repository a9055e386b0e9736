"""lmlib.course.viz: the plots label what they draw; the widgets carry their content and link their controls."""


import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from lmlib import analysis  # noqa: E402
from lmlib.course import viz  # noqa: E402


def test_plot_timeline_puts_one_labelled_dot_per_event_in_its_kind_colour():
    events = [(1913, "Markov", "letter chains", "counting"), (2017, "Vaswani et al.", "the Transformer", "Transformer")]
    colours = {"counting": "#6b7280", "Transformer": "#dc2626"}
    fig, ax = plt.subplots()
    viz.plot_timeline(ax, events, colours, title="t", xlabel="year")
    dots = ax.get_lines()
    assert [line.get_xydata().tolist() for line in dots] == [[[1913, 0]], [[2017, 1]]]
    assert [line.get_color() for line in dots] == list(colours.values())
    labels = ax.texts  # the early event is labelled on its right, the late one on its left
    assert [t.get_text() for t in labels] == ["1913  Markov: letter chains", "2017  Vaswani et al.: the Transformer"]
    assert [t.get_ha() for t in labels] == ["left", "right"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == list(colours)
    plt.close(fig)


def test_plot_compute_scale_draws_every_model_and_marks_character_models_hollow():
    course = [{"model": "w", "N": 2e6, "D": 3e6, "unit": "words"},
              {"model": "c", "N": 4e5, "D": 8e6, "unit": "characters"}]
    published = [{"model": "GPT", "N": 117e6, "D": None}, {"model": "Chinchilla", "N": 70e9, "D": 1.4e12},
                 {"model": "LLaMA-65B", "N": 65.2e9, "D": 1.4e12}]
    fig, ax = plt.subplots()
    viz.plot_compute_scale(ax, course, published)
    words, chars, chinchilla, llama = ax.collections
    assert words.get_offsets().tolist() == [[2e6, 3e6]] and chars.get_offsets().tolist() == [[4e5, 8e6]]
    assert chars.get_facecolor()[0].tolist() == [1.0, 1.0, 1.0, 1.0]  # hollow: its D counts characters
    assert chinchilla.get_offsets().tolist() == [[70e9, 1.4e12]] and llama.get_zorder() > chinchilla.get_zorder()
    assert {"Chinchilla", "LLaMA-65B", " GPT\n (D not given)"} <= {t.get_text() for t in ax.texts}
    assert ax.get_xscale() == ax.get_yscale() == "log" and "parameters" in ax.get_xlabel()
    plt.close(fig)

def test_plot_zipf_labels_axes_and_reports_the_exponent():
    fig, ax = plt.subplots()
    viz.plot_zipf(ax, np.round(1e6 / np.arange(1, 1000)).astype(int), "toy")
    assert "rank" in ax.get_xlabel() and "frequency" in ax.get_ylabel()
    assert ax.get_legend().get_texts()[0].get_text() == "toy (s = 1.00)"
    curve, line = ax.get_lines()  # the counts, then the fitted line over ranks 10..999
    x, y = line.get_data()
    assert (x[0], x[-1]) == (10, 999) and np.allclose(y, 1e6 / x, rtol=1e-3)
    assert line.get_linestyle() == "--" and line.get_color() == curve.get_color()
    plt.close(fig)


def test_token_tabs_show_every_tokenizer_and_escape_html():
    tabs = viz.token_tabs("a <b>", {"chars": list, "split": str.split})
    assert [tabs.get_title(i) for i in range(2)] == ["chars", "split"]
    assert "&lt;b&gt;" in tabs.children[1].value and "<b>" not in tabs.children[1].value
    assert "5 tokens" in tabs.children[0].value


def test_plot_unseen_fractions_draws_percent_bars_with_labels():
    fig, ax = plt.subplots()
    viz.plot_unseen_fractions(ax, {1: 0.08, 2: 0.44, 3: 0.802})
    assert [round(p.get_height(), 6) for p in ax.patches] == [8.0, 44.0, 80.2]
    assert [p.get_x() + p.get_width() / 2 for p in ax.patches] == [1, 2, 3]
    assert [t.get_text() for t in ax.texts] == ["8.0%", "44.0%", "80.2%"]
    assert "n" in ax.get_xlabel() and "%" in ax.get_ylabel()
    plt.close(fig)


PPL_ROWS = [
    {"smoothing": "MLE", "split": "valid", "n=1": 460.0, "n=2": float("inf"), "n=3": float("inf")},
    {"smoothing": "MLE", "split": "test", "n=1": 470.0, "n=2": float("inf"), "n=3": float("inf")},
    {"smoothing": "Kneser-Ney", "split": "valid", "n=1": 460.0, "n=2": 210.0, "n=3": 198.0},
    {"smoothing": "Kneser-Ney", "split": "test", "n=1": 470.0, "n=2": 220.0, "n=3": 205.0},
]


def test_plot_perplexity_by_order_skips_infinite_values_and_zooms_on_kneser_ney():
    fig, (ax, zoom) = plt.subplots(1, 2)
    viz.plot_perplexity_by_order((ax, zoom), PPL_ROWS)
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert list(lines) == [
        "MLE, valid (infinite for n >= 2)", "MLE, test (infinite for n >= 2)", "Kneser-Ney, valid", "Kneser-Ney, test",
    ]
    assert lines["MLE, valid (infinite for n >= 2)"].get_xdata().tolist() == [1]
    assert lines["Kneser-Ney, test"].get_ydata().tolist() == [470.0, 220.0, 205.0]
    assert lines["MLE, valid (infinite for n >= 2)"].get_color() != lines["Kneser-Ney, valid"].get_color()
    assert lines["Kneser-Ney, valid"].get_linestyle() != lines["Kneser-Ney, test"].get_linestyle()
    assert [t.get_text() for t in ax.texts] == ["MLE: infinite for n >= 2"]
    assert ax.get_yscale() == "log" and "perplexity" in ax.get_ylabel() and "order" in ax.get_xlabel()
    assert [line.get_label() for line in zoom.get_lines()] == ["Kneser-Ney, valid", "Kneser-Ney, test"]
    assert zoom.get_lines()[0].get_xdata().tolist() == [2, 3]
    assert zoom.get_yscale() == "linear" and "perplexity" in zoom.get_ylabel()
    plt.close(fig)


def test_plot_perplexity_by_order_accepts_one_axes():
    fig, ax = plt.subplots()
    viz.plot_perplexity_by_order(ax, PPL_ROWS[2:])
    assert len(ax.get_lines()) == 2 and ax.get_xticks().tolist() == [1, 2, 3]
    plt.close(fig)


def test_plot_heaps_labels_axes_and_reports_the_fit():
    fig, ax = plt.subplots()
    n = np.geomspace(1, 1e5, 20).round()
    viz.plot_heaps(ax, n, 10 * n**0.6, "toy")
    assert "tokens" in ax.get_xlabel() and "distinct" in ax.get_ylabel()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["toy", "fit: V = 10 n^0.600"]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    plt.close(fig)


def test_training_curve_places_validation_points_at_their_tokens():
    history = {"step": [10, 20, 30], "tokens": [1_000_000, 2_000_000, 3_000_000], "train_loss": [5.0, 4.0, 3.5],
               "eval_step": [20, 30], "valid_loss": [4.2, 3.9]}
    fig, ax = plt.subplots()
    viz.plot_training_curve(ax, history)
    train_line, valid_line = ax.get_lines()
    assert list(train_line.get_xdata()) == [1.0, 2.0, 3.0]
    assert list(valid_line.get_xdata()) == [2.0, 3.0] and list(valid_line.get_ydata()) == [4.2, 3.9]
    plt.close(fig)


def _sam_model():
    from lmlib.ngram import NGramLM

    return NGramLM(2, "kneser_ney").fit([s.split() for s in ["I am Sam", "Sam I am", "I do not like ham"]])


def test_decoding_explorer_shows_the_distribution_and_recomputes_when_a_control_moves():
    explorer = viz.decoding_explorer({"bigram": _sam_model()}, ["I"], rows=4)
    *controls, view = explorer.children
    first = view.value
    assert "a sample" in first and first.count("<tr>") == 4 and "<s>" not in first  # nothing filtered yet
    top_k = next(c for c in controls if c.description.startswith("top-k"))
    top_k.value = 1
    assert view.value != first and view.value.count("<s>") == 3  # three of four rows struck out
    prompt = next(c for c in controls if c.description == "prompt")
    prompt.value = "I zebra"
    assert "read as &lt;unk&gt;: zebra" in view.value


def test_decoding_explorer_strikes_out_suppressed_tokens():
    model = _sam_model()
    explorer = viz.decoding_explorer({"bigram": model}, ["I"], suppress=("am",), rows=3)
    assert "<s>am</s>" in explorer.children[-1].value and " am " not in explorer.children[-1].value.split("<i>")[1]


def _toy_word_vectors():
    from lmlib.word2vec import Word2Vec

    sentences = [["the", "cat", "sat", "on", "the", "mat"], ["the", "dog", "sat"], ["a", "cat", "and", "a", "dog"]] * 20
    return Word2Vec(vector_size=8, window=2, min_count=1, sample=0, epochs=2, seed=0, sg=1).fit(sentences,
                                                                                               progress=False)


def test_neighbour_explorer_holds_every_picked_words_neighbours_and_links_the_picker_in_the_browser():
    from ipywidgets.widgets.widget import _instances
    from ipywidgets.widgets.widget_link import Link

    model = _toy_word_vectors()
    kv = model.to_keyed_vectors()
    explorer = viz.neighbour_explorer({"lmlib": model, "gensim": kv}, {"lmlib": ["cat", "dog"], "gensim": ["mat"]},
                                      topn=3)
    assert [explorer.get_title(i) for i in range(2)] == ["lmlib", "gensim"]
    picker, stack, typed, typed_view = explorer.children[0].children
    assert list(picker.options) == ["cat", "dog"] and stack.selected_index == 0
    for view, word in zip(stack.children, ["cat", "dog"], strict=True):
        assert view.value == viz.neighbours_html(model.most_similar(word, topn=3)) and view.value.count("<tr>") == 4
    # the picker drives the stack through a jslink, which works in the saved state (no kernel)
    links = [w for w in _instances.values() if isinstance(w, Link)
             and w.source == (picker, "index") and w.target == (stack, "selected_index")]
    assert len(links) == 1
    typed.value = "dog"  # a running kernel looks up a typed word
    assert "dog" in typed_view.value and typed_view.value.count("<tr>") == 4
    typed.value = "zebra"
    assert "not in this model" in typed_view.value
    with pytest.raises(KeyError, match="zebra"):
        viz.neighbour_explorer({"lmlib": model}, {"lmlib": ["cat", "zebra"]})


def test_neighbours_html_escapes_words():
    assert "&lt;b&gt;" in viz.neighbours_html([("<b>", 0.5)]) and "0.500" in viz.neighbours_html([("<b>", 0.5)])


def test_plot_word_groups_labels_every_word_and_group():
    fig, ax = plt.subplots()
    groups = {"a": ["x", "y"], "b": ["z"]}
    viz.plot_word_groups(ax, np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 2.0]]), groups, np.array([0.5, 0.25]))
    assert [t.get_text() for t in ax.texts] == ["x", "y", "z"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b"]
    assert "50%" in ax.get_xlabel() and "25%" in ax.get_ylabel()
    plt.close(fig)


def test_plot_word_groups_pushes_crowded_labels_apart():
    from matplotlib.text import Text

    rng = np.random.default_rng(0)
    groups = {"crowd": [f"word{i}" for i in range(12)], "apart": ["alone", "other"]}
    xy = np.vstack([rng.normal(0, 0.01, (12, 2)), [[1.0, 1.0], [-1.0, 0.5]]])  # 12 points in a speck
    fig, ax = plt.subplots(figsize=(6, 4))
    viz.plot_word_groups(ax, xy, groups, np.array([0.5, 0.25]))
    fig.canvas.draw()  # the renderer measures every label where it is drawn
    boxes = [Text.get_window_extent(t) for t in ax.texts]
    frame = ax.get_window_extent()
    for i, a in enumerate(boxes):
        assert frame.x0 - 0.5 <= a.x0 and a.x1 <= frame.x1 + 0.5 and frame.y0 - 0.5 <= a.y0 and a.y1 <= frame.y1 + 0.5
        for j, b in enumerate(boxes[:i]):
            overlap = min(a.x1, b.x1) - max(a.x0, b.x0), min(a.y1, b.y1) - max(a.y0, b.y0)
            assert min(overlap) <= 0, f"labels {ax.texts[i].get_text()!r} and {ax.texts[j].get_text()!r} overlap"
    moved = [t.arrow_patch.get_visible() for t in ax.texts]
    assert sum(moved[:12]) >= 6 and moved[12:] == [False, False]  # crowded labels point back, lone ones need not
    plt.close(fig)


def test_attention_viewer_holds_every_map_and_links_its_three_pickers_in_the_browser():
    from ipywidgets.widgets.widget import _instances
    from ipywidgets.widgets.widget_link import Link

    rng = np.random.default_rng(0)
    maps = {f"sentence {s}": ([f"t{s}{i}" for i in range(3 + s)], rng.dirichlet(np.ones(3 + s), (2, 3, 3 + s)))
            for s in range(2)}  # 2 sentences, 2 layers, 3 heads
    viewer = viz.attention_viewer(maps)
    sentence, (layer, head), sentences = viewer.children[0], viewer.children[1].children, viewer.children[2]
    assert list(sentence.options) == list(maps) and len(layer.options) == 2 and len(head.options) == 3
    for (tokens, weights), layers in zip(maps.values(), sentences.children, strict=True):
        for i, heads in enumerate(layers.children):
            for j, view in enumerate(heads.children):
                assert view.value == viz.attention_html(weights[i, j], tokens)

    def linked(source, target):
        return any(isinstance(w, Link) and w.source == (source, "index") and w.target == (target, "selected_index")
                   for w in list(_instances.values()))

    assert linked(sentence, sentences)
    assert all(linked(layer, layers) for layers in sentences.children)
    assert all(linked(head, heads) for layers in sentences.children for heads in layers.children)


def test_attention_html_shades_each_cell_by_its_weight_and_escapes_tokens():
    table = viz.attention_html(np.array([[1.0, 0.0], [0.25, 0.75]]), ["<b>", "x"])
    assert "&lt;b&gt;" in table and "<b>" not in table
    assert [c.split(" ")[0] for c in table.split("title=")[1:]] == ["1.00", "0.25", "0.75"]
    assert table.count("<td") == 4 and table.count("<td></td>") == 1  # the masked (zero) weight: a blank cell
    assert "hsl(215,80%,40%)" in table and "hsl(215,80%,85%)" in table  # weight 1 darkest, 0.25 light


def test_learning_curve_plots_each_way_with_its_error_bars():
    fig, ax = plt.subplots()
    summary = [{"labels": n, "way": w, "mean": m, "std": 0.01, "runs": 5}
               for n, w, m in [(300, "a", 0.7), (100, "a", 0.6), (100, "b", 0.5), (300, "b", 0.65)]]
    viz.plot_learning_curve(ax, summary, ["a", "b"])
    lines = ax.get_lines()
    assert [list(line.get_xdata()) for line in lines[:2]] == [[100, 300], [100, 300]]  # sorted by labels
    assert list(lines[0].get_ydata()) == [0.6, 0.7] and len(ax.containers) == 2  # one errorbar container a way
    assert ax.get_xscale() == "log"
    plt.close(fig)


def test_adaptation_plot_draws_each_kind_and_the_level_before():
    rows = [{"kind": "before", "steps": 0, "lr": 0.0, "news test bpc": 2.5, "wiki test bpc": 2.6},
            {"kind": "tuned", "steps": 300, "lr": 0.002, "news test bpc": 2.1, "wiki test bpc": 2.9},
            {"kind": "tuned", "steps": 100, "lr": 0.002, "news test bpc": 2.3, "wiki test bpc": 2.7}]
    fig, axes = plt.subplots(1, 2)
    viz.plot_adaptation(axes, rows)
    tuned, level = axes[1].get_lines()
    assert list(tuned.get_xdata()) == [100, 300] and list(tuned.get_ydata()) == [2.7, 2.9]
    assert list(level.get_ydata()) == [2.6, 2.6]
    plt.close(fig)


def test_next_token_bars_draw_the_model_and_the_processed_probabilities():
    from lmlib import generate as G

    model = _sam_model()
    table = analysis.next_token_table(model, ["I"], G.processors(top_k=2), rows=5)
    fig, ax = plt.subplots()
    viz.plot_next_token_bars(ax, table, title="after I")
    assert len(ax.patches) == 10 and ax.get_legend() is not None
    assert ax.get_yticklabels()[-1].get_text() == table[0][0]  # the most probable token on top
    plt.close(fig)


# --- the chat box -----------------------------------------------------------------------------------------------


def _chat(chat_files, **decoding):
    from lmlib.course.chat_cli import Decoding, load_chat

    return load_chat(chat_files / "chat.pt", chat_files / "tokenizer.json", Decoding(**decoding))


def _greedy_answer(chat, messages: list[dict]) -> str:
    """The answer to ``messages``, decoded here with ``lmlib.generate.greedy`` (not through the chat)."""
    from lmlib.chat import chat_ids
    from lmlib.generate import greedy

    ids = chat_ids(messages, chat.tokenizer, add_generation_prompt=True)
    g = greedy(chat.model, [chat.model.vocab.itos[i] for i in ids[1:]], chat.decoding.max_tokens, stop=chat.stop)
    return chat.tokenizer.decode(g.ids[:-1] if g.finished else g.ids)


def test_the_chat_box_saves_a_transcript_of_its_script(chat_files):
    chat = _chat(chat_files, max_tokens=8)
    first = _greedy_answer(chat, [{"role": "user", "content": "hi"}])
    second = _greedy_answer(chat, [{"role": "user", "content": "hi"}, {"role": "assistant", "content": first},
                                   {"role": "user", "content": "<b>bye</b>"}])
    box = viz.chat_box(chat, script=["hi", "<b>bye</b>"])
    history = box.children[0]
    expected = [("user", "hi"), ("assistant", first), ("user", "<b>bye</b>"), ("assistant", second)]
    assert history.value == viz.chat_html(expected)  # the saved state: the transcript, the same on every run
    assert "&lt;b&gt;bye&lt;/b&gt;" in history.value and "<b>bye" not in history.value
    assert [m["content"] for m in chat.messages] == ["hi", first, "<b>bye</b>", second]
    assert viz.chat_box(_chat(chat_files, max_tokens=8), script=["hi", "<b>bye</b>"]).children[0].value \
        == history.value


def test_the_chat_box_streams_the_answer_sends_on_enter_and_resets(chat_files):
    chat = _chat(chat_files, max_tokens=8)
    first = _greedy_answer(chat, [{"role": "user", "content": "hi"}])
    box = viz.chat_box(chat)
    history, (field, send, reset) = box.children[0], box.children[1].children
    assert "no messages yet" in history.value
    shown = []
    history.observe(lambda change: shown.append(change["new"]), names="value")
    field.value = "hi"  # Enter: sent, and the field cleared
    assert field.value == "" and chat.messages == [{"role": "user", "content": "hi"},
                                                   {"role": "assistant", "content": first}]
    assert shown[-1] == viz.chat_html([("user", "hi"), ("assistant", first)])
    growing = shown[:-1]  # the answer so far with a cursor, one view per piece decoded
    assert len(growing) >= 2
    prefixes = ["".join(first[:n]) for n in range(1, len(first) + 1)]
    written = [next(p for p in prefixes if v == viz.chat_html([("user", "hi"), ("assistant", p + "\u258d")]))
               for v in growing]
    assert written == sorted(written, key=len) and written[-1] == first
    send.click()  # an empty field sends nothing
    assert len(chat.messages) == 2
    reset.click()
    assert chat.messages == [] and history.value.endswith("[the chat is forgotten: a new one begins]</div></div>")
    field.value = "hi"
    assert chat.messages[-1]["content"] == first  # the chat starts over


def test_the_chat_box_notes_dropped_turns_and_refused_messages(chat_files):
    chat = _chat(chat_files, max_tokens=36)  # a window of 48: one turn of history leaves no room
    box = viz.chat_box(chat, script=["hi", "bye", "say <|end|>"])
    history = box.children[0].value
    assert "the oldest 1 turn dropped]" in history and "contains the special token" in history
    assert history.index("turn dropped") < history.index('title="user">bye') and len(chat.messages) == 2
    assert chat.messages[0] == {"role": "user", "content": "bye"}  # the refused message left the chat as it was
    with pytest.raises(ValueError, match="a note"):
        viz.chat_html([("bot", "hi")])
