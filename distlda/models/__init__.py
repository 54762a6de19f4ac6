"""Topic models: :class:`LdaModel` (online variational Bayes LDA), gensim's :class:`LdaMulticore` and
:class:`LdaState`."""

from distlda.models.ldamodel import LdaModel
from distlda.models.ldamulticore import LdaMulticore
from distlda.models.ldastate import LdaState

__all__ = ["LdaModel", "LdaMulticore", "LdaState"]
