-- bench/hs256.lua: the wrk script of the token memory run (bench/run.sh, SCENARIO=tokens).
--
-- Every request carries `Authorization: Bearer <an HS256 token not sent before>`, minted here
-- for that request: token n (from 0) has sub bench-user-NNNNNNN (n in 7 digits),
-- email bench-user-NNNNNNN@bench.test, roles ["user"], plan "pro", iss ISSUER, aud AUDIENCE and
-- exp EXP, signed with HMAC-SHA256 under the secret in the environment variable BENCH_SECRET
-- (its bytes, as Tollgate's `secret:` takes them). wrk's LuaJIT has no HMAC: SHA-256 is written
-- below with LuaJIT's `bit` module (about 4 compressions a token; the part of the token that
-- never changes is hashed and encoded once, at init).
--
--     BENCH_SECRET=... wrk -t1 -c32 -d5s -s bench/hs256.lua http://127.0.0.1:PORT/ -- \
--         OFFSET EXP ISSUER AUDIENCE
--
-- OFFSET (default 0) skips the tokens sent by earlier runs. Use one thread (-t1): each wrk
-- thread has its own counter, so two threads would send the same tokens. At init the script
-- checks its HMAC-SHA256 against RFC 4231 (test case 2) and fails if it differs. At the end it
-- prints one line for the caller to parse:
--
--     hs256: <n> tokens sent, bench-user-<first> to bench-user-<last>
--
-- n counts every request written, including those still in flight when the run ended (wrk
-- does not count those in "requests in"), so OFFSET + n is where the next run must start.
-- `wrk` ... -- mint N ...: prints token N (and nothing else) instead, for a check by hand.

local bit = require("bit")
local band, bor, bxor, bnot = bit.band, bit.bor, bit.bxor, bit.bnot
local ror, rshift, lshift, tobit = bit.ror, bit.rshift, bit.lshift, bit.tobit
local byte, char, sub, format = string.byte, string.char, string.sub, string.format
local concat = table.concat

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

-- SHA-256 (FIPS 180-4) ------------------------------------------------------------------------

local K = {
   0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
   0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
   0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
   0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
   0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
   0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
   0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
   0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
}
for i = 1, 64 do K[i] = tobit(K[i]) end
local H0 = { 0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
   0x5be0cd19 }
for i = 1, 8 do H0[i] = tobit(H0[i]) end

local W = {}

-- compress(h, s, at): runs the 64-byte block of string s starting at byte `at` into the state h
-- (8 words, updated in place).
local function compress(h, s, at)
   for j = 0, 15 do
      local b1, b2, b3, b4 = byte(s, at + 4 * j, at + 4 * j + 3)
      W[j] = bor(lshift(b1, 24), lshift(b2, 16), lshift(b3, 8), b4)
   end
   for j = 16, 63 do
      local w15, w2 = W[j - 15], W[j - 2]
      local s0 = bxor(ror(w15, 7), ror(w15, 18), rshift(w15, 3))
      local s1 = bxor(ror(w2, 17), ror(w2, 19), rshift(w2, 10))
      W[j] = tobit(W[j - 16] + s0 + W[j - 7] + s1)
   end
   local a, b, c, d, e, f, g, hh = h[1], h[2], h[3], h[4], h[5], h[6], h[7], h[8]
   for j = 0, 63 do
      local S1 = bxor(ror(e, 6), ror(e, 11), ror(e, 25))
      local ch = bxor(band(e, f), band(bnot(e), g))
      local t1 = hh + S1 + ch + K[j + 1] + W[j]
      local S0 = bxor(ror(a, 2), ror(a, 13), ror(a, 22))
      local maj = bxor(band(a, b), band(a, c), band(b, c))
      hh, g, f, e, d, c, b, a = g, f, e, tobit(d + t1), c, b, a, tobit(t1 + S0 + maj)
   end
   h[1], h[2], h[3], h[4] = tobit(h[1] + a), tobit(h[2] + b), tobit(h[3] + c), tobit(h[4] + d)
   h[5], h[6], h[7], h[8] = tobit(h[5] + e), tobit(h[6] + f), tobit(h[7] + g), tobit(h[8] + hh)
end

-- The 8 words of h as 32 bytes.
local function digest_bytes(h)
   local out = {}
   for i = 1, 8 do
      local w = h[i]
      out[i] = char(band(rshift(w, 24), 255), band(rshift(w, 16), 255), band(rshift(w, 8), 255),
         band(w, 255))
   end
   return concat(out)
end

