#!/usr/bin/env bash
# Installs what distlock's demo and tests need when it is missing:
# redis-server, memcached, etcd-server, and ZooKeeper (libzookeeper-java
# and a headless JRE to run it) from Debian's packages. Rust, Go, Python and gcc come with the
# machine; this only checks for them.
set -euo pipefail

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root to run: $*" >&2; return 1; fi
}

if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
  echo "installing redis-server from Debian's packages..." >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
fi
if ! command -v memcached >/dev/null 2>&1; then
  echo "installing memcached from Debian's packages..." >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq memcached >/dev/null
fi
if ! command -v etcd >/dev/null 2>&1; then
  echo "installing etcd-server from Debian's packages..." >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server >/dev/null
fi
# ZooKeeper's server classes come as jars (the tests run them with java -cp
# /usr/share/java/zookeeper.jar); the package starts no server.
zk_missing=()
command -v java >/dev/null 2>&1 || zk_missing+=(default-jre-headless)
[ -f /usr/share/java/zookeeper.jar ] || zk_missing+=(libzookeeper-java)
if [ "${#zk_missing[@]}" -gt 0 ]; then
  echo "installing ${zk_missing[*]} from Debian's packages..." >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${zk_missing[@]}" >/dev/null
fi
# The packages may start system-wide servers on 6379, 11211 and 2379; our tests
# never use them.

for tool in cargo "$@"; do
  command -v "$tool" >/dev/null 2>&1 || { echo "missing required tool: $tool" >&2; exit 1; }
done
