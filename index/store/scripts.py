"""Every Lua script of the project, one file each in ``index/store/lua/``.

Each file's header names its KEYS and ARGV. A script touches only the keys it is given in
KEYS (Redis Cluster refuses others), and never builds a key: ``index/store/keys.py`` does.
"""

from dataclasses import dataclass
from importlib.resources import files
from typing import Any

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

_LUA = files("index.store") / "lua"


def lua_source(name: str) -> str:
    """The text of ``lua/<name>.lua``."""
    return (_LUA / f"{name}.lua").read_text(encoding="utf-8")


@dataclass(frozen=True)
class Scripts:
    """The scripts registered with one client (each call runs EVALSHA, loading on a miss)."""

    write_entry: AsyncScript
    read_entry: AsyncScript
    evict_entries: AsyncScript
    delete_entry: AsyncScript
    announce_flush: AsyncScript
    touch_entry: AsyncScript
    record_feedback: AsyncScript
    record_check: AsyncScript
    release_lock: AsyncScript
    renew_lock: AsyncScript
    take_token: AsyncScript
    audit_entry: AsyncScript
    mark_withheld: AsyncScript

    def all(self) -> list[AsyncScript]:
        return [getattr(self, name) for name in self.__dataclass_fields__]

    @classmethod
    def register(cls, client: "aioredis.Redis") -> "Scripts":
        scripts: dict[str, Any] = {
            name: client.register_script(lua_source(name)) for name in cls.__dataclass_fields__
        }
        return cls(**scripts)
