"""Where the process is in its life, for the probes (docs/api.md, Health): serving, or
draining once a shutdown began (``/readyz`` and ``/healthz`` then answer 503, so a load
balancer stops sending new requests while those in flight end)."""

from __future__ import annotations


class Lifecycle:
    def __init__(self) -> None:
        self._draining = False

    @property
    def draining(self) -> bool:
        return self._draining

    def drain(self) -> None:
        """A shutdown began: readiness is withdrawn for the rest of the process's life."""
        self._draining = True
