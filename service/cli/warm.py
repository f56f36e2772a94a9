"""``dyna-cache warm FILE``: store prompt/response pairs through the API, in batches, with
a progress bar; an interrupted run resumes where it stopped.

FILE is JSON lines (``{"prompt", "response", "ttl"?, "model"?, "context"?}``) or CSV with a
header row naming at least ``prompt`` and ``response`` (``ttl``, ``model``, ``context``
optional). After each batch the service acknowledged, the number of rows done is written to
``FILE.warm-progress`` (with the file's size and mtime, so a changed file starts over); a
finished run deletes it.
"""

import csv
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from service.cli.api_client import CliError, ServiceClient

_FIELDS = ("prompt", "response", "ttl", "model", "context")


@dataclass(frozen=True)
class Checkpoint:
    """How far a warm-up of one file got (only valid for the same size and mtime)."""

    path: Path
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, source: Path) -> "Checkpoint":
        stat = source.stat()
        return cls(source.with_name(source.name + ".warm-progress"), stat.st_size, stat.st_mtime_ns)

    def rows_done(self) -> int:
        try:
            saved = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return 0
        if saved.get("size") != self.size or saved.get("mtime_ns") != self.mtime_ns:
            return 0
        return int(saved.get("rows_done", 0))

    def save(self, rows_done: int) -> None:
        staged = self.path.with_name(self.path.name + ".tmp")
        staged.write_text(
            json.dumps({"size": self.size, "mtime_ns": self.mtime_ns, "rows_done": rows_done})
        )
        os.replace(staged, self.path)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


# the longest CSV field read (the csv module's own default is 128 KiB); a longer one is an
# error naming its line, not a traceback
CSV_FIELD_LIMIT = 1 << 20


def read_rows(source: Path) -> Iterator[dict[str, Any]]:
    """The file's entries, each checked; a bad row stops the run with its line number. UTF-8
    with or without a byte-order mark."""
    check_utf8(source)
    if source.suffix.lower() == ".csv":
        csv.field_size_limit(CSV_FIELD_LIMIT)
        with open(source, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            try:
                missing = {"prompt", "response"} - set(reader.fieldnames or ())
                if missing:
                    raise CliError(f"{source}: the CSV header lacks {', '.join(sorted(missing))}")
                for row in reader:
                    yield _entry(row, source, reader.line_num)
            except csv.Error as error:
                raise CliError(f"{source}:{reader.line_num + 1}: {error}") from None
        return
    with open(source, encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                raise CliError(f"{source}:{number}: not a JSON object") from None
            yield _entry(row, source, number)


def check_utf8(source: Path) -> None:
    """``CliError`` naming the first line (and byte) that is not UTF-8."""
    with open(source, "rb") as lines:
        for number, line in enumerate(lines, 1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as error:
                raise CliError(
                    f"{source}:{number}: not UTF-8 text (byte {error.start + 1} of the line)"
                ) from None


def _entry(row: Any, source: Path, number: int) -> dict[str, Any]:
    if not isinstance(row, dict):
        raise CliError(f"{source}:{number}: not a JSON object")
    entry = {name: row[name] for name in _FIELDS if row.get(name) not in (None, "")}
    if not isinstance(entry.get("prompt"), str) or not isinstance(entry.get("response"), str):
        raise CliError(f"{source}:{number}: needs a prompt and a response (text)")
    if "ttl" in entry:
        try:
            entry["ttl"] = int(entry["ttl"])
        except (TypeError, ValueError):
            raise CliError(f"{source}:{number}: ttl must be whole seconds") from None
    return entry


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} entries/s" if speed else "-- entries/s", style="cyan")


def _count_rows(source: Path) -> int:
    return sum(1 for _ in read_rows(source))


def warm(
    client: ServiceClient,
    source: Path,
    batch_size: int,
    restart: bool,
    console: Console,
    overwrite: bool = False,
) -> tuple[int, int]:
    """Store the file's entries; ``(stored now, skipped as done before)``. ``overwrite``:
    replace the answers the namespace holds for the same prompts (a tenant's key needs it)."""
    checkpoint = Checkpoint.of(source)
    if restart:
        checkpoint.clear()
    done_before = checkpoint.rows_done()
    total = _count_rows(source)  # reads the whole file once: bad rows fail before any write
    stored = 0
    columns = (
        TextColumn("warming"),
        BarColumn(),
        MofNCompleteColumn(),
        _RateColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("warm", total=total, completed=done_before)
        batch: list[dict[str, Any]] = []
        position = 0

        def send() -> None:
            nonlocal stored
            client.call("POST", "/v1/entries", json={"entries": batch, "overwrite": overwrite})
            stored += len(batch)
            checkpoint.save(position)
            progress.update(task, advance=len(batch))
            batch.clear()

        for position, entry in enumerate(read_rows(source), 1):
            if position <= done_before:
                continue
            batch.append(entry)
            if len(batch) >= batch_size:
                send()
        if batch:
            send()
    checkpoint.clear()
    return stored, done_before
