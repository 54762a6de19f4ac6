"""The fingerprint a client and its workers compare before they train together."""

import distlda.core.fingerprint as numerics


def test_numerics_fingerprint_covers_the_kernels_and_their_compilers(monkeypatch):
    first = numerics.numerics_id()
    assert len(first) == 16 and int(first, 16) >= 0
    assert numerics.numerics_id() == first
    assert first in numerics.numerics_description() and "numba" in numerics.numerics_description()
    numerics.numerics_id.cache_clear()
    monkeypatch.setattr(numerics, "_library_versions", lambda: ["numba 0.0.0", "llvmlite 0.0.0", "numpy 0.0.0"])
    try:
        assert numerics.numerics_id() != first  # another numba or numpy: other numbers
    finally:
        numerics.numerics_id.cache_clear()
