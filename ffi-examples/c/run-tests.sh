#!/usr/bin/env bash
# Runs the C API tests and the counter example under valgrind, against
# redis-servers of our own on free loopback ports (plain ones, and TLS ones
# with certificates openssl makes for a throwaway CA), then a short
# benchmark, then installs the library into a scratch prefix and builds
# and runs a program against it the way a user does (pkg-config; dynamic
# and static).
#
# Assumes `cargo build --release` has been run in the repository root.
# Installs valgrind, pkg-config, binutils and openssl from Debian's
# packages when they are missing (as root, or through sudo).
# Exits non-zero on any failure. Environment:
#   LIB_DIR              directory holding libdistlock.so (default: target/release)
#   COUNTER_INCREMENTS   increments per counter thread under valgrind (default 25)
#   VALGRIND=0           run without valgrind
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$root/target}
lib_dir=${LIB_DIR:-$target_dir/release}
increments=${COUNTER_INCREMENTS:-25}

if [ ! -f "$lib_dir/libdistlock.so" ]; then
  echo "$lib_dir/libdistlock.so not found: run 'cargo build --release' in $root first" >&2
  exit 1
fi
for tool in redis-server make cc; do
  command -v "$tool" >/dev/null || { echo "missing required tool: $tool" >&2; exit 1; }
done
# Tools a fresh machine may lack, and the Debian packages that bring them.
as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root to run: $*" >&2; return 1; fi
}
packages=()
command -v pkg-config >/dev/null || packages+=(pkgconf)
command -v readelf >/dev/null || packages+=(binutils)
command -v openssl >/dev/null || packages+=(openssl)
command -v memcached >/dev/null || packages+=(memcached)
command -v etcd >/dev/null || packages+=(etcd-server)
command -v java >/dev/null || packages+=(default-jre-headless)
[ -f /usr/share/java/zookeeper.jar ] || packages+=(libzookeeper-java)
if [ "${VALGRIND:-1}" != 0 ] && ! command -v valgrind >/dev/null; then packages+=(valgrind); fi
if [ "${#packages[@]}" != 0 ]; then
  echo "== installing ${packages[*]} from Debian's packages" >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
fi
run=()
if [ "${VALGRIND:-1}" != 0 ]; then
  command -v valgrind >/dev/null || { echo "missing required tool: valgrind (or set VALGRIND=0)" >&2; exit 1; }
  run=(valgrind --quiet --leak-check=full --error-exitcode=1
       --suppressions="$here/valgrind.supp")
fi

echo "== build"
make -C "$here" --no-print-directory LIB_DIR="$lib_dir" all static pkgconfig-check

scratch=$(mktemp -d)
# The install check's prefix, staging root and user project: each its own
# directory outside the repository.
prefix=$(mktemp -d)
stage=$(mktemp -d)
project=$(mktemp -d)
redis_pids=()
drain_pids=()
cleanup() {
  local pid
  for pid in "${redis_pids[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  for pid in "${drain_pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$scratch" "$prefix" "$stage" "$project"
}
trap cleanup EXIT

# Starts redis-server $1 on port $2 and waits until it logs that it is
# ready, reading its output through a fifo (no polling). Fails if it exits
# first. Its pid joins redis_pids, to be stopped on exit. With --tls as $3,
# port $2 is a TLS port (and there is no plain one); the arguments after
# it go to redis-server.
start_redis() {
  local name=$1 port=$2 line fd pid
  local fifo="$scratch/$name.out" log="$scratch/$name.log"
  local ports=(--port "$port")
  shift 2
  if [ "${1:-}" = --tls ]; then
    ports=(--port 0 --tls-port "$port")
    shift
  fi
  rm -f "$fifo"
  mkfifo "$fifo"
  mkdir -p "$scratch/$name"
  redis-server "${ports[@]}" --bind 127.0.0.1 --save '' --appendonly no \
    --daemonize no --dir "$scratch/$name" --logfile '' "$@" >"$fifo" 2>&1 &
  pid=$!
  exec {fd}<"$fifo"
  while IFS= read -r -t 30 line <&"$fd"; do
    echo "$line" >>"$log"
    case $line in
      *"Ready to accept connections"*)
        # Keep draining its output so that it never blocks on a full pipe.
        cat <&"$fd" >>"$log" &
        drain_pids+=($!)
        exec {fd}<&-
        redis_pids+=("$pid")
        return 0
        ;;
    esac
  done
  # It exited (port taken?) or never became ready.
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  exec {fd}<&-
  return 1
}

