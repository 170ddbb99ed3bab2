# The file-system scenario: mkfs.ext4 on the NBD device, files of known checksum (one of 64 MiB), sync,
# unmount, e2fsck -fn clean, mount again, checksums equal, disconnect. NBD_ARGS adds nbd-client options.
. /common.sh
connect $NBD_ARGS
if [ -n "$CONNECTIONS" ]; then
  queues=$(ls /sys/block/nbd0/mq | wc -l)
  [ "$queues" = "$CONNECTIONS" ] || fail "$DEV has $queues hardware queues, expected $CONNECTIONS (one per connection)"
fi

step mkfs.ext4
must /usr/sbin/mkfs.ext4 -q -F "$DEV"
must mkdir -p /mnt/fs /tmp/src/small
must mount -t ext4 "$DEV" /mnt/fs

step "write files"
must dd if=/dev/urandom of=/tmp/src/big.bin bs=1M count=64 2>/dev/null
seq 1 200000 >/tmp/src/seq.txt
i=1
while [ $i -le 40 ]; do
  head -c $((i * 4099)) /dev/urandom >/tmp/src/small/f$i
  i=$((i + 1))
done
(cd /tmp/src && find . -type f | sort | xargs sha256sum) >/tmp/sums.before
sed 's/^/BEFORE /' /tmp/sums.before
must cp -a /tmp/src/. /mnt/fs/
must sync -f /mnt/fs/big.bin
must sync
must umount /mnt/fs

step "e2fsck -fn"
/usr/sbin/e2fsck -fn "$DEV" >/tmp/fsck.log 2>&1
rc=$?
sed 's/^/FSCK /' /tmp/fsck.log
[ $rc = 0 ] || fail "e2fsck -fn exited $rc"

step "mount again"
echo 3 >/proc/sys/vm/drop_caches
must mount -t ext4 -o ro "$DEV" /mnt/fs
(cd /mnt/fs && find . -type f ! -path './lost+found/*' | sort | xargs sha256sum) >/tmp/sums.after
sed 's/^/AFTER /' /tmp/sums.after
cmp -s /tmp/sums.before /tmp/sums.after || fail "checksums differ after mounting again"
must umount /mnt/fs
disconnect
echo "RESULT ok"
