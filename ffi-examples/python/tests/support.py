"""Helpers shared by the tests, the example and the benchmark: a throwaway
``redis-server`` on a free loopback port (started and stopped by pid), a
tiny Redis client speaking raw RESP, and the code run in the spawned worker
processes of test_mutex.py (kept apart from the test modules so that a
spawned child imports no pytest).

Standard library only, apart from distlock itself; not part of the
installed package. The example and the benchmark put this directory on
``sys.path`` to import it.

>>> from support import RedisServer
>>> with RedisServer() as server:                      # doctest: +SKIP
...     conn = server.connect()
...     conn.command("SET", "k", "v")
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from typing import Any, List, Optional, Sequence, Union

import distlock

Reply = Union[None, int, bytes, str, List["Reply"]]


class RespError(Exception):
    """An error reply from Redis (``-ERR ...``)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RespConnection:
    """One blocking connection speaking RESP2; enough for GET, SET, DEL,
    PTTL and friends. Not thread-safe: use one per thread."""

    def __init__(self, host: str, port: int, *, password: Optional[str] = None, timeout: float = 5.0):
        self._sock = socket.create_connection((host, port), timeout=timeout)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._file = self._sock.makefile("rb")
        if password is not None:
            self.command("AUTH", password)

    def command(self, *args: Union[str, bytes, int]) -> Reply:
        """Sends one command and returns its reply: bytes for bulk strings,
        str for simple strings, int, None for nil, lists for arrays. Raises
        RespError for an error reply."""
        parts = [b"*%d\r\n" % len(args)]
        for a in args:
            raw = a if isinstance(a, bytes) else str(a).encode("utf-8")
            parts.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
        self._sock.sendall(b"".join(parts))
        return self._read()

    def _read(self) -> Reply:
        line = self._file.readline()
        if not line.endswith(b"\r\n"):
            raise ConnectionError("connection to redis closed")
        kind, body = line[:1], line[1:-2]
        if kind == b"+":
            return body.decode("utf-8", "replace")
        if kind == b"-":
            raise RespError(body.decode("utf-8", "replace"))
        if kind == b":":
            return int(body)
        if kind == b"$":
            size = int(body)
            if size < 0:
                return None
            data = self._file.read(size + 2)
            if len(data) != size + 2:
                raise ConnectionError("connection to redis closed")
            return data[:-2]
        if kind == b"*":
            count = int(body)
            if count < 0:
                return None
            return [self._read() for _ in range(count)]
        raise ConnectionError(f"unexpected reply from redis: {line!r}")

    def close(self) -> None:
        """Closes the connection."""
        try:
            self._file.close()
        finally:
            self._sock.close()

    def __enter__(self) -> "RespConnection":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TLSFiles:
    """The PEM files of a TLS-only redis-server: its certificate and key,
    the CA that vouches for clients' certificates, and whether it requires
    one (``tls-auth-clients yes``)."""

    def __init__(self, cert: str, key: str, ca: str, require_client_cert: bool = False) -> None:
        self.cert, self.key, self.ca = cert, key, ca
        self.require_client_cert = require_client_cert

    def args(self, port: int) -> List[str]:
        """redis-server arguments: TLS on ``port``, no plain-text port."""
        return [
            "--port", "0",
            "--tls-port", str(port),
            "--tls-cert-file", self.cert,
            "--tls-key-file", self.key,
            "--tls-ca-cert-file", self.ca,
            "--tls-auth-clients", "yes" if self.require_client_cert else "no",
        ]


