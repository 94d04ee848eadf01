-- wrk script for bench/service_recommend.py: POST /recommend with inline meta-features that differ in
-- every request (no two requests share an answer, so each one is a full ranking and an insert).
-- Environment: BENCH_API_KEY (the key), BENCH_OFFSET (first n_train, so runs do not repeat each
-- other's questions). done() prints one JSON line that the Python side reads.

local threads = {}
local counter = 0
local base = 0

function setup(thread)
  thread:set("thread_index", #threads)
  table.insert(threads, thread)
end

function init(args)
  base = tonumber(os.getenv("BENCH_OFFSET") or "0") + thread_index * 1000000
  wrk.method = "POST"
  wrk.path = "/recommend"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["X-API-Key"] = os.getenv("BENCH_API_KEY") or ""
end

function request()
  counter = counter + 1
  local body = string.format(
    '{"meta_features": {"n_train": %d.0, "is_pair": 0.0, "n_labels": 2.0}, '
      .. '"task_kind": "classification", "k": 5}',
    100 + base + counter
  )
  return wrk.format(nil, nil, nil, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "errors": %d, "p50_us": %d, "p99_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(99), latency.mean
  ))
end
