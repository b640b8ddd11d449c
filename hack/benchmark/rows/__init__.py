"""The rows of the benchmark, one function each, each on a namespace and an operator of its own.

- `issue`: a) the floor, b) time to Ready, c) bursts, j) a burst spread over
  namespaces, k) shared tokens: how fast new EgainTokens get their tokens;
- `standing`: d) the steady state, e) a restart, g) unrelated Secrets: what
  an operator holding valid tokens costs;
- `refresh`: f) a storm of tokens expiring together, h) requests per
  token-hour, l) the refreshes a replica sustains: keeping tokens fresh.

i) per-event work is synthetic, in `benchmark.events`. Times are Unix times
(`time.time()`) wherever they are compared with the audit log, the
emulator's request log or watch events; durations of the benchmark's own
calls use `time.perf_counter()`.
"""
