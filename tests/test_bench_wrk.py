"""bench/throughput.py reads wrk's output: the percentile lines, not the columns beside them."""

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
