"""The dispatcher's log of M-steps, from which workers keep their model replicas current.

It holds the latest *base* (the full statistics at some version, sent by the
client) and the *recipes* of the M-steps since: for each, the batch's documents
(or references) with their γ and the M-step's scalars. A worker at version
``have`` gets the recipes after ``have``, or the base and every recipe after it
when it has nothing or is older than the base. The log holds encoded values
only; it does no LDA math.
"""

from __future__ import annotations

from typing import Any

__all__ = ["RecipeLog"]


class RecipeLog:
    """Base and recipes since the base."""

    def __init__(self) -> None:
        self.base: dict[str, Any] | None = None
        self.recipes: list[dict[str, Any]] = []

    @property
    def version(self) -> int | None:
        """The newest version the log can bring a replica to."""
        if self.base is None:
            return None
        return int(self.base["version"]) + len(self.recipes)

    def set_base(self, base: dict[str, Any]) -> None:
        """A new base: older recipes are no longer needed."""
        if not isinstance(base, dict) or not {"version", "sstats_wm", "eta", "alpha"} <= set(base):
            raise ValueError("a base is a dict with version, sstats_wm, eta and alpha")
        self.base = base
        self.recipes = []

    def add(self, version: int, plan: dict[str, Any], jobs: list[dict[str, Any]], ref_path: str | None = None) -> None:
        """The recipe of the M-step that makes ``version`` (it must follow the newest); ``ref_path`` is the
        corpus the jobs' document ranges point into, if they are references."""
        if self.version is None:
            raise ValueError("an M-step was announced before any base")
        if version != self.version + 1:
            raise ValueError(f"recipe for version {version}, but the log is at version {self.version}")
        self.recipes.append({"version": version, "plan": plan, "jobs": jobs, "ref_path": ref_path})

    def answer(self, have: int | None, want: int) -> dict[str, Any]:
        """What brings a replica from version ``have`` (None: nothing) to ``want``."""
        if self.base is None or self.version is None or want > self.version:
            raise ValueError(f"version {want} is not known to the dispatcher yet")
        first = int(self.base["version"])
        if have is None or have < first or have > want:
            return {"base": self.base, "recipes": [r for r in self.recipes if r["version"] <= want]}
        return {"base": None, "recipes": [r for r in self.recipes if have < r["version"] <= want]}
