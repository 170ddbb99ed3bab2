# Sourced by scripts/bench when BENCH_BACKENDS names s3: mqnbd's S3 export, s3backer (Debian's package, FUSE
# mode) and the store's own ceiling (curl), one at a time, against one S3Proxy store on this machine (the image
# mqnbd-s3:latest of scripts/images/build s3, in a container on a free loopback port, removed at exit).
# bench_s3 runs every round and prints the table; its body is a subshell, so its settings and its exit trap
# stay its own. The caller sets root, dir, python, runs and mqnbd_args, and sources bench-common.sh.
#
# Per round: the ceiling (16 parallel curl PUTs, then GETs, of distinct 1 MiB objects, BENCH_S3_SIZE in all),
# then both servers in a rotated order, each on an export of BENCH_S3_SIZE + BENCH_S3_WARM under a fresh prefix:
#   (untimed) write the last BENCH_S3_WARM, flushed: data for the warm-up read, and a warm-up of the writes;
#   seqwrite-1m-qd8       BENCH_S3_SIZE from offset 0, 1 MiB at depth 8, then a flush (MiB/s over all of it);
#   restart the server, (untimed) read the last BENCH_S3_WARM;
#   seqread-1m-qd8-cold   BENCH_S3_SIZE from offset 0, nothing of it in the server's memory (MiB/s);
#   randread-4k-qd32      BENCH_S3_RUNTIME seconds over the first BENCH_S3_SIZE (IOPS);
#   randwrite-4k-qd32     the same, written, then a flush; IOPS of the timed part, PUTs until all is stored.
# mqnbd: `mqnbd serve` with an s3:// export, fio's nbd engine; PUTs and GETs from its /metrics. s3backer:
# --blockSize=1M with mqnbd's defaults for cache, dirty bound and uploads in flight (its cache holds the dirty
# blocks too, so the dirty bound is at most the cache), fio with O_DIRECT and libaio on its file; its fsync
# stores nothing, so a write job ends when its stats show no dirty block; PUTs and GETs (404s included) from
# its stats. Server CPU: utime+stime of the server process. BENCH_S3_SDK=1 adds mqnbd-sdk to the rotation: the
# same server with --s3-block-client=sdk (block GETs and PUTs through the AWS SDK), for a before/after table;
# BENCH_BASELINE_JAR adds mqnbd-base: that jar with the same flags (scripts/bench resolves it).
# BENCH_S3_STORE_CPUS=LIST (taskset's list form, "1" or "2-3") gives the store those CPUs (docker --cpuset-cpus)
# and everything else (servers, fio, curl) the rest, as a store on hosts of its own would leave them.

