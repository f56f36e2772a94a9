"""Harnesses for the tests and the benchmarks: replicas as real processes, a Redis Cluster
of embedded servers, nginx as the load balancer. Offline code: the runtime (``service``,
``index``, ``dyna_cache``) never imports it, and the runtime image does not hold it."""