# Starts redis-server $1 on a free port, a few tries; sets started_port.
# Further arguments go to start_redis.
start_on_free_port() {
  local name=$1 port
  shift
  for _ in 1 2 3 4 5; do
    port=$("$here/build/free_port")
    if start_redis "$name" "$port" "$@"; then
      started_port=$port
      return 0
    fi
  done
  echo "redis-server $name did not start; its log:" >&2
  cat "$scratch/$name.log" >&2 || true
  return 1
}

start_on_free_port main
port=$started_port
export DISTLOCK_REDIS_PORT=$port
# Three more, independent, for the Redlock checks of test_distlock.
redlock_ports=()
for i in 1 2 3; do
  start_on_free_port "node$i"
  redlock_ports+=("$started_port")
done
export DISTLOCK_REDLOCK_PORTS="${redlock_ports[*]}"

# A throwaway CA, and certificates it signed: the servers' (for 127.0.0.1)
# and a client's; and a second CA with a client certificate of its own,
# which the servers do not trust. EC keys: quick to make.
make_pki() {
  local dir=$1 name ca subject ext
  mkdir -p "$dir"
  printf 'subjectAltName=IP:127.0.0.1\n' >"$dir/server.ext"
  printf 'extendedKeyUsage=clientAuth\n' >"$dir/client.ext"
  for name in ca other-ca; do
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
      -subj "/CN=distlock C test $name" -keyout "$dir/$name.key" -out "$dir/$name.pem" ||
      return 1
  done
  # name, signing CA, subject, extensions
  while read -r name ca subject ext; do
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "$subject" \
      -keyout "$dir/$name.key" -out "$dir/$name.csr" &&
      openssl x509 -req -in "$dir/$name.csr" -CA "$dir/$ca.pem" -CAkey "$dir/$ca.key" \
        -set_serial "$RANDOM" -days 2 -extfile "$dir/$ext" -out "$dir/$name.pem" || return 1
  done <<EOF
server ca /CN=127.0.0.1 server.ext
client ca /CN=distlock-client client.ext
other-client other-ca /CN=distlock-stranger client.ext
EOF
}
pki=$scratch/pki
make_pki "$pki" 2>"$scratch/openssl.log" || { cat "$scratch/openssl.log" >&2; exit 1; }
tls_args=(--tls-cert-file "$pki/server.pem" --tls-key-file "$pki/server.key"
          --tls-ca-cert-file "$pki/ca.pem")
# One TLS server that asks for no client certificate, one that requires it.
start_on_free_port tls --tls "${tls_args[@]}" --tls-auth-clients no
export DISTLOCK_TLS_PORT=$started_port
start_on_free_port mtls --tls "${tls_args[@]}" --tls-auth-clients yes
export DISTLOCK_MTLS_PORT=$started_port
export DISTLOCK_TLS_DIR=$pki
# A memcached (no eviction: distlock refuses one that evicts) for the
# counter on the memcached backend; stopped by pid with the others.
memcached_port=$("$here/build/free_port")
memcached_args=(-l 127.0.0.1 -p "$memcached_port" -U 0 -m 16 -M)
[ "$(id -u)" = 0 ] && memcached_args+=(-u root)
memcached "${memcached_args[@]}" &
redis_pids+=($!)
memcached_url="memcache://127.0.0.1:$memcached_port"
for _ in $(seq 200); do
  (exec 3<>"/dev/tcp/127.0.0.1/$memcached_port") 2>/dev/null && break
  sleep 0.05
done
# A standalone ZooKeeper (Debian's libzookeeper-java; data in the scratch
# dir, a 50 ms tick) for the counter on the ZooKeeper backend; stopped by
# pid with the others. Ready once `srvr` reports a mode, which it does
# only while the server serves (`ruok` says imok as soon as the port is
# open, before the server has loaded its data). Started first: its JVM
# warms up while etcd elects itself.
zk_port=$("$here/build/free_port")
mkdir -p "$scratch/zk/data"
cat >"$scratch/zk/zoo.cfg" <<EOF
tickTime=50
dataDir=$scratch/zk/data
clientPort=$zk_port
clientPortAddress=127.0.0.1
admin.enableServer=false
minSessionTimeout=100
maxSessionTimeout=60000
4lw.commands.whitelist=ruok,srvr
EOF
java -Xmx128m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Dzookeeper.forceSync=no \
  -Dzookeeper.preAllocSize=1024 -cp /usr/share/java/zookeeper.jar \
  org.apache.zookeeper.server.ZooKeeperServerMain "$scratch/zk/zoo.cfg" \
  </dev/null >"$scratch/zk.log" 2>&1 &
