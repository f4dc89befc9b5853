"""The SSH channel against a real OpenSSH sshd, reached through a network namespace as in an instance.

Layout made by the fixture (names start with ``hlssh-``; removed at the end)::

    namespace hlssh-<id>-hs  ("the instance's host side")       namespace hlssh-<id>-g  ("the guest")
      hlssh-h 192.168.1.2/24   <---------- veth ---------->       hlssh-g 192.168.1.110/24
                                                                  sshd on 192.168.1.110:22 (LogLevel VERBOSE)
                                                                  nftables: tcp port 2200 dropped

The host's own namespace has neither address, so a channel only gets through if its socket is really
made inside ``netns=`` (the sshd log shows the client's address: 192.168.1.2). sshd runs as root with
an authorized_keys file for a key the fixture makes; its host key is made by the fixture too.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paramiko
import pytest

from hyperlab.guest.base import ChannelError
from hyperlab.guest.ssh import SSHChannel, forget_host_key

pytestmark = pytest.mark.peers

GUEST = "192.168.1.110"
HOST_SIDE = "192.168.1.2"
DROPPED_PORT = 2200  # nftables drops it in the guest namespace
CLOSED_PORT = 2201  # nothing listens there
SBIN_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin", "/usr/bin", "/bin"])


def need(binary: str, package: str) -> str:
    path = shutil.which(binary, path=SBIN_PATH)
    if not path:
        pytest.fail(f"{binary} is missing: apt-get install {package} (scripts/packages/ssh.txt)", pytrace=False)
    return path


def sh(*argv: str) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    if done.returncode != 0:
        pytest.fail(f"`{' '.join(argv)}` failed ({done.returncode}): {done.stderr.strip()}", pytrace=False)
    return done.stdout


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (sshd's per-connection children and the commands they run)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


@dataclass
class Peer:
    guest_ns: str
    host_ns: str
    dir: Path
    key: Path
    host_key: Path
    log: Path
    sshd: subprocess.Popen[bytes]

    def channel(self, **kw: object) -> SSHChannel:
        options: dict[str, object] = {"netns": self.host_ns, "key_path": self.key, "node": "SVR1",
                                      "known_hosts": self.dir / "known_hosts", "connect_timeout": 5}
        options.update(kw)
        return SSHChannel(GUEST, **options)  # type: ignore[arg-type]

    def connections(self) -> list[str]:
        """Every TCP connection sshd accepted, as it logged them (LogLevel VERBOSE)."""
        return re.findall(r"Connection from (\S+) port \d+ on \S+ port \d+", self.log.read_text(errors="replace"))

    def processes(self) -> list[str]:
        """Command lines of every process in the guest namespace (sshd and what its sessions run)."""
        pids = sh("ip", "netns", "pids", self.guest_ns).split()
        return [cmdline(int(pid)) for pid in pids]


@pytest.fixture(scope="module")
def peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Peer]:
    if os.geteuid() != 0:
        pytest.fail("the SSH channel tests need root (network namespaces, sshd as root)", pytrace=False)
    sshd = need("sshd", "openssh-server")
    keygen = need("ssh-keygen", "openssh-client")
    need("nft", "nftables")
    top = tmp_path_factory.mktemp("ssh")
    os.chmod(top, 0o755)
    tag = uuid.uuid4().hex[:6]
    guest_ns, host_ns = f"hlssh-{tag}-g", f"hlssh-{tag}-hs"
    made: list[str] = []
    proc: subprocess.Popen[bytes] | None = None
    try:
        for ns in (guest_ns, host_ns):
            sh("ip", "netns", "add", ns)
            made.append(ns)
        # the veth is born inside the two namespaces: its names never exist in the host's
        sh("ip", "link", "add", "hlssh-g", "netns", guest_ns, "type", "veth", "peer", "name", "hlssh-h",
           "netns", host_ns)
        for ns, dev, addr in ((guest_ns, "hlssh-g", GUEST), (host_ns, "hlssh-h", HOST_SIDE)):
            sh("ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        rules = (f"table inet hlssh {{\n chain input {{\n type filter hook input priority 0;\n"
                 f" tcp dport {DROPPED_PORT} drop\n }}\n}}\n")
        done = subprocess.run(["ip", "netns", "exec", guest_ns, "nft", "-f", "-"], input=rules, text=True,
                              capture_output=True, check=False)
        if done.returncode != 0:
            pytest.fail(f"nft refused the rules: {done.stderr}", pytrace=False)

        key, host_key = top / "id_ed25519", top / "ssh_host_ed25519_key"
        for path in (key, host_key):
            sh(keygen, "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path))
        (top / "authorized_keys").write_text(key.with_suffix(".pub").read_text())
        config = top / "sshd_config"
        config.write_text(
            f"ListenAddress {GUEST}:22\n"
            f"HostKey {host_key}\n"
            f"AuthorizedKeysFile {top / 'authorized_keys'}\n"
            "PidFile none\nUsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\n"
            "PubkeyAuthentication yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            "LogLevel VERBOSE\nSubsystem sftp internal-sftp\n"
        )
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation directory
        log = top / "sshd.log"
        proc = subprocess.Popen(
            ["ip", "netns", "exec", guest_ns, sshd, "-D", "-f", str(config), "-h", str(host_key), "-E", str(log)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
        )
        end = time.monotonic() + 10
        while "Server listening on" not in (log.read_text(errors="replace") if log.exists() else ""):
            if proc.poll() is not None:
                pytest.fail(f"sshd exited with {proc.returncode}: {proc.stderr.read().decode() if proc.stderr else ''}"
                            f"{log.read_text() if log.exists() else ''}", pytrace=False)
            if time.monotonic() > end:
                pytest.fail(f"sshd does not listen after 10s: {log.read_text() if log.exists() else ''}", pytrace=False)
            time.sleep(0.05)
        yield Peer(guest_ns, host_ns, top, key, host_key, log, proc)
    finally:
        if proc is not None:
            # only what this fixture started: sshd, its children, and whatever runs in the guest namespace
            # (a session's commands outlive their sshd child once the connection is closed)
            inside = subprocess.run(["ip", "netns", "pids", guest_ns], capture_output=True, text=True,
                                    check=False).stdout.split()
            for pid in {*descendants(proc.pid), proc.pid, *map(int, inside)}:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            proc.wait(timeout=10)
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], check=False)


@pytest.fixture
def ch(peer: Peer) -> Iterator[SSHChannel]:
    channel = peer.channel()
    yield channel
    channel.close()


# ------------------------------------------------------------------------- commands


def test_exit_codes_and_separate_streams(ch: SSHChannel) -> None:
    r = ch.run("echo out; echo err >&2; echo more; exit 7")
    assert (r.exit_code, r.stdout, r.stderr, r.timed_out) == (7, "out\nmore\n", "err\n", False)
    assert not r.ok and r.command == "echo out; echo err >&2; echo more; exit 7" and r.duration > 0
    ok = ch.run("true")
    assert ok.ok and ok.exit_code == 0 and ok.stdout == ok.stderr == ""
    assert ch.run(["sh", "-c", "exit 42"]).exit_code == 42
    missing = ch.run(["/no/such/program"])
    assert missing.exit_code == 127 and "/no/such/program" in missing.stderr


def test_a_list_arrives_as_one_argument_each(ch: SSHChannel) -> None:
    argv = ["printf", "<%s>", "a b", "$HOME", "it's", "*", "x;y", ""]
    r = ch.run(argv)
    assert r.ok and r.stdout == "<a b><$HOME><it's><*><x;y><>"
    assert r.command == "printf '<%s>' 'a b' '$HOME' 'it'\"'\"'s' '*' 'x;y' ''"
    assert ch.run("echo $((6*7))").stdout == "42\n"  # a string goes to the remote shell as is


def test_stdin_is_written_then_closed(ch: SSHChannel) -> None:
    r = ch.run(["sh", "-c", "cat; echo '<eof>'"], input=b"hello\nworld\n")
    assert r.ok and r.stdout == "hello\nworld\n<eof>\n"
    assert ch.run(["cat"]).stdout == ""  # no input: EOF at once, no hang
    # more input than both SSH windows hold while the command echoes it all back: no deadlock
    data = base64.b64encode(os.urandom(9 << 20))
    echoed = ch.run(["cat"], input=data, timeout=60)
    assert echoed.ok and len(echoed.stdout) == len(data) and echoed.stdout.encode() == data


def test_large_output(ch: SSHChannel) -> None:
    start = time.monotonic()
    r = ch.run("seq 1 2700000; seq 1 1000 >&2", timeout=60)
    elapsed = time.monotonic() - start
    expected = "".join(f"{i}\n" for i in range(1, 2700001))
    assert len(expected) > 20_000_000
    assert r.ok and not r.truncated and len(r.stdout) == len(expected) and r.stdout == expected
    assert r.stderr == "".join(f"{i}\n" for i in range(1, 1001))
    print(f"\n20 MB of output in {elapsed:.2f}s")


def test_timeout_kills_the_command_and_keeps_the_connection(peer: Peer, ch: SSHChannel) -> None:
    ch.run("true")
    before = len(peer.connections())
    marker = f"{time.time_ns() % 1000000}.5"
    r = ch.run(f"echo started; sleep {marker}; echo never", timeout=1.5)
    assert r.timed_out and not r.ok and r.exit_code == -1
    assert r.stdout == "started\n"  # what came before the timeout is kept
    assert 1.4 <= r.duration < 4
    end = time.monotonic() + 5  # the remote sleep is killed, not left behind
    while any(f"sleep {marker}" in c for c in peer.processes()) and time.monotonic() < end:
        time.sleep(0.1)
    assert not any(f"sleep {marker}" in c for c in peer.processes()), peer.processes()
    after = ch.run("echo still here")
    assert after.ok and after.stdout == "still here\n"
    assert len(peer.connections()) == before  # same connection


def test_one_connection_for_every_call(peer: Peer) -> None:
    before = len(peer.connections())
    with peer.channel() as channel:
        assert len(peer.connections()) == before  # lazy: nothing opened yet
        for i in range(10):
            assert channel.run(["echo", str(i)]).stdout == f"{i}\n"
        channel.write_file(str(peer.dir / "reuse.txt"), b"x")
        assert channel.read_file(str(peer.dir / "reuse.txt")) == b"x"
        assert channel.run("cat " + str(peer.dir / "reuse.txt")).stdout == "x"
        accepted = peer.connections()[before:]
        # the one connection came from the host-side namespace's address: the socket was made in netns=
        assert accepted == [HOST_SIDE]
    with peer.channel() as again:  # a second channel is a second connection
        again.run("true")
    assert len(peer.connections()) == before + 2


# ---------------------------------------------------------------------------- files


def test_binary_file_round_trip_through_sftp(peer: Peer, ch: SSHChannel) -> None:
    data = bytes(range(256)) * 16 + os.urandom(3 << 20) + b"\r\n\0\xff"
    remote = peer.dir / "blob.bin"
    ch.write_file(str(remote), data)
    assert remote.read_bytes() == data  # sshd shares this machine's files: check what really landed
    assert hashlib.sha256(ch.read_file(str(remote))).hexdigest() == hashlib.sha256(data).hexdigest()
    ch.write_file(str(remote), b"short")  # overwrite truncates
    assert ch.read_file(str(remote)) == b"short"
    ch.write_file(str(peer.dir / "empty"), b"")
    assert ch.read_file(str(peer.dir / "empty")) == b""
    assert ch.read_file("/proc/self/status").startswith(b"Name:")  # size 0 in stat, yet has content


def test_missing_file_is_an_os_error_naming_node_and_path(ch: SSHChannel) -> None:
    with pytest.raises(FileNotFoundError, match="SVR1: cannot read /no/such/file"):
        ch.read_file("/no/such/file")
    with pytest.raises(FileNotFoundError, match="SVR1: cannot write /no/such/dir/file"):
        ch.write_file("/no/such/dir/file", b"x")
    assert ch.run("true").ok  # the connection is fine after a failed file operation


# ------------------------------------------------------------------------ host keys


def test_first_key_pinned_changed_key_refused(peer: Peer, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    with peer.channel(known_hosts=known) as first:
        first.run("true")
    server_key = peer.host_key.with_suffix(".pub").read_text().split()[:2]
    assert known.read_text().split() == [GUEST, *server_key]
    with peer.channel(known_hosts=known) as again:  # the pinned key matches: fine
        again.run("true")
    # as after `lab reset`: the node now shows another key than the one pinned
    other = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    known.write_text(f"{GUEST} {other.with_suffix('.pub').read_text().split()[0]} "
                     f"{other.with_suffix('.pub').read_text().split()[1]}\n")
    before = len(peer.connections())
    with pytest.raises(ChannelError) as info:
        peer.channel(known_hosts=known).run("true")
    assert str(info.value).startswith(
        f"cannot reach SVR1 over SSH at {GUEST} (in namespace {peer.host_ns}): its host key changed since it was "
        f"pinned in {known}")
    assert "Accepted publickey" not in peer.log.read_text().split("Connection from")[-1]  # refused before auth
    assert len(peer.connections()) == before + 1
    assert forget_host_key(known, GUEST)  # what `lab reset` does for the node
    with peer.channel(known_hosts=known) as fresh:
        assert fresh.run("true").ok
    assert known.read_text().split() == [GUEST, *server_key]


# ------------------------------------------------------------------------- failures


def fails(channel: SSHChannel) -> tuple[str, float]:
    start = time.monotonic()
    with pytest.raises(ChannelError) as info:
        channel.run("true")
    exc = info.value  # no paramiko exception chained to it: the sentence is all a user sees
    assert exc.__cause__ is None and (exc.__context__ is None or exc.__suppress_context__)
    return str(info.value), time.monotonic() - start


def test_nothing_listening_is_refused(peer: Peer) -> None:
    text, elapsed = fails(peer.channel(port=CLOSED_PORT))
    assert text.startswith(
        f"cannot reach SVR1 over SSH at {GUEST} port {CLOSED_PORT} (in namespace {peer.host_ns}): connection refused")
    assert elapsed < 1


def test_dropped_traffic_times_out(peer: Peer) -> None:
    text, elapsed = fails(peer.channel(port=DROPPED_PORT, connect_timeout=1))
    assert text.startswith(
        f"cannot reach SVR1 over SSH at {GUEST} port {DROPPED_PORT} (in namespace {peer.host_ns}): timed out after 1s")
    assert 0.9 <= elapsed < 3


def test_wrong_key_fails_authentication(peer: Peer, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(wrong)], check=True)
    text, _ = fails(peer.channel(key_path=wrong))
    assert text.startswith(
        f"cannot reach SVR1 over SSH at {GUEST} (in namespace {peer.host_ns}): authentication failed")
    assert str(wrong) in text


def test_missing_namespace(peer: Peer) -> None:
    text, _ = fails(peer.channel(netns="hlssh-no-such-namespace"))
    assert text.startswith(f"cannot reach SVR1 over SSH at {GUEST} (in namespace hlssh-no-such-namespace): "
                           "network namespace 'hlssh-no-such-namespace' does not exist")


def test_not_an_ssh_server(peer: Peer) -> None:
    # a listener that accepts and says nothing: the handshake gives up after connect_timeout
    listener = subprocess.Popen(["ip", "netns", "exec", peer.guest_ns, "python3", "-c",
                                 "import socket,time; s=socket.create_server(('" + GUEST + "', 2202)); "
                                 "c=s.accept(); time.sleep(30)"], start_new_session=True)
    try:
        end = time.monotonic() + 5
        while ":2202" not in sh("ip", "netns", "exec", peer.guest_ns, "ss", "-ltnH") and time.monotonic() < end:
            time.sleep(0.05)
        text, elapsed = fails(peer.channel(port=2202, connect_timeout=1))
        assert text.startswith(f"cannot reach SVR1 over SSH at {GUEST} port 2202 (in namespace {peer.host_ns}): "
                               "the SSH handshake failed")
        assert elapsed < 4
    finally:
        listener.kill()
        listener.wait()


def test_the_channel_reconnects_after_the_connection_died(peer: Peer, ch: SSHChannel) -> None:
    ch.run("true")
    before = len(peer.connections())
    ch._transport.sock.close()  # type: ignore[union-attr]  # the link went away (node rebooted)
    time.sleep(0.2)
    assert ch.run("echo back").stdout == "back\n"
    assert len(peer.connections()) == before + 1


def test_paramiko_version_is_known() -> None:
    assert tuple(int(x) for x in paramiko.__version__.split(".")[:2]) >= (3, 2)  # PKey.from_path
