"""lmlib: the small PyTorch package behind *Language Models, from N-grams to Transformers*.

One model family per module, one shared protocol (``lmlib.lm.LanguageModel``)
between the models and the tools that evaluate and decode them.
"""

__version__ = "0.1.0"
