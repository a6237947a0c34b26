"""Numeric command-line options checked before any request: a bad value is a usage error
(``ClientError`` with exit status 2, one line that names the option), never a loop, a
request the server refuses, or a silent default."""

from __future__ import annotations

from tornado_files.client.http import ClientError
from tornado_files.config import ConfigError, parse_size
from tornado_files.numbers import MAX_INT64, whole

USAGE = 2  # the exit status of bad usage


def positive_size(text: str, option: str) -> int:
    """Bytes, more than 0, from ``8MiB``, ``1.5KiB``, ``16 MiB`` or a plain number
    (``--chunk-size``, ``--tus-threshold``); a fraction of a byte rounds down.

    >>> positive_size("8MiB", "--chunk-size")
    8388608
    >>> positive_size("0", "--chunk-size")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    tornado_files.client.http.ClientError: --chunk-size: must be more than 0 bytes ...
    """
    size = byte_count(text, option)
    if size < 1:
        raise ClientError(f"{option}: must be more than 0 bytes (a size like 8MiB)",
                          exit_code=USAGE)
    return size


def byte_count(text: str, option: str) -> int:
    """Bytes, 0 to 2**63 - 1, written as :func:`positive_size` reads them
    (``--size-greater-than 0``: files that are not empty).

    >>> byte_count("0", "--size-greater-than"), byte_count("1KiB", "--size-less-than")
    (0, 1024)
    >>> byte_count("-1", "--size-less-than")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    tornado_files.client.http.ClientError: --size-less-than: expected a size ..., got '-1'
    """
    try:
        size = parse_size(text, option)
    except (ConfigError, OverflowError):
        size = None
    if size is None or size > MAX_INT64:
        raise ClientError(f"{option}: expected a size like 1024, 40KiB or 10GiB, got {text!r}",
                          exit_code=USAGE)
    return size


def count(text: str, option: str) -> int:
    """A whole number, 1 or more, in ASCII digits (``--limit``; the server sets the most).

    >>> count("50", "--limit")
    50
    >>> count("0", "--limit")
    Traceback (most recent call last):
    tornado_files.client.http.ClientError: --limit: expected a whole number of at least 1, got '0'
    """
    number = whole(text)
    if number is None or number < 1:
        raise ClientError(f"{option}: expected a whole number of at least 1, got {text!r}",
                          exit_code=USAGE)
    return number
