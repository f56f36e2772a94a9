"""The ``dyna-cache`` command line, run as a real process against a real service and Redis."""

import csv
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from service.embedded_redis import EmbeddedRedis, free_port
from service.version import __version__
from tests.helpers import CacheService, wait_until

ROOT = Path(__file__).resolve().parent.parent
CLI = shutil.which("dyna-cache", path=str(Path(sys.executable).parent)) or "dyna-cache"
ADMIN = "cli-admin-token"
# this process's environment less any DYNACACHE_* setting: each test names what it uses
OWN_ENVIRONMENT = {name: value for name, value in os.environ.items()
                   if not name.startswith("DYNACACHE_")}  # fmt: skip


def run(*args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT,
        env={**OWN_ENVIRONMENT, "COLUMNS": "200", **env},
    )  # fmt: skip


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 1, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    return lines[0]


@pytest.fixture
def secured(start_service: Callable[..., CacheService]) -> CacheService:
    return start_service(admin_token=ADMIN)


def admin(service: CacheService) -> dict[str, str]:
    return {"DYNACACHE_URL": service.url, "DYNACACHE_KEY": ADMIN}


def test_every_command_has_help() -> None:
    top = run("--help")
    assert top.returncode == 0
    for command in ("serve", "warm", "export", "import", "stats", "tenants", "calibrate",
                    "fine-tune"):  # fmt: skip
        assert command in top.stdout, command
        helped = run(command, "--help")
        assert helped.returncode == 0, command
        assert "<bool>" not in helped.stdout, command  # a flag is shown as a flag
    for command in ("create", "list", "keys", "revoke"):
        assert run("tenants", command, "--help").returncode == 0, command
    assert run("no-such-command").returncode == 2
    version = run("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"dyna-cache {__version__}"


def test_tenants_create_issue_list_and_revoke(secured: CacheService) -> None:
    env = admin(secured)
    created = run("tenants", "create", "acme", "--set", "threshold=0.3", "--set",
                  "max_entries=100", **env)  # fmt: skip
    assert created.returncode == 0, created.stderr
    listed = run("tenants", "list", **env)
    assert "acme" in listed.stdout and "threshold=0.3" in listed.stdout
    issued = run("tenants", "keys", "acme", "--new", **env)
    assert issued.returncode == 0, issued.stderr
    key_id, key = issued.stdout.split("key id ")[1].strip().split(": ")
    tenant = {"Authorization": f"Bearer {key}"}
    assert secured.http.get("/v1/stats", headers=tenant).status_code == 200
    assert key_id in run("tenants", "keys", "acme", **env).stdout
    assert run("tenants", "revoke", key_id, **env).returncode == 0
    assert secured.http.get("/v1/stats", headers=tenant).status_code == 401
    # the admin API refuses a tenant's key: one line, exit 1
    refused = run("tenants", "list", DYNACACHE_URL=secured.url, DYNACACHE_KEY=key)
    assert "401" in one_line_error(refused)
    bad = run("tenants", "create", "acme2", "--set", "threshold", **env)
    assert bad.returncode == 2


def test_errors_are_one_line(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    unreachable = run("stats", "--url", f"http://127.0.0.1:{port}")
    assert "cannot reach" in one_line_error(unreachable)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a question?", "response": "yes"}\n{"prompt": 3}\n')
    assert "bad.jsonl:2" in one_line_error(
        run("warm", str(bad), "--url", f"http://127.0.0.1:{port}")
    )
    assert run("warm", str(tmp_path / "missing.jsonl")).returncode == 2
    no_redis = run("export", "--redis-url", f"redis://127.0.0.1:{port}")
    assert "Redis" in one_line_error(no_redis)


def test_warm_resumes_after_an_interruption(secured: CacheService, tmp_path: Path) -> None:
    env = admin(secured)
    assert run("tenants", "create", "warm", "--set", "rate_limit_per_s=0.001",
               "--set", "rate_limit_burst=2", **env).returncode == 0  # fmt: skip
    key = run("tenants", "keys", "warm", "--new", **env).stdout.split(": ")[1].strip()
    source = tmp_path / "faq.csv"
    with open(source, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["prompt", "response", "ttl"])
        for i in range(250):
            writer.writerow([f"What is item number {i} of the catalogue?", f"Item {i}.", 3600])
    tenant = {"DYNACACHE_URL": secured.url, "DYNACACHE_KEY": key}
    # the tenant's rate limit lets two batches through, then refuses: an interruption
    first = run("warm", str(source), "--batch", "100", **tenant)
    assert "429" in one_line_error(first)
    progress = json.loads(Path(f"{source}.warm-progress").read_text())
    assert progress["rows_done"] == 200
    raised = secured.http.put("/v1/admin/tenants/warm/settings",
                              json={"rate_limit_per_s": 1000, "rate_limit_burst": 1000},
                              headers={"Authorization": f"Bearer {ADMIN}"})  # fmt: skip
    assert raised.status_code == 200
    second = run("warm", str(source), "--batch", "100", **tenant)
    assert second.returncode == 0, second.stderr
    assert "stored 50 entries, 200 done by an earlier run" in second.stdout
    assert "entries/s" in second.stdout  # the progress bar's rate
    assert not Path(f"{source}.warm-progress").exists()
    stats = secured.http.get("/v1/stats", headers={"Authorization": f"Bearer {key}"}).json()
    assert stats["entries"] == 250
    question = {"prompt": "What is item number 7 of the catalogue?"}
    answer = secured.http.post(
        "/v1/query", json=question, headers={"Authorization": f"Bearer {key}"}
    ).json()
    assert answer["status"] == "HIT" and answer["response"] == "Item 7."
    # a changed answer replaces the stored one only when asked to
    changed = tmp_path / "changed.csv"
    changed.write_text("prompt,response\nWhat is item number 7 of the catalogue?,Item seven.\n")
    assert "409 entry_exists" in one_line_error(run("warm", str(changed), **tenant))
    replaced = run("warm", str(changed), "--overwrite", **tenant)
    assert replaced.returncode == 0, replaced.stderr
    answer = secured.http.post(
        "/v1/query", json=question, headers={"Authorization": f"Bearer {key}"}
    ).json()
    assert answer["response"] == "Item seven."


def test_a_personal_entry_stays_personal_through_export_and_import(
    start_service: Callable[..., CacheService], redis_server: EmbeddedRedis,
    redis_client: redis.Redis, tmp_path: Path,
) -> None:  # fmt: skip
    """A per-user entry's prompt is hidden from others in insights (its ``personal`` mark):
    moved to another deployment or namespace, it keeps the mark."""
    service = start_service()
    alice = {"X-Cache-Scope": "user", "X-User-Id": "alice"}
    asked = service.http.post("/v1/query", json={"prompt": "What is my IBAN?"}, headers=alice)
    assert asked.status_code == 200 and asked.json()["status"] == "MISS"
    exported = tmp_path / "default.jsonl"
    done = run("export", "--ns", "default", "-o", str(exported), "--redis-url", redis_server.url)
    assert done.returncode == 0, done.stderr
    (row,) = [json.loads(line) for line in exported.read_text().splitlines()]
    assert row["personal"] in ("1", 1, True), row
    moved = run("import", str(exported), "--ns", "moved", "--redis-url", redis_server.url)
    assert moved.returncode == 0, moved.stderr
    keys = list(redis_client.scan_iter(match="dc:e:{moved}:*"))
    assert len(keys) == 1 and redis_client.hget(keys[0], "personal") == b"1"


def test_export_and_import_move_a_namespace(
    start_service: Callable[..., CacheService], redis_server: EmbeddedRedis,
    redis_client: redis.Redis, tmp_path: Path,
) -> None:  # fmt: skip
    service = start_service()
    faq = [("How do I reset my password?", "Use the reset link."),
           ("What are your opening hours?", "9 to 5."),
           ("Where is my parcel?", "Check the tracking page.")]  # fmt: skip
    stored = service.http.post("/v1/entries", json={"entries": [
        {"prompt": p, "response": r, "ttl": 3600} for p, r in faq]})  # fmt: skip
    assert stored.status_code == 201
    exported = tmp_path / "default.jsonl"
    done = run("export", "--ns", "default", "--vectors", "-o", str(exported),
               "--redis-url", redis_server.url)  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in exported.read_text().splitlines()]
    assert sorted(row["prompt"] for row in rows) == sorted(p for p, _ in faq)
    assert all(row["vector"] and 3500 < row["expires_in"] <= 3600 for row in rows)

    # into another namespace of the same deployment, served by the running replica at once
    moved = run("import", str(exported), "--ns", "moved", "--redis-url", redis_server.url)
    assert moved.returncode == 0, moved.stderr
    assert "imported 3 entries" in moved.stdout and "embedded again" not in moved.stdout
    wait_until(lambda: service.runtime.index.count_by_namespace().get("moved") == 3,
               message="imported entries reach the replica")  # fmt: skip
    created = {row["prompt"]: float(row["created"]) for row in rows}
    entry_ids = service.runtime.index.entry_ids()
    for entry_id in entry_ids:
        fields = redis_client.hmget(f"dc:e:{{moved}}:{entry_id}", ["prompt", "created"])
        if fields[0] is not None:  # the entry keeps its age
            assert float(fields[1]) == pytest.approx(created[fields[0].decode()])

    # without vectors (another model's export, say): the prompts are embedded again
    plain = tmp_path / "plain.jsonl"
    plain.write_text("".join(json.dumps({k: v for k, v in row.items() if k != "vector"}) + "\n"
                             for row in rows))  # fmt: skip
    again = run("import", str(plain), "--ns", "plain", "--redis-url", redis_server.url)
    assert again.returncode == 0, again.stderr
    assert "imported 3 entries (3 embedded again)" in again.stdout
    wait_until(lambda: service.runtime.index.count_by_namespace().get("plain") == 3,
               message="re-embedded entries reach the replica")  # fmt: skip
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"prompt": "only a prompt"}\n')
    assert "broken.jsonl:1" in one_line_error(
        run("import", str(broken), "--redis-url", redis_server.url)
    )
    bad_ns = run("import", str(exported), "--ns", "no spaces", "--redis-url", redis_server.url)
    assert "namespace" in one_line_error(bad_ns)


