"""Evaluation of topic models: coherence (u_mass, c_npmi) and recovery of known topics."""

from distlda.evaluation.coherence import EPSILON, c_npmi, topic_coherence, u_mass
from distlda.evaluation.heldout import heldout_per_word_bound
from distlda.evaluation.recovery import RecoveryResult, hellinger_matrix, topic_recovery

__all__ = [
    "EPSILON",
    "RecoveryResult",
    "c_npmi",
    "heldout_per_word_bound",
    "hellinger_matrix",
    "topic_coherence",
    "topic_recovery",
    "u_mass",
]
