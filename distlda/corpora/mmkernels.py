"""Numba kernels that parse and format the body lines of Matrix Market files.

Kernels only: plain functions over byte and number arrays. The Python wrappers in
:mod:`distlda.corpora.mmcorpus` allocate the arrays, read and write the files, and
turn the status codes returned here into error messages.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from numba import njit

__all__ = ["OK", "ERR_SYNTAX", "ERR_DOC", "ERR_TERM", "ERR_ORDER", "parse_entries", "format_entries"]

OK = 0
ERR_SYNTAX = 1  # not three numeric fields
ERR_DOC = 2  # document index outside 1..num_docs
ERR_TERM = 3  # term index outside 1..num_terms
ERR_ORDER = 4  # document index smaller than the one before

_POW10 = np.array([10.0 ** k for k in range(23)])  # exactly representable powers of ten
_MAX_EXACT = 1 << 53
_MAX_KEPT = 18  # significant digits kept in an int64 mantissa
_DD_RANGE = 200  # powers of ten 10**-200 .. 10**200 as double-double pairs


def _pow10_double_double() -> tuple[np.ndarray, np.ndarray]:
    """``10**q`` as ``hi + lo`` (about 106 significant bits) for ``|q| <= _DD_RANGE``."""
    hi = np.empty(2 * _DD_RANGE + 1)
    lo = np.empty(2 * _DD_RANGE + 1)
    for k, q in enumerate(range(-_DD_RANGE, _DD_RANGE + 1)):
        exact = Fraction(10) ** q
        hi[k] = float(exact)  # correctly rounded
        lo[k] = float(exact - Fraction(hi[k]))
    return hi, lo


_P10_HI, _P10_LO = _pow10_double_double()
_SPLIT = 134217729.0  # 2**27 + 1, Dekker's splitter
_MARGIN = 2.0 ** -95  # relative error allowed for the double-double product (true error < 2**-100)

_SPACE, _TAB, _CR, _NL = 32, 9, 13, 10
_ZERO, _NINE, _MINUS, _PLUS, _DOT = 48, 57, 45, 43, 46


@njit(cache=True, nogil=True)
def _is_blank(c: int) -> bool:
    return c == _SPACE or c == _TAB or c == _CR


@njit(cache=True, nogil=True)
def _two_prod(a, b):  # pragma: no cover - numba
    """``a * b`` as the rounded product and its exact rounding error (Dekker, no FMA needed)."""
    p = a * b
    c = _SPLIT * a
    a_hi = c - (c - a)
    a_lo = a - a_hi
    c = _SPLIT * b
    b_hi = c - (c - b)
    b_lo = b - b_hi
    return p, ((a_hi * b_hi - p) + a_hi * b_lo + a_lo * b_hi) + a_lo * b_lo


@njit(cache=True, nogil=True)
def _decimal_to_double(mantissa, exp10):  # pragma: no cover - numba
    """``mantissa * 10**exp10`` correctly rounded, or ``(0.0, False)`` when not provably so.

    The product is formed in double-double arithmetic (error below 2**-100 relative);
    its rounding to a double is certain unless the exact value lies within that
    error of a midpoint between two doubles, a case left to the caller.
    """
    if exp10 < -_DD_RANGE or exp10 > _DD_RANGE:
        return 0.0, False
    p_hi = _P10_HI[exp10 + _DD_RANGE]
    p_lo = _P10_LO[exp10 + _DD_RANGE]
    w_hi = float(mantissa)
    w_lo = float(mantissa - np.int64(w_hi))
    p, e = _two_prod(w_hi, p_hi)
    e += w_hi * p_lo + w_lo * p_hi
    h = p + e
    l = e - (h - p)
    if not 1e-290 < abs(h) < 1e290:
        return 0.0, False
    gap = abs(np.nextafter(h, np.inf if l > 0 else -np.inf) - h)
    if abs(abs(l) - gap / 2) <= abs(h) * _MARGIN or abs(l) > gap / 2:
        return 0.0, False
    return h, True


@njit(cache=True, nogil=True)
def _parse_index(buf, i):  # pragma: no cover - numba
    """Read unsigned decimal digits at ``buf[i:]``: (value, number of digits, new position)."""
    size = buf.shape[0]
    value = 0
    digits = 0
    while i < size and _ZERO <= buf[i] <= _NINE:
        if digits < 18:
            value = value * 10 + (buf[i] - _ZERO)
        else:
            value = 1 << 62  # too many digits: certainly out of range
        digits += 1
        i += 1
    return value, digits, i


@njit(cache=True, nogil=True, inline="always")
def _skip_blanks(buf, i):  # pragma: no cover - numba
    """The first position at or after ``i`` that is not a space, tab or carriage return."""
    while i < buf.shape[0] and _is_blank(buf[i]):
        i += 1
    return i


@njit(cache=True, nogil=True, inline="always")
def _exponent(buf, i):  # pragma: no cover - numba
    """``[sign] digits`` after an ``e``: (position after them, signed exponent, at least one digit)."""
    size = buf.shape[0]
    negative = False
    if i < size and (buf[i] == _MINUS or buf[i] == _PLUS):
        negative = buf[i] == _MINUS
        i += 1
    e = 0
    e_digits = 0
    while i < size and _ZERO <= buf[i] <= _NINE:
        if e < 100000:  # far out of range already: stop growing
            e = e * 10 + (buf[i] - _ZERO)
        e_digits += 1
        i += 1
    return i, -e if negative else e, e_digits > 0


@njit(cache=True, nogil=True, inline="always")
def _fold_digit(mantissa, kept, exp10, exact, d, fraction):  # pragma: no cover - numba
    """Append decimal digit ``d`` to ``mantissa * 10**exp10`` (a digit of the fraction when ``fraction``).

    Up to ``_MAX_KEPT`` significant digits are kept (leading zeros are not
    significant); past them an integer digit scales by ten and a non-zero digit
    makes the number inexact. Returns ``(mantissa, kept, exp10, exact)``.
    """
    if kept < _MAX_KEPT:
        if mantissa != 0 or d != 0:
            mantissa = mantissa * 10 + d
            kept += 1
        if fraction:
            exp10 -= 1
    else:
        if not fraction:
            exp10 += 1
        exact = exact and d == 0
    return mantissa, kept, exp10, exact


@njit(cache=True, nogil=True, inline="always")
def _to_double(mantissa, exp10, exact):  # pragma: no cover - numba
    """``mantissa * 10**exp10`` correctly rounded, and whether that was possible here (else Python converts)."""
    value = 0.0
    converted = exact
    if exact and mantissa != 0:
        if mantissa <= _MAX_EXACT and -22 <= exp10 <= 22:  # one correctly rounded operation
            value = mantissa * _POW10[exp10] if exp10 >= 0 else mantissa / _POW10[-exp10]
        else:
            value, converted = _decimal_to_double(mantissa, exp10)
    return value, converted


@njit(cache=True, nogil=True, inline="always")
def _unsigned_decimal(buf, i):  # pragma: no cover - numba
    """``digits [. digits] [e [sign] digits]`` at ``buf[i:]`` as ``mantissa * 10**exp10``.

    Returns ``(i, mantissa, exp10, exact)``; ``exact`` is False when digits were
    dropped or the text is not a number (``nan``, ``inf``: skipped up to the next
    blank, for Python to convert), and ``i`` is -1 when an exponent has no digits.
    """
    size = buf.shape[0]
    mantissa, kept, exp10, exact = 0, 0, 0, True
    start = i
    while i < size and _ZERO <= buf[i] <= _NINE:
        mantissa, kept, exp10, exact = _fold_digit(mantissa, kept, exp10, exact, buf[i] - _ZERO, False)
        i += 1
    seen_digit = i > start
    if i < size and buf[i] == _DOT:
        i += 1
        start = i
        while i < size and _ZERO <= buf[i] <= _NINE:
            mantissa, kept, exp10, exact = _fold_digit(mantissa, kept, exp10, exact, buf[i] - _ZERO, True)
            i += 1
        seen_digit = seen_digit or i > start
    if seen_digit and i < size and (buf[i] == 101 or buf[i] == 69):  # e, E
        i, e, ok = _exponent(buf, i + 1)
        if not ok:
            return -1, mantissa, exp10, False
        exp10 += e
    if not seen_digit:  # maybe nan or inf: leave it to Python
        exact = False
        while i < size and not _is_blank(buf[i]) and buf[i] != _NL:
            i += 1
    return i, mantissa, exp10, exact


@njit(cache=True, nogil=True, inline="always")
def _entry_status(doc, term, num_docs, num_terms, prev_doc):  # pragma: no cover - numba
    """``OK``, or the error code of 1-based indices out of range or out of order."""
    if doc < 1 or doc > num_docs:
        return ERR_DOC
    if term < 1 or term > num_terms:
        return ERR_TERM
    if doc - 1 < prev_doc:
        return ERR_ORDER
    return OK


@njit(cache=True, nogil=True)
def parse_entries(buf, num_docs, num_terms, prev_doc, docs, terms, vals, slow):  # pragma: no cover - numba
    """Parse ``doc term value`` lines of ``buf`` into ``docs`` (0-based), ``terms`` (0-based), ``vals``.

    Parameters
    ----------
    buf : uint8 array
        Whole lines (the last one may lack its newline). Blank lines are skipped.
    num_docs, num_terms : int
        Declared sizes: 1-based indices must lie in ``1..num_docs`` and ``1..num_terms``.
    prev_doc : int
        0-based document of the last entry before ``buf`` (-1 at the start).
    docs, terms, vals : int64, int32, float64 arrays
        Outputs, at least ``len(buf) // 6 + 1`` long.
    slow : int64 array of shape (same, 3)
        For values this kernel cannot convert exactly (long mantissas, large
        exponents, ``nan``/``inf``): entry index, start and end byte of the text.
        The caller converts them with Python's ``float``.

    Returns
    -------
    (n_entries, n_lines, status, bad_line_start, n_slow, prev_doc)
        ``n_lines`` counts lines read; on an error ``status`` is not ``OK``,
        ``n_lines`` is the index of the bad line in ``buf`` and ``bad_line_start``
        the offset where it begins.
    """
    size = buf.shape[0]
    n = 0
    n_slow = 0
    line = 0
    i = 0
    while i < size:
        line_start = i
        i = _skip_blanks(buf, i)
        if i == size:
            break
        if buf[i] == _NL:
            line += 1
            i += 1
            continue
        # the two 1-based indices, each followed by blanks
        doc, digits, i = _parse_index(buf, i)
        if digits == 0 or i == size or not _is_blank(buf[i]):
            return n, line, ERR_SYNTAX, line_start, n_slow, prev_doc
        i = _skip_blanks(buf, i)
        term, digits, i = _parse_index(buf, i)
        if digits == 0 or i == size or not _is_blank(buf[i]):
            return n, line, ERR_SYNTAX, line_start, n_slow, prev_doc
        i = _skip_blanks(buf, i)
        if i == size or buf[i] == _NL:
            return n, line, ERR_SYNTAX, line_start, n_slow, prev_doc
        # the value: [sign] digits [. digits] [e [sign] digits], exact when possible
        v_start = i
        negative = buf[i] == _MINUS
        if buf[i] == _MINUS or buf[i] == _PLUS:
            i += 1
        i, mantissa, exp10, exact = _unsigned_decimal(buf, i)
        if i < 0:
            return n, line, ERR_SYNTAX, line_start, n_slow, prev_doc
        v_end = i
        i = _skip_blanks(buf, i)
        if i < size and buf[i] != _NL:
            return n, line, ERR_SYNTAX, line_start, n_slow, prev_doc
        value, converted = _to_double(mantissa, exp10, exact)
        if not converted:
            slow[n_slow, 0] = n
            slow[n_slow, 1] = v_start
            slow[n_slow, 2] = v_end
            n_slow += 1
        status = _entry_status(doc, term, num_docs, num_terms, prev_doc)
        if status != OK:
            return n, line, status, line_start, n_slow, prev_doc
        prev_doc = doc - 1
        docs[n] = doc - 1
        terms[n] = term - 1
        vals[n] = -value if negative else value
        n += 1
        line += 1
        i += 1  # past the newline
    return n, line, OK, -1, n_slow, prev_doc


@njit(cache=True, nogil=True)
def _put_int(out, pos, value):  # pragma: no cover - numba
    """Write the decimal digits of ``value`` at ``out[pos:]``; return the new position."""
    if value < 0:
        out[pos] = _MINUS
        pos += 1
        value = -value
    if value == 0:
        out[pos] = _ZERO
        return pos + 1
    start = pos
    while value > 0:
        out[pos] = _ZERO + value % 10
        value //= 10
        pos += 1
    end = pos - 1
    while start < end:
        out[start], out[end] = out[end], out[start]
        start += 1
        end -= 1
    return pos


@njit(cache=True, nogil=True)
def format_entries(docs1, terms1, vals, is_int, text, text_offsets, out):  # pragma: no cover - numba
    """Write ``doc term value`` lines into ``out`` and return the number of bytes written.

    Parameters
    ----------
    docs1, terms1 : int64 arrays
        1-based document and term indices.
    vals : float64 array
        Values; those flagged in ``is_int`` are written as integers.
    is_int : bool array
    text, text_offsets : uint8 and int64 arrays
        The text of the other values, in order: value ``j`` among the non-integer
        ones is ``text[text_offsets[j]:text_offsets[j + 1]]``.
    out : uint8 array
        Large enough for every line.
    """
    pos = 0
    j = 0
    for k in range(docs1.shape[0]):
        pos = _put_int(out, pos, docs1[k])
        out[pos] = _SPACE
        pos = _put_int(out, pos + 1, terms1[k])
        out[pos] = _SPACE
        pos += 1
        if is_int[k]:
            pos = _put_int(out, pos, np.int64(vals[k]))
        else:
            for b in range(text_offsets[j], text_offsets[j + 1]):
                out[pos] = text[b]
                pos += 1
            j += 1
        out[pos] = _NL
        pos += 1
    return pos
