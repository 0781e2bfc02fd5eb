-- wrk script for scripts/bench.sh: replays requests signed ahead of the run by
-- `ownid-bench requests` (one a line: path TAB ownid-timestamp TAB ownid-signature TAB body).
--
--   wrk -t1 -c32 -d5s -s bench/wrk.lua http://127.0.0.1:PORT -- requests.tsv [once:THREADS]
--
-- Each thread loads the file, formats every request once, and cycles through them from its own
-- offset. With `once:THREADS` (THREADS = wrk's -t), each thread instead sends its own slice of the
-- file, each request once, for a server whose replay guard refuses a signature seen before; a
-- thread that runs out repeats its last request, which the guard refuses (an error: the file was
-- too short for the run). Every response with a status of 400 or more counts as an error (wrk's own count; the
-- server answers these endpoints with 2xx or 4xx/5xx, never 1xx or 3xx), as do wrk's socket
-- errors (connect, read, write, timeout). There is no response() callback: with one, wrk hands
-- every response's headers and body to Lua, which costs the load generator -- and so the server
-- it shares the cores with -- a good part of a core. done() prints one line:
--   BENCH {"requests":..,"seconds":..,"rps":..,"p50_ms":..,"p99_ms":..,"errors":..,...}

local threads = {}
local counter = 1

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

local requests = {}
local last = nil -- once mode: the end of this thread's slice

function init(args)
  local file = args[1]
  if file == nil then
    error("usage: wrk ... -s bench/wrk.lua URL -- REQUESTS_FILE")
  end
  local f = assert(io.open(file, "r"))
  for line in f:lines() do
    local path, timestamp, signature, body = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
    if path then
      requests[#requests + 1] = wrk.format("POST", path, {
        ["Content-Type"] = "application/json",
        ["ownid-timestamp"] = timestamp,
        ["ownid-signature"] = signature,
      }, body)
    end
  end
  f:close()
  if #requests == 0 then
    error("no requests in " .. file)
  end
  local once = args[2] and args[2]:match("^once:(%d+)$")
  if once then
    local n, t, i = #requests, tonumber(once), (id or 0)
    counter = math.floor(i * n / t) + 1
    last = math.floor((i + 1) * n / t)
    if last < counter then
      error("fewer requests than threads in " .. file)
    end
  else
    -- Threads start at different places in the file.
    counter = ((id or 0) * 7919) % #requests + 1
  end
end

function request()
  local r = requests[counter]
  if last then
    if counter < last then
      counter = counter + 1
    end
    return r
  end
  counter = counter + 1
  if counter > #requests then
    counter = 1
  end
  return r
end

function done(summary, latency, requests)
  local e = summary.errors
  local bad = e.status
  local socket = e.connect + e.read + e.write + e.timeout
  local seconds = summary.duration / 1e6
  io.write(string.format(
    'BENCH {"requests":%d,"seconds":%.3f,"rps":%.1f,"p50_ms":%.3f,"p99_ms":%.3f,' ..
    '"max_ms":%.3f,"errors":%d,"status_400_plus":%d,"socket_errors":%d}\n',
    summary.requests, seconds, summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    bad + socket, bad, socket))
end
