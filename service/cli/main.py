"""``dyna-cache``: serve, warm, move, watch and tune a Dyna-Cache deployment.

Every command says what it needs with ``--help``; a failure is one line on stderr
(``error: ...``) and exit status 1 (2 for a usage error).
"""

import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, BinaryIO, TypeVar

import numpy as np
import typer
from rich.live import Live

from index.store.connection import connect
from index.store.redis_store import RedisStore
from service.cli import transfer
from service.cli.api_client import (
    DEFAULT_URL,
    Key,
    RedisUrl,
    ServiceClient,
    Url,
    console,
    errors,
    fail,
    one_line_errors,
    redis_url_of,
)
from service.cli.stats_tables import stats_tables
from service.cli.tenants import tenants_app
from service.cli.warm import warm as warm_file
from service.settings import Settings
from service.tenancy.tenants import DEFAULT_NAMESPACE
from service.version import __version__

# click's plain help: typer's rich help printed every flag as taking a value ("--watch <bool>")
app = typer.Typer(
    name="dyna-cache",
    help="Dyna-Cache: a semantic cache for LLM applications.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)


def _print_version(asked: bool) -> None:
    if asked:
        console.print(f"dyna-cache {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Dyna-Cache: a semantic cache for LLM applications."""


app.add_typer(tenants_app, name="tenants")

T = TypeVar("T")

_EMBEDDING_DIM = 384


def _with_store(redis_url: str, work: Callable[[RedisStore], Awaitable[T]]) -> T:
    async def run() -> T:
        client = connect(redis_url, 10.0)
        try:
            return await work(RedisStore(client, origin="cli", dim=_EMBEDDING_DIM))
        finally:
            await client.aclose()

    return asyncio.run(run())


# -- serving -----------------------------------------------------------------------------


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Listen address (DYNACACHE_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port (DYNACACHE_PORT).")] = None,
    redis_url: Annotated[
        str | None,
        typer.Option("--redis-url", help="Redis Stack (DYNACACHE_REDIS_URL); none: embedded."),
    ] = None,
) -> None:
    """Serve one replica (settings from DYNACACHE_* variables; these options override)."""
    for name, value in (("HOST", host), ("PORT", port), ("REDIS_URL", redis_url)):
        if value is not None:
            os.environ[f"DYNACACHE_{name}"] = str(value)
    from service.__main__ import main as serve_main

    serve_main()


# -- warming and moving entries -----------------------------------------------------------


@app.command()
def warm(
    file: Annotated[
        Path,
        typer.Argument(
            help="JSON lines or CSV of prompt, response[, ttl].", exists=True, dir_okay=False
        ),
    ],
    url: Url = DEFAULT_URL,
    key: Key = None,
    batch: Annotated[int, typer.Option(min=1, max=1000, help="Entries per request.")] = 100,
    restart: Annotated[bool, typer.Option(help="Ignore the progress of an earlier run.")] = False,
    overwrite: Annotated[
        bool, typer.Option(help="Replace the answers stored for the same prompts (tenant keys).")
    ] = False,
) -> None:
    """Store prompt/response pairs through the API (resumes after an interruption)."""
    with one_line_errors():
        client = ServiceClient(url, key)
        try:
            stored, skipped = warm_file(client, file, batch, restart, console, overwrite)
        finally:
            client.close()
    done = f", {skipped} done by an earlier run" if skipped else ""
    console.print(f"stored {stored} entries{done}")


@app.command("export")
def export_entries(
    namespace: Annotated[
        str | None, typer.Option("--ns", help="The namespace to export (a name, not a pattern).")
    ] = None,
    every: Annotated[
        bool, typer.Option("--all", help="Every namespace, each line labelled with its own.")
    ] = False,
    out: Annotated[Path | None, typer.Option("-o", "--out", help="File (default: stdout).")] = None,
    vectors: Annotated[bool, typer.Option(help="Include vectors (no re-embedding).")] = False,
    redis_url: RedisUrl = None,
) -> None:
    """Write a namespace's live entries as JSON lines (straight from Redis)."""
    if every and namespace is not None:
        raise fail("--ns and --all exclude each other")
    chosen = namespace or DEFAULT_NAMESPACE

    def export(handle: BinaryIO) -> Callable[[RedisStore], Awaitable[int]]:
        if every:
            return lambda store: transfer.export_all(store, vectors, handle)
        return lambda store: transfer.export_namespace(store, chosen, vectors, handle)

    with one_line_errors():
        url = redis_url_of(redis_url)
        if out is None:
            count = _with_store(url, export(sys.stdout.buffer))
        else:
            staged = out.with_name(out.name + ".partial")
            try:
                with open(staged, "wb") as handle:
                    count = _with_store(url, export(handle))
            except BaseException:
                staged.unlink(missing_ok=True)
                raise
            staged.replace(out)
    what = "every namespace" if every else f"namespace {chosen!r}"
    errors.print(f"exported {count} entries of {what}")


@app.command("import")
def import_entries(
    file: Annotated[
        Path, typer.Argument(help="An export (JSON lines).", exists=True, dir_okay=False)
    ],
    namespace: Annotated[
        str | None,
        typer.Option("--ns", help="Import into this namespace (default: each entry's own)."),
    ] = None,
    redis_url: RedisUrl = None,
    onnx_dir: Annotated[str, typer.Option(help="The embedder, for entries without vectors.")] = (
        "models/onnx"
    ),
) -> None:
    """Write exported entries into Redis (with their hit counts); running replicas pick them
    up at once. A prompt the namespace already holds keeps its live entry."""
    embedder: list[Any] = []

    def embed(texts: list[str]) -> np.ndarray:
        if not embedder:
            from index.embedding.embedder import load_embedder

            embedder.append(load_embedder("onnx", None, None, onnx_dir))
        vectors: np.ndarray = embedder[0].encode(texts)
        return vectors

    with one_line_errors():
        # every line checked, under the service's limits, before any write
        rows = list(transfer.read_export(file, Settings()))
        url = redis_url_of(redis_url)
        done = _with_store(
            url, lambda store: transfer.import_entries(store, iter(rows), embed, namespace)
        )
    again = f" ({done.embedded} embedded again)" if done.embedded else ""
    kept = f"; {done.kept} already there, kept as they were" if done.kept else ""
    console.print(f"imported {done.written} entries{again}{kept}")


# -- watching --------------------------------------------------------------------------


@app.command()
def stats(
    url: Url = DEFAULT_URL,
    key: Key = None,
    watch: Annotated[bool, typer.Option("--watch", help="Refresh until interrupted.")] = False,
    interval: Annotated[float, typer.Option(min=0.2, help="Seconds between refreshes.")] = 2.0,
    as_json: Annotated[bool, typer.Option("--json", help="The raw numbers as JSON.")] = False,
) -> None:
    """Hit rate, latency, savings: per namespace and in total."""
    with one_line_errors():
        client = ServiceClient(url, key)
        try:
            numbers = client.call("GET", "/v1/stats")
            if as_json:
                console.print_json(data=numbers)
                return
            if not watch:
                console.print(stats_tables(numbers))
                return
            with Live(stats_tables(numbers), console=console, auto_refresh=False) as live:
                while True:
                    time.sleep(interval)
                    live.update(stats_tables(client.call("GET", "/v1/stats")), refresh=True)
        except KeyboardInterrupt:
            pass
        finally:
            client.close()


# -- tuning the decision -------------------------------------------------------------------


@app.command()
def calibrate(
    pairs: Annotated[
        Path,
        typer.Option(
            help="Your labelled pairs: {q1, q2, duplicate} JSONL.", exists=True, dir_okay=False
        ),
    ],
    target_precision: Annotated[float, typer.Option(min=0.01, max=0.99)],
    tenant: Annotated[str | None, typer.Option(help="Write the chosen point to it.")] = None,
    redis_url: RedisUrl = None,
    holdout: Annotated[float, typer.Option(min=0.05, max=0.95)] = 0.4,
    seed: int = 7,
) -> None:
    """Choose the threshold (and verifier cut) reaching a precision on your own pairs."""
    from training.calibrate import main as calibrate_main

    # flag and value side by side
    argv = ["--pairs", str(pairs), "--target-precision", str(target_precision),
            "--holdout", str(holdout), "--seed", str(seed)]  # fmt: skip
    if tenant:
        with one_line_errors():
            argv += ["--redis-url", redis_url_of(redis_url)]
    if tenant:
        argv += ["--tenant", tenant]
    raise typer.Exit(calibrate_main(argv))


@app.command("fine-tune")
def fine_tune(
    pairs: Annotated[
        Path,
        typer.Argument(
            help="Your labelled pairs: {q1, q2, duplicate} JSONL.", exists=True, dir_okay=False
        ),
    ],
    base: Annotated[Path, typer.Option(help="The pair model to start from.")] = Path("models/pair"),
    out: Annotated[
        Path,
        typer.Option(
            help="Where the tuned model goes (a running service "
            "reading it picks it up without a restart)."
        ),
    ] = Path("models/pair"),
    epochs: Annotated[float, typer.Option(min=0.1, max=20)] = 1.0,
    seed: int = 7,
) -> None:
    """Fine-tune the pair model on your own labelled pairs (needs the [train] extra)."""
    try:
        import torch  # noqa: F401
    except ImportError:
        raise fail("fine-tuning needs torch: pip install -e '.[train]'") from None
    from training.pair_model_train import main as train_main

    # flag and value side by side
    argv = ["--pairs", str(pairs), "--base", str(base), "--out", str(out),
            "--epochs", str(epochs), "--seed", str(seed)]  # fmt: skip
    raise typer.Exit(train_main(argv))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
