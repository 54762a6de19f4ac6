"""Evaluation of topic models: coherence (u_mass, c_npmi), recovery of known topics, topic distances, top words."""

from distlda.evaluation.coherence import EPSILON, c_npmi, topic_coherence, u_mass
from distlda.evaluation.distances import hellinger_matrix, topic_distance_matrix
from distlda.evaluation.heldout import heldout_per_word_bound
from distlda.evaluation.recovery import RecoveryResult, topic_recovery
from distlda.evaluation.topwords import top_ids

__all__ = [
    "EPSILON",
    "RecoveryResult",
    "c_npmi",
    "heldout_per_word_bound",
    "hellinger_matrix",
    "topic_coherence",
    "top_ids",
    "topic_distance_matrix",
    "topic_recovery",
    "u_mass",
]
