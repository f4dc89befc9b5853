"""Class hosts on one machine: each a network namespace with its own address, its own sshd and its own
libvirtd (with virtlogd) whose state is private, so that `lab class` reaches it only over SSH.

A host is a network namespace joined to this machine by one veth pair (10.199.N.1 here, 10.199.N.2
there; no default route, so nothing it sends can leave the machine), and a private mount namespace
in which a fresh tmpfs is /run and private folders are /var/lib/libvirt, /var/cache/libvirt,
/var/log/libvirt, /etc/libvirt (a copy of this machine's) and /var/lib/hyperlab (FACTS.md: a second
system libvirtd this way works). Its image store, instances, grading key and lab bundles are its
own. sshd is the namespace's first process; `kill()` ends every process of the host (a crash),
`start()` again is its reboot: /run is new, libvirt's persistent state is kept.

Used by tests/integration/test_class.py and bench/class_hosts.py. By hand, from the checkout:

    python3 -m tests.nshosts up 3 /var/tmp/hl-class     # prints where hosts.yaml is
    python3 -m tests.nshosts down /var/tmp/hl-class
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

PRIVATE = {"lib-libvirt": "/var/lib/libvirt", "cache-libvirt": "/var/cache/libvirt", "log-libvirt": "/var/log/libvirt",
           "etc-libvirt": "/etc/libvirt", "lib-hyperlab": "/var/lib/hyperlab"}


class NsHostError(Exception):
    pass


def _sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise NsHostError(f"{' '.join(argv)}: {proc.stderr.strip() or proc.returncode}")
    return proc


def _need(binary: str, package: str) -> str:
    found = shutil.which(binary) or next((p for p in (f"/usr/sbin/{binary}", f"/sbin/{binary}") if os.access(p, os.X_OK)),
                                         None)
    if found is None:
        raise NsHostError(f"{binary} is missing: apt-get install {package} (scripts/setup-host.sh installs it)")
    return found


@dataclass
class NsHost:
    name: str
    subnet: int  # 10.199.<subnet>.0/24
    folder: Path
    tag: str
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    mount_ns: str = ""

    @property
    def netns(self) -> str:
        return f"hlc-{self.tag}-{self.name}"

    @property
    def link(self) -> str:
        return f"hlc{self.tag}{self.subnet}"[:15]

    @property
    def address(self) -> str:
        return f"10.199.{self.subnet}.2"

    @property
    def gateway(self) -> str:
        return f"10.199.{self.subnet}.1"

    def create(self, authorized_key: str) -> None:
        """Its folders (private state, SSH keys and config), once."""
        self.folder.mkdir(parents=True, exist_ok=True)
        for private in PRIVATE:
            if private == "etc-libvirt":
                if not (self.folder / private).exists():
                    shutil.copytree("/etc/libvirt", self.folder / private, symlinks=True)
            else:
                (self.folder / private).mkdir(exist_ok=True)
        for path in [self.folder, *(self.folder / p for p in PRIVATE)]:
            os.chmod(path, 0o755)  # QEMU (libvirt-qemu) walks down to the image store
        ssh = self.folder / "ssh"
        ssh.mkdir(mode=0o700, exist_ok=True)
        if not (ssh / "host_key").exists():
            _sh(_need("ssh-keygen", "openssh-client"), "-q", "-t", "ed25519", "-N", "", "-C", self.name, "-f",
                str(ssh / "host_key"))
        (ssh / "authorized_keys").write_text(authorized_key)
        (ssh / "sshd_config").write_text(
            f"ListenAddress {self.address}:22\nHostKey {ssh / 'host_key'}\nAuthorizedKeysFile {ssh / 'authorized_keys'}\n"
            "PidFile none\nUsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\nPubkeyAuthentication yes\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nMaxStartups 64\nMaxSessions 64\n"
            "LogLevel VERBOSE\n"
            "Subsystem sftp internal-sftp\n")

    def _network(self) -> None:
        """The host's network as at power-on: a new namespace, its link to this machine, nothing else."""
        _sh("ip", "netns", "add", self.netns)
        _sh("ip", "link", "add", self.link, "type", "veth", "peer", "name", "eth0", "netns", self.netns)
        _sh("ip", "addr", "add", f"{self.gateway}/24", "dev", self.link)
        _sh("ip", "link", "set", self.link, "up")
        _sh("ip", "-n", self.netns, "addr", "add", f"{self.address}/24", "dev", "eth0")
        _sh("ip", "-n", self.netns, "link", "set", "eth0", "up")
        _sh("ip", "-n", self.netns, "link", "set", "lo", "up")

    def known_host(self) -> str:
        return f"{self.address} {' '.join((self.folder / 'ssh' / 'host_key.pub').read_text().split()[:2])}\n"

    def start(self, timeout: float = 30) -> None:
        """Boot the host: a new network namespace, a new mount namespace with a fresh /run, its
        libvirt daemons and its sshd. libvirt's persistent state (domains, networks, pools defined)
        and the host's files are kept, as a disk keeps them over a reboot."""
        self._network()
        binds = "\n".join(f"mount --bind {self.folder / private} {target}" for private, target in PRIVATE.items())
        init = self.folder / "init.sh"
        log = self.folder / "sshd.log"
        init.write_text(
            "set -e\nmount --make-rprivate /\nmount -t tmpfs -o mode=0755 tmpfs /run\n"
            "mkdir -p /run/sshd /run/libvirt /run/lock\nmkdir -p /var/lib/hyperlab\n"
            f"{binds}\n"
            f"{_need('virtlogd', 'libvirt-daemon-system')} -d\n{_need('libvirtd', 'libvirt-daemon-system')} -d\n"
            f"exec {_need('sshd', 'openssh-server')} -D -f {self.folder / 'ssh' / 'sshd_config'} -E {log}\n")
        log.write_text("")
        self.proc = subprocess.Popen(["ip", "netns", "exec", self.netns, "unshare", "--mount", "--propagation", "private",
                                      "sh", str(init)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=open(self.folder / "init.log", "wb"), start_new_session=True)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise NsHostError(f"{self.name} did not start: {(self.folder / 'init.log').read_text()}{log.read_text()}")
            if "Server listening on" in log.read_text(errors="replace") and self._libvirt_answers():
                self.mount_ns = os.readlink(f"/proc/{self.proc.pid}/ns/mnt")
                return
            time.sleep(0.2)
        raise NsHostError(f"{self.name}: sshd or libvirtd not up after {timeout:g} s: {log.read_text()}")

    def _libvirt_answers(self) -> bool:
        return self.run("virsh", "-c", "qemu:///system", "version", check=False).returncode == 0

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """A command inside the host (its network and its mounts), as its own processes see them."""
        if self.proc is None or self.proc.poll() is not None:
            raise NsHostError(f"{self.name} is not running")
        return _sh("nsenter", "-t", str(self.proc.pid), "-m", "-n", *argv, check=check)

    def inventory(self) -> dict[str, list[str]]:
        """Everything the host's libvirt knows by name."""
        def names(*argv: str) -> list[str]:
            return sorted(n for n in self.run("virsh", "-q", *argv).stdout.split() if n)
        return {"domains": names("list", "--all", "--name"), "networks": names("net-list", "--all", "--name"),
                "pools": names("pool-list", "--all", "--name")}

    def connections(self) -> int:
        """How many SSH connections the host's sshd has accepted since it started (LogLevel VERBOSE)."""
        return (self.folder / "sshd.log").read_text(errors="replace").count("Connection from ")

    def processes(self) -> list[int]:
        """Every process of this host: of its network namespace (QEMU too, which libvirt starts in a
        mount namespace of its own) or of its mount namespace."""
        found = [int(pid) for pid in _sh("ip", "netns", "pids", self.netns, check=False).stdout.split()]
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if os.readlink(entry / "ns" / "mnt") == self.mount_ns:
                        found.append(int(entry.name))
                except OSError:
                    continue
        return found

    def kill(self) -> None:
        """A crash (power lost): every process of the host ends at once (daemons, QEMU, whatever `lab`
        was doing), and its network with the bridges and links libvirt and hyperlab made there."""
        for _ in range(20):
            pids = self.processes()
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.2)
        if self.proc is not None:
            self.proc.wait(timeout=10)
            self.proc = None
        _sh("ip", "link", "del", self.link, check=False)
        _sh("ip", "netns", "del", self.netns, check=False)

    def destroy(self) -> None:
        self.kill()
        shutil.rmtree(self.folder, ignore_errors=True)


