"""Namespace affinity: which namespaces a replica holds in its local index.

Without affinity a replica holds every namespace. With it (``affine``) the load balancer
sends each tenant to a consistent few replicas, and a replica holds only the namespaces it
is asked for: a lookup in one it does not hold is answered from Redis (exact pointer, HNSW
mirror) while the namespace is followed and loaded in the background, and one not asked
for in ``release_after_s`` is given up (unsubscribed, dropped from the index).
"""

import time
from collections.abc import Mapping


class NamespaceShare:
    def __init__(self, affine: bool = False, release_after_s: float = 600.0) -> None:
        self.affine = affine
        self.release_after_s = release_after_s
        self.held: set[str] = set()  # followed (being loaded, or loaded)
        self.loaded: set[str] = set()  # held and loaded: the local index answers for them
        self.wanted: set[str] = set()  # asked for, not held yet (a hold is queued)
        self._asked: dict[str, float] = {}  # namespace -> last lookup (monotonic)

    def serves_locally(self, ns: str) -> bool:
        """The local index (once ready) answers for ``ns``, else Redis does."""
        return not self.affine or ns in self.loaded

    def indexes_writes(self, ns: str) -> bool:
        """A new entry of ``ns`` written here goes into the local index too (an affine
        replica keeps only what it holds; the rest would be memory no lookup uses)."""
        return not self.affine or ns in self.held

    def asked_for(self, ns: str) -> bool:
        """A lookup of ``ns`` began here; True when it is to be held from now on (the
        caller queues the hold, once)."""
        if not self.affine:
            return False
        self._asked[ns] = time.monotonic()
        if ns in self.held or ns in self.wanted:
            return False
        self.wanted.add(ns)
        return True

    def of(self, namespaces: Mapping[str, int]) -> dict[str, int]:
        """The namespaces of ``namespaces`` this replica holds, with their values."""
        if not self.affine:
            return dict(namespaces)
        return {ns: value for ns, value in namespaces.items() if ns in self.held}

    def start_holding(self, ns: str) -> bool:
        """Hold ``ns`` (False: it is held already)."""
        self.wanted.discard(ns)
        if ns in self.held:
            return False
        self.held.add(ns)
        return True

    def stop_holding(self, ns: str) -> bool:
        """Give ``ns`` up (False: it was not held)."""
        if ns not in self.held:
            return False
        self.held.discard(ns)
        self.loaded.discard(ns)
        self.wanted.discard(ns)
        self._asked.pop(ns, None)
        return True

    def idle(self) -> list[str]:
        """Held namespaces not asked for in ``release_after_s`` (the balancer sends them
        elsewhere now: replicas came or went); each is named once."""
        if not self.affine:
            return []
        idle_since = time.monotonic() - self.release_after_s
        found = [ns for ns in sorted(self.held) if self._asked.get(ns, 0.0) < idle_since]
        for ns in found:
            self._asked[ns] = time.monotonic()
        return found
