# shellcheck shell=bash
# DynamoDB Local and moto_server for scripts/test: start on free loopback ports, wait until they answer, stop.
# Sourced, not run. Needs VENV, DDB_JAR, DDB_LIB (tools.sh). Sets DDB_PORT, MOTO_PORT, SERVICE_LOGS.

SERVICE_PIDS=()
SERVICES_READY=0
SERVICE_WAIT_SECONDS=${SERVICE_WAIT_SECONDS:-30}

# N distinct free TCP ports on 127.0.0.1, space-separated.
free_ports() {
  "$VENV/bin/python" - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(*(s.getsockname()[1] for s in socks))
PY
}

start_services() {
  need java "install a Java runtime >= 11 for DynamoDB Local (Debian: apt-get install openjdk-17-jre-headless)"
  SERVICE_LOGS=$(mktemp -d "${TMPDIR:-/tmp}/vetchat-test.XXXXXX")
  local ports
  ports=$(free_ports 2) || die "could not pick free ports"
  read -r DDB_PORT MOTO_PORT <<<"$ports"

  # exec: $! is the server process itself (background jobs of a script ignore SIGINT; on_exit stops them).
  (cd "$SERVICE_LOGS" && exec java -Djava.library.path="$DDB_LIB/DynamoDBLocal_lib" -jar "$DDB_JAR" \
    -inMemory -sharedDb -disableTelemetry -port "$DDB_PORT") </dev/null >"$SERVICE_LOGS/dynamodb.log" 2>&1 &
  DDB_PID=$!
  SERVICE_PIDS+=("$DDB_PID")
  "$VENV/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT" </dev/null >"$SERVICE_LOGS/moto.log" 2>&1 &
  MOTO_PID=$!
  SERVICE_PIDS+=("$MOTO_PID")
  say "starting DynamoDB Local on 127.0.0.1:$DDB_PORT (pid $DDB_PID) and moto on 127.0.0.1:$MOTO_PORT (pid $MOTO_PID)"
}

# probe NAME: 0 when the server answers a real request with 200.
probe() {
  local url code
  case $1 in
    dynamodb)
      url="http://127.0.0.1:$DDB_PORT/"
      if command -v curl >/dev/null 2>&1; then
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 -X POST \
          -H 'X-Amz-Target: DynamoDB_20120810.ListTables' -H 'Content-Type: application/x-amz-json-1.0' \
          -H 'Authorization: AWS4-HMAC-SHA256 Credential=local/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=x' \
          -d '{}' "$url") || true
        [[ $code == 200 ]]
      else
        py_probe "$url" '{}'
      fi
      ;;
    moto)
      url="http://127.0.0.1:$MOTO_PORT/moto-api/data.json"
      if command -v curl >/dev/null 2>&1; then
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url") || true
        [[ $code == 200 ]]
      else
        py_probe "$url"
      fi
      ;;
  esac
}

# The same probes without curl.
py_probe() {
  "$VENV/bin/python" - "$@" <<'PY' >/dev/null 2>&1
import sys, urllib.request
url, body = sys.argv[1], (sys.argv[2].encode() if len(sys.argv) > 2 else None)
headers = {}
if body is not None:
    headers = {
        "X-Amz-Target": "DynamoDB_20120810.ListTables",
        "Content-Type": "application/x-amz-json-1.0",
        "Authorization": "AWS4-HMAC-SHA256 Credential=local/20260101/us-east-1/dynamodb/aws4_request, "
        "SignedHeaders=host, Signature=x",
    }
req = urllib.request.Request(url, data=body, headers=headers)
with urllib.request.urlopen(req, timeout=2) as r:
    sys.exit(0 if r.status == 200 else 1)
PY
}

# Wait until both servers answer; fail loudly (with their log) if one exits or stays silent.
wait_services() {
  ((SERVICES_READY)) && return 0
  local t0 deadline name pid log pending=(dynamodb moto)
  t0=$(now_ms)
  deadline=$((t0 + SERVICE_WAIT_SECONDS * 1000))
  while ((${#pending[@]})); do
    local still=()
    for name in "${pending[@]}"; do
      if [[ $name == dynamodb ]]; then pid=$DDB_PID log=$SERVICE_LOGS/dynamodb.log; else pid=$MOTO_PID log=$SERVICE_LOGS/moto.log; fi
      if probe "$name"; then
        continue
      fi
      if ! kill -0 "$pid" 2>/dev/null; then
        KEEP_SERVICE_LOGS=1
        log_tail "$log"
        die "$name exited before answering (log: $log)"
      fi
      still+=("$name")
    done
    pending=("${still[@]}")
    ((${#pending[@]})) || break
    if (($(now_ms) > deadline)); then
      KEEP_SERVICE_LOGS=1
      for name in "${pending[@]}"; do log_tail "$SERVICE_LOGS/$name.log"; done
      die "no answer after ${SERVICE_WAIT_SECONDS}s from: ${pending[*]} (logs: $SERVICE_LOGS)"
    fi
    sleep 0.2
  done
  SERVICES_READY=1
  say "DynamoDB Local and moto answer ($(fmt_ms $(($(now_ms) - t0))) waited)"
}

# --services-only: keep running until Ctrl-C, or fail if a server dies.
hold_services() {
  while kill -0 "$DDB_PID" 2>/dev/null && kill -0 "$MOTO_PID" 2>/dev/null; do sleep 1; done
  KEEP_SERVICE_LOGS=1
  die "a server stopped on its own (logs: $SERVICE_LOGS)"
}

stop_services() {
  local pid i
  ((${#SERVICE_PIDS[@]})) || return 0
  for pid in "${SERVICE_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${SERVICE_PIDS[@]}"; do
    for ((i = 0; i < 50; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  SERVICE_PIDS=()
}

# EXIT trap of scripts/test: stop the servers, report, keep the logs when they may explain a failure.
on_exit() {
  local rc=$?
  set +e
  stop_services
  if ((rc != 0)) && [[ ${MODE:-all} == all ]]; then
    print_summary "FAILED${FAILED_STEP:+ at $FAILED_STEP} (exit $rc)" >&2
  fi
  if [[ -n ${SERVICE_LOGS:-} && -d $SERVICE_LOGS ]]; then
    if [[ ${KEEP_SERVICE_LOGS:-0} == 1 || ${VETCHAT_KEEP_LOGS:-0} == 1 ]]; then
      say "server logs kept in $SERVICE_LOGS" >&2
    else
      rm -rf "$SERVICE_LOGS"
    fi
  fi
  exit "$rc"
}
