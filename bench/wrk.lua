-- The wrk script of bench/run.sh.
--
-- Environment:
--   TOKEN_FILE  rotate through the tokens in this file (one per line), one
--               token per request, as "Authorization: Bearer <token>"; the
--               file is read once per wrk thread. Without it wrk sends its
--               fixed request (-H "Authorization: Bearer ..." on the command
--               line), prepared once and never touched by Lua.
--   STOP_AFTER  with TOKEN_FILE: stop once this many responses came back,
--               so that each token is sent once (every request a cache
--               miss). The rate is then computed over the time until the
--               stop, not wrk's -d.
--   START_INDEX with TOKEN_FILE: skip this many tokens first (0 by default).
--   WRK_THREADS the -t given to wrk (1 by default): with several threads
--               each takes its own slice of the file and of STOP_AFTER.
--
-- done() prints one line that run.sh parses:
--   RESULT requests=N duration_us=N p50_us=N p99_us=N errors=N non2xx=N

local token_file = os.getenv("TOKEN_FILE")
local nthreads = tonumber(os.getenv("WRK_THREADS") or "1") or 1
local stop_after = math.ceil((tonumber(os.getenv("STOP_AFTER") or "0") or 0) / nthreads)
thread_number = 0 -- set by setup() in each thread

-- A monotonic clock in µs (wrk's LuaJIT has the FFI).
local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
  int clock_gettime(int clock_id, bench_timespec *tp);
]]
local timespec = ffi.new("bench_timespec")
local function now_us()
  ffi.C.clock_gettime(1, timespec) -- CLOCK_MONOTONIC
  return tonumber(timespec.tv_sec) * 1000000 + math.floor(tonumber(timespec.tv_nsec) / 1000)
end

if token_file and token_file ~= "" then
  local tokens, count, next_index = {}, 0, 0
  local headers = {}
  started_us = nil -- read by done() through thread:get
  elapsed_us = nil

  function init(args)
    for line in io.lines(token_file) do
      if #line > 0 then
        count = count + 1
        tokens[count] = "Bearer " .. line
      end
    end
    assert(count > 0, "no tokens in " .. token_file)
    local start = tonumber(os.getenv("START_INDEX") or "0") or 0
    next_index = (start + thread_number * math.floor(count / nthreads)) % count
    for name, value in pairs(wrk.headers) do
      headers[name] = value
    end
  end

  function request()
    started_us = started_us or now_us()
    next_index = next_index % count + 1
    headers["Authorization"] = tokens[next_index]
    return wrk.format(nil, nil, headers)
  end

  if stop_after > 0 then
    local responses = 0
    function response(status, headers, body)
      responses = responses + 1
      if responses == stop_after then
        elapsed_us = now_us() - started_us
        wrk.thread:stop()
      end
    end
  end
end

local threads = {}
function setup(thread)
  thread:set("thread_number", #threads)
  table.insert(threads, thread)
end

function done(summary, latency, requests)
  -- Threads that stopped early (STOP_AFTER) ran for their own time, not -d.
  local duration = 0
  for _, thread in ipairs(threads) do
    local elapsed = thread:get("elapsed_us")
    if not elapsed then
      duration = summary.duration
      break
    end
    duration = math.max(duration, elapsed)
  end
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d errors=%d non2xx=%d\n",
    summary.requests, duration,
    latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout, e.status))
end
