"""The dispatcher's log of M-steps, from which workers keep their model replicas current.

It holds the latest *base* (the full statistics at some version, sent by the
client) and the *recipes* of the M-steps since: for each, the batch's documents
(or references) with their γ and the M-step's scalars. Each base starts a
*lineage* (a random id chosen by the client), so a replica left over from an
earlier training run is never mistaken for a current one that happens to have
the same version number. A replica is at a *position* ``[lineage, version]``;
one of this lineage gets the recipes after its version, any other (or none)
gets the base and every recipe after it. The log holds encoded values only; it
does no LDA math.

A base's large arrays may arrive in pieces (:mod:`distlda.cluster.pieces`):
the base then holds their headers, the client puts the pieces one call each,
and the log hands the base out only once every piece is in; workers fetch the
pieces from the log one call each.
"""

from __future__ import annotations

from typing import Any

from distlda.cluster.errors import ModelTooLarge, WireError
from distlda.cluster.basecast import BaseTakers
from distlda.cluster.peers import light_recipe
from distlda.cluster.pieces import is_pieced, piece_bytes
from distlda.cluster.wire import check_base, decode_array, model_bytes, position_of
from distlda.core.memory import available_memory

__all__ = ["set_job_gamma", "RecipeLog", "position_of", "check_base_fits"]


def check_base_fits(model_params: dict[str, Any]) -> None:
    """ModelTooLarge, before training starts, when this process could not hold the base of a model of
    ``model_params`` (one topics × terms array, two with a topics × terms eta) beside what it holds now."""
    need = model_bytes(model_params) * 2
    free = available_memory()
    if free is not None and need > free:
        raise ModelTooLarge(f"the dispatcher would hold a base of {need / 2**20:,.0f} MiB (the statistics and "
                            f"possibly a topics × terms eta) and can use {free / 2**20:,.0f} MiB: use fewer topics or "
                            "terms, or run the dispatcher on a machine with more memory")


