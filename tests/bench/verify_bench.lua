-- POST /v1/verify for random unknown request ids: the path every rejected guess takes
-- (one conditional UPDATE, the keyed hash, the answer).
local api_key = os.getenv("OTP_BENCH_API_KEY")
math.randomseed(os.time())
local function uuid()
  return string.format("%08x-%04x-4%03x-a%03x-%012x", math.random(0, 0xffffffff),
    math.random(0, 0xffff), math.random(0, 0xfff), math.random(0, 0xfff), math.random(0, 0xffffffffffff))
end
request = function()
  local body = string.format('{"request_id":"%s","code":"123456"}', uuid())
  return wrk.format("POST", "/v1/verify", {["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. api_key}, body)
end