def make_pki(directory: str) -> None:
    """Makes a throwaway CA in ``directory`` with openssl (EC keys: quick
    to make), and the certificates it signs: ``server`` (for 127.0.0.1)
    and ``client`` (for client authentication); and a second CA,
    ``other-ca``, with a client certificate of its own, ``other-client``,
    that a server trusting ``ca`` refuses. Each as ``<name>.pem`` and
    ``<name>.key``. Raises RuntimeError with openssl's output on failure."""
    if shutil.which("openssl") is None:
        raise RuntimeError("openssl not found: install it (Debian: apt-get install openssl)")

    def p(name: str) -> str:
        return os.path.join(directory, name)

    def run(*args: str) -> None:
        done = subprocess.run(["openssl", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            raise RuntimeError(f"openssl {' '.join(args)}: {done.stdout.decode('utf-8', 'replace')}")

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    with open(p("server.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\n")
    with open(p("client.ext"), "w") as f:
        f.write("extendedKeyUsage=clientAuth\n")
    for ca in ("ca", "other-ca"):
        run("req", "-x509", "-days", "2", "-subj", f"/CN=distlock Python test {ca}",
            "-keyout", p(f"{ca}.key"), "-out", p(f"{ca}.pem"), *ec)
    for serial, (name, ca, subject, ext) in enumerate(
        [
            ("server", "ca", "/CN=127.0.0.1", "server.ext"),
            ("client", "ca", "/CN=distlock-client", "client.ext"),
            ("other-client", "other-ca", "/CN=distlock-stranger", "client.ext"),
        ],
        start=1,
    ):
        run("req", "-subj", subject, "-keyout", p(f"{name}.key"), "-out", p(f"{name}.csr"), *ec)
        run("x509", "-req", "-in", p(f"{name}.csr"), "-CA", p(f"{ca}.pem"), "-CAkey", p(f"{ca}.key"),
            "-set_serial", str(serial), "-days", "2", "-extfile", p(ext), "-out", p(f"{name}.pem"))


class RedisServer:
    """A ``redis-server`` child process without persistence, on a free
    loopback port, in its own scratch directory.

    ``start()`` waits until the server logs that it is ready (no polling);
    ``stop()`` kills it by pid and removes the directory. Use it as a
    context manager, or call both. ``extra_args`` are passed to
    redis-server, such as ``["--requirepass", "secret"]``. With ``tls``
    (a :class:`TLSFiles`) the port speaks TLS only and :attr:`url` is
    ``rediss://``; :meth:`connect` (plain text) then does not work.
    """

    READY = b"Ready to accept connections"

    def __init__(
        self,
        extra_args: Sequence[str] = (),
        *,
        password: Optional[str] = None,
        executable: Optional[str] = None,
        startup_timeout: float = 10.0,
        tls: Optional[TLSFiles] = None,
    ) -> None:
        self.tls = tls
        self.extra_args = list(extra_args)
        self.password = password
        if password is not None:
            self.extra_args += ["--requirepass", password]
        self.executable = executable or os.environ.get("REDIS_SERVER") or "redis-server"
        self.startup_timeout = startup_timeout
        self.port = 0
        self.process: Optional[subprocess.Popen] = None
        self._dir: Optional[str] = None
        self._reader: Optional[threading.Thread] = None

    @property
    def pid(self) -> int:
        """The server's process id."""
        if self.process is None:
            raise RuntimeError("redis-server is not running")
        return self.process.pid

    @property
    def url(self) -> str:
        """``redis://[:password@]127.0.0.1:<port>/0`` (``rediss://`` with TLS)."""
        auth = f":{self.password}@" if self.password is not None else ""
        scheme = "rediss" if self.tls is not None else "redis"
        return f"{scheme}://{auth}127.0.0.1:{self.port}/0"

    def connect(self, timeout: float = 5.0) -> RespConnection:
        """A new raw RESP connection to this server (authenticated if the
        server has a password)."""
        return RespConnection("127.0.0.1", self.port, password=self.password, timeout=timeout)

    def start(self, attempts: int = 5) -> "RedisServer":
        """Starts the server; retries on another port if one was taken in
        the meantime. Raises RuntimeError if it never comes up."""
        if shutil.which(self.executable) is None:
            raise RuntimeError(f"{self.executable} not found: install redis-server (Debian: apt-get install redis-server)")
        last = ""
        for _ in range(attempts):
            port = free_port()
            scratch = tempfile.mkdtemp(prefix=f"distlock-py-redis-{port}-")
            ok, last = self._spawn(port, scratch)
            if ok:
                self.port, self._dir = port, scratch
                return self
            shutil.rmtree(scratch, ignore_errors=True)
        raise RuntimeError(f"redis-server did not start after {attempts} attempts: {last}")

    def _spawn(self, port: int, scratch: str) -> "tuple[bool, str]":
        ports = self.tls.args(port) if self.tls is not None else ["--port", str(port)]
        args = [
            self.executable,
            *ports,
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--logfile", "",
            "--dir", scratch,
            *self.extra_args,
        ]
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        ready = threading.Event()
        tail: List[bytes] = []

        def read_log() -> None:
            # Waits for the ready line, then keeps draining so the server
            # never blocks on a full pipe. Ends when the server exits.
            assert proc.stdout is not None
            for line in proc.stdout:
                if not ready.is_set():
                    tail.append(line)
                    del tail[:-5]
                    if self.READY in line:
                        ready.set()
            ready.set()  # exited: wake the starter, which then sees the exit

        reader = threading.Thread(target=read_log, name=f"redis-log-{port}", daemon=True)
        reader.start()
        if ready.wait(self.startup_timeout) and proc.poll() is None:
            self.process, self._reader = proc, reader
            return True, ""
        self._kill(proc)
        reader.join(self.startup_timeout)
        return False, b"".join(tail).decode("utf-8", "replace").strip()

    @staticmethod
    def _kill(proc: subprocess.Popen) -> None:
        if proc.poll() is None:
            try:
                os.kill(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait(timeout=10)

    def stop(self) -> None:
        """Terminates the server by pid (SIGTERM, then SIGKILL after 10 s),
        waits for it and removes its directory."""
        proc, self.process = self.process, None
        if proc is not None:
            if proc.poll() is None:
                try:
                    os.kill(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self._kill(proc)
            if self._reader is not None:
                self._reader.join(10)
            if proc.stdout is not None:
                proc.stdout.close()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> "RedisServer":
        if self.process is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class MemcachedServer:
    """A ``memcached`` child process (1.6 or later) on a free loopback
    port, started with ``-M`` (no eviction: distlock refuses a server that
    evicts) and stopped by pid. Use it as a context manager."""

    def __init__(self, executable: Optional[str] = None, startup_timeout: float = 10.0) -> None:
        self.executable = executable or "memcached"
        self.startup_timeout = startup_timeout
        self.port = 0
        self.process: Optional[subprocess.Popen] = None

    @property
    def url(self) -> str:
        """``memcache://127.0.0.1:<port>``."""
        return f"memcache://127.0.0.1:{self.port}"

    def start(self) -> "MemcachedServer":
        """Starts the server and waits (bounded) until it accepts
        connections; raises RuntimeError if it does not."""
        if shutil.which(self.executable) is None:
            raise RuntimeError(f"{self.executable} not found: install memcached (Debian: apt-get install memcached)")
        self.port = free_port()
        args = [self.executable, "-l", "127.0.0.1", "-p", str(self.port), "-U", "0", "-m", "16", "-M"]
        if os.geteuid() == 0:
            args += ["-u", "root"]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                raise RuntimeError(f"memcached exited at start: {err.strip()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"memcached did not listen on 127.0.0.1:{self.port} within {self.startup_timeout} s")

    def stop(self) -> None:
        """Kills the server by pid and reaps it."""
        if self.process is not None:
            RedisServer._kill(self.process)
            self.process = None

    def __enter__(self) -> "MemcachedServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def lock_cycle(url: str, key: str) -> None:
    """One lock cycle on the server at ``url`` with two clients: the lock
    excludes the other client, ``inspect`` shows the holder's token, and
    the next holder's fence is larger."""
    with distlock.Client(url, ttl=5) as client, distlock.Client(url) as other:
        with client.lock(key, timeout=2) as lock:
            first = lock.fence
            assert first > 0 and lock.owned()
            info = client.inspect(key)
            assert info.held and info.token == lock.token
            # Held: another client's single try fails with the typed error.
            try:
                with other.lock(key, blocking=False):
                    raise AssertionError("another client took a held lock")
            except distlock.LockTimeout:
                pass
        assert not client.inspect(key).held
        with other.lock(key, timeout=2) as lock:
            assert lock.fence > first, "fences only go up"


def lock_token(conn: "RespConnection", key: str) -> Optional[bytes]:
    """The token in the lock ``key`` (None if absent): distlock writes the
    token, a newline and the holder's description."""
    value = conn.command("GET", key)
    if isinstance(value, bytes):
        return value.split(b"\n", 1)[0]
    return value


def redis_key(name: str, prefix: str = "distlock") -> str:
    """The Redis key that holds the token of the lock called ``name``."""
    return f"{prefix}:{name}"


def increment(url: str, port: int, lock_name: str, counter_key: str, cycles: int, start: Any, results: Any) -> None:
    """``cycles`` times: under the lock, GET the counter, then SET it one
    higher (not atomic on purpose). Puts (written value, fence) pairs on
    ``results`` at the end."""
    seen = []
    with distlock.Client(url) as client, RespConnection("127.0.0.1", port) as conn:
        start.wait(60)
        for _ in range(cycles):
            with client.lock(lock_name, ttl=10) as lock:
                value = int(conn.command("GET", counter_key) or 0) + 1
                conn.command("SET", counter_key, value)
                seen.append((value, lock.fence))
    results.put(seen)


class EtcdServer:
    """A one-member ``etcd`` child process on free loopback ports, its data
    in a scratch directory, with fast elections (so its shortest lease is
    1 s); stopped by pid. Use it as a context manager."""

    def __init__(self, executable: Optional[str] = None, startup_timeout: float = 15.0) -> None:
        self.executable = executable or "etcd"
        self.startup_timeout = startup_timeout
        self.port = 0
        self.process: Optional[subprocess.Popen] = None
        self.data_dir: Optional[str] = None

    @property
    def url(self) -> str:
        """``etcd://127.0.0.1:<port>``."""
        return f"etcd://127.0.0.1:{self.port}"

    def _ready(self) -> bool:
        """Whether the gateway answers a read (so a leader is elected)."""
        import urllib.request

        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/v3/kv/range", data=b'{"key":"AA=="}', method="POST")
        try:
            with urllib.request.urlopen(req, timeout=0.5) as resp:
                return resp.status == 200
        except OSError:
            return False

    def start(self) -> "EtcdServer":
        """Starts the member and waits (bounded) until it serves; raises
        RuntimeError if it does not."""
        if shutil.which(self.executable) is None:
            raise RuntimeError(f"{self.executable} not found: install etcd (Debian: apt-get install etcd-server)")
        self.port, peer = free_port(), free_port()
        self.data_dir = tempfile.mkdtemp(prefix="distlock-py-etcd-")
        client, peer_url = f"http://127.0.0.1:{self.port}", f"http://127.0.0.1:{peer}"
        args = [self.executable, "--name", "py", "--data-dir", self.data_dir,
                "--listen-client-urls", client, "--advertise-client-urls", client,
                "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
                "--initial-cluster", f"py={peer_url}",
                "--heartbeat-interval", "10", "--election-timeout", "50", "--log-level", "error"]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                raise RuntimeError(f"etcd exited at start: {err.strip()}")
            if self._ready():
                return self
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"etcd did not serve on 127.0.0.1:{self.port} within {self.startup_timeout} s")

    def stop(self) -> None:
        """Kills the member by pid, reaps it and removes its data."""
        if self.process is not None:
            RedisServer._kill(self.process)
            self.process = None
        if self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.data_dir = None

    def __enter__(self) -> "EtcdServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


ZOOKEEPER_JAR = "/usr/share/java/zookeeper.jar"


class ZooKeeperServer:
    """A standalone ZooKeeper child process (Debian's libzookeeper-java, run
    by ``java``) on a free loopback port, its data in a scratch directory,
    with a 50 ms tick; stopped by pid. :attr:`url` names ``chroot``, which
    distlock creates when missing. Use it as a context manager."""

    def __init__(self, chroot: str = "/distlock-py-test", java: Optional[str] = None, startup_timeout: float = 30.0) -> None:
        self.chroot = chroot
        self.java = java or "java"
        self.startup_timeout = startup_timeout
        self.port = 0
        self.process: Optional[subprocess.Popen] = None
        self.scratch: Optional[str] = None

    @property
    def url(self) -> str:
        """``zk://127.0.0.1:<port><chroot>``."""
        return f"zk://127.0.0.1:{self.port}{self.chroot}"

    def _ready(self) -> bool:
        """Whether ``srvr`` reports a mode, which it does only while the
        server serves (``ruok`` says imok as soon as the port is open)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.settimeout(2)
                s.sendall(b"srvr")
                out = b""
                while True:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    out += chunk
        except OSError:
            return False
        return b"Mode: " in out

    def _log(self) -> str:
        assert self.scratch is not None
        with open(os.path.join(self.scratch, "zk.log"), errors="replace") as f:
            return f.read().strip()

    def start(self) -> "ZooKeeperServer":
        """Starts the server and waits (bounded) until it serves; raises
        RuntimeError, with its output, if it does not."""
        if shutil.which(self.java) is None:
            raise RuntimeError(f"{self.java} not found: install a JRE (Debian: apt-get install default-jre-headless)")
        if not os.path.isfile(ZOOKEEPER_JAR):
            raise RuntimeError(f"{ZOOKEEPER_JAR} not found: install ZooKeeper (Debian: apt-get install libzookeeper-java)")
        self.port = free_port()
        self.scratch = tempfile.mkdtemp(prefix="distlock-py-zk-")
        cfg = os.path.join(self.scratch, "zoo.cfg")
        with open(cfg, "w") as f:
            f.write(
                f"tickTime=50\ndataDir={os.path.join(self.scratch, 'data')}\nclientPort={self.port}\n"
                "clientPortAddress=127.0.0.1\nadmin.enableServer=false\nminSessionTimeout=100\n"
                "maxSessionTimeout=60000\n4lw.commands.whitelist=ruok,srvr\n"
            )
        args = [self.java, "-Xmx128m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                "-Dzookeeper.forceSync=no", "-Dzookeeper.preAllocSize=1024",
                "-cp", ZOOKEEPER_JAR, "org.apache.zookeeper.server.ZooKeeperServerMain", cfg]
        with open(os.path.join(self.scratch, "zk.log"), "wb") as log:
            self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                out = self._log()
                self.stop()
                raise RuntimeError(f"ZooKeeper exited at start: {out}")
            if self._ready():
                return self
            time.sleep(0.05)
        out = self._log()
        self.stop()
        raise RuntimeError(f"ZooKeeper did not serve on 127.0.0.1:{self.port} within {self.startup_timeout} s; its output: {out}")

    def stop(self) -> None:
        """Kills the server by pid, reaps it and removes its data."""
        if self.process is not None:
            RedisServer._kill(self.process)
            self.process = None
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)
            self.scratch = None

    def __enter__(self) -> "ZooKeeperServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
