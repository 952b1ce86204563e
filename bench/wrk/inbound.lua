-- wrk script for POST /inbound: texts from many distinct numbers (a new conversation each), as the SMS
-- gateway sends them. The integration token comes from $BENCH_TOKEN (scripts/bench: `local token`).
-- Numbers are +1 201 NXX-XXXX, unique per thread and request: +1201 2000001, 2000002, ... (thread 0),
-- +1201 5000001, ... (thread 1).

local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  token = os.getenv("BENCH_TOKEN") or ""
  counter = 0
end

function request()
  counter = counter + 1
  local n = 2000000 + id * 3000000 + counter
  local body = string.format('{"channel":"sms","from":"+1201%07d","body":"Is Rex ready for pickup?"}', n)
  return wrk.format("POST", "/inbound", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. token,
  }, body)
end
