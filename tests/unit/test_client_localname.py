"""The name a download is saved under when no ``-o`` is given: what the server says the file
is called, made safe the way browsers make a download's name safe."""

from __future__ import annotations

import pytest

from tornado_files.client.localname import FALLBACK, MAX_NAME_BYTES, local_name


@pytest.mark.parametrize(("given", "saved"), [
    ("report.pdf", "report.pdf"),
    (".bash_profile", "bash_profile"),
    (" .ssh", "ssh"),
    ("..\u00a0. .hidden", "hidden"),
    ("...", FALLBACK),
    ("..", FALLBACK),
    ("", FALLBACK),
    ("  ", FALLBACK),
    ("../../etc/passwd", "_.._etc_passwd"),
    ("a/b\\c.txt", "a_b_c.txt"),
    ("/", "_"),
    ("two\nlines\r.txt\x00", "twolines.txt"),
    ("\u202eexe.pdf", "exe.pdf"),
    ("trailing.txt  ", "trailing.txt"),
    ("résumé 東京.txt", "résumé 東京.txt"),
    ("a.b.c", "a.b.c"),
])
def test_local_names(given, saved):
    assert local_name(given) == saved


def test_a_long_name_leaves_room_for_the_part_file_and_keeps_its_extension():
    saved = local_name("é" * 300 + ".tar.gz")
    assert saved.endswith(".gz")
    assert len(saved.encode()) <= MAX_NAME_BYTES
    # FILE.<16 hex>.part must still fit in a 255-byte file name
    assert len(saved.encode()) + len(".0123456789abcdef.part") <= 255
