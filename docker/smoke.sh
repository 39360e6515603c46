#!/usr/bin/env bash
# End-to-end smoke test of the images, without compose and without pulling anything: run as root from
# the repository root,
#   bash docker/smoke.sh
# It builds the stand-in python:3.11-slim when that tag is missing (docker/base-standin.sh), builds
# augpipe-cpu:0.1.0 and augpipe-gpu:0.1.0 (the tags docker/compose.yaml uses), then, all on the host
# network: a throw-away PostgreSQL cluster from the host's postgresql package, the Prefect server
# container (cpu image) on it, the cpu and gpu work pools, `prefect deploy --all` from a cpu container,
# a cpu worker (cpu image) and a gpu-pool worker (gpu image; no GPU needed, TensorFlow's CUDA build
# falls back to the CPU) sharing the prepared/runs/previews volumes as in compose.yaml; it runs
# prepare-dataset, preview-augmentations and train-model (`config={"epochs": 1}`, a partial override
# of prefect.yaml's config) with --watch, checks that every flow run is Completed and that the UI
# answers at /, and prints the image sizes. A trap removes every container, volume and the PostgreSQL
# cluster it started, also on failure. The last line is PASS or FAIL with the date, the wall time and
# the image sizes.
#
# Environment: DOCKER (default /usr/bin/docker when present: Debian's 20.10 client drives BuildKit
# itself, while a newer client without the buildx plugin falls back to the legacy builder, which has
# no RUN --mount), PIP_CERT (the CA bundle pip inside the build uses, default: the host's pip `cert`
# setting, else /etc/ssl/certs/ca-certificates.crt), PIP_INDEX_URL / PIP_EXTRA_INDEX_URL /
# PIP_TRUSTED_HOST / PIP_DEFAULT_TIMEOUT (passed to the build; index URLs that are local paths or
# file:// are dropped, they do not exist inside the build), NO_BUILD=1 (use the images as they are),
# KEEP=1 (leave everything running for a look; the cleanup commands are printed),
# TRAIN_CONFIG (default {"epochs": 1}), WATCH_TIMEOUT (seconds per flow run, default 1800).
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$SCRIPT_DIR")
cd "$REPO"

if [[ -z "${DOCKER:-}" ]]; then
    if [[ -x /usr/bin/docker ]]; then DOCKER=/usr/bin/docker; else DOCKER=docker; fi
fi
export DOCKER DOCKER_BUILDKIT=1
CPU_IMAGE=augpipe-cpu:0.1.0
GPU_IMAGE=augpipe-gpu:0.1.0
TRAIN_CONFIG=${TRAIN_CONFIG:-'{"epochs": 1}'}
WATCH_TIMEOUT=${WATCH_TIMEOUT:-1800}
RUN_ID=augpipe-smoke-$(date +%Y%m%d%H%M%S)-$$
LABEL="augpipe-smoke=$RUN_ID"
STARTED=$(date +%s)
STARTED_AT=$(date -u +%Y-%m-%dT%H:%M:%SZ)
PGDIR=""
PGBIN=""
PHASES=()
RESULT=FAIL

