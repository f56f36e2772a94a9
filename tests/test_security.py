"""What docs/security.md tells an operator to do works: a replica runs on a Redis user that
the ACL confines to the service's keys and channels, with no dangerous command."""

from pathlib import Path

import pytest
import redis

from service.embedded_redis import EmbeddedRedis
from tests.conftest import make_settings
from tests.helpers import CacheService

# the ACL rule of docs/security.md, word for word
ACL_RULE = "on >a-long-random-password ~dc:* &dc:* &__keyevent@*__:expired +@all -@dangerous"


def test_a_replica_serves_on_the_redis_user_the_security_page_describes(tmp_path: Path) -> None:
    docs = (Path(__file__).resolve().parents[1] / "docs" / "security.md").read_text()
    assert ACL_RULE in docs
    with EmbeddedRedis(tmp_path / "redis", appendonly=False) as server:
        admin = redis.Redis(port=server.port)
        admin.execute_command("ACL", "SETUSER", "dynacache", *ACL_RULE.split())
        admin.set("other-app:secret", "not the cache's")
        url = f"redis://dynacache:a-long-random-password@127.0.0.1:{server.port}/0"
        service = CacheService(make_settings(url)).start()
        try:
            stored = service.query("What is the capital of Portugal?").json()
            assert stored["status"] == "MISS"
            assert service.query("Tell me the capital of Portugal").json()["status"] == "HIT"
            deleted = service.http.delete(f"/v1/entries/{stored['entry_id']}")
            assert deleted.status_code == 200
        finally:
            service.stop()
        confined = redis.Redis.from_url(url)
        for refused in (lambda: confined.get("other-app:secret"), confined.flushall):
            with pytest.raises(redis.exceptions.NoPermissionError):
                refused()
        confined.close()
        admin.close()
