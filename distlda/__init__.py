"""distlda: LDA topic models by online variational Bayes, on one machine or across many.

The public API mirrors gensim's: ``from distlda.models import LdaModel`` and
``from distlda.corpora import Dictionary``.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
