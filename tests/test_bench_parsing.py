"""What the bench scripts read from the tools they run: wrk's output, py-spy's stacks."""

from pathlib import Path

from bench.profile_hits import summarise
from bench.throughput import wrk_figures

WRK_OUTPUT = """Running 10s test @ http://127.0.0.1:8000
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   171.20ms   12.10ms 250.00ms   99.50%
    Req/Sec   370.50     20.12   450.00     68.50%
  Latency Distribution
     50%  170.12ms
     75%  175.00ms
     90%  180.00ms
     99%    1.02s
  3705 requests in 10.00s, 2.10MB read
  Non-2xx or 3xx responses: 3
Requests/sec:    370.48
Transfer/sec:    215.00KB
"""


def test_the_percentiles_come_from_the_distribution_not_a_stdev_column_ending_in_50_or_99() -> None:
    assert wrk_figures(WRK_OUTPUT) == {
        "requests_per_s": 370.48,
        "p50_ms": 170.12,
        "p99_ms": 1020.0,
        "non_2xx": 3,
    }


def test_a_garbled_py_spy_stack_is_counted_aside_and_the_rest_still_summed(tmp_path: Path) -> None:
    raw = tmp_path / "raw.txt"
    raw.write_text(
        "process 1:MainThread;run (uvicorn/server.py:1) 30\n"
        "process 1:MainThread;get (redis/asyncio/client.py:2) 10\n"
        "process 1:embed-lane-0;encode (index/embedding/worker.py:3) 50\n"
        "process 1:MainThread;odd (x\u2028y\x0cz.py:4) 5\n"  # splitlines would cut it
        "process 1:MainThread;garbled (\u3436\u3036\n"  # no count
    )
    summary = summarise(raw, seconds=1)
    assert summary["unreadable_stacks"] == 1
    assert summary["busy_share_of_a_core"] == {"event loop": 0.45, "embedding lanes": 0.5}
    assert summary["event_loop_samples"]["uvicorn (HTTP)"] == round(30 / 45, 3)
    assert summary["event_loop_samples"]["redis client"] == round(10 / 45, 3)


def test_a_strict_reading_counts_read_right_hits_right_and_unsure_ones_as_a_range() -> None:
    from bench.adjudicate import pair_key, strict_figures

    hits = [
        {"key": "a", "right_by_labels": True},
        {"key": "b", "right_by_labels": False},
        {"key": "c", "right_by_labels": False},
        {"key": "d", "right_by_labels": False},
        {"key": "e", "right_by_labels": False},
    ]
    verdicts = {"b": "right", "c": "unsure", "d": "wrong", "a": "wrong"}  # labels-right: not read
    figures = strict_figures({"answerable": 10, "hits": hits}, verdicts)
    assert figures["precision_by_labels"] == 0.2
    assert figures["strict_precision"] == [0.4, 0.6]
    assert (figures["read_right"], figures["read_unsure"], figures["unread"]) == (1, 1, 1)
    # one pair read once: the key ignores case and spacing, and the order of the two matters
    assert pair_key("How do I  cook rice?", "What is rice?") == pair_key(
        "how do i cook rice?", "what is rice?"
    )
    assert pair_key("a?", "b?") != pair_key("b?", "a?")
