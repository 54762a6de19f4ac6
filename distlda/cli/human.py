"""Numbers in human units for the command line: 1.2k docs/s, 3m40s, 12.5 MB."""

from __future__ import annotations

__all__ = ["count", "duration", "size"]


def count(n: float, unit: str = "") -> str:
    """``1234 → '1.2k'``, ``2_500_000 → '2.5M'``; small numbers stay as they are."""
    n = float(n)
    for limit, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= limit:
            text = f"{n / limit:.1f}".rstrip("0").rstrip(".") + suffix
            break
    else:
        text = f"{n:.0f}" if n == int(n) or abs(n) >= 100 else f"{n:.3g}"
    return f"{text} {unit}".rstrip() if unit else text


def duration(seconds: float) -> str:
    """``42.3 → '42s'``, ``220 → '3m40s'``, ``7300 → '2h01m'``; under 10 s with a decimal."""
    if seconds < 10:
        return f"{seconds:.1f}s"
    total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def size(n_bytes: float) -> str:
    """``12_500_000 → '12.5 MB'`` (powers of 1000)."""
    n = float(n_bytes)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")