redis_pids+=($!)
zk_started=$SECONDS
zk_url="zk://127.0.0.1:$zk_port/distlock-c-test"
zk_ready() {
  local out
  out=$( (exec 3<>"/dev/tcp/127.0.0.1/$zk_port" && printf srvr >&3 && timeout 2 cat <&3) \
    2>/dev/null) && [[ $out == *"Mode: "* ]]
}
# A one-member etcd (data in the scratch dir, fast elections) for the
# counter on the etcd backend; stopped by pid with the others. Ready once
# its gateway answers a read (which needs a leader).
etcd_port=$("$here/build/free_port")
etcd_peer=$("$here/build/free_port")
etcd --name c-test --data-dir "$scratch/etcd" \
  --listen-client-urls "http://127.0.0.1:$etcd_port" \
  --advertise-client-urls "http://127.0.0.1:$etcd_port" \
  --listen-peer-urls "http://127.0.0.1:$etcd_peer" \
  --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
  --initial-cluster "c-test=http://127.0.0.1:$etcd_peer" \
  --heartbeat-interval 10 --election-timeout 50 --log-level error >"$scratch/etcd.log" 2>&1 &
redis_pids+=($!)
etcd_url="etcd://127.0.0.1:$etcd_port"
etcd_ready() {
  exec 3<>"/dev/tcp/127.0.0.1/$etcd_port" || return 1
  printf 'POST /v3/kv/range HTTP/1.0\r\nContent-Length: 14\r\n\r\n{"key":"AA=="}' >&3
  head -c 12 <&3 | grep -q ' 200'
}
for _ in $(seq 200); do
  etcd_ready 2>/dev/null && break
  sleep 0.05
done
exec 3>&-
until zk_ready; do
  if [ $((SECONDS - zk_started)) -ge 30 ]; then
    echo "ZooKeeper did not serve on 127.0.0.1:$zk_port within 30 s; its log:" >&2
    cat "$scratch/zk.log" >&2
    exit 1
  fi
  sleep 0.05
done
echo "== ZooKeeper on 127.0.0.1:$zk_port, ready $((SECONDS - zk_started)) s after its start"
echo "== redis-server pids ${redis_pids[*]} on 127.0.0.1:$port (Redlock nodes: $DISTLOCK_REDLOCK_PORTS;" \
  "TLS: $DISTLOCK_TLS_PORT, mutual TLS: $DISTLOCK_MTLS_PORT)"

failed=0
step() {
  local name=$1 start=$SECONDS
  shift
  echo "== $name"
  if ! "$@"; then
    echo "FAILED: $name" >&2
    failed=1
  fi
  echo "   ($((SECONDS - start)) s)"
}

step "test_distlock" "${run[@]}" "$here/build/test_distlock"
step "test_kinds (read-write locks, semaphores, fair locks)" \
  env DISTLOCK_MEMCACHED_URL="$memcached_url" "${run[@]}" "$here/build/test_kinds"
step "counter, one client per thread" "${run[@]}" "$here/build/counter" -t 8 -n "$increments"
step "counter, one shared client" "${run[@]}" "$here/build/counter" -t 8 -n "$increments" -s
step "counter on memcache://, one client per thread" "${run[@]}" "$here/build/counter" -t 4 -n 10 \
  -u "$memcached_url"
step "counter on memcache://, one shared client" "${run[@]}" "$here/build/counter" -t 4 -n 10 -s \
  -u "$memcached_url"
step "counter on etcd://, one client per thread" "${run[@]}" "$here/build/counter" -t 4 -n 10 \
  -u "$etcd_url"
step "counter on etcd://, one shared client" "${run[@]}" "$here/build/counter" -t 4 -n 10 -s \
  -u "$etcd_url"
step "counter on zk://, one client per thread" "${run[@]}" "$here/build/counter" -t 4 -n 10 \
  -u "$zk_url"
step "counter on zk://, one shared client" "${run[@]}" "$here/build/counter" -t 4 -n 10 -s \
  -u "$zk_url"
step "counter built with pkg-config flags" "$here/build/counter-pkgconfig" -t 8 -n 100
step "counter linked statically" "$here/build/counter-static" -t 8 -n 100
step "bench (short)" "$here/build/bench" -n 200
# The Prometheus example: four acquisitions, one of them waited for.
prometheus_check() {
  local out
  out=$("${run[@]}" "$here/build/prometheus") || return 1
  grep -qx 'distlock_acquired_total 4' <<<"$out" &&
    grep -qx 'distlock_contended_total 1' <<<"$out" &&
    grep -q '^distlock_acquire_wait_seconds{quantile="0.99"} ' <<<"$out" ||
    { echo "unexpected metrics:" >&2; echo "$out" >&2; return 1; }
}
step "prometheus example (stats in the text format)" prometheus_check

