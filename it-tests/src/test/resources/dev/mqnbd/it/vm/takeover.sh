# The server is replaced (start new, drain old: --take-over) while the guest writes files to ext4 on the
# device, each with fsync, through nbd-client's persist mode (ioctl: -persist -nonetlink), the only mode
# in which nbd-client reconnects. It prints the SHA-256 of every file whose write and fsync succeeded,
# and the test checks the image on the host: every file whose write was acknowledged must be there.
. /common.sh
connect -persist -nonetlink
must mkfs.ext4 -q "$DEV"
mkdir -p /mnt/fs
must mount -t ext4 "$DEV" /mnt/fs
head -c 4194304 /dev/urandom >/mnt/fs/before.bin
must sync
echo "BEFORE $(sha256sum /mnt/fs/before.bin | cut -d' ' -f1)"
echo "PHASE writing"
n=0
while :; do
  state=$(printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 5 "$SERVER" "$CONTROL_PORT" 2>/dev/null | tail -n 1)
  n=$((n + 1))
  head -c 262144 /dev/urandom >/tmp/f
  t0=$(date +%s)
  if dd if=/tmp/f of=/mnt/fs/f$n bs=64k conv=fsync 2>/tmp/dd.err; then
    echo "WROTE f$n $(sha256sum /tmp/f | cut -d' ' -f1) seconds=$(($(date +%s) - t0))"
  else
    echo "FAILED f$n seconds=$(($(date +%s) - t0)): $(tail -n 1 /tmp/dd.err)"
  fi
  [ "$state" = done ] && break
  [ $n -lt 400 ] || break
done
echo "PHASE done"
umount /mnt/fs 2>/dev/null || echo "GUEST umount failed"
dmesg | grep -i -E 'nbd|I/O error|EXT4-fs' | tail -n 30 | sed 's/^/GUEST dmesg: /'
/usr/sbin/nbd-client -d "$DEV" >/dev/null 2>&1
echo "RESULT ok"