def test_stats_prints_the_services_numbers(service: CacheService) -> None:
    service.query("What is the capital of France?")
    service.query("What's the capital of France?")
    wait_until(lambda: service.http.get("/v1/stats").json()["requests"] == 2, message="flush")
    as_json = run("stats", "--json", "--url", service.url)
    assert as_json.returncode == 0, as_json.stderr
    numbers = json.loads(as_json.stdout)
    assert numbers["hits"] == 1 and numbers["misses"] == 1
    table = run("stats", "--url", service.url)
    assert "default" in table.stdout and "50.0" in table.stdout and "total" in table.stdout


def test_fine_tune_refuses_too_few_pairs(tmp_path: Path) -> None:
    pairs = tmp_path / "few.jsonl"
    pairs.write_text(json.dumps({"q1": "a?", "q2": "b?", "duplicate": True}))
    done = run("fine-tune", str(pairs), "--out", str(tmp_path / "out"))
    assert done.returncode == 2
    assert done.stderr.strip().startswith("error:") and "too few pairs" in done.stderr
    assert not (tmp_path / "out").exists()


def test_export_takes_a_name_not_a_pattern_and_all_is_explicit(
    start_service: Callable[..., CacheService], redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    service = start_service()
    service.http.post("/v1/entries", json={"entries": [
        {"prompt": "What is the refund policy?", "response": "30 days."}]})  # fmt: skip
    other = {"entries": [{"prompt": "Who is my account manager?", "response": "Dana."}]}
    url = redis_server.url
    # a second namespace, written through the import
    staged = tmp_path / "other.jsonl"
    staged.write_text(json.dumps({"namespace": "other", "prompt": other["entries"][0]["prompt"],
                                  "response": "Dana.", "scope": "s"}) + "\n")  # fmt: skip
    assert run("import", str(staged), "--redis-url", url).returncode == 0
    refused = run("export", "--ns", "*", "--redis-url", url)
    assert "namespace '*'" in one_line_error(refused)
    assert not refused.stdout
    both = run("export", "--all", "--ns", "default", "--redis-url", url)
    assert both.returncode == 1
    everything = run("export", "--all", "--redis-url", url)
    assert everything.returncode == 0, everything.stderr
    labelled = {json.loads(line)["namespace"] for line in everything.stdout.splitlines()}
    assert labelled == {"default", "other"}


def test_import_keeps_hit_counts_and_live_entries(
    start_service: Callable[..., CacheService], redis_server: EmbeddedRedis,
    redis_client: redis.Redis, tmp_path: Path,
) -> None:  # fmt: skip
    service = start_service()
    question = "How do I change my billing address?"
    service.http.post("/v1/entries", json={"entries": [{"prompt": question, "response": "A"}]})
    for _ in range(3):
        assert service.query(question).json()["status"] == "HIT"

    def hits(ns: str) -> int:
        for key in redis_client.scan_iter(match=f"dc:e:{{{ns}}}:*"):
            return int(redis_client.hget(key, "hits") or 0)
        return -1

    wait_until(lambda: hits("default") == 3, message="hits reach the entry")
    exported = tmp_path / "default.jsonl"
    assert run("export", "-o", str(exported), "--redis-url", redis_server.url).returncode == 0
    moved = run("import", str(exported), "--ns", "copy", "--redis-url", redis_server.url)
    assert moved.returncode == 0, moved.stderr
    assert hits("copy") == 3
    # merged back into the live namespace: the live entry and its counts stay
    service.query(question)
    wait_until(lambda: hits("default") == 4, message="the fourth hit")
    merged = run("import", str(exported), "--redis-url", redis_server.url)
    assert "1 already there, kept" in merged.stdout, merged.stdout
    assert hits("default") == 4


def test_bad_files_are_one_line_errors_naming_the_line(
    service: CacheService, redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    url = ("--url", service.url)
    not_utf8 = tmp_path / "latin1.jsonl"
    not_utf8.write_bytes(
        b'{"prompt": "a?", "response": "b"}\n{"prompt": "caf\xe9?", "response": "x"}\n'
    )
    assert "latin1.jsonl:2: not UTF-8" in one_line_error(run("warm", str(not_utf8), *url))
    huge = tmp_path / "huge.csv"
    huge.write_text("prompt,response\nfirst?,fine\nsecond?," + "x" * 10_000_000 + "\n")
    assert "huge.csv:3" in one_line_error(run("warm", str(huge), *url))
    bom = tmp_path / "bom.csv"
    bom.write_bytes("\ufeffprompt,response\nWhat is a byte-order mark?,A marker.\n".encode())
    warmed = run("warm", str(bom), *url)
    assert warmed.returncode == 0, warmed.stderr
    assert "stored 1 entries" in warmed.stdout

    exported = tmp_path / "one.jsonl"
    assert run("export", "--vectors", "-o", str(exported), "--redis-url", redis_server.url
               ).returncode == 0  # fmt: skip
    row = json.loads(exported.read_text().splitlines()[0])
    for case, change, named in [
        ("truncated vector", {"vector": row["vector"][:-8]}, "vector"),
        ("vector not base64", {"vector": "%%%"}, "vector"),
        ("ttl not a number", {"ttl": "abc"}, "ttl"),
        ("hits negative", {"hits": -1}, "hits"),
        ("prompt a number", {"prompt": 5}, "prompt"),
    ]:
        bad = tmp_path / "bad.jsonl"
        bad.write_text(exported.read_text() + json.dumps({**row, **change}) + "\n")
        line = one_line_error(run("import", str(bad), "--redis-url", redis_server.url))
        assert f"bad.jsonl:2: {named}" in line, (case, line)


EXPORTED = {"namespace": "default", "prompt": "What is a llama?", "response": "A camelid.",
            "scope": "shared", "created": 1_700_000_000.5}  # fmt: skip
# an entry the API refuses, the import too: (what it is, the change, what the message names)
REFUSED_BY_BOTH = [
    ("a 2,000,000-character response", {"response": "x" * 2_000_000}, "response has 2000000"),
    ("a whitespace prompt", {"prompt": " \t\u200b "}, "prompt is empty"),
    ("a 40k prompt", {"prompt": "why " * 10_000}, "prompt has 40000 characters"),
    ("a 5,000-character model", {"model": "m" * 5000}, "model: String should have at most"),
    ("an unknown field", {"colour": "blue"}, "colour: Extra inputs are not permitted"),
    ("created in 2100", {"created": 4102444800}, "created"),
]


def exported_file(path: Path, *lines: bytes) -> Path:
    """An export whose first line is good, then ``lines``."""
    path.write_bytes(b"\n".join([json.dumps(EXPORTED).encode(), *lines]) + b"\n")
    return path


def test_the_import_refuses_what_the_api_refuses(service: CacheService, tmp_path: Path) -> None:
    from service.cli.api_client import CliError
    from service.cli.transfer import read_export

    for case, change, named in REFUSED_BY_BOTH:
        entry = {"prompt": EXPORTED["prompt"], "response": EXPORTED["response"], **change}
        posted = service.http.post("/v1/entries", json={"entries": [entry]})
        assert posted.status_code == 422 and named in posted.json()["error"]["message"], case
        bad = exported_file(tmp_path / "bad.jsonl", json.dumps({**EXPORTED, **change}).encode())
        with pytest.raises(CliError) as refused:
            list(read_export(bad, service.runtime.settings))
        assert str(refused.value).startswith(f"{bad}:2: ") and named in str(refused.value), case
    assert service.query(EXPORTED["prompt"], cache="only").json()["status"] == "MISS"
    # lines that are not JSON at all say why
    for case, line, named in [
        ("a number past a double", b'{"prompt": "a?", "cost": 1e400}', "past the range"),
        ("NaN", b'{"prompt": "a?", "cost": NaN}', "NaN or Infinity at column 26"),
        ("-Infinity", b'{"prompt": "\xc3\xa9?", "cost": -Infinity}', "NaN or Infinity"),
        ("bad UTF-8", b'{"prompt": "caf\xe9?"}', "not UTF-8 text (byte 16"),
        ("cut short", b'{"prompt": "a?"', "not JSON: unexpected end of data"),
        ("a list", b'["a?"]', "not a JSON object"),
    ]:
        bad = exported_file(tmp_path / "bad.jsonl", line)
        with pytest.raises(CliError) as refused:
            list(read_export(bad, service.runtime.settings))
        assert str(refused.value).startswith(f"{bad}:2: ") and named in str(refused.value), case


def test_an_import_from_the_future_writes_nothing(
    redis_server: EmbeddedRedis, redis_client: redis.Redis, tmp_path: Path
) -> None:
    future = exported_file(tmp_path / "future.jsonl", json.dumps(
        {**EXPORTED, "prompt": "What is a vicuna?", "created": 4102444800}).encode())  # fmt: skip
    refused = one_line_error(run("import", str(future), "--redis-url", redis_server.url))
    assert "future.jsonl:2: created: Value error, 4102444800 is in the future" in refused
    assert not list(redis_client.scan_iter(match="dc:e:*"))


def test_the_cli_finds_the_embedded_redis_through_its_url_file(tmp_path: Path) -> None:
    data_dir = tmp_path / "redis"
    nothing = run("export", DYNACACHE_REDIS_DATA_DIR=str(data_dir))
    assert f"{data_dir}/url" in one_line_error(nothing)
    with EmbeddedRedis(data_dir, appendonly=False) as embedded:
        (data_dir / "url").write_text(embedded.url + "\n")  # as a running service writes it
        found = run("export", DYNACACHE_REDIS_DATA_DIR=str(data_dir))
        assert found.returncode == 0, found.stderr
        assert "exported 0 entries" in found.stderr


def test_stats_shows_the_audited_wrong_answer_rate() -> None:
    from service.cli.stats_tables import stats_table, wrong_cell

    assert wrong_cell(None) == "-" and wrong_cell({"audits": 0}) == "-"
    rate = {"estimate": 0.042, "low": 0.021, "high": 0.08, "audits": 120}
    assert wrong_cell(rate) == "4.2 [2–8] 120"
    numbers = {"entries": 3, "requests": 10, "hits": 6, "misses": 4, "hit_rate": 0.6,
               "cost_saved_usd": 0.01, "latency_ms": {}, "wrong_answer_rate": rate}  # fmt: skip
    table = stats_table({**numbers, "namespaces": {"acme": numbers}})
    assert table.columns[-1].header.startswith("wrong %")
