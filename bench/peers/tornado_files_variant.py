"""tornado-files with its body-read hand-over (tornado_files/web/edge.py) changed, for a same-run
comparison against the product as it is (issue 12 item 5). Bench-only: nothing else differs —
the same code, settings and options as ``server.py``, which this then calls.

Usage: python tornado_files_variant.py {plain|no-hand-over} [server.py options]
  plain         connections get Tornado's own IOStream (what the server is without BodyStream:
                a fresh bytearray per read, appended to the read buffer, copied out as bytes)
  no-hand-over  BodyStream still receives into the read buffer, but every read is copied out
                by Tornado's ``_consume`` (as multipart requests do now), raw bodies included
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # this checkout's tornado_files

from tornado.httpserver import HTTPServer
from tornado.iostream import IOStream

from tornado_files.cli import serve
from tornado_files.web import edge

if __name__ == "__main__":
    mode, argv = sys.argv[1], sys.argv[2:]
    if mode == "plain":
        edge.FilesHTTPServer.handle_stream = HTTPServer.handle_stream  # type: ignore[method-assign]
    elif mode == "no-hand-over":
        # Not ``BodyStream.hand_over = False``: every body request sets it back to True.
        edge.BodyStream._consume = IOStream._consume  # type: ignore[method-assign]
    else:
        sys.exit(f"unknown variant {mode!r}")
    sys.exit(serve(argv, prog="tornado_files_variant.py"))
