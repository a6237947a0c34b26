"""Start tornado-files on the embedded default (disk + SQLite under ./data, 127.0.0.1:8888).

Process wiring only; see ``tornado_files/cli.py``. Options: ``python server.py --help``.
"""

import sys

from tornado_files.cli import serve

if __name__ == "__main__":
    sys.exit(serve(sys.argv[1:], prog="server.py"))
