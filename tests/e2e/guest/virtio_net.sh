#!/bin/sh
# virtio_net: the network checks of tests/e2e/e2e_virtio.sh. eth0 gets kite.ip= (a /24), the host's tap
# has kite.host=. The guest pings the host, sends kite.bytes= random bytes to the host's port 5001, then
# receives a file on its own port 5002 (the host pings the guest meanwhile). Prints checksums.
arg() {
  for w in $(cat /proc/cmdline); do
    case $w in "kite.$1="*) echo "${w#kite.$1=}"; return ;; esac
  done
}
sha() { sha256sum | cut -d' ' -f1; }
ip=$(arg ip) host=$(arg host) bytes=$(arg bytes)

echo "KITE-NET-MAC=$(cat /sys/class/net/eth0/address)"
echo "KITE-NET-DRIVER=$(basename "$(readlink /sys/class/net/eth0/device/driver)")"
ip link set lo up
ip link set eth0 up
ip addr add "$ip/24" dev eth0
ok=failed
for i in 1 2 3 4 5 6 7 8 9 10; do
  if ping -c 2 -W 2 "$host" > /tmp/ping.out 2>&1; then ok=ok; break; fi
  sleep 1
done
echo "KITE-PING-HOST=$ok $(grep -a 'packets transmitted' /tmp/ping.out)"

dd if=/dev/urandom of=/tmp/out bs="$bytes" count=1 iflag=fullblock 2>/dev/null
echo "KITE-NET-OUT-SHA=$(sha < /tmp/out)"
sent=failed
for i in $(seq 1 30); do
  if nc -w 5 "$host" 5001 < /tmp/out; then sent=ok; break; fi
  sleep 1
done
echo "KITE-NET-SENT=$sent"

# A FIFO held open for writing keeps nc's input from reaching EOF: on EOF it would shut its side down.
mkfifo /tmp/hold
exec 3<>/tmp/hold
timeout 120 nc -l -p 5002 < /tmp/hold > /tmp/in
echo "KITE-NET-RECEIVED rc=$? bytes=$(wc -c < /tmp/in)"
echo "KITE-NET-IN-SHA=$(sha < /tmp/in)"
exit 0
