-- Prepended by benches/suite.rs to every wrk script of the suite. It numbers the threads
-- (`thread_id`, 1-based, set by setup() before the thread's init() runs), counts the response
-- statuses of each thread in its `statuses` table, and in done() prints one machine-readable line,
-- `BENCHJSON {...}`, with the request count, the run's duration, latency percentiles (µs, from
-- wrk's own histogram, as `--latency` shows them) and the status counts of every thread.
-- A scenario script may define init(args), request() and response(); a response() of its own
-- must call count_status(status).

local threads = {}
statuses = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_id", #threads)
end

function count_status(status)
  statuses[status] = (statuses[status] or 0) + 1
end

function response(status, headers, body)
  count_status(status)
end

-- The non-empty lines of a file (tokens handed over by the suite through $BENCH_DATA).
function read_lines(path)
  local lines = {}
  for line in io.lines(path) do
    if line ~= "" then
      table.insert(lines, line)
    end
  end
  return lines
end

function done(summary, latency, requests)
  local counts = {}
  for _, thread in ipairs(threads) do
    local seen = thread:get("statuses")
    if type(seen) == "table" then
      for code, n in pairs(seen) do
        counts[code] = (counts[code] or 0) + n
      end
    end
  end
  local parts = {}
  for code, n in pairs(counts) do
    table.insert(parts, string.format('"%d":%.0f', code, n))
  end
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests":%.0f,"duration_us":%.0f,"bytes":%.0f,"mean_us":%.1f,' ..
    '"p50_us":%.0f,"p90_us":%.0f,"p99_us":%.0f,"max_us":%.0f,' ..
    '"errors":{"connect":%.0f,"read":%.0f,"write":%.0f,"status":%.0f,"timeout":%.0f},' ..
    '"statuses":{%s}}\n',
    summary.requests, summary.duration, summary.bytes, latency.mean,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout, table.concat(parts, ",")))
end
