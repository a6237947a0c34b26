"""Peer: Starlette + python-multipart under uvicorn, writing uploads to disk as Starlette
recommends (multipart: the parsed UploadFile copied in a thread; raw: request.stream()), and
serving files with FileResponse (Range supported).
Usage: python starlette_app.py PORT DIR"""

import shutil
import sys
import uuid
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import Route

DIR = Path(sys.argv[2])


async def multipart(request):
    form = await request.form(max_part_size=1 << 40)
    upload = form["file"]
    target = DIR / uuid.uuid4().hex

    def copy() -> None:
        with target.open("wb") as out:
            shutil.copyfileobj(upload.file, out, 1 << 20)
    await run_in_threadpool(copy)
    await form.close()
    return JSONResponse({"size": target.stat().st_size}, status_code=201)


async def raw(request):
    target = DIR / uuid.uuid4().hex
    with target.open("wb") as out:
        async for chunk in request.stream():
            out.write(chunk)
    return JSONResponse({"size": target.stat().st_size}, status_code=201)


async def files(request):
    return FileResponse(DIR / Path(request.path_params["name"]).name)


app = Starlette(routes=[Route("/multipart", multipart, methods=["POST"]),
                        Route("/raw", raw, methods=["POST"]),
                        Route("/files/{name}", files, methods=["GET"])])

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
