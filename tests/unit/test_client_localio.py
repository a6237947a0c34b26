"""Local failures of the client are said as local (exit status 4, the path named), never as
"server unreachable" (3): a file that cannot be read while its bytes are the body of a
request, a target folder that is not there."""

from __future__ import annotations

import os
import socket
from contextlib import closing

import pytest

from tornado_files.client.http import Api
from tornado_files.client.localio import LocalFileError, check_folder
from tornado_files.client.transfers import _file_chunks


def test_a_file_that_cannot_be_read_is_a_local_error(tmp_path):
    missing = tmp_path / "gone.bin"
    with pytest.raises(LocalFileError) as caught:
        list(_file_chunks(missing, 0, 10, lambda _: None))
    assert caught.value.exit_code == 4
    assert str(caught.value) == f"cannot read {missing}: No such file or directory"


def test_a_file_that_shrank_is_a_local_error(tmp_path):
    short = tmp_path / "short.bin"
    short.write_bytes(b"12345")
    with pytest.raises(LocalFileError) as caught:
        list(_file_chunks(short, 0, 10, lambda _: None))
    assert (caught.value.exit_code, str(caught.value)) == (
        4, f"{short} changed while it was being uploaded")


def test_a_read_error_in_a_request_body_is_not_taken_for_the_network(tmp_path):
    """The body is read while it is sent: its failure must come out as itself."""
    missing = tmp_path / "gone.bin"
    with closing(socket.create_server(("127.0.0.1", 0))) as listener:  # accepts, never answers
        port = listener.getsockname()[1]
        api = Api(f"http://127.0.0.1:{port}", timeout=5)
        with pytest.raises(LocalFileError) as caught:
            api.request("POST", "/api/files", {}, _file_chunks(missing, 0, 10, lambda _: None),
                        10, ok=(201,))
    assert caught.value.exit_code == 4


def test_a_missing_or_odd_folder_is_named(tmp_path):
    check_folder(tmp_path / "fine.bin")
    with pytest.raises(LocalFileError, match=r"the folder .*/nodir does not exist$"):
        check_folder(tmp_path / "nodir" / "x.bin")
    plain = tmp_path / "plain"
    plain.write_text("")
    with pytest.raises(LocalFileError, match=f"{plain} is not a folder$"):
        check_folder(plain / "x.bin")
    assert os.listdir(tmp_path) == ["plain"]
