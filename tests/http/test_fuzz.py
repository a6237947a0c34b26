"""Seeded fuzzing over real sockets (tests/fuzzing.py): 2,000 mutated multipart bodies and 500
mutated raw requests against the in-process server; every answer is 2xx or a JSON:API 4xx,
never a 5xx or silence, and nothing is left behind. Longer runs: scripts/fuzz.py."""

from __future__ import annotations

import asyncio
import json
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests import fuzzing
from tests.support import Part, multipart

SEED = int(os.environ.get("TORNADO_FILES_FUZZ_SEED", "13"))
MULTIPART_CASES = 2000
RAW_CASES = 500
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("http_server")]


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    # A body that stops short is answered (408) after idle_timeout: short, so the run is.
    return {"idle_timeout": 1.0, "linger_seconds": 0.5}


@pytest.mark.gen_test(timeout=240)
async def test_mutated_requests_get_an_answer_a_client_can_read(http_client, base_url,
                                                               http_port, residue):
    body, ctype = multipart([Part("file", b"0123456789", "target.txt")])
    created = await http_client.fetch(base_url + "/api/files", method="POST", body=body,
                                      headers={"Content-Type": ctype})
    file_id = json.loads(created.body)["id"]
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(max_workers=16) as pool:
        outcomes = await asyncio.gather(*(
            loop.run_in_executor(pool, fuzzing.send, http_port, case)
            for case in fuzzing.cases(SEED, MULTIPART_CASES, RAW_CASES, file_id)))
    problems = [fuzzing.describe(o, SEED) for o in outcomes if o.problem is not None]
    summary = fuzzing.summary(list(outcomes))
    assert not problems, f"{len(problems)} problems ({summary}): " + "\n".join(problems[:5])
    assert summary["cases"] == MULTIPART_CASES + RAW_CASES
    for _ in range(100):  # clean-up after closed connections runs after the answers
        if not residue.temp_files() and not residue.intents():
            break
        await asyncio.sleep(0.05)
    assert residue.temp_files() == []
    assert residue.intents() == []
    assert len(residue.blobs()) == residue.rows()
    assert residue.uploads() == 0
