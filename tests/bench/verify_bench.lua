-- POST /v1/verify for make bench. OTP_BENCH_MODE:
--   unknown  random request ids that exist nowhere;
--   wrong    a random challenge from OTP_BENCH_IDS ("request_id code" lines), a wrong code;
--   right    each challenge of OTP_BENCH_IDS once, its right code (threads take turns);
--   locked   a random challenge of OTP_BENCH_IDS with its right code.
-- OTP_BENCH_RATE_MS > 0: each connection waits that long between requests (a steady rate).
local api_key = os.getenv("OTP_BENCH_API_KEY")
local mode = os.getenv("OTP_BENCH_MODE") or "unknown"
local ids_path = os.getenv("OTP_BENCH_IDS")
local rate_ms = tonumber(os.getenv("OTP_BENCH_RATE_MS") or "0")
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("thread_no", counter)
end

local ids, codes, next_i, step = {}, {}, 1, 1

function init(args)
  math.randomseed(os.time() * 1000 + (thread_no or 0))
  if ids_path then
    for line in io.lines(ids_path) do
      local rid, code = line:match("(%S+) (%d+)")
      ids[#ids + 1] = rid
      codes[#codes + 1] = code
    end
  end
  next_i = thread_no or 1
  step = 2
end

local function uuid()
  return string.format("%08x-%04x-4%03x-a%03x-%012x", math.random(0, 0xffffffff),
    math.random(0, 0xffff), math.random(0, 0xfff), math.random(0, 0xfff),
    math.random(0, 0xffffffffffff))
end

local function wrong(code)
  local last = (tonumber(code:sub(-1)) + 1) % 10
  return code:sub(1, -2) .. tostring(last)
end

request = function()
  local rid, code
  if mode == "unknown" then
    rid, code = uuid(), "123456"
  elseif mode == "right" then
    local i = next_i
    next_i = next_i + step
    if i > #ids then i = ((i - 1) % #ids) + 1 end
    rid, code = ids[i], codes[i]
  else
    local i = math.random(1, #ids)
    rid, code = ids[i], codes[i]
    if mode == "wrong" then code = wrong(code) end
  end
  local body = string.format('{"request_id":"%s","code":"%s"}', rid, code)
  return wrk.format("POST", "/v1/verify", {["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. api_key}, body)
end

if rate_ms > 0 then
  delay = function() return rate_ms end
end