class Fleet:
    """Several class hosts, the instructor's SSH key and config for them, and a hosts.yaml."""

    def __init__(self, folder: Path, names: list[str]) -> None:
        self.folder = folder
        self.tag = uuid.uuid4().hex[:4]
        used = {int(a.split(".")[2]) for a in _addresses() if a.startswith("10.199.")}
        free = [n for n in range(10, 250) if n not in used]
        if len(free) < len(names):
            raise NsHostError("no free 10.199.N.0/24 subnets")
        self.hosts = {name: NsHost(name, free[i], folder / name, self.tag) for i, name in enumerate(names)}

    @property
    def key(self) -> Path:
        return self.folder / "id_ed25519"

    @property
    def ssh_config(self) -> Path:
        return self.folder / "ssh_config"

    def up(self) -> Fleet:
        if os.geteuid() != 0:
            raise NsHostError("class hosts need root (network and mount namespaces, libvirtd, sshd)")
        self.folder.mkdir(parents=True, exist_ok=True)
        os.chmod(self.folder, 0o755)
        _sh(_need("ssh-keygen", "openssh-client"), "-q", "-t", "ed25519", "-N", "", "-C", "instructor", "-f", str(self.key))
        for host in self.hosts.values():
            host.create(self.key.with_suffix(".pub").read_text())
        (self.folder / "known_hosts").write_text("".join(h.known_host() for h in self.hosts.values()))
        self.ssh_config.write_text(f"Host *\n  IdentityFile {self.key}\n  IdentitiesOnly yes\n"
                                   f"  UserKnownHostsFile {self.folder / 'known_hosts'}\n  StrictHostKeyChecking yes\n")
        with ThreadPoolExecutor() as pool:  # each libvirtd probes QEMU for seconds: side by side
            list(pool.map(NsHost.start, self.hosts.values()))
        return self

    def hosts_yaml(self, facts: dict[str, str], lab: str | None = None) -> Path:
        """A hosts.yaml beside the SSH config: each host's ssh target plus `facts` (YAML flow fields)."""
        command = lab or str(Path(sys.executable).parent / "lab")
        lines = ["ssh_config: ssh_config", "hosts:"]
        for name, host in self.hosts.items():
            extra = f", {facts[name]}" if facts.get(name) else ""
            lines.append(f"  {name}: {{ssh: root@{host.address}, lab: {command}{extra}}}")
        path = self.folder / "hosts.yaml"
        path.write_text("\n".join(lines) + "\n")
        return path

    def down(self) -> None:
        for host in self.hosts.values():
            host.destroy()
        shutil.rmtree(self.folder, ignore_errors=True)


def _addresses() -> list[str]:
    data = json.loads(_sh("ip", "-j", "-4", "addr").stdout or "[]")
    return [a["local"] for link in data for a in link.get("addr_info", [])]


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "up":
        fleet = Fleet(Path(argv[2]), [f"hv{i}" for i in range(1, int(argv[1]) + 1)]).up()
        (fleet.folder / "fleet.json").write_text(json.dumps({n: [h.netns, h.link] for n, h in fleet.hosts.items()}))
        path = fleet.hosts_yaml({n: "memory: 4GiB, cpus: 2, disk: 40GiB, reserve: 1GiB" for n in fleet.hosts})
        print(f"{len(fleet.hosts)} class hosts up; hosts file: {path}")
        return 0
    if len(argv) == 2 and argv[0] == "down":
        folder = Path(argv[1])
        for name, (netns, link) in json.loads((folder / "fleet.json").read_text()).items():
            pids = _sh("ip", "netns", "pids", netns, check=False).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            _sh("ip", "link", "del", link, check=False)
            _sh("ip", "netns", "del", netns, check=False)
        shutil.rmtree(folder, ignore_errors=True)
        return 0
    print("usage: python3 -m tests.nshosts up N FOLDER | down FOLDER", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
