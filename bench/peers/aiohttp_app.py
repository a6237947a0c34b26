"""Peer: aiohttp's streaming multipart reader writing to disk; FileResponse (sendfile, Range)
for downloads.
Usage: python aiohttp_app.py PORT DIR"""

import sys
import uuid
from pathlib import Path

from aiohttp import web

DIR = Path(sys.argv[2])
CHUNK = 1 << 20


async def multipart(request: web.Request) -> web.Response:
    reader = await request.multipart()
    field = await reader.next()
    target = DIR / uuid.uuid4().hex
    with target.open("wb") as out:
        while chunk := await field.read_chunk(CHUNK):
            out.write(chunk)
    return web.json_response({"size": target.stat().st_size}, status=201)


async def raw(request: web.Request) -> web.Response:
    target = DIR / uuid.uuid4().hex
    with target.open("wb") as out:
        async for chunk in request.content.iter_chunked(CHUNK):
            out.write(chunk)
    return web.json_response({"size": target.stat().st_size}, status=201)


async def files(request: web.Request) -> web.FileResponse:
    return web.FileResponse(DIR / Path(request.match_info["name"]).name)


app = web.Application(client_max_size=1 << 40)
app.add_routes([web.post("/multipart", multipart), web.post("/raw", raw),
                web.get("/files/{name}", files)])

if __name__ == "__main__":
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
