"""The MongoDB wire-compatible stand-in for the test suite (run with the stand-in's own
Python 3.13 virtual environment, never imported by the product).

mongoeco's proxy server over its in-memory engine, on 127.0.0.1:PORT. Prints "ready PORT"
once it accepts connections and stops on SIGTERM.
Usage: python standin_server.py PORT
"""

import asyncio
import os
import signal
import sys

from mongoeco.engines import MemoryEngine
from mongoeco.wire import AsyncMongoEcoProxyServer


async def main(port: int) -> None:
    server = AsyncMongoEcoProxyServer(engine=MemoryEngine(), host="127.0.0.1", port=port)
    address = await server.start()
    print(f"ready {address.port}", flush=True)
    # Nobody reads our stdout after this line: never block on a full pipe.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.close()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