-- finish(h, prefix_len, s): hashes the rest s of a message whose first prefix_len bytes (a
-- multiple of 64) are already in the state h (a copy is taken), with the padding; returns the
-- digest's 32 bytes.
local function finish(h, prefix_len, s)
   local st = { h[1], h[2], h[3], h[4], h[5], h[6], h[7], h[8] }
   local bits = (prefix_len + #s) * 8
   local pad = 64 - (#s + 9) % 64
   if pad == 64 then pad = 0 end
   -- The length as 8 bytes, big endian (bits < 2^32 here).
   s = s .. "\128" .. string.rep("\0", pad + 4) .. char(band(rshift(bits, 24), 255),
      band(rshift(bits, 16), 255), band(rshift(bits, 8), 255), band(bits, 255))
   for at = 1, #s, 64 do compress(st, s, at) end
   return digest_bytes(st)
end

-- The HMAC-SHA256 of `key` as two states: after (key xor ipad) and after (key xor opad).
local function hmac_states(key)
   if #key > 64 then key = finish(H0, 0, key) end
   key = key .. string.rep("\0", 64 - #key)
   local ipad, opad = {}, {}
   for i = 1, 64 do
      local k = byte(key, i)
      ipad[i], opad[i] = char(bxor(k, 0x36)), char(bxor(k, 0x5c))
   end
   local inner, outer = { unpack(H0) }, { unpack(H0) }
   compress(inner, concat(ipad), 1)
   compress(outer, concat(opad), 1)
   return inner, outer
end

-- hmac(inner, outer, done, msg): HMAC-SHA256 of a message of which the first `done` bytes (a
-- multiple of 64) are already in `inner` and the rest is msg.
local function hmac(inner, outer, done, msg)
   return finish(outer, 64, finish(inner, 64 + done, msg))
end

-- base64url without padding ---------------------------------------------------------------------

local B64 = {}
do
   local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
   for i = 0, 63 do B64[i] = sub(alphabet, i + 1, i + 1) end
end

local function b64url(s)
   local out, n = {}, 0
   for i = 1, #s - 2, 3 do
      local a, b, c = byte(s, i, i + 2)
      local v = a * 65536 + b * 256 + c
      n = n + 1
      out[n] = B64[rshift(v, 18)] .. B64[band(rshift(v, 12), 63)] .. B64[band(rshift(v, 6), 63)]
         .. B64[band(v, 63)]
   end
   local rest = #s % 3
   if rest == 1 then
      local a = byte(s, #s)
      n = n + 1
      out[n] = B64[rshift(a, 2)] .. B64[band(a * 16, 63)]
   elseif rest == 2 then
      local a, b = byte(s, #s - 1, #s)
      local v = a * 256 + b
      n = n + 1
      out[n] = B64[rshift(v, 10)] .. B64[band(rshift(v, 4), 63)] .. B64[band(v * 4, 63)]
   end
   return concat(out)
end

local function hex(s)
   return (s:gsub(".", function(c) return format("%02x", byte(c)) end))
end

-- The tokens -------------------------------------------------------------------------------------

local HEADER = b64url('{"alg":"HS256","typ":"JWT"}')
local inner, outer           -- the secret's HMAC states
local fixed, fixed_done = "", 0   -- the token's constant start (header, ".", claims), encoded
local rest_start = ""        -- what of `fixed` is not yet hashed into `inner`
local headers = {}

-- Globals of the thread's Lua state, read by done() through thread:get().
offset = 0
sent = 0

local function subject(n)
   return format("bench-user-%07d", n)
end

-- token(n): token n. The claims start with a constant part whose length is a multiple of 3, so
-- that its base64url never changes and the variable tail is encoded on its own.
local function token(n)
   local s = subject(n)
   local payload_tail = b64url(format('"sub":"%s","email":"%s@bench.test"}', s, s))
   local signing_rest = rest_start .. payload_tail
   return fixed .. payload_tail .. "." .. b64url(hmac(inner, outer, fixed_done, signing_rest))
end

local function setup_tokens(exp, issuer, audience)
   local secret = os.getenv("BENCH_SECRET")
   if secret == nil or secret == "" then error("hs256.lua: set BENCH_SECRET to the HMAC secret") end
   local claims = format('{"iss":"%s","aud":"%s","exp":%d,"roles":["user"],"plan":"pro",',
      issuer, audience, exp)
   -- Pad the constant part with spaces (JSON whitespace) to a multiple of 3 bytes.
   claims = claims .. string.rep(" ", (3 - #claims % 3) % 3)
   fixed = HEADER .. "." .. b64url(claims)
   inner, outer = hmac_states(secret)
   -- Hash the whole 64-byte blocks of the constant part once.
   fixed_done = #fixed - #fixed % 64
   for at = 1, fixed_done, 64 do compress(inner, fixed, at) end
   rest_start = sub(fixed, fixed_done + 1)
end

local function self_test()
   local i, o = hmac_states("Jefe")
   local got = hex(hmac(i, o, 0, "what do ya want for nothing?"))
   local want = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
   if got ~= want then error("hs256.lua: HMAC-SHA256 self-test failed: " .. got) end
   -- A key longer than a block, and a message over two blocks (RFC 4231 test case 7).
   i, o = hmac_states(string.rep("\170", 131))
   got = hex(hmac(i, o, 0, "This is a test using a larger than block-size key and a larger than "
      .. "block-size data. The key needs to be hashed before being used by the HMAC algorithm."))
   want = "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"
   if got ~= want then error("hs256.lua: HMAC-SHA256 self-test (long key) failed: " .. got) end
end

function init(args)
   self_test()
   if args[1] == "mint" then
      setup_tokens(tonumber(args[3]) or error("hs256.lua: mint N EXP ISSUER AUDIENCE"),
         args[4], args[5])
      io.write(token(tonumber(args[2])), "\n")
      os.exit(0)
   end
   offset = tonumber(args[1]) or 0
   setup_tokens(tonumber(args[2]) or error("hs256.lua: give OFFSET EXP ISSUER AUDIENCE after --"),
      args[3] or error("hs256.lua: no ISSUER"), args[4] or error("hs256.lua: no AUDIENCE"))
end

function request()
   headers["Authorization"] = "Bearer " .. token(offset + sent)
   sent = sent + 1
   return wrk.format(nil, nil, headers)
end

function done(summary, latency, requests)
   for _, thread in ipairs(threads) do
      local first, n = thread:get("offset"), thread:get("sent")
      io.write(format("hs256: %d tokens sent, %s to %s\n", n, subject(first),
         subject(first + math.max(n, 1) - 1)))
   end
end
