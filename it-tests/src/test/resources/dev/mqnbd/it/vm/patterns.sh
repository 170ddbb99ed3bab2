# Raw patterns: random data written with dd oflag=direct at several offsets (odd sectors, 1 MiB, the
# middle, the very end), read back with iflag=direct after dropping caches; gaps read as zeroes;
# blkdiscard and blkdiscard -z (zeroout) leave zeroes and keep the neighbours.
. /common.sh
connect
sectors=$(cat /sys/block/nbd0/size)
mid=$((sectors / 2 + 5))
last=$((sectors - 128))
set -- 0:4 7:129 2072:256 $mid:64 $last:128
n=0
for w in "$@"; do
  n=$((n + 1))
  sector=${w%%:*}
  count=${w##*:}
  head -c $((count * 512)) /dev/urandom >/tmp/w$n
  step "write $count sectors at sector $sector"
  must dd if=/tmp/w$n of="$DEV" bs=512 seek="$sector" count="$count" oflag=direct 2>/dev/null
done
echo 3 >/proc/sys/vm/drop_caches
n=0
for w in "$@"; do
  n=$((n + 1))
  sector=${w%%:*}
  count=${w##*:}
  must dd if="$DEV" of=/tmp/r$n bs=512 skip="$sector" count="$count" iflag=direct 2>/dev/null
  cmp -s /tmp/w$n /tmp/r$n || fail "sectors $sector+$count read back differently"
  echo "CHECK pattern at sector $sector ok"
done
zeroes "$DEV" 4 3 || fail "sectors 4-6 (never written) are not zero"
zeroes "$DEV" 136 1936 || fail "sectors 136-2071 (never written) are not zero"
echo "CHECK gaps zero"

step "blkdiscard 64 KiB at sector 2072"
must /usr/sbin/blkdiscard -o $((2072 * 512)) -l 65536 "$DEV"
zeroes "$DEV" 2072 128 || fail "discarded sectors 2072+128 are not zero"
tail -c 65536 /tmp/w3 >/tmp/w3.tail
dd if="$DEV" bs=512 skip=2200 count=128 iflag=direct 2>/dev/null >/tmp/r3.tail
cmp -s /tmp/w3.tail /tmp/r3.tail || fail "the 64 KiB after the discarded range changed"
echo "CHECK discard zero"

step "blkdiscard -z 32 KiB at sector $last"
must /usr/sbin/blkdiscard -z -o $((last * 512)) -l 32768 "$DEV"
zeroes "$DEV" "$last" 64 || fail "zeroed sectors $last+64 are not zero"
tail -c 32768 /tmp/w5 >/tmp/w5.tail
dd if="$DEV" bs=512 skip=$((last + 64)) count=64 iflag=direct 2>/dev/null >/tmp/r5.tail
cmp -s /tmp/w5.tail /tmp/r5.tail || fail "the last 32 KiB changed after zeroing the 32 KiB before them"
echo "CHECK zeroout zero"

disconnect
echo "RESULT ok"
