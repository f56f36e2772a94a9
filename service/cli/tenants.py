"""``dyna-cache tenants``: tenants and their API keys, through a running service's admin API."""

import time
from typing import Annotated, Any

import typer
from rich.table import Table

from service.cli.api_client import (
    DEFAULT_URL,
    Key,
    ServiceClient,
    Url,
    console,
    errors,
    one_line_errors,
)

tenants_app = typer.Typer(
    help="Tenants and their API keys (needs the admin token).",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def _setting(text: str) -> tuple[str, Any]:
    name, sep, raw = text.partition("=")
    if not sep:
        raise typer.BadParameter(f"{text!r}: use NAME=VALUE")
    try:
        value: Any = float(raw) if "." in raw else int(raw)
    except ValueError:
        value = raw
    return name.strip(), value


@tenants_app.command("create")
def tenant_create(
    namespace: Annotated[str, typer.Argument(help="The tenant's namespace.")],
    setting: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="A tenant setting, NAME=VALUE (threshold=0.3, "
            "max_entries=10000, default_ttl_s=3600, ...); repeatable.",
        ),
    ] = None,
    url: Url = DEFAULT_URL,
    key: Key = None,
) -> None:
    """Create a tenant (its namespace and settings)."""
    with one_line_errors():
        settings = dict(_setting(item) for item in setting or [])
        created = ServiceClient(url, key).call(
            "POST", "/v1/admin/tenants", json={"namespace": namespace, "settings": settings}
        )
    console.print(f"created tenant {created.get('namespace', namespace)!r}")


@tenants_app.command("list")
def tenant_list(url: Url = DEFAULT_URL, key: Key = None) -> None:
    """The tenants and their settings."""
    with one_line_errors():
        listed = ServiceClient(url, key).call("GET", "/v1/admin/tenants")
    table = Table("namespace", "settings")
    for tenant in listed.get("tenants", []):
        chosen = {
            name: value for name, value in tenant.get("settings", {}).items() if value is not None
        }
        table.add_row(tenant["namespace"], ", ".join(f"{n}={v}" for n, v in chosen.items()))
    console.print(table)


@tenants_app.command("keys")
def tenant_keys(
    namespace: Annotated[str, typer.Argument(help="The tenant's namespace.")],
    new: Annotated[bool, typer.Option("--new", help="Issue a new key (shown once).")] = False,
    url: Url = DEFAULT_URL,
    key: Key = None,
) -> None:
    """List a tenant's keys, or issue one with --new."""
    with one_line_errors():
        client = ServiceClient(url, key)
        if new:
            issued = client.call("POST", f"/v1/admin/tenants/{namespace}/keys")
            console.print(f"key id {issued['key_id']}: {issued['key']}")
            errors.print("the key is shown this once; only its hash is stored")
            return
        listed = client.call("GET", f"/v1/admin/tenants/{namespace}/keys")
    table = Table("key id", "created", "revoked")
    for issued in listed.get("keys", []):
        created = issued.get("created")
        when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(float(created))) if created else ""
        table.add_row(issued["key_id"], when, "yes" if issued.get("revoked") else "")
    console.print(table)


@tenants_app.command("revoke")
def tenant_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (from `tenants keys`).")],
    url: Url = DEFAULT_URL,
    key: Key = None,
) -> None:
    """Revoke a tenant's key at once, on every replica."""
    with one_line_errors():
        ServiceClient(url, key).call("DELETE", f"/v1/admin/keys/{key_id}")
    console.print(f"revoked key {key_id}")
