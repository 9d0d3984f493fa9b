-- bench/tokens.lua: the wrk script of the token-rotation runs (bench/run.sh, SCENARIO=full).
--
-- Reads a file of bearer tokens, one a line (bench/mint.py --tokens), when the thread starts,
-- and sends them round robin: request i carries `Authorization: Bearer <token i mod N>`, from
-- the first token on. Each request is formatted once, at init, so the per-request work in wrk
-- is the same as with a fixed -H header.
--
--     wrk -t1 -c32 -d5s -s bench/tokens.lua http://127.0.0.1:PORT/ -- TOKENS_FILE
--
-- Use one thread (-t1): each wrk thread keeps its own position. At the end it prints one line
-- for the caller to parse:
--
--     tokens: <n> requests sent, <N> distinct tokens
--
-- n counts every request written, including those still in flight when the run ended (wrk
-- does not count those in "requests in").

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

local requests = {}

-- Globals of the thread's Lua state, read by done() through thread:get().
count = 0
sent = 0

function init(args)
   local path = args[1] or error("tokens.lua: give the tokens file after --")
   local file = io.open(path, "r") or error("tokens.lua: cannot open " .. path)
   for line in file:lines() do
      if line ~= "" then
         requests[#requests + 1] = wrk.format(nil, nil, { Authorization = "Bearer " .. line })
      end
   end
   file:close()
   count = #requests
   if count == 0 then error("tokens.lua: no tokens in " .. path) end
end

function request()
   sent = sent + 1
   return requests[(sent - 1) % count + 1]
end

function done()
   for _, thread in ipairs(threads) do
      io.write(string.format("tokens: %d requests sent, %d distinct tokens\n",
         thread:get("sent"), thread:get("count")))
   end
end