# --- Installing like any library -------------------------------------------

version=$(sed -n '/^\[package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' "$root/Cargo.toml")
major=${version%%.*}

fail() {
  echo "install check: $*" >&2
  return 1
}

# The files, links and soname that `make install` leaves under $prefix.
check_installed_files() {
  local lib=$prefix/lib soname
  [ -f "$prefix/include/distlock.h" ] || fail "no include/distlock.h" || return 1
  cmp -s "$prefix/include/distlock.h" "$root/include/distlock.h" ||
    fail "installed header differs from include/distlock.h" || return 1
  [ -f "$lib/libdistlock.so.$version" ] && [ ! -L "$lib/libdistlock.so.$version" ] ||
    fail "lib/libdistlock.so.$version is not a file" || return 1
  [ "$(readlink "$lib/libdistlock.so.$major")" = "libdistlock.so.$version" ] ||
    fail "lib/libdistlock.so.$major does not link to libdistlock.so.$version" || return 1
  [ "$(readlink "$lib/libdistlock.so")" = "libdistlock.so.$major" ] ||
    fail "lib/libdistlock.so does not link to libdistlock.so.$major" || return 1
  [ -f "$lib/libdistlock.a" ] || fail "no lib/libdistlock.a" || return 1
  [ -f "$lib/pkgconfig/distlock.pc" ] || fail "no lib/pkgconfig/distlock.pc" || return 1
  soname=$(readelf -d "$lib/libdistlock.so.$version" | grep SONAME) || fail "no SONAME" || return 1
  echo "readelf -d lib/libdistlock.so.$version:$soname"
  [[ $soname == *"[libdistlock.so.$major]"* ]] || fail "soname is not libdistlock.so.$major" ||
    return 1
}

# What pkg-config tells a user of the prefix.
check_pkg_config() {
  local got private
  got=$(pkg-config --modversion distlock) || fail "pkg-config cannot find distlock" || return 1
  [ "$got" = "$version" ] || fail "pkg-config version $got, Cargo.toml $version" || return 1
  private=$(sed -n 's/^Libs.private: *//p' "$prefix/lib/pkgconfig/distlock.pc")
  echo "Libs.private: $private"
  [ -n "$private" ] || fail "empty Libs.private" || return 1
  [ "$private" = "$(cat "$here/build/native-static-libs")" ] ||
    fail "Libs.private is not what rustc reported" || return 1
  echo "pkg-config --cflags --libs: $(pkg-config --cflags --libs distlock)"
  echo "pkg-config --static --cflags --libs: $(pkg-config --static --cflags --libs distlock)"
  [[ $(pkg-config --static --libs distlock) == *"$private"* ]] ||
    fail "pkg-config --static leaves out Libs.private" || return 1
}

# install_check.c, copied into a project directory of its own and built with
# nothing but pkg-config's flags, linked with the shared library.
check_dynamic_program() {
  local needed
  cp "$here/install_check.c" "$project/"
  (cd "$project" && cc -Wall -Wextra -Werror -o install_check_dynamic install_check.c \
    $(pkg-config --cflags --libs distlock)) || fail "cannot build against the prefix" || return 1
  needed=$(readelf -d "$project/install_check_dynamic" | grep NEEDED | grep distlock)
  echo "readelf -d install_check_dynamic:$needed"
  [[ $needed == *"[libdistlock.so.$major]"* ]] ||
    fail "the program does not need libdistlock.so.$major" || return 1
  LD_LIBRARY_PATH=$prefix/lib "$project/install_check_dynamic" "redis://127.0.0.1:$port/0"
}

