-- wrk request for bench/e2e/run.sh: POST $E2E_PATH with body $E2E_BODY and extra headers
-- $E2E_HEADERS ("Name: value" pairs separated by '|'), the same variables e2e_client reads.
wrk.method = "POST"
wrk.path = os.getenv("E2E_PATH") or "/api/generate"
wrk.body = os.getenv("E2E_BODY") or '{"model":"llama3.2","prompt":"hi","stream":false}'
wrk.headers["Content-Type"] = "application/json"
for pair in string.gmatch(os.getenv("E2E_HEADERS") or "", "[^|]+") do
  local name, value = pair:match("^%s*([^:]+):%s*(.-)%s*$")
  if name then wrk.headers[name] = value end
end
