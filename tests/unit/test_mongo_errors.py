"""The MongoDB edge: a server out of disk or quota is 507 to the client (like a full disk
store), any other driver error 503. The errors are PyMongo's own, as the driver raises them
from a server reply."""

from __future__ import annotations

import pytest
from pymongo.errors import AutoReconnect, OperationFailure

from tornado_files.errors import BackendUnavailable, InsufficientStorage
from tornado_files.mongo import driver_errors


@pytest.mark.allow_error_logs  # the edge logs what the driver said, at ERROR
@pytest.mark.parametrize(("error", "expected"), [
    (OperationFailure("No space left on device", 14031,
                      {"ok": 0, "code": 14031, "codeName": "OutOfDiskSpace"}),
     InsufficientStorage),
    (OperationFailure("quota exceeded", 12501,
                      {"ok": 0, "code": 12501, "codeName": "QuotaExceeded"}),
     InsufficientStorage),
    (OperationFailure("not primary", 10107, {"ok": 0, "code": 10107}), BackendUnavailable),
    (AutoReconnect("connection reset"), BackendUnavailable),
])
def test_driver_errors_become_domain_errors(error, expected):
    with pytest.raises(expected), driver_errors("insert chunks"):
        raise error