# The README's first program, built with the rpath command the README gives
# for a prefix outside the system directories, run with no library path.
check_readme_program() {
  local out
  awk '/^## A first program/{f=1} f&&/^```c$/{p=1;next} p&&/^```$/{exit} p' \
    "$here/README.md" >"$project/hello.c"
  [ -s "$project/hello.c" ] || fail "no program under README's 'A first program'" || return 1
  (cd "$project" && cc -Wall -Wextra -Werror -o hello hello.c \
    $(pkg-config --cflags --libs distlock) -Wl,-rpath,"$(pkg-config --variable=libdir distlock)") ||
    fail "cannot build the README's first program" || return 1
  out=$(env -u LD_LIBRARY_PATH "$project/hello" "redis://127.0.0.1:$port/0") ||
    fail "the README's first program failed" || return 1
  echo "$out"
  [[ $out =~ ^holding\ \"hello\",\ fence\ [1-9][0-9]*$ ]] || fail "unexpected output" || return 1
}

# The same program linked with libdistlock.a: linkers take libdistlock.so
# when both are in one directory, so -Bstatic picks the archive for
# -ldistlock, and --as-needed drops the .so that pkg-config's -ldistlock
# names again; Libs.private adds the system libraries. Runs with nothing
# of distlock on the library path.
check_static_program() {
  (cd "$project" && cc -Wall -Wextra -Werror -o install_check_static install_check.c \
    $(pkg-config --cflags distlock) -Wl,--as-needed -Wl,-Bstatic -ldistlock -Wl,-Bdynamic \
    $(pkg-config --static --libs distlock)) || fail "cannot link libdistlock.a" || return 1
  echo "readelf -d install_check_static: NEEDED" \
    $(readelf -d "$project/install_check_static" | sed -n 's/.*NEEDED.*\[\(.*\)\]/\1/p')
  if readelf -d "$project/install_check_static" | grep NEEDED | grep -q distlock; then
    fail "the static program still needs libdistlock.so"
    return 1
  fi
  env -u LD_LIBRARY_PATH "$project/install_check_static" "redis://127.0.0.1:$port/0"
}

# A packager's install: DESTDIR staging, a multiarch LIBDIR. The pc file
# names the final paths, not the staging ones; uninstall removes it all.
check_destdir_libdir() {
  local multiarch=/usr/lib/x86_64-linux-gnu left
  make -C "$here" --no-print-directory LIB_DIR="$lib_dir" install DESTDIR="$stage" \
    PREFIX=/usr LIBDIR="$multiarch" >/dev/null || fail "make install DESTDIR= failed" || return 1
  [ -f "$stage/usr/include/distlock.h" ] || fail "no DESTDIR/usr/include/distlock.h" || return 1
  [ "$(readlink "$stage$multiarch/libdistlock.so.$major")" = "libdistlock.so.$version" ] ||
    fail "no soname link in DESTDIR$multiarch" || return 1
  [ -f "$stage$multiarch/libdistlock.a" ] || fail "no DESTDIR$multiarch/libdistlock.a" || return 1
  grep -qx 'prefix=/usr' "$stage$multiarch/pkgconfig/distlock.pc" &&
    grep -qx "libdir=\${prefix}/lib/x86_64-linux-gnu" "$stage$multiarch/pkgconfig/distlock.pc" ||
    fail "the staged distlock.pc does not name /usr and $multiarch" || return 1
  if grep -q "$stage" "$stage$multiarch/pkgconfig/distlock.pc"; then
    fail "the staging directory leaks into distlock.pc"
    return 1
  fi
  make -C "$here" --no-print-directory LIB_DIR="$lib_dir" uninstall DESTDIR="$stage" \
    PREFIX=/usr LIBDIR="$multiarch" >/dev/null || fail "make uninstall DESTDIR= failed" || return 1
  left=$(find "$stage" ! -type d)
  [ -z "$left" ] || fail "uninstall left: $left" || return 1
}

check_uninstall() {
  local left
  make -C "$here" --no-print-directory LIB_DIR="$lib_dir" uninstall PREFIX="$prefix" >/dev/null ||
    fail "make uninstall failed" || return 1
  left=$(find "$prefix" ! -type d)
  [ -z "$left" ] || fail "uninstall left: $left" || return 1
}

echo "== make install PREFIX=$prefix"
if make -C "$here" --no-print-directory LIB_DIR="$lib_dir" install PREFIX="$prefix" >/dev/null; then
  export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
  step "installed files and soname" check_installed_files
  step "pkg-config" check_pkg_config
  step "program linked with the installed shared library" check_dynamic_program
  step "the README's first program, with an rpath" check_readme_program
  step "program linked with the installed static library" check_static_program
  step "install with DESTDIR and LIBDIR, then uninstall" check_destdir_libdir
  step "uninstall" check_uninstall
  unset PKG_CONFIG_PATH
else
  echo "FAILED: make install" >&2
  failed=1
fi

if [ "$failed" != 0 ]; then
  echo "C tests FAILED" >&2
  exit 1
fi
echo "C tests passed"
