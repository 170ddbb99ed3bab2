# The kernel client on ext4 while the host replaces the server (mqnbd serve --take-over) five times, with
# the only reconnecting mode Debian bookworm's nbd-client (3.24) has: -persist in ioctl mode (-nonetlink),
# run in the foreground (-nofork) so that its messages reach the console. fio writes and verifies
# (crc32c) in rounds until the test answers "done" on its control port. The script reports what the guest
# saw instead of failing on the first error: fio rounds and errors, I/O errors in dmesg, whether the device
# answers again, and then, after a remount (journal replay), whether a file synced before the replacements
# reads back and what e2fsck -fn says.
. /common.sh
echo "GUEST $(/usr/sbin/nbd-client -V 2>&1 | head -n 1), kernel $(uname -r)"
step "nbd-client $SERVER $PORT $DEV -N '$EXPORT' -t 60 -persist -nonetlink -nofork"
/usr/sbin/nbd-client "$SERVER" "$PORT" "$DEV" -N "$EXPORT" -t 60 -persist -nonetlink -nofork >/tmp/nbdc.log 2>&1 &
i=0
while [ "$(cat /sys/block/nbd0/size)" = 0 ]; do
  i=$((i + 1))
  [ $i -le 100 ] || fail "$DEV has no size 10 s after connecting: $(cat /tmp/nbdc.log)"
  sleep 0.1
done
echo "CONNECTED size=$(($(cat /sys/block/nbd0/size) * 512))"
step "mkfs.ext4 and mount"
must mkfs.ext4 -q -F "$DEV"
mkdir -p /mnt/fs
must mount -t ext4 "$DEV" /mnt/fs
head -c 4194304 /dev/urandom >/tmp/before
must cp /tmp/before /mnt/fs/before
must sync
echo "PHASE fio"
rounds=0
errors=0
while :; do
  state=$(printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 5 "$SERVER" "$CONTROL_PORT" 2>/dev/null | tail -n 1)
  [ "$state" = done ] && break
  rounds=$((rounds + 1))
  fio --name=verify --filename=/mnt/fs/fio.dat --size=16M --bs=64k --rw=randwrite --ioengine=psync \
    --direct=1 --verify=crc32c --do_verify=1 --verify_fatal=1 --randrepeat=0 --output=/tmp/fio.out >/dev/null 2>&1
  rc=$?
  if [ $rc != 0 ]; then
    errors=$((errors + 1))
    [ $errors -le 2 ] && grep -E 'err=' /tmp/fio.out | head -n 2 | sed 's/^/GUEST fio: /'
    sleep 1
  fi
  [ $rounds -ge 300 ] && break
done
echo "FIO rounds=$rounds errors=$errors"
echo "DMESG ioerrors=$(dmesg | grep -c -E 'I/O error') ext4errors=$(dmesg | grep -c 'EXT4-fs error')"
dmesg | grep -E 'nbd|Aborting journal|Remounting' | head -n 8 | sed 's/^/GUEST first: /'
sed 's/^/GUEST nbd-client: /' /tmp/nbdc.log | head -n 20
echo "RECONNECTS $(grep -c Reconnecting /tmp/nbdc.log)"
umount /mnt/fs || echo "GUEST umount failed"
if [ "$(cat /sys/block/nbd0/size)" != 0 ] && dd if="$DEV" of=/dev/null bs=4096 count=1 iflag=direct 2>/dev/null; then
  echo "DEVICE answers after the replacements"
else
  echo "DEVICE gone after the replacements (size $(cat /sys/block/nbd0/size))"
  /usr/sbin/nbd-client -d "$DEV" >/dev/null 2>&1
  sleep 1
  connect
fi
step "remount (journal replay), compare the file synced before, e2fsck -fn"
if mount -t ext4 "$DEV" /mnt/fs; then
  if cmp -s /tmp/before /mnt/fs/before; then echo "BEFORE intact"; else echo "BEFORE differs"; fi
  umount /mnt/fs
else
  echo "BEFORE unmountable"
fi
e2fsck -fn "$DEV" >/tmp/fsck.out 2>&1
rc=$?
tail -n 3 /tmp/fsck.out | sed 's/^/GUEST e2fsck: /'
echo "FSCK rc=$rc"
/usr/sbin/nbd-client -d "$DEV" >/dev/null 2>&1
echo "RESULT ok"
