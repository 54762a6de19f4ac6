"""Topic models: :class:`LdaModel` (online variational Bayes LDA) and its :class:`LdaState`."""

from distlda.models.ldamodel import LdaModel
from distlda.models.ldastate import LdaState

__all__ = ["LdaModel", "LdaState"]
