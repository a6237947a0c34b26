"""Peer: Tornado with its default buffered body parsing (the whole body in memory).
Usage: python tornado_buffered.py PORT DIR"""

import asyncio
import sys
import uuid
from pathlib import Path

from tornado import web
from tornado.httpserver import HTTPServer

DIR = Path(sys.argv[2])


class Multipart(web.RequestHandler):
    def post(self) -> None:
        body = self.request.files["file"][0]["body"]
        (DIR / uuid.uuid4().hex).write_bytes(body)
        self.set_status(201)
        self.write({"size": len(body)})


class Raw(web.RequestHandler):
    def post(self) -> None:
        (DIR / uuid.uuid4().hex).write_bytes(self.request.body)
        self.set_status(201)
        self.write({"size": len(self.request.body)})


async def main() -> None:
    app = web.Application([(r"/multipart", Multipart), (r"/raw", Raw)])
    HTTPServer(app, max_body_size=1 << 40, max_buffer_size=1 << 40).listen(
        int(sys.argv[1]), "127.0.0.1")
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
