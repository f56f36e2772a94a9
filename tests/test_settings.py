"""Settings refused at start-up, with the variable named, rather than a replica that fails later."""

import pytest
from pydantic import ValidationError

from service.settings import Settings


def test_a_replica_id_redis_cannot_name_a_connection_with_is_refused_at_start() -> None:
    # CLIENT SETNAME refuses spaces: every connection of the replica would fail instead
    for refused in ("my replica", "", "-leading-dash", "x" * 129, "tab\there"):
        with pytest.raises(ValidationError, match="replica_id"):
            Settings(replica_id=refused)
    for accepted in ("api-7d9f8c-x2k4q", "host.example.org-4242", "replica_1:a@b"):
        assert Settings(replica_id=accepted).replica_id == accepted
    assert Settings().replica_id  # the default (host name and pid) passes its own rule
