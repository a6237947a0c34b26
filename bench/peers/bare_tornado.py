"""Peer: a bare Tornado streaming handler that writes the raw request body to disk.

No multipart parsing, hashing, sniffing, fsync or metadata: the floor our server is compared
with. Usage: python bare_tornado.py PORT DIR
"""

import asyncio
import sys
import uuid
from pathlib import Path

from tornado import web
from tornado.httpserver import HTTPServer


@web.stream_request_body
class Sink(web.RequestHandler):
    def prepare(self) -> None:
        self.request.connection.set_max_body_size(1 << 40)
        self.path = Path(sys.argv[2]) / uuid.uuid4().hex
        self.fh = self.path.open("wb")

    def data_received(self, chunk: bytes) -> None:
        self.fh.write(chunk)

    def post(self) -> None:
        self.fh.close()
        self.write({"size": self.path.stat().st_size})


async def main() -> None:
    server = HTTPServer(web.Application([(r"/.*", Sink)]), chunk_size=512 * 1024)
    server.listen(int(sys.argv[1]), "127.0.0.1")
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
