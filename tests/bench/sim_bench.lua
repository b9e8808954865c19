-- wrk script: valid POST /v1.0/calls bodies (an OTP flow), one random US destination each.
-- The access key comes from the URL (?accesskey=...), as the real API wants it.
local counter = 0

request = function()
  counter = counter + 1
  local dest = string.format("+1555%07d", math.random(0, 9999999))
  local code = string.format("%06d", math.random(0, 999999))
  local spaced = code:gsub("(%d)", "%1 "):sub(1, -2)
  local body = '{"source":{"type":"tel","target":"+15550100000"},' ..
    '"destinations":[{"type":"tel","target":"' .. dest .. '"}],' ..
    '"actions":[{"type":"talk","option":{"text":"Your code is ' .. spaced .. '.","language":"en-US"}},' ..
    '{"type":"sleep","option":{"duration":500}},' ..
    '{"type":"talk","option":{"text":"Again: ' .. spaced .. '.","language":"en-US"}},' ..
    '{"type":"hangup"}]}'
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body)
end

local non200 = 0
response = function(status, headers, body)
  if status ~= 200 then non200 = non200 + 1 end
end

done = function(summary, latency, requests)
  io.write(string.format("calls/s: %.0f\n", summary.requests / (summary.duration / 1e6)))
  io.write(string.format("latency p50 %.2f ms, p99 %.2f ms\n", latency:percentile(50) / 1000,
                         latency:percentile(99) / 1000))
end
