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


def test_numerics_fingerprint_covers_the_compile_target():
    # kernels compiled for another CPU may round differently (fast-math): a process compiling for another
    # target must present another fingerprint, and the description must name the target
    import os
    import subprocess
    import sys

    from distlda.kernels.compile import compile_target

    name, _ = compile_target()
    assert f"CPU target {name}/" in numerics.numerics_description()
    code = "from distlda.core.fingerprint import numerics_id, numerics_description as d; print(numerics_id(), d())"
    env = {**os.environ, "NUMBA_CPU_NAME": "generic"}
    env.pop("NUMBA_CPU_FEATURES", None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    other_id, description = out.split(" ", 1)
    assert other_id != numerics.numerics_id()
    assert "CPU target generic/" in description
