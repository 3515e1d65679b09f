-- wrk script: POST /v1/ingest/generic with a ~800-byte generic alert carrying 4 indicators
-- (src_ip, dest_ip, domain, sha256) and a title unique per request (so nothing is
-- deduplicated). Needs env API_KEY. Prints one CSV line at the end:
--   CSV,req_per_s,p50_ms,p99_ms,mean_ms,non_2xx,socket_errors,requests
local counter = 0
local thread_id = 0
local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  thread_id = tid or 0
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. assert(os.getenv("API_KEY"), "API_KEY is not set")
end

local template = [[{"title":"Suspicious PowerShell execution with encoded command on host WS-%d-%d","severity":"high",]] ..
  [["occurred_at":"2026-11-22T10:15:32Z","tags":["edr","powershell","lateral-movement"],]] ..
  [["src_ip":"45.%d.%d.%d","dest_ip":"10.20.%d.%d","domain":"c2-%d.example-bad.net",]] ..
  [["sha256":"%032x%032x",]] ..
  [["description":"EDR sensor observed powershell.exe launched by winword.exe with a base64-encoded command line that downloads a second stage from a remote host and writes it to the user's temp directory.",]] ..
  [["rule_name":"PowerShell Encoded Command From Office","host":"WS-0142"}]]

function request()
  counter = counter + 1
  local n = counter
  local body = string.format(template, thread_id, n,
    math.floor(n / 65536) % 256, math.floor(n / 256) % 256, n % 256 == 0 and 1 or n % 256,
    math.floor(n / 256) % 256, n % 256, n % 997, thread_id, n)
  return wrk.format(nil, "/v1/ingest/generic", nil, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("CSV,%.1f,%.3f,%.3f,%.3f,%d,%d,%d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.mean / 1000,
    e.status, e.connect + e.read + e.write + e.timeout, summary.requests))
end