log() { printf '\n==> [%s] %s\n' "$(date +%H:%M:%S)" "$*"; }
die() { printf 'smoke.sh: %s\n' "$*" >&2; exit 1; }
FAILURES=()
fail() { printf 'CHECK FAILED: %s\n' "$*" >&2; FAILURES+=("$*"); }  # recorded; the script goes on
phase() { PHASES+=("$1 $(($(date +%s) - $2))s"); }
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
image_sizes() {
    local image
    for image in "$CPU_IMAGE" "$GPU_IMAGE" python:3.11-slim; do
        if "$DOCKER" image inspect "$image" > /dev/null 2>&1; then
            printf '%s %s; ' "$image" \
                "$("$DOCKER" image inspect -f '{{.Size}}' "$image" | awk '{printf "%.2f GB", $1/1e9}')"
        fi
    done
}

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    set +e
    local containers
    containers=$("$DOCKER" ps -aq --filter "label=$LABEL" 2> /dev/null)
    if [[ $status -ne 0 && -n "$containers" ]]; then
        local c
        for c in $containers; do
            log "logs of $("$DOCKER" inspect -f '{{.Name}}' "$c" | tr -d /) (last 60 lines)"
            "$DOCKER" logs --tail 60 "$c" 2>&1
        done
    fi
    if [[ "${KEEP:-0}" == 1 ]]; then
        log "KEEP=1: left running. To clean up:"
        echo "  $DOCKER rm -f \$($DOCKER ps -aq --filter label=$LABEL)"
        echo "  $DOCKER volume rm \$($DOCKER volume ls -q --filter label=$LABEL)"
        [[ -n "$PGDIR" ]] && echo "  runuser -u postgres -- $PGBIN/pg_ctl -D $PGDIR/data stop; rm -rf $PGDIR"
    else
        log "cleanup"
        [[ -n "$containers" ]] && "$DOCKER" rm -f $containers > /dev/null
        local volumes
        volumes=$("$DOCKER" volume ls -q --filter "label=$LABEL" 2> /dev/null)
        [[ -n "$volumes" ]] && "$DOCKER" volume rm $volumes > /dev/null
        if [[ -n "$PGDIR" && -d "$PGDIR" ]]; then
            if [[ -f "$PGDIR/data/postmaster.pid" ]]; then
                runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDIR/data" -m fast -w stop > /dev/null
            fi
            rm -rf "$PGDIR"
        fi
        echo "removed: containers [$(echo $containers)], volumes [$(echo ${volumes:-})], PostgreSQL cluster ${PGDIR:-none}"
    fi
    [[ $status -eq 0 ]] && RESULT=PASS || RESULT=FAIL
    echo
    echo "timings: ${PHASES[*]:-none}"
    echo "$RESULT augpipe docker smoke: started $STARTED_AT, finished $(date -u +%Y-%m-%dT%H:%M:%SZ)," \
        "wall $(($(date +%s) - STARTED)) s; images: $(image_sizes)${FAILURES[*]:+; failed: ${#FAILURES[@]} check(s)}"
    exit $status
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

[[ $EUID -eq 0 ]] || die "run as root (debootstrap, the PostgreSQL cluster as the postgres user)"
[[ -f prefect.yaml && -f docker/Dockerfile.cpu ]] || die "run from the repository root"
"$DOCKER" info > /dev/null 2>&1 || die "no Docker daemon answers to $DOCKER"
command -v curl > /dev/null || die "curl is needed"

# 1. The base image, when python:3.11-slim is not there.
t=$(date +%s)
log "base image python:3.11-slim"
bash docker/base-standin.sh
phase base "$t"

