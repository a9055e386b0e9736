"""lmlib: the small PyTorch package behind *Language Models, from N-grams to Transformers*.

One model family per module, one shared protocol (``lmlib.lm.LanguageModel``) between the
models and the tools that evaluate and decode them, and one base for the neural networks
(``lmlib.neural.NeuralLM``). The modules form layers; each imports only from its own layer
and the ones before it (``tests/test_layers.py``):

    foundations   _deps, data, tokenize, bpe, show, answers, metrics, numerals, instructions
    the seam      lm, neural
    models        ngram, mlp, rnn, transformer, seq2seq, hf, pretraining, word2vec, word2vec_numba
    tools         train, checkpoint, generate, finetune, analysis, summarize, retrieval, quantize,
                  distill, memorisation, calibration, probing, chat, sft, dpo
    the course    course/ (recipes, finetune_runs, summarization_runs, classification_runs,
                  code_generation_runs, league, scaling_runs, distillation_runs, memorisation_runs,
                  sft_runs, dpo_runs, viz, chat_cli): what the chapters run on top
"""

__version__ = "0.1.0"
