"""Real peers for the probe tests, started on this machine: a Samba AD DC inside its own network
namespace, xrdp and inetutils telnetd on loopback, tiny Python HTTP/TCP/UDP servers, and a
namespace whose nftables rules drop or reject chosen ports.

Every peer listens on loopback (127.0.0.0/8 of the host, or of a namespace the fixture makes and
removes). A missing binary fails the fixture and names its Debian package
(scripts/packages/probes.txt lists them all).
"""

from __future__ import annotations

import http.server
import os
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from hyperlab.probes import run_in_netns, smb_shares

SBIN_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin", "/usr/bin", "/bin"])


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "peers: starts real network peers (Samba AD DC, xrdp, telnetd, HTTP) locally"
    )


def need(binary: str, package: str) -> str:
    """Path of ``binary``, or fail (never skip) naming the Debian package that provides it."""
    path = shutil.which(binary, path=SBIN_PATH)
    if not path:
        pytest.fail(
            f"{binary} is missing: apt-get install {package} "
            "(scripts/packages/probes.txt lists every package these tests need)",
            pytrace=False,
        )
    return path


def need_root() -> None:
    if os.geteuid() != 0:
        pytest.fail(
            "the probe peer tests need root (network namespaces, nftables, Samba)", pytrace=False
        )


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def sh(*argv: str, timeout: float = 60) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        pytest.fail(
            f"`{' '.join(argv)}` failed ({done.returncode}): "
            f"{done.stderr.strip() or done.stdout.strip()}",
            pytrace=False,
        )
    return done.stdout


# --------------------------------------------------------------------------- processes