# 2. The images. pip inside the build gets the host's CA bundle as a BuildKit secret (not a layer)
# and the host's http(s) index settings as build args.
pip_setting() {  # $1: env var name, $2: pip config key
    local value=${!1:-}
    if [[ -z "$value" ]] && command -v pip > /dev/null; then
        value=$(pip config get "$2" 2> /dev/null || true)
    fi
    printf '%s' "$value"
}
remote_urls() {  # keep the http(s) URLs of a space-separated list
    local url out=()
    for url in $1; do [[ "$url" == http://* || "$url" == https://* ]] && out+=("$url"); done
    printf '%s' "${out[*]:-}"
}
BUILD_ARGS=(--network host)
cert=$(pip_setting PIP_CERT global.cert)
cert=${cert:-/etc/ssl/certs/ca-certificates.crt}
[[ -s "$cert" ]] && BUILD_ARGS+=(--secret "id=pip-cert,src=$cert")
index_url=$(remote_urls "$(pip_setting PIP_INDEX_URL global.index-url)")
[[ -n "$index_url" ]] && BUILD_ARGS+=(--build-arg "PIP_INDEX_URL=$index_url")
extra_urls=$(remote_urls "$(pip_setting PIP_EXTRA_INDEX_URL global.extra-index-url)")
[[ -n "$extra_urls" ]] && BUILD_ARGS+=(--build-arg "PIP_EXTRA_INDEX_URL=$extra_urls")
trusted=$(pip_setting PIP_TRUSTED_HOST global.trusted-host)
[[ -n "$trusted" ]] && BUILD_ARGS+=(--build-arg "PIP_TRUSTED_HOST=$trusted")
BUILD_ARGS+=(--build-arg "PIP_DEFAULT_TIMEOUT=${PIP_DEFAULT_TIMEOUT:-180}")
if [[ "${NO_BUILD:-0}" != 1 ]]; then
    for flavour in cpu gpu; do
        t=$(date +%s)
        log "docker build augpipe-$flavour:0.1.0 (${BUILD_ARGS[*]})"
        build_log=/tmp/augpipe-smoke-build-$flavour.log
        "$DOCKER" build --progress plain "${BUILD_ARGS[@]}" -f "docker/Dockerfile.$flavour" \
            -t "augpipe-$flavour:0.1.0" . > "$build_log" 2>&1 \
            || { tail -n 40 "$build_log"; die "docker build augpipe-$flavour failed (log: $build_log)"; }
        tail -n 4 "$build_log"
        echo "(the whole build log: $build_log)"
        phase "build-$flavour" "$t"
    done
fi
"$DOCKER" image inspect "$CPU_IMAGE" "$GPU_IMAGE" > /dev/null
SMOKE_STARTED=$(date +%s)

# 3. PostgreSQL: a temporary cluster of the host's postgresql package, on a free local port.
t=$(date +%s)
if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" > /dev/null; then
    log "apt-get install postgresql"
    apt-get install -y --no-install-recommends postgresql > /dev/null \
        || { apt-get update > /dev/null && apt-get install -y --no-install-recommends postgresql > /dev/null; }
fi
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
PG_PORT=$(free_port)
PG_PASSWORD="smoke-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
PGDIR=$(mktemp -d /tmp/augpipe-smoke-pg.XXXXXX)
chown postgres: "$PGDIR"
log "PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PG_PORT in $PGDIR"
printf '%s\n' "$PG_PASSWORD" > "$PGDIR/pwfile"
chown postgres: "$PGDIR/pwfile"
runuser -u postgres -- "$PGBIN/initdb" -D "$PGDIR/data" -U prefect --pwfile="$PGDIR/pwfile" \
    --auth-host=scram-sha-256 --auth-local=trust -E UTF8 > "$PGDIR/initdb.log"
rm -f "$PGDIR/pwfile"
runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/postgres.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -c unix_socket_directories=$PGDIR -c max_connections=200" \
    start > /dev/null
runuser -u postgres -- "$PGBIN/createdb" -h "$PGDIR" -p "$PG_PORT" -U prefect prefect
DB_URL="postgresql+asyncpg://prefect:$PG_PASSWORD@127.0.0.1:$PG_PORT/prefect"
phase postgres "$t"

# 4. The Prefect server, from the cpu image as compose.yaml runs it.
t=$(date +%s)
PORT=$(free_port)
API="http://127.0.0.1:$PORT/api"
log "Prefect server on 127.0.0.1:$PORT"
"$DOCKER" run -d --name "$RUN_ID-server" --label "$LABEL" --network host \
    -e PREFECT_API_DATABASE_CONNECTION_URL="$DB_URL" -e PREFECT_UI_API_URL="$API" \
    "$CPU_IMAGE" prefect server start --host 127.0.0.1 --port "$PORT" > /dev/null
for _ in $(seq 180); do
    if curl -fsS -m 5 "$API/health" > /dev/null 2>&1; then break; fi
    [[ $("$DOCKER" inspect -f '{{.State.Running}}' "$RUN_ID-server") == true ]] || die "the server exited"
    sleep 1
done
curl -fsS -m 5 "$API/health" > /dev/null || die "no answer from $API/health after 180 s"
echo "healthy: $API/health -> $(curl -fsS -m 5 "$API/health")"
phase server "$t"

# Prefect's CLI in a throw-away container of an image: prefect_in IMAGE ARGS...
prefect_in() {
    local image=$1
    shift
    "$DOCKER" run --rm --label "$LABEL" --network host -w /opt/augpipe \
        -e PREFECT_API_URL="$API" -e PREFECT_CLI_PROMPT=false "$image" prefect "$@"
}

# 5. Work pools and deployments.
t=$(date +%s)
log "work pools cpu and gpu; prefect deploy --all"
"$DOCKER" run --rm --label "$LABEL" --network host -e PREFECT_API_URL="$API" "$CPU_IMAGE" sh -c \
    'prefect work-pool create cpu --type process && prefect work-pool create gpu --type process'
prefect_in "$CPU_IMAGE" deploy --all
phase deploy "$t"

# 6. Workers, with the data volumes of compose.yaml.
t=$(date +%s)
VOLUMES=()
for folder in prepared runs previews; do
    "$DOCKER" volume create --label "$LABEL" "$RUN_ID-$folder" > /dev/null
    VOLUMES+=(-v "$RUN_ID-$folder:/opt/augpipe/$folder")
done
log "workers: cpu ($CPU_IMAGE), gpu pool ($GPU_IMAGE)"
"$DOCKER" run -d --name "$RUN_ID-cpu-worker" --label "$LABEL" --network host \
    -e PREFECT_API_URL="$API" "${VOLUMES[@]}" "$CPU_IMAGE" > /dev/null
"$DOCKER" run -d --name "$RUN_ID-gpu-worker" --label "$LABEL" --network host \
    -e PREFECT_API_URL="$API" "${VOLUMES[@]}" "$GPU_IMAGE" > /dev/null
for pool in cpu gpu; do
    for _ in $(seq 90); do
        online=$(curl -fsS -m 5 -X POST -H 'Content-Type: application/json' -d '{}' \
            "$API/work_pools/$pool/workers/filter" \
            | python3 -c 'import json, sys; print(sum(w["status"] == "ONLINE" for w in json.load(sys.stdin)))' \
            || echo 0)
        [[ "$online" -ge 1 ]] && break
        sleep 2
    done
    [[ "$online" -ge 1 ]] || die "no worker online in pool $pool after 180 s"
    echo "pool $pool: $online worker(s) online"
done
phase workers "$t"

# 7. The three deployments, in order: train-model trains on what prepare-dataset wrote. A run that
# does not complete is recorded and the others still run.
run_deployment() {  # name, then extra args
    local name=$1 t
    shift
    t=$(date +%s)
    log "prefect deployment run $name/$name $* --watch"
    prefect_in "$CPU_IMAGE" deployment run "$name/$name" "$@" --watch --watch-timeout "$WATCH_TIMEOUT" \
        || fail "$name: the flow run did not complete (prefect deployment run --watch exited $?)"
    phase "run-$name" "$t"
}
run_deployment prepare-dataset
run_deployment preview-augmentations
run_deployment train-model --param "config=$TRAIN_CONFIG"

# 8. Asked of the API: one Completed run per deployment; the train run kept the deployment's config
# under the partial override (its model) and trained TRAIN_CONFIG's epochs; and the server's scheduler
# created prepare-dataset's nightly runs.
log "flow runs, the train run's config, the scheduler"
python3 - "$API" "$TRAIN_CONFIG" <<'PY' || fail "API checks: see above"
import json, sys, time, urllib.request

api, train_config = sys.argv[1], json.loads(sys.argv[2])

def call(path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(api + path, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)

problems = []
deployments = {d["id"]: d for d in call("/deployments/filter", {})}
name_of = {i: f'{d["name"]}' for i, d in deployments.items()}
runs = call("/flow_runs/filter", {"sort": "EXPECTED_START_TIME_ASC"})
ours = [r for r in runs if not r["auto_scheduled"]]
for r in ours:
    print(f'  {name_of.get(r["deployment_id"], "?"):22} {r["name"]:24} {r["state_type"]:10} '
          f'{r["total_run_time"]:7.1f} s  parameters {json.dumps(r["parameters"])}')
by_deployment = {}
for r in ours:
    by_deployment.setdefault(name_of.get(r["deployment_id"]), []).append(r)
for name in ("prepare-dataset", "preview-augmentations", "train-model"):
    found = by_deployment.get(name, [])
    if [r["state_type"] for r in found] != ["COMPLETED"]:
        problems.append(f"{name}: expected one Completed run, got {[r['state_type'] for r in found]}")

train_runs = by_deployment.get("train-model", [])
if train_runs:
    run = train_runs[0]
    deployed = deployments[run["deployment_id"]]["parameters"]["config"]
    artifacts = call("/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [run["id"]]}}})
    table = [a for a in artifacts if a["type"] == "table"]
    summary = [a for a in artifacts if a["type"] == "markdown"]
    rows = table[0]["data"] if table else None
    rows = json.loads(rows) if isinstance(rows, str) else rows
    text = summary[0]["data"] if summary else ""
    print("  train-model summary:", " | ".join(l for l in text.splitlines() if l.startswith("- ")))
    if "epochs" in train_config and (rows is None or len(rows) != train_config["epochs"]):
        problems.append(f"train-model: {train_config['epochs']} epoch(s) asked, metrics table has "
                        f"{None if rows is None else len(rows)} rows")
    if "model" not in train_config and f'`{deployed["model"]}`' not in text:
        problems.append(f"train-model: the run did not train prefect.yaml's model {deployed['model']!r}: "
                        "the partial config replaced the deployment's instead of merging over it")

scheduled_deployments = [d for d in deployments.values() if d.get("schedules")]
deadline = time.time() + 60
while True:
    auto = [r for r in call("/flow_runs/filter", {}) if r["auto_scheduled"]]
    if auto or time.time() > deadline or not scheduled_deployments:
        break
    time.sleep(5)
print(f"  scheduler: {len(auto)} auto-scheduled run(s) for "
      f"{sorted({name_of.get(r['deployment_id']) for r in auto})}, first at "
      f"{min((r['expected_start_time'] for r in auto), default=None)}")
if scheduled_deployments and not auto:
    problems.append("the server's scheduler created no runs for the scheduled deployments "
                    f"{sorted(d['name'] for d in scheduled_deployments)} (see the server's log)")
for problem in problems:
    print("  PROBLEM:", problem)
sys.exit(1 if problems else 0)
PY
"$DOCKER" run --rm --label "$LABEL" --network host "${VOLUMES[@]}" "$CPU_IMAGE" sh -c \
    'cd /opt/augpipe && ls -d prepared/*/* runs/* previews/* 2>/dev/null | head -n 20' | sed 's/^/  /'

# 9. The UI: / serves the Prefect UI's index.html (V1 at /; a browser is sent on to V2 at /v2/).
log "UI at http://127.0.0.1:$PORT/"
body=$(mktemp)
code=$(curl -sS -m 10 -o "$body" -w '%{http_code}' "http://127.0.0.1:$PORT/" || true)
grep -qi '<!doctype html\|<html' "$body" || code="$code, not HTML"
echo "GET / -> $code ($(wc -c < "$body") bytes, $(grep -o '<title>[^<]*</title>' "$body" | head -n 1))"
[[ "$code" == 200 ]] || fail "the UI does not answer at /: $code"
code=$(curl -sS -m 10 -L -o "$body" -w '%{http_code} %{url_effective}' -H 'Accept: text/html' \
    "http://127.0.0.1:$PORT/" || true)
grep -qi '<html' "$body" || code="$code, not HTML"
echo "GET / as a browser -> $code"
[[ "$code" == 200\ * && "$code" != *"not HTML" ]] || fail "the browser UI does not answer: $code"
rm -f "$body"

# 10. The server's log: no UI static directory error, no traceback.
log "server log"
server_log=$("$DOCKER" logs "$RUN_ID-server" 2>&1)
if grep -qi 'UI static' <<< "$server_log"; then
    grep -i 'UI static' <<< "$server_log" | head -n 5
    fail "the server could not set up the UI"
fi
if grep -q 'Traceback' <<< "$server_log"; then
    grep -E '^[A-Za-z_.]+(Error|Exception): ' <<< "$server_log" | sort | uniq -c | head -n 5
    grep -E '\| ERROR ' <<< "$server_log" | sed -E 's/^[0-9:.]+ //' | sort | uniq -c | head -n 5
    fail "the server logged $(grep -c Traceback <<< "$server_log") traceback(s)"
else
    echo "no tracebacks"
fi

# 11. Image sizes.
log "images"
"$DOCKER" image ls --format 'table {{.Repository}}:{{.Tag}}\t{{.ID}}\t{{.Size}}' \
    | grep -E 'REPOSITORY|augpipe-(cpu|gpu)|python:3.11-slim'
echo "smoke run without base and image builds: $(($(date +%s) - SMOKE_STARTED)) s"
if ((${#FAILURES[@]})); then
    log "${#FAILURES[@]} check(s) failed"
    printf '  - %s\n' "${FAILURES[@]}"
    exit 1
fi
