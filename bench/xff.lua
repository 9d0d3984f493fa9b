-- bench/xff.lua: the wrk script of the rate-limit memory run (bench/run.sh, SCENARIO=ratelimit).
--
-- Every request carries `X-Forwarded-For: <an IPv4 address not sent before>`: a counter from
-- 10.0.0.0, written as a.b.c.d (10.0.0.0, 10.0.0.1, ..., 10.0.1.0, ...). Behind a gateway with
-- `server.trusted_proxies: [127.0.0.1/32]`, each request is a caller it has never seen.
--
--     wrk -t1 -c32 -d5s -s bench/xff.lua http://127.0.0.1:PORT/ -- OFFSET
--
-- OFFSET (default 0) skips the addresses sent by earlier runs. Use one thread (-t1): each wrk
-- thread has its own counter, so two threads would send the same addresses. At the end it
-- prints one line for the caller to parse:
--
--     xff: <n> addresses sent, <first> to <last>
--
-- n counts every request written, including those still in flight when the run ended (wrk
-- does not count those in "requests in"), so OFFSET + n is where the next run must start.

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

local FIRST = 10 * 16777216   -- 10.0.0.0
local headers = {}

local function ipv4(n)
   n = FIRST + n
   return string.format("%d.%d.%d.%d", math.floor(n / 16777216) % 256,
      math.floor(n / 65536) % 256, math.floor(n / 256) % 256, n % 256)
end

-- Globals of the thread's Lua state, read by done() through thread:get().
offset = 0
sent = 0

function init(args)
   offset = tonumber(args[1]) or 0
end

function request()
   headers["X-Forwarded-For"] = ipv4(offset + sent)
   sent = sent + 1
   return wrk.format(nil, nil, headers)
end

function done(summary, latency, requests)
   for _, thread in ipairs(threads) do
      local first, n = thread:get("offset"), thread:get("sent")
      io.write(string.format("xff: %d addresses sent, %s to %s\n", n, ipv4(first),
         ipv4(first + math.max(n, 1) - 1)))
   end
end
