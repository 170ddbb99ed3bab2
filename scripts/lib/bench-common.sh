# Sourced by scripts/bench and scripts/bench-cores: installing what they drive, one server at a time (start,
# wait until it answers, sample its CPU time, stop), fio's nbd engine, nbdcopy and the results file.
# The caller sets root, dir (work directory), results (the results file), python, size, bytes, runtime, ramp.

bench_install() { # command:package ... (py:MODULE:package for a Python module): installs what is missing
  local want name missing=()
  for want in "$@"; do
    name=${want%:*}
    case $name in
      py:*) "$python" -c "import ${name#py:}" 2>/dev/null || missing+=("${want##*:}") ;;
      *) command -v "$name" >/dev/null || missing+=("${want##*:}") ;;
    esac
  done
  [ ${#missing[@]} -gt 0 ] || return 0
  echo "bench: installing ${missing[*]}" >&2
  local sudo=
  [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  # iperf3 asks whether to start a daemon; noninteractive keeps the default (no).
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

bench_source_image() { # path: a file of $bytes random bytes, written once and kept
  [ -f "$1" ] && [ "$(stat -c %s "$1")" = "$bytes" ] && return 0
  echo "bench: writing a $size random file at $1" >&2
  rm -f "$1"
  dd if=/dev/urandom of="$1" bs=1M count=$((bytes >> 20)) conv=fsync status=none
}

# --- one server at a time ------------------------------------------------------------------------------
server_pid=
bench_start() { # name port command...: starts the command (its output to $dir/NAME.log), waits until it serves
  local name=$1 port=$2 log=$dir/$1.log
  shift 2
  "$@" >"$log" 2>&1 &
  server_pid=$!
  for _ in $(seq 300); do
    nbdinfo --size "nbd://127.0.0.1:$port/" >/dev/null 2>&1 && return 0
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "bench: $name did not start; its log:" >&2
  cat "$log" >&2
  exit 1
}

bench_stop() {
  [ -n "$server_pid" ] || return 0
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=
}

# The server's java: every mqnbd server goes through ./mqnbd (its java and flags), a baseline jar by MQNBD_JAR.
bench_mqnbd() { # jar (empty: the worktree's build) arguments...: runs in bench_start's background process
  [ -z "$1" ] || export MQNBD_JAR=$1
  shift
  exec "$root/mqnbd" "$@"
}

bench_cpu_ticks() { # utime + stime of the server (fields 14 and 15 of /proc/PID/stat), in clock ticks
  local stat
  stat=$(cat "/proc/$server_pid/stat" 2>/dev/null) || { echo 0; return; }
  stat=${stat##*) } # the name in parentheses may hold spaces; field 3 (state) follows it
  set -- $stat
  echo $((${12} + ${13}))
}

clk_tck=$(getconf CLK_TCK)
bench_timed() { # command...: prints the command's "VALUE P99_US" then the server's CPU seconds and the wall seconds
  local c0 c1 t0 t1 out
  c0=$(bench_cpu_ticks)
  t0=$EPOCHREALTIME
  out=$("$@") || return 1
  [ -n "$out" ] || return 1
  t1=$EPOCHREALTIME
  c1=$(bench_cpu_ticks)
  awk -v out="$out" -v c=$((c1 - c0)) -v hz="$clk_tck" -v t0="$t0" -v t1="$t1" \
    'BEGIN { printf "%s %.2f %.3f\n", out, c / hz, t1 - t0 }'
}

# --- clients: each prints "VALUE P99_US" (IOPS for 4k jobs, MiB/s otherwise; "-" without a latency) ---------
bench_fio() { # uri rw bs depth numjobs [extra fio options...]
  local uri=$1 rw=$2 bs=$3 depth=$4 numjobs=$5 out=$dir/fio-last.json unit=MiB/s
  shift 5
  [ "$bs" != 4k ] || unit=IOPS
  fio --name=bench --ioengine=nbd --uri="$uri" --rw="$rw" --bs="$bs" --iodepth="$depth" --numjobs="$numjobs" \
    --size="$size" --time_based --runtime="$runtime" --ramp_time="$ramp" --group_reporting --randrepeat=0 \
    --output-format=json "$@" >"$out" 2>"$dir/fio-last.err" || { cat "$dir/fio-last.err" >&2; return 1; }
  "$python" "$root/scripts/lib/bench_report.py" fio "$out" "$unit" | cut -d' ' -f1-2
}

bench_copy() { # source destination: nbdcopy of the whole export, prints MiB/s
  local t0=$EPOCHREALTIME
  nbdcopy "$1" "$2" >&2 || return 1
  awk -v b="$bytes" -v t0="$t0" -v t1="$EPOCHREALTIME" 'BEGIN { printf "%.1f -\n", b / 1048576 / (t1 - t0) }'
}

bench_record() { # run group server job [VALUE P99_US CPU_S WALL_S]: one line of the results file
  local run=$1 group=$2 server=$3 job=$4
  shift 4
  echo "$run $group $server $job ${*:-fail}" >>"$results"
  printf 'bench: run %s %-6s %-10s %-22s %s\n' "$run" "$group" "$server" "$job" "${*:-FAILED}" >&2
}

bench_rotate() { # run name...: the names rotated by run, so that no server always goes first
  local run=$1
  shift
  local n=$# i list=("$@")
  for ((i = 0; i < n; i++)); do printf '%s\n' "${list[$(((i + run - 1) % n))]}"; done
}