bench_s3() (
  set -euo pipefail
  size=${BENCH_S3_SIZE:-1G}
  warm=${BENCH_S3_WARM:-512M}
  runtime=${BENCH_S3_RUNTIME:-10}
  bytes=$(numfmt --from=iec "$size")
  warm_bytes=$(numfmt --from=iec "$warm")
  mib=$((1 << 20))
  if ((bytes % mib != 0 || warm_bytes % mib != 0 || bytes == 0 || warm_bytes == 0)); then
    echo "bench: BENCH_S3_SIZE and BENCH_S3_WARM must be whole MiB (got $size, $warm)" >&2
    exit 1
  fi
  export_mib=$(((bytes + warm_bytes) / mib))
  results=$dir/s3-results.txt
  json=$dir/bench-s3.json
  mnt=$dir/s3backer-mnt
  block_file=$dir/s3-block.bin
  identity=mqnbd
  credential=mqnbd-secret
  container=mqnbd-bench-s3-$$
  started=$SECONDS

  bench_install fio:fio nbdinfo:libnbd-bin s3backer:s3backer curl:curl
  command -v docker >/dev/null || { echo "bench: the S3 benchmark needs Docker (for S3Proxy)" >&2; exit 1; }
  docker image inspect mqnbd-s3:latest >/dev/null 2>&1 || "$root/scripts/images/build" s3
  "$root/mqnbd" --version >/dev/null # build it now, not inside a timed start
  [ -z "${baseline_jar:-}" ] || MQNBD_JAR=$baseline_jar "$root/mqnbd" --version >/dev/null

  # mqnbd's S3 defaults (S3Settings): 256M of clean blocks, 16 uploads in flight, a dirty bound of half the heap
  # left beside the cache, from 64M to 2G; s3backer gets the same, its dirty bound within its cache.
  . "$root/scripts/lib/java-home.sh"
  heap=$("$JAVA_HOME/bin/java" ${MQNBD_JAVA_OPTS:-} -XX:+PrintFlagsFinal -version 2>/dev/null |
    awk '$2 == "MaxHeapSize" { print $4 }')
  cache_mib=256
  dirty_mib=$(((heap - cache_mib * mib) / 2 / mib))
  ((dirty_mib >= 64)) || dirty_mib=64
  ((dirty_mib <= 2048)) || dirty_mib=2048
  s3backer_dirty=$((dirty_mib < cache_mib ? dirty_mib : cache_mib))

  # Optionally the store on CPUs of its own and this shell, so every server, fio and curl, on the others.
  cpus=$(nproc) # before any split: the CPUs the run may use
  store_cpus=${BENCH_S3_STORE_CPUS:-}
  store_cpuset=()
  cpu_split=
  if [ -n "$store_cpus" ]; then
    bench_install taskset:util-linux
    rest=$("$python" -c '
import os, sys
def parse(text):
    cpus = set()
    for part in text.split(","):
        first, _, last = part.partition("-")
        cpus.update(range(int(first), int(last or first) + 1))
    return cpus
mine, store = os.sched_getaffinity(0), parse(sys.argv[1])
rest = sorted(mine - store)
if not store <= mine or not rest:
    sys.exit("bench: BENCH_S3_STORE_CPUS=%s must name some but not all of the CPUs %s" % (sys.argv[1], sorted(mine)))
print(",".join(map(str, rest)))' "$store_cpus")
    taskset -pc "$rest" "$BASHPID" >/dev/null
    store_cpuset=(--cpuset-cpus "$store_cpus")
    cpu_split="store on CPUs $store_cpus, servers, fio and curl on CPUs $rest"
  fi

  mkdir -p "$dir" "$mnt"
  : >"$results"
  [ -s "$block_file" ] || head -c "$mib" /dev/urandom >"$block_file"

  cleanup_s3() {
    bench_stop
    ! mountpoint -q "$mnt" || umount "$mnt" || true
    docker rm -f "$container" >/dev/null 2>&1 || true
  }
  trap cleanup_s3 EXIT

  # --- the store ----------------------------------------------------------------------------------------
  docker run -d --rm --name "$container" ${store_cpuset[@]+"${store_cpuset[@]}"} -e S3_IDENTITY="$identity" -e S3_CREDENTIAL="$credential" \
    -e S3_BUCKETS="mqnbd s3backer ceiling" -p 127.0.0.1::9000 mqnbd-s3:latest >/dev/null
  store_port=$(docker port "$container" 9000/tcp | sed -n 's/^127\.0\.0\.1:\([0-9]*\)$/\1/p' | sed -n 1p)
  endpoint=http://127.0.0.1:$store_port
  for _ in $(seq 300); do
    docker logs "$container" 2>&1 | grep -q 'Started .*Server@' && break
    sleep 0.2
  done
  docker logs "$container" 2>&1 | grep -q 'Started .*Server@' ||
    { echo "bench: S3Proxy did not start; its log:" >&2; docker logs "$container" >&2; exit 1; }
  export AWS_ACCESS_KEY_ID=$identity AWS_SECRET_ACCESS_KEY=$credential

  free_port() {
    "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
  }
  drop_prefix() { # bucket prefix: deletes a finished round's objects in the store's own file system
    docker exec "$container" sh -c "rm -rf /data/$1/$2*"
  }

  # --- the servers --------------------------------------------------------------------------------------
  nbd_port=
  metrics_port=
  start() { # server run
    case $1 in
      mqnbd | mqnbd-sdk | mqnbd-base)
        nbd_port=$(free_port)
        metrics_port=$(free_port)
        local extra=() jar=
        [ "$1" != mqnbd-sdk ] || extra=(--s3-block-client=sdk)
        [ "$1" != mqnbd-base ] || jar=$baseline_jar
        bench_start "s3-$1" "$nbd_port" bench_mqnbd "$jar" serve --listen 127.0.0.1 --port "$nbd_port" \
          --export "=s3://mqnbd/$1-r$2,create=${export_mib}M" --s3-endpoint "$endpoint" --s3-region us-east-1 \
          --s3-path-style --metrics "127.0.0.1:$metrics_port" ${mqnbd_args[@]+"${mqnbd_args[@]}"} "${extra[@]}"
        target=nbd://127.0.0.1:$nbd_port/ ;;
      s3backer)
        s3backer -f --blockSize=1M --size="${export_mib}M" --blockCacheSize="$cache_mib" \
          --blockCacheMaxDirty="$s3backer_dirty" --blockCacheThreads=16 --authVersion=aws4 --baseURL="$endpoint/" \
          --accessId="$identity" --accessKey="$credential" --prefix="r$2-" s3backer "$mnt" >>"$dir/s3-s3backer.log" 2>&1 &
        server_pid=$!
        for _ in $(seq 300); do
          [ ! -e "$mnt/stats" ] || break
          kill -0 "$server_pid" 2>/dev/null || break
          sleep 0.1
        done
        [ -e "$mnt/stats" ] || { echo "bench: s3backer did not mount; its log:" >&2; cat "$dir/s3-s3backer.log" >&2; exit 1; }
        target=$mnt/file ;;
    esac
  }

  stop() {
    bench_stop
    ! mountpoint -q "$mnt" || umount "$mnt"
  }

  requests() { # server: prints "PUTS GETS" so far (block requests to the store)
    case $1 in
      mqnbd*) curl -sf "http://127.0.0.1:$metrics_port/metrics" | awk '
          /^mqnbd_s3_http_requests_total\{/ { if ($0 ~ /type="put"/) p += $NF; else if ($0 ~ /type="get"/) g += $NF }
          END { printf "%d %d\n", p, g }' ;;
      s3backer) awk '$1 == "http_puts" { p = $2 } $1 == "http_gets" || $1 == "http_zero_blocks_read" { g += $2 }
          END { printf "%d %d\n", p, g }' "$mnt/stats" ;;
    esac
  }

  drain() { # s3backer: waits until its cache holds no dirty block (at most 10 minutes)
    local i
    for ((i = 0; i < 12000; i++)); do
      awk '$1 == "block_cache_dirty_ratio" { exit !($2 == 0) }' "$mnt/stats" && return 0
      kill -0 "$server_pid" 2>/dev/null || { echo "bench: s3backer exited with dirty blocks" >&2; return 1; }
      sleep 0.05
    done
    echo "bench: s3backer still holds dirty blocks after 10 minutes" >&2
    return 1
  }

  fio_s3() { # server rw bs depth [fio options...]: prints "VALUE P99_US BYTES"; s3backer's writes then drain
    local server=$1 rw=$2 bs=$3 depth=$4 out=$dir/fio-last.json unit=MiB/s engine summary
    shift 4
    [ "$bs" != 4k ] || unit=IOPS
    case $server in
      mqnbd*) engine=(--ioengine=nbd --uri="$target") ;;
      s3backer) engine=(--ioengine=libaio --direct=1 --filename="$target") ;;
    esac
    fio --name=bench "${engine[@]}" --rw="$rw" --bs="$bs" --iodepth="$depth" --randrepeat=0 \
      --output-format=json "$@" >"$out" 2>"$dir/fio-last.err" || { cat "$dir/fio-last.err" >&2; return 1; }
    summary=$("$python" "$root/scripts/lib/bench_report.py" fio "$out" "$unit" | cut -d' ' -f1-2)
    if [ "$server" = s3backer ] && [ "$rw" != read ] && [ "$rw" != randread ]; then drain || return 1; fi
    echo "$summary $("$python" "$root/scripts/lib/bench_report.py" io-bytes "$out")"
  }

  job() { # run server job rw bs depth [fio options...]: one timed job, recorded
    local run=$1 server=$2 name=$3 before after out value
    shift 3
    before=$(requests "$server")
    out=$(bench_timed fio_s3 "$server" "$@") || out=
    after=$(requests "$server")
    if [ -z "$out" ]; then
      bench_record "$run" s3 "$server" "$name"
      return
    fi
    read -r value p99 moved cpu wall <<<"$out"
    # The sequential jobs move a fixed amount: their rate is over all of it, the flush or drain included.
    case $name in seq*) value=$(awk -v b="$moved" -v t="$wall" 'BEGIN { printf "%.1f", b / 1048576 / t }') ;; esac
    read -r p0 g0 <<<"$before"
    read -r p1 g1 <<<"$after"
    bench_record "$run" s3 "$server" "$name" "$value" "$p99" "$cpu" "$wall" $((p1 - p0)) $((g1 - g0)) "$moved"
  }

  untimed() { # server rw [fio options...]: 1 MiB at depth 8 over the warm-up range, not recorded
    local server=$1 rw=$2
    shift 2
    fio_s3 "$server" "$rw" 1m 8 --offset="$bytes" --size="$warm_bytes" "$@" >/dev/null
  }

  server_round() { # run server
    local run=$1 server=$2
    start "$server" "$run"
    untimed "$server" write --end_fsync=1
    job "$run" "$server" seqwrite-1m-qd8 write 1m 8 --size="$bytes" --end_fsync=1
    stop
    start "$server" "$run"
    untimed "$server" read
    job "$run" "$server" seqread-1m-qd8-cold read 1m 8 --size="$bytes"
    job "$run" "$server" randread-4k-qd32 randread 4k 32 --size="$bytes" --time_based --runtime="$runtime"
    job "$run" "$server" randwrite-4k-qd32 randwrite 4k 32 --size="$bytes" --time_based --runtime="$runtime" \
      --end_fsync=1
    stop
    case $server in
      mqnbd*) drop_prefix mqnbd "$server-r$run" ;;
      s3backer) drop_prefix s3backer "r$run-" ;;
    esac
  }

  # --- the ceiling: curl, 16 requests in flight, one distinct 1 MiB object each ---------------------------
  ceiling() { # run
    local run=$1 n=$((bytes / mib)) config=$dir/s3-ceiling.curl job i t0 t1 codes
    for job in seqwrite-1m-qd8 seqread-1m-qd8-cold; do
      for ((i = 0; i < n; i++)); do
        printf 'url = "%s/ceiling/r%s-%06d"\n' "$endpoint" "$run" "$i"
        [ "$job" = seqread-1m-qd8-cold ] || printf 'upload-file = "%s"\n' "$block_file"
        printf 'output = "/dev/null"\n'
      done >"$config"
      t0=$EPOCHREALTIME
      codes=$(curl -sS --no-progress-meter --parallel --parallel-immediate --parallel-max 16 --aws-sigv4 aws:amz:us-east-1:s3 \
        --user "$identity:$credential" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" -w '%{http_code}\n' \
        --config "$config") || codes=
      t1=$EPOCHREALTIME
      if [ "$(grep -c '^200$' <<<"$codes")" != "$n" ]; then
        echo "bench: the ceiling's ${job%%-*} got answers other than 200: $(sort <<<"$codes" | uniq -c | xargs)" >&2
        bench_record "$run" s3 ceiling "$job"
        continue
      fi
      bench_record "$run" s3 ceiling "$job" \
        $(awk -v b="$bytes" -v t0="$t0" -v t1="$t1" 'BEGIN { printf "%.1f - - %.3f", b / 1048576 / (t1 - t0), t1 - t0 }') \
        $([ "$job" = seqwrite-1m-qd8 ] && echo "$n 0" || echo "0 $n") "$bytes"
    done
    drop_prefix ceiling "r$run-"
  }

  # --- the rounds ---------------------------------------------------------------------------------------
  mqnbd_servers=(mqnbd)
  [ "${BENCH_S3_SDK:-0}" = 0 ] || mqnbd_servers+=(mqnbd-sdk)
  [ -z "${baseline_jar:-}" ] || mqnbd_servers+=(mqnbd-base)
  load_start=$(cut -d' ' -f1-3 /proc/loadavg)
  for run in $(seq "$runs"); do
    ceiling "$run"
    for server in $(bench_rotate "$run" "${mqnbd_servers[@]}" s3backer); do
      server_round "$run" "$server"
    done
  done
  load_end=$(cut -d' ' -f1-3 /proc/loadavg)

  s3backer_flags="--blockSize=1M --size=${export_mib}M --blockCacheSize=$cache_mib --blockCacheMaxDirty=$s3backer_dirty"
  s3backer_flags+=" --blockCacheThreads=16 --authVersion=aws4"
  versions="fio $(fio --version | sed 's/^fio-//'), s3backer $(s3backer --version 2>&1 | sed -n 1p | cut -d' ' -f3)"
  versions+=", curl $(curl --version | sed -n 1p | cut -d' ' -f2), S3Proxy $(sed -n \
    's:.*<s3proxy.version>\(.*\)</s3proxy.version>.*:\1:p' "$root/storage-backends/pom.xml" | sed -n 1p)"
  "$python" "$root/scripts/lib/bench_s3_report.py" "$results" "$json" "$size" "$warm" "$runtime" "$runs" "$cpus" \
    "$load_start" "$load_end" "$((SECONDS - started))" "$versions" "$(uname -r)" "${mqnbd_args[*]}" \
    "$dirty_mib" "$s3backer_flags" "${baseline_jar:-}" "$cpu_split"
)