@dataclass
class Daemon:
    """A peer process in its own session; stopped by its own process-group id."""

    name: str
    argv: list[str]
    log: Path
    netns: str | None = None
    env: dict[str, str] | None = None
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Daemon:
        argv = ["ip", "netns", "exec", self.netns, *self.argv] if self.netns else self.argv
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env={**os.environ, **(self.env or {})},
            )
        return self

    def tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def listening(self, port: int, host: str) -> bool:
        if self.netns:
            out = subprocess.run(
                ["ip", "netns", "exec", self.netns, "ss", "-ltnH", f"sport = :{port}"],
                capture_output=True,
                text=True,
            ).stdout
            return f"{host}:{port}" in out
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            return True
        except OSError:
            return False

    def wait_listening(self, host: str, *ports: int, timeout: float = 30) -> None:
        end = time.monotonic() + timeout
        waiting = list(ports)
        while waiting:
            assert self.proc is not None
            if self.proc.poll() is not None:
                pytest.fail(
                    f"{self.name} exited with {self.proc.returncode} before listening:\n"
                    f"{self.tail()}",
                    pytrace=False,
                )
            waiting = [p for p in waiting if not self.listening(p, host)]
            if waiting and time.monotonic() > end:
                self.stop()
                pytest.fail(
                    f"{self.name} does not listen on {host} ports {waiting} after {timeout}s:\n"
                    f"{self.tail()}",
                    pytrace=False,
                )
            if waiting:
                time.sleep(0.2)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            for sig, grace in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
                try:
                    os.killpg(self.proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.proc.wait(grace)
                    break
                except subprocess.TimeoutExpired:
                    continue
        if self.netns:  # helpers that left the process group (samba-dcerpcd calls setsid)
            kill_netns_pids(self.netns)


def kill_netns_pids(netns: str) -> None:
    """End, by pid, every process still inside a namespace this test session made."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        out = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True).stdout
        pids = [int(p) for p in out.split() if p.isdigit() and int(p) != os.getpid()]
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        end = time.monotonic() + 5
        while time.monotonic() < end and any(Path(f"/proc/{pid}").exists() for pid in pids):
            time.sleep(0.1)


# --------------------------------------------------------------------------- namespaces


@pytest.fixture(scope="session")
def make_netns() -> Iterator[Callable[[str], str]]:
    """Factory: a fresh network namespace with lo up; all are deleted at session end."""
    need_root()
    need("ip", "iproute2")
    made: list[str] = []

    def make(tag: str) -> str:
        name = f"hlp{os.getpid()}{tag}"
        subprocess.run(["ip", "netns", "del", name], capture_output=True)  # a stale one
        sh("ip", "netns", "add", name)
        made.append(name)
        sh("ip", "-n", name, "link", "set", "lo", "up")
        return name

    yield make
    for name in made:
        kill_netns_pids(name)
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


@dataclass
class Filtered:
    """A namespace whose loopback drops or rejects some ports, with a real listener on another."""

    netns: str
    host: str = "127.0.0.1"
    open_port: int = 35001  # a socket listens here (inside the namespace only)
    drop_port: int = 35002  # tcp: SYN silently dropped
    reject_port: int = 35003  # tcp: rejected with ICMP host-unreachable
    dns_drop_port: int = 35053  # udp: dropped
    listener: socket.socket | None = field(default=None, repr=False)


NFT_RULES = """
table inet hlprobe {{
  chain input {{
    type filter hook input priority 0; policy accept;
    tcp dport {drop} drop
    udp dport {dns_drop} drop
    tcp dport {reject} reject with icmp type host-unreachable
  }}
}}
"""


@pytest.fixture(scope="session")
def filtered_netns(
    make_netns: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Filtered]:
    need("nft", "nftables")
    f = Filtered(netns=make_netns("f"))
    rules = tmp_path_factory.mktemp("nft") / "rules.nft"
    rules.write_text(
        NFT_RULES.format(drop=f.drop_port, reject=f.reject_port, dns_drop=f.dns_drop_port)
    )
    sh("ip", "netns", "exec", f.netns, "nft", "-f", str(rules))

    def listen() -> socket.socket:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((f.host, f.open_port))
        s.listen(16)
        return s

    # The listening socket is made inside the namespace; accepting works from any thread.
    f.listener = run_in_netns(f.netns, listen)
    stop = threading.Event()

    def accept_loop() -> None:
        assert f.listener is not None
        f.listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = f.listener.accept()
                conn.close()
            except OSError:
                continue

    t = threading.Thread(target=accept_loop, daemon=True)
    t.start()
    yield f
    stop.set()
    t.join(2)
    f.listener.close()


# --------------------------------------------------------------------------- Samba AD DC


@dataclass(frozen=True)
class SambaDC:
    netns: str
    ip: str
    realm: str
    domain: str
    netbios: str
    admin: str
    password: str
    share: str

    @property
    def upn(self) -> str:
        return f"{self.admin}@{self.realm.lower()}"


@pytest.fixture(scope="session")
def samba_dc(
    make_netns: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SambaDC]:
    """A freshly provisioned Samba AD DC for KOSA.VM at 127.0.0.10 inside its own namespace.

    Provisioning, start-up and a first share listing take 7-15 s. 127.0.0.10, not .1:
    samba-tool assigns no DNS A record to 127.0.0.1.
    """
    need("samba-tool", "samba-common-bin")
    samba = need("samba", "samba")
    if not Path("/usr/share/samba/setup/ad-schema").is_dir():
        pytest.fail(
            "Samba AD schema files are missing: apt-get install samba-ad-provision", pytrace=False
        )
    need("winbindd", "winbind")  # samba-ad-dc pulls it in; the DC starts it
    dc = SambaDC(
        netns=make_netns("dc"),
        ip="127.0.0.10",
        realm="KOSA.VM",
        domain="kosa.vm",
        netbios="KOSA",
        admin="Administrator",
        password="Hyperlab-Probe1",
        share="labshare",
    )
    sh("ip", "-n", dc.netns, "addr", "add", f"{dc.ip}/32", "dev", "lo")
    top = tmp_path_factory.mktemp("samba-dc")
    sh(
        "ip",
        "netns",
        "exec",
        dc.netns,
        "samba-tool",
        "domain",
        "provision",
        f"--realm={dc.realm}",
        f"--domain={dc.netbios}",
        "--server-role=dc",
        "--dns-backend=SAMBA_INTERNAL",
        f"--adminpass={dc.password}",
        f"--targetdir={top}",
        "--host-name=dc1",
        f"--host-ip={dc.ip}",
        f"--option=interfaces={dc.ip}",
        "--option=bind interfaces only=yes",
        # the namespace has no way out; a forwarder on its own closed port fails fast
        "--option=dns forwarder=127.0.0.1",
        f"--option=log file={top}/log.%m",
        "--option=load printers=no",
        "--option=disable spoolss=yes",
        timeout=120,
    )
    share_dir = top / dc.share
    share_dir.mkdir()
    conf = top / "etc" / "smb.conf"
    with conf.open("a") as out:
        out.write(f"\n[{dc.share}]\n\tpath = {share_dir}\n\tcomment = hyperlab probe test share\n")
    # Samba keeps pid files and the winbindd / ncalrpc sockets under /run/samba, compiled in
    # (smbd's winbind client ignores smb.conf there). `ip netns exec` gives the DC a private
    # mount namespace: a tmpfs on /run/samba in it keeps the DC apart from any other Samba here.
    Path("/run/samba").mkdir(parents=True, exist_ok=True)
    run_private = f"mount -t tmpfs hlprobe-samba-run /run/samba && exec {samba} -i -s {conf}"
    daemon = Daemon(
        "samba AD DC", ["sh", "-c", run_private], top / "samba.out", netns=dc.netns
    ).start()
    try:
        daemon.wait_listening(dc.ip, 53, 389, 445, 636, timeout=60)
        # smbd starts its RPC helpers (samba-dcerpcd) on the first share listing: do it here,
        # with room, so that the tests' own timeouts measure the probes, not Samba's start-up
        ready = smb_shares(
            dc.ip, dc.admin, dc.password, domain=dc.netbios, timeout=60, netns=dc.netns
        )
        if not ready.ok:
            pytest.fail(
                f"the Samba DC does not list shares: {ready.verdict}\n{daemon.tail()}",
                pytrace=False,
            )
        yield dc
    finally:
        daemon.stop()


# --------------------------------------------------------------------------- xrdp, telnetd


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int


@pytest.fixture(scope="session")
def xrdp_peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoint]:
    """xrdp on 127.0.0.1:<free port>, security_layer=tls with a throwaway self-signed cert."""
    need_root()
    xrdp = need("xrdp", "xrdp")
    base = Path("/etc/xrdp/xrdp.ini")
    if not base.is_file():
        pytest.fail(
            "/etc/xrdp/xrdp.ini is missing: apt-get install --reinstall xrdp", pytrace=False
        )
    top = tmp_path_factory.mktemp("xrdp")
    self_signed(top / "key.pem", top / "cert.pem", "hyperlab-xrdp-test")
    port = free_port()
    lines = []
    for line in base.read_text().splitlines():
        key = line.split("=", 1)[0]
        line = {
            "port": f"port=tcp://127.0.0.1:{port}",
            "fork": "fork=false",
            "security_layer": "security_layer=tls",
            "certificate": f"certificate={top / 'cert.pem'}",
            "key_file": f"key_file={top / 'key.pem'}",
            "LogFile": f"LogFile={top / 'xrdp.log'}",
            "EnableSyslog": "EnableSyslog=false",
        }.get(key, line)
        lines.append(line)
    ini = top / "xrdp.ini"
    ini.write_text("\n".join(lines) + "\n")
    daemon = Daemon("xrdp", [xrdp, "--nodaemon", "--config", str(ini)], top / "xrdp.out").start()
    try:
        daemon.wait_listening("127.0.0.1", port, timeout=20)
        yield Endpoint("127.0.0.1", port)
    finally:
        daemon.stop()


@pytest.fixture(scope="session")
def telnetd_peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoint]:
    """inetutils telnetd started by inetutils-inetd on 127.0.0.1:<free port>."""
    need_root()
    inetd = need("inetutils-inetd", "inetutils-inetd")
    telnetd = need("telnetd", "inetutils-telnetd")
    top = tmp_path_factory.mktemp("telnetd")
    port = free_port()
    conf = top / "inetd.conf"
    conf.write_text(f"127.0.0.1:{port} stream tcp nowait root {telnetd} telnetd\n")
    daemon = Daemon(
        "inetutils-inetd",
        [inetd, "-d", f"--pidfile={top / 'inetd.pid'}", str(conf)],
        top / "inetd.out",
    ).start()
    try:
        daemon.wait_listening("127.0.0.1", port, timeout=20)
        yield Endpoint("127.0.0.1", port)
    finally:
        daemon.stop()


# --------------------------------------------------------------------------- tiny Python peers


def _serve_http(
    status: int, headers: list[tuple[str, str]], tls_cert: Path | None = None
) -> tuple[http.server.ThreadingHTTPServer, Endpoint]:
    server_header = next((v for k, v in headers if k.lower() == "server"), None)
    headers = [(k, v) for k, v in headers if k.lower() != "server"]

    class Handler(http.server.BaseHTTPRequestHandler):
        def version_string(self) -> str:  # the Server header send_response() writes
            return server_header or super().version_string()

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            self.send_response(status)
            for k, v in headers:
                self.send_header(k, v)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(tls_cert)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
    ).start()
    return server, Endpoint("127.0.0.1", server.server_address[1])


@pytest.fixture(scope="session")
def http_peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Endpoint]]:
    """Factory: an HTTP(S) server on loopback answering every POST with ``status`` + ``headers``.

    ``http_peer(401, [("WWW-Authenticate", "Negotiate"), ("WWW-Authenticate", "Kerberos")])``
    answers like Windows' WinRM listener does before authentication; ``tls=True`` serves HTTPS
    with a throwaway self-signed certificate (like a 5986 listener).
    """
    servers: list[http.server.ThreadingHTTPServer] = []
    cert: list[Path] = []

    def make(
        status: int, headers: list[tuple[str, str]] | None = None, tls: bool = False
    ) -> Endpoint:
        server, ep = _serve_http(
            status, headers or [], tls_cert=_cert(tmp_path_factory, cert) if tls else None
        )
        servers.append(server)
        return ep

    yield make
    for server in servers:
        server.shutdown()
        server.server_close()


def self_signed(key: Path, cert: Path, name: str) -> None:
    """A throwaway self-signed certificate for a TLS test peer."""
    sh(need("openssl", "openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
       "-keyout", str(key), "-out", str(cert), "-subj", f"/CN={name}")


def _cert(tmp_path_factory: pytest.TempPathFactory, cache: list[Path]) -> Path:
    if not cache:
        top = tmp_path_factory.mktemp("https")
        self_signed(top / "pem", top / "pem.crt", "hyperlab-https-test")
        (top / "both.pem").write_text((top / "pem").read_text() + (top / "pem.crt").read_text())
        cache.append(top / "both.pem")
    return cache[0]


@pytest.fixture(scope="session")
def tcp_peer() -> Iterator[Callable[..., Endpoint]]:
    """Factory: a raw TCP server on loopback.

    mode "banner": sends ``data`` on accept and keeps the connection open (an SSH server, say);
    "silent": accepts and never sends (a port forward whose backend is mute);
    "close": accepts and closes at once (a proxy with no backend).
    """
    stop = threading.Event()
    socks: list[socket.socket] = []

    def make(mode: str, data: bytes = b"") -> Endpoint:
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(16)
        srv.settimeout(0.2)
        socks.append(srv)
        held: list[socket.socket] = []

        def loop() -> None:
            while not stop.is_set():
                try:
                    conn, _ = srv.accept()
                except OSError:
                    continue
                if mode == "close":
                    conn.close()
                    continue
                if data:
                    conn.sendall(data)
                held.append(conn)  # keep it open until the session ends
            for c in held:
                c.close()

        threading.Thread(target=loop, daemon=True).start()
        return Endpoint("127.0.0.1", srv.getsockname()[1])

    yield make
    stop.set()
    time.sleep(0.3)
    for s in socks:
        s.close()


@pytest.fixture(scope="session")
def udp_garbage_peer() -> Iterator[Endpoint]:
    """A UDP server on loopback answering every datagram with text (not DNS)."""
    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind(("127.0.0.1", 0))
    srv.settimeout(0.2)
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                _, addr = srv.recvfrom(2048)
            except OSError:
                continue
            srv.sendto(b"hello", addr)

    threading.Thread(target=loop, daemon=True).start()
    yield Endpoint("127.0.0.1", srv.getsockname()[1])
    stop.set()
    time.sleep(0.3)
    srv.close()


@pytest.fixture
def closed_port() -> Endpoint:
    """A loopback port with nothing listening (bound once, then released)."""
    return Endpoint("127.0.0.1", free_port())
