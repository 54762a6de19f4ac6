"""Errors of distributed training, one class per cause, so no error is reported as another.

They are registered with Pyro5's serializer, so an error raised in a
dispatcher or worker reaches the client as the same class with its message.
"""

from __future__ import annotations

from typing import Any

from Pyro5 import api as pyro_api

__all__ = ["ClusterError", "NameServerNotFound", "DispatcherNotFound", "NoWorkersError", "KeyRefusedError",
           "ClusterTimeout", "JobError", "NumericsMismatch", "WireError", "SessionRefused", "ClusterBusy",
           "ModelTooLarge"]


class ClusterError(RuntimeError):
    """Base class: something about the cluster, not about the model or the data."""


class NameServerNotFound(ClusterError):
    """No name server answers at the configured address."""


class DispatcherNotFound(ClusterError):
    """The name server answers, but no dispatcher is registered (or it does not answer)."""


class NoWorkersError(ClusterError):
    """The dispatcher answers, but there is no worker to run the E-step."""


class KeyRefusedError(ClusterError):
    """A daemon and this process do not share the same key (``--hmac`` / ``ns_conf['hmac_key']``)."""


class ClusterTimeout(ClusterError):
    """The cluster stopped making progress for longer than the configured bound."""


class NumericsMismatch(ClusterError):
    """A worker runs other kernels (another distlda, numba, llvmlite or numpy) than the client: it would make a
    different model, so it refuses to join (see :mod:`distlda.core.fingerprint`)."""


class SessionRefused(ClusterError):
    """A worker is enlisted by a dispatcher, and this call did not carry the session token that dispatcher gave
    it (or a worker asked the dispatcher for jobs under another worker's name); the message names the dispatcher
    the worker serves."""


class ClusterBusy(ClusterError):
    """Another client is training on this cluster; one client trains at a time (the message names it)."""


class ModelTooLarge(ClusterError):
    """A model (or a job) would need more memory than a worker or the dispatcher has, or a job's answer a message
    larger than the cluster's ``--max-message-mb`` (a model's arrays travel in pieces); the message gives both
    sizes."""


class JobError(ValueError):
    """A worker refused a job (bad term ids, counts or array lengths); the message names the job."""


class WireError(ValueError):
    """A message received from the network does not have the expected form (see :mod:`distlda.cluster.wire`)."""


_CLASSES = {f"{cls.__module__}.{cls.__name__}": cls for cls in
            (ClusterError, NameServerNotFound, DispatcherNotFound, NoWorkersError, KeyRefusedError,
             ClusterTimeout, JobError, NumericsMismatch, WireError, SessionRefused, ClusterBusy, ModelTooLarge)}


def _to_dict(exc: BaseException) -> dict[str, Any]:
    return {"__class__": f"{type(exc).__module__}.{type(exc).__name__}", "__exception__": True,
            "args": [str(a) for a in exc.args], "attributes": {}}


def _from_dict(classname: str, data: dict[str, Any]) -> BaseException:
    return _CLASSES[classname](*data.get("args", ()))


for _name, _cls in _CLASSES.items():
    pyro_api.register_class_to_dict(_cls, _to_dict)
    pyro_api.register_dict_to_class(_name, _from_dict)
