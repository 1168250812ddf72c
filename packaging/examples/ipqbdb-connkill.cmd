# /etc/ipqbdb-connkill.cmd: run (without a shell) for an address that reaches 100 %.
# ADDRESS becomes the address, FAMILY ipv4 or ipv6. One command per line.
conntrack -D -f FAMILY -s ADDRESS
