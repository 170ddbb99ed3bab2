# The server restarts while the guest is idle between two writes; the second write must succeed or fail
# cleanly, within the 60 s request timeout, and the device must disconnect.
. /common.sh
connect
head -c 1048576 /dev/urandom >/tmp/first
head -c 1048576 /dev/urandom >/tmp/second
step "first write"
must dd if=/tmp/first of="$DEV" bs=1M count=1 oflag=direct 2>/dev/null
echo "PHASE idle"
# The test restarts the server now, then answers "restarted" on its control port.
i=0
until printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 5 "$SERVER" "$CONTROL_PORT" 2>/dev/null | grep -q restarted; do
  i=$((i + 1))
  [ $i -le 120 ] || fail "the test did not say that the server restarted"
  sleep 1
done
step "second write"
t0=$(date +%s)
dd if=/tmp/second of="$DEV" bs=1M seek=2 count=1 oflag=direct 2>/tmp/dd.err
rc=$?
t1=$(date +%s)
sed 's/^/GUEST dd: /' /tmp/dd.err
if [ $rc = 0 ]; then
  dd if="$DEV" of=/tmp/back bs=1M skip=2 count=1 iflag=direct 2>/dev/null
  cmp -s /tmp/second /tmp/back || fail "the second write succeeded but reads back differently"
  echo "SECOND write succeeded seconds=$((t1 - t0))"
else
  echo "SECOND write failed rc=$rc seconds=$((t1 - t0))"
fi
dmesg | grep -i nbd | tail -n 10 | sed 's/^/GUEST dmesg: /'
disconnect
echo "RESULT ok"