class RecipeLog:
    """Base and recipes since the base."""

    def __init__(self) -> None:
        self.base: dict[str, Any] | None = None
        self.recipes: list[dict[str, Any]] = []
        self._pieces: dict[str, list[dict[str, Any] | None]] = {}  # the base's arrays sent in pieces, by name
        self._takers = BaseTakers()  # the workers that took this base, in order (basecast's tree)

    @property
    def version(self) -> int | None:
        """The newest version the log can bring a replica to."""
        if self.base is None:
            return None
        return int(self.base["version"]) + len(self.recipes)

    def set_base(self, base: dict[str, Any]) -> None:
        """A new base: older recipes are no longer needed."""
        self.base = check_base(base)
        self.recipes = []
        self._pieces = {name: [None] * int(value["pieces"]) for name, value in base.items() if is_pieced(value)}
        self._takers.reset()

    def add_piece(self, lineage: Any, name: Any, index: Any, piece: Any) -> None:
        """Piece ``index`` of the base's array ``name`` (of the base of ``lineage``), checked against its header."""
        slots = self._slots(lineage, name, index)
        header = self.base[name]  # type: ignore[index]
        rows = min(header["rows"], header["shape"][0] - index * header["rows"])
        value = decode_array(piece, f"base.{name} piece {index}")  # (checks the bytes match the shape)
        if value.dtype.str != header["dtype"] or list(value.shape) != [rows, *header["shape"][1:]]:
            raise WireError(f"base.{name} piece {index}: {value.dtype} {list(value.shape)} does not fit the header "
                            f"({header['dtype']} {[rows, *header['shape'][1:]]})")
        slots[index] = piece

    def piece(self, lineage: Any, name: Any, index: Any) -> dict[str, Any]:
        """Piece ``index`` of the base's array ``name``, as the client put it."""
        piece = self._slots(lineage, name, index)[index]
        if piece is None:
            raise ValueError(f"piece {index} of base.{name} has not arrived yet")
        return piece

    def _slots(self, lineage: Any, name: Any, index: Any) -> list[dict[str, Any] | None]:
        if self.base is None or lineage != self.base["lineage"]:
            raise ValueError(f"no base of lineage {lineage!r} (another run's base replaced it)")
        slots = self._pieces.get(name) if isinstance(name, str) else None
        if slots is None:
            raise WireError(f"base.{name!r} is not sent in pieces")
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(slots):
            raise WireError(f"base.{name} has no piece {index!r} (it has {len(slots)})")
        return slots

    def missing_pieces(self) -> int:
        """Pieces of the base that have not arrived."""
        return sum(piece is None for slots in self._pieces.values() for piece in slots)

    def add(self, version: int, plan: dict[str, Any], jobs: list[dict[str, Any]], ref_path: str | None = None,
            batch: str | None = None, settings: dict[str, Any] | None = None) -> None:
        """The recipe of the M-step that makes ``version`` (it must follow the newest); ``ref_path`` is the
        corpus the jobs' document ranges point into, if they are references; ``batch`` the mini-batch's id, under
        which the jobs' holders keep their γ; ``settings`` its E-step's (seed, iterations, gamma_threshold), with
        which a job whose γ was lost is fitted again."""
        if self.version is None:
            raise ValueError("an M-step was announced before any base")
        if version != self.version + 1:
            raise ValueError(f"recipe for version {version}, but the log is at version {self.version}")
        self.recipes.append({"version": version, "plan": plan, "jobs": jobs, "ref_path": ref_path, "batch": batch,
                             "settings": settings})

    def add_gamma(self, batch: Any, number: Any, gamma: Any) -> bool:
        """The γ of job ``number`` of the recipe of ``batch``, sent after the recipe was made; False when no recipe
        kept has that job without its γ."""
        recipe = next((r for r in reversed(self.recipes) if r.get("batch") == batch), None)
        return recipe is not None and set_job_gamma(recipe["jobs"], number, gamma)

    def _own_version(self, have: Any) -> int | None:
        """The version of a replica at position ``have`` if it is of this lineage and not before the base."""
        pos = position_of(have)
        if self.base is None or pos is None or pos[0] != self.base["lineage"] or pos[1] < int(self.base["version"]):
            return None
        return pos[1]

    def behind(self, have: Any) -> bool:
        """Whether a replica at position ``have`` lacks M-steps the log holds (and can have them: not while the
        base is still arriving)."""
        if self.version is None or self.missing_pieces():
            return False
        own = self._own_version(have)
        return own is None or own < self.version

    def answer(self, have: Any, want: int, light: bool = False, taker: str | None = None) -> dict[str, Any]:
        """What brings a replica from position ``have`` (None: no replica) to version ``want``; with ``light``,
        recipes whose jobs name their holders instead of carrying γ (:mod:`distlda.cluster.peers`). A base in
        pieces comes with ``base_from``, the worker to take them from, when the asker's URI ``taker`` is known and
        another worker took the base before it (:mod:`distlda.cluster.basecast`)."""
        if self.base is None or self.version is None or want > self.version:
            raise ValueError(f"version {want} is not known to the dispatcher yet")
        if self.missing_pieces():
            raise ValueError(f"the base is still arriving ({self.missing_pieces()} pieces missing)")
        own = self._own_version(have)
        base = self.base if own is None or own > want else None
        start = int(self.base["version"]) if base is not None else own
        recipes = self.recipes[start - int(self.base["version"]):want - int(self.base["version"])]
        if light:
            recipes = [light_recipe(recipe) for recipe in recipes]
        # at most about one piece's worth of recipes per answer (a replica far behind a model of many topics
        # would otherwise get a message of GBs): "more" tells it to ask again from where it got to
        taken, size = 0, 0
        while taken < len(recipes) and (taken == 0 or size + _recipe_bytes(recipes[taken]) <= piece_bytes()):
            size += _recipe_bytes(recipes[taken])
            taken += 1
        answer = {"base": base, "recipes": recipes[:taken], "more": taken < len(recipes), "want": want}
        if base is not None and taker is not None and self._pieces:
            source = self._takers.source_for(taker)
            if source is not None:
                answer["base_from"] = source
        return answer

    def sync_answer(self, have: Any, taker: str | None) -> dict[str, Any]:
        """``{"sync": version}`` for an idle worker at ``have`` behind the log, with what :meth:`answer` gives it
        (light) up to the newest version, so that it need not ask (without, should the log refuse to answer)."""
        try:
            answer = self.answer(have, int(self.version), True, taker)  # type: ignore[arg-type]
        except ValueError:  # the worker asks getrecipes later
            answer = {}
        return {**answer, "sync": self.version}


def set_job_gamma(jobs: list[dict[str, Any]], number: Any, gamma: Any) -> bool:
    """Give job ``number`` of a recipe's ``jobs`` its γ if it has none yet; whether it did."""
    for job in jobs:
        if job.get("job") == number and job.get("gamma") is None:
            job["gamma"] = gamma
            return True
    return False


def _recipe_bytes(recipe: dict[str, Any]) -> int:
    """Payload bytes of a recipe: its jobs' γ and any documents sent with them (the values are judged where they
    are decoded; here anything that is not bytes counts nothing)."""
    def size(value: Any) -> int:
        if isinstance(value, dict):
            data = value.get("data")
            return len(data) if isinstance(data, (bytes, bytearray)) else sum(map(size, value.values()))
        return 0

    return sum(size(job.get("gamma")) + size(job.get("chunk")) for job in recipe["jobs"] if isinstance(job, dict))
