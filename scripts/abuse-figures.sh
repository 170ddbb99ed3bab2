#!/usr/bin/env bash
# Measures the attacks of docs/hardening.md ("Abuse") against one server jar: for each attack, a fresh
# server (-Xmx512m, 2 GiB direct memory), a well-behaved client beside the attack (nbdinfo, then a qemu-io
# pattern write and read of 1 MiB, in a loop), and the server's peak VmRSS.
# Usage: scripts/abuse-figures.sh [path/to/mqnbd.jar [ATTACKS]]   (default: nbd-server/target/mqnbd.jar, all)
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$root/scripts/lib/java-home.sh"
jar=${1:-$root/nbd-server/target/mqnbd.jar}
abuse="$root/it-tests/src/test/resources/dev/mqnbd/it/hardening/abuse.py"
port=20809
work=$(mktemp -d)

start_server() {
  "$JAVA_HOME/bin/java" --sun-misc-unsafe-memory-access=allow --enable-native-access=ALL-UNNAMED -Xmx512m \
    -XX:MaxDirectMemorySize=2g -jar "$jar" serve --port $port --event-loops 2 "$@" > "$work/server.log" 2>&1 &
  server=$!
  for _ in $(seq 100); do grep -q 'ready:' "$work/server.log" && return; sleep 0.2; done
  echo "server did not start"; cat "$work/server.log"; exit 1
}

stop_server() { kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; }

rss_sampler() {
  peak=0
  while kill -0 "$server" 2>/dev/null; do
    kb=$(awk '/VmRSS/ {print $2}' /proc/$server/status 2>/dev/null || echo 0)
    [ "${kb:-0}" -gt "$peak" ] && peak=$kb && echo "$peak" > "$work/peak"
    sleep 0.2
  done
}

good_client() {  # until $work/stop exists: nbdinfo + qemu-io write/read; prints worst seconds and failures
  worst=0; fails=0; rounds=0
  while [ ! -e "$work/stop" ]; do
    t0=$(date +%s.%N)
    if ! timeout 60 nbdinfo "nbd://127.0.0.1:$port/mem" > /dev/null 2>&1 \
       || ! timeout 60 qemu-io -f raw -c 'write -P 0x5a 0 1M' -c 'read -P 0x5a 0 1M' "nbd://127.0.0.1:$port/mem" \
            2>&1 | grep -q 'read 1048576'; then
      fails=$((fails + 1))
    fi
    t=$(echo "$(date +%s.%N) - $t0" | bc)
    rounds=$((rounds + 1))
    worst=$(echo "if ($t > $worst) $t else $worst" | bc)
  done
  printf 'good client: %d rounds, worst %.1f s, %d failed\n' "$rounds" "$worst" "$fails"
}

run() {  # run NAME SERVER-ARGS -- ATTACK-ARGS
  name=$1; shift
  args=(); while [ "$1" != "--" ]; do args+=("$1"); shift; done; shift
  rm -f "$work/stop" "$work/peak"
  start_server "${args[@]}"
  # Data for the READs to return: 256 MiB written with a pattern.
  qemu-io -f raw -c 'write -P 0x11 0 256M' "nbd://127.0.0.1:$port/mem" > /dev/null
  rss_sampler & sampler=$!
  good_client > "$work/good" & good=$!
  attack=$(timeout 300 python3 "$abuse" 127.0.0.1 $port "$@" 2>&1 | tail -1)
  touch "$work/stop"; wait $good
  after=$(timeout 60 nbdinfo "nbd://127.0.0.1:$port/mem" > /dev/null 2>&1 && echo accepts || echo "NOT accepting")
  lines=$(wc -l < "$work/server.log")
  t0=$(date +%s.%N); stop_server; stop=$(echo "$(date +%s.%N) - $t0" | bc)
  wait $sampler 2>/dev/null
  printf '%-20s peak RSS %5d MiB | %s | after: %s | %d log lines | stop %.1f s | %s\n' "$name" \
    $(( $(cat "$work/peak" 2>/dev/null || echo 0) / 1024 )) "$(cat "$work/good")" "$after" "$lines" "$stop" "$attack"
}

only=${2:-unread-reads option-flood stalled-handshakes range-flood disc-junk}
for attack in $only; do
  case $attack in
    unread-reads) run unread-reads --export mem=memory:1G -- unread-reads mem 400 33554432 15 ;;
    option-flood) run option-flood --export mem=memory:1G -- option-flood 60 100000 10 ;;
    stalled-handshakes) run stalled-handshakes --export mem=memory:1G --handshake-timeout 30s -- stalled-handshakes 300 8 ;;
    # A page every 16 MiB of 1 TiB (64 MiB of pages), then 8 TRIM + 8 WRITE_ZEROES over the whole export.
    range-flood) run range-flood --export mem=memory:1G --export big=memory:1T -- range-flood big 8 16777216 ;;
    disc-junk) run disc-junk --export mem=memory:1G -- disc-junk mem ;;
  esac
done
rm -rf "$work"
