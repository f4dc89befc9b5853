"""The SSH channel without a server: which address a node is reached at, quoting, host-key pinning."""

from __future__ import annotations

import subprocess
from pathlib import Path

import paramiko
import pytest

from hyperlab.guest.base import ChannelError, host_side_address
from hyperlab.guest.known_hosts import forget_host_key, known_host_name
from hyperlab.guest.ssh import (
    SSHChannel,
    forget_node,
    ssh_channel_for,
)
from hyperlab.core.load import load_lab
from hyperlab.core.plan import Plan, plan

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def linux_plan() -> Plan:
    return plan(load_lab("chapter-2-linux", ROOT), "alice")


# ------------------------------------------------------------------ address selection


@pytest.mark.parametrize(("node", "address"), [("DC1", "192.168.1.100"), ("SVR1", "192.168.1.110"),
                                               ("SVR2", "192.168.1.120")])
def test_lab_set_address_on_the_host_side_network(linux_plan: Plan, node: str, address: str) -> None:
    assert str(host_side_address(linux_plan, node)) == address
    ch = ssh_channel_for(linux_plan, node)
    assert ch.host == address and ch.port == 22 and ch.user == "root" and ch.node == node
    assert ch.netns == linux_plan.host_side.netns and ch.netns.startswith("hl-")
    assert ch.key_path == linux_plan.pool_path / "id_ed25519"
    assert ch.known_hosts == linux_plan.pool_path / "known_hosts"
    assert ch.os == "linux"


def test_student_set_addresses_are_not_used(linux_plan: Plan) -> None:
    router = next(n for n in linux_plan.nodes if n.name == "ROUTER")
    public = next(nic for nic in router.nics if nic.network == "public")
    assert public.set_by == "student" and str(public.ip) == "192.168.1.111/24"  # there, but not ours to use
    with pytest.raises(ChannelError) as info:
        ssh_channel_for(linux_plan, "ROUTER")
    assert str(info.value) == "ROUTER has no address reachable from the host side; use the agent channel"


def test_network_without_host_side_is_not_used(linux_plan: Plan) -> None:
    with pytest.raises(ChannelError, match="^INNER1 has no address reachable from the host side"):
        ssh_channel_for(linux_plan, "INNER1")


def test_unknown_node(linux_plan: Plan) -> None:
    with pytest.raises(ChannelError, match="NOPE is not a node of lab chapter-2-linux"):
        ssh_channel_for(linux_plan, "NOPE")


# ---------------------------------------------------------------------------- quoting


def channel(tmp_path: Path, **kw: object) -> SSHChannel:
    return SSHChannel("192.0.2.1", netns=None, key_path=tmp_path / "id", node="X", **kw)  # type: ignore[arg-type]


def test_a_string_is_sent_as_is(tmp_path: Path) -> None:
    line = "echo $HOME | tr a-z A-Z; exit 3"
    assert channel(tmp_path).remote_command(line) == line


def test_a_list_arrives_as_the_same_argv(tmp_path: Path) -> None:
    argv = ["printf", r"%s\0", "a b", "$HOME", "it's", "*", ";", "x\ny", "", '"q"', "`id`", "-n"]
    line = channel(tmp_path).remote_command(argv)
    assert line == "printf '%s\\0' 'a b' '$HOME' 'it'\"'\"'s' '*' ';' 'x\ny' '' '\"q\"' '`id`' -n"
    # what the remote shell makes of it: the very same arguments, nothing expanded
    done = subprocess.run(["/bin/sh", "-c", line], capture_output=True, check=True, cwd=tmp_path)
    assert done.stdout.split(b"\0")[:-1] == [a.encode() for a in argv[2:]]


def test_windows_lists_use_windows_quoting(tmp_path: Path) -> None:
    assert channel(tmp_path, os_name="windows").remote_command(["dir", "C:\\Program Files"]) == 'dir "C:\\Program Files"'


# -------------------------------------------------------------------------- host keys


def test_first_key_is_pinned_a_changed_key_refused_until_forgotten(tmp_path: Path) -> None:
    known = tmp_path / "instance" / "known_hosts"
    first = load_key(tmp_path, "a")
    second = load_key(tmp_path, "b")
    ch = SSHChannel("192.168.1.110", netns="hl-x", key_path=tmp_path / "id", node="SVR1", known_hosts=known)
    ch._check_host_key(first)  # first contact: accepted, pinned
    assert known.read_text().split() == ["192.168.1.110", "ssh-ed25519", first.get_base64()]
    assert oct(known.stat().st_mode & 0o777) == "0o600"
    ch._check_host_key(first)  # the same key again: fine
    with pytest.raises(ChannelError) as info:
        ch._check_host_key(second)
    text = str(info.value)
    assert text.startswith("cannot reach SVR1 over SSH at 192.168.1.110 (in namespace hl-x): its host key changed")
    assert f"pinned in {known}" in text and "delete the line for 192.168.1.110 from that file" in text
    assert known.read_text().split()[2] == first.get_base64()  # the pin is untouched
    assert forget_host_key(known, "192.168.1.110") is True
    assert forget_host_key(known, "192.168.1.110") is False
    ch._check_host_key(second)  # after `lab reset` forgot it: the new key is pinned
    assert known.read_text().split()[2] == second.get_base64()


def test_other_hosts_and_ports_keep_their_pins(tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    a, b = load_key(tmp_path, "a"), load_key(tmp_path, "b")
    SSHChannel("10.0.0.1", netns=None, key_path=tmp_path / "id", node="A", known_hosts=known)._check_host_key(a)
    SSHChannel("10.0.0.1", netns=None, key_path=tmp_path / "id", node="A", port=2222,
               known_hosts=known)._check_host_key(b)
    assert known_host_name("10.0.0.1", 2222) == "[10.0.0.1]:2222"
    assert forget_host_key(known, "10.0.0.1", 2222)
    assert [line.split()[0] for line in known.read_text().splitlines()] == ["10.0.0.1"]


def test_without_known_hosts_nothing_is_pinned(tmp_path: Path) -> None:
    ch = channel(tmp_path)
    ch._check_host_key(load_key(tmp_path, "a"))
    ch._check_host_key(load_key(tmp_path, "b"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "a.pub", "b", "b.pub"]  # no file written


def test_missing_key_file_is_a_plain_channel_error(tmp_path: Path) -> None:
    with pytest.raises(ChannelError) as info:
        channel(tmp_path).run("true")
    assert str(info.value) == (f"cannot reach X over SSH at 192.0.2.1: its SSH key {tmp_path / 'id'} does not exist "
                               "(`lab up` makes it)")


def load_key(tmp_path: Path, name: str) -> paramiko.PKey:
    """A host's public key as the server would show it (ssh-keygen, as sshd's host keys are made)."""
    path = tmp_path / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return paramiko.PKey.from_path(path)


def test_forget_node_drops_only_that_nodes_pin(linux_plan: Plan, tmp_path: Path) -> None:
    p = linux_plan.model_copy(update={"pool_path": tmp_path})
    for node in ("DC1", "SVR1"):
        ssh_channel_for(p, node)._check_host_key(load_key(tmp_path, node))
    assert forget_node(p, "SVR1") is True
    assert [line.split()[0] for line in (tmp_path / "known_hosts").read_text().splitlines()] == ["192.168.1.100"]
    assert forget_node(p, "SVR1") is False
    assert forget_node(p, "ROUTER") is False  # not reachable over SSH: nothing pinned, nothing to do
