"""Steps migration-settings, shared-nothing, shared-storage and storage-migration: hosts that trust
each other, and guests that moved while running.

The nested guests are tickers (hyperlab.images.ticker): `hyperlab-ticker: start` once when started,
then `hyperlab-ticker: up N s` every 5 s, counted in RAM. libvirt logs each host's side of the serial
console in /var/log/libvirt/qemu/NAME-console.log: a guest that moved while running counts on in the
new host's log without a start line; a guest that was restarted starts there again from 0."""

import pytest

from hyperlab.grading import eventually
from hyperlab.images.ticker import START_LINE, uptimes

HOSTS = ("svr1", "svr2")


def remote_virsh(node, source, target):
    return node(source).sh(f"virsh -c 'qemu+ssh://root@{target}.kosa.vm/system?no_tty=1' -q list --all", timeout=60)


@pytest.mark.step("migration-settings")
def test_each_host_reaches_the_others_libvirt(node):
    """SVR1 and SVR2 reach each other's libvirt over SSH without a password"""
    for source, target in (("SVR1", "svr2"), ("SVR2", "svr1")):
        result = remote_virsh(node, source, target)
        assert result.ok, f"{source} cannot open qemu+ssh://root@{target}.kosa.vm/system: {result.stderr.strip()[-300:]}"


def domstate(node, host, name):
    result = node(host).sh(f"virsh -q domstate {name} 2>/dev/null")
    return result.stdout.strip() if result.ok else "not defined"


def disk_of(node, host, name):
    result = node(host).sh(f"virsh -q domblklist {name} --details | awk '$2 == \"disk\" {{print $4}}'")
    return result.stdout.strip()


def console(node, host, name):
    """The guest's console log on that host ('' when it never ran there)."""
    return node(host).sh(f"cat /var/log/libvirt/qemu/{name}-console.log 2>/dev/null").stdout


def counting_on(node, host, name):
    """The console log on `host` once it holds a count (the ticker says one every 5 s)."""
    return eventually(lambda: console(node, host, name), until=lambda text: bool(uptimes(text)), timeout=60, every=5,
                      what=f"a 'hyperlab-ticker: up N s' line of {name} on {host}")


def moved_while_running(node, name, source, target, shared):
    state = domstate(node, target, name)
    assert state == "running", f"{name} on {target} is {state}, expected running"
    left = domstate(node, source, name)
    assert left != "running", f"{name} still runs on {source} too"
    disk = disk_of(node, target, name)
    on_share = disk.startswith("/mnt/smb/")
    assert on_share == shared, (f"{name}'s disk on {target} is {disk or 'missing'}; expected "
                                f"{'on the share /mnt/smb' if shared else 'a local disk on ' + target}")
    exists = node(target).sh(f"test -f '{disk}'")
    assert exists.ok, f"{name}'s disk {disk} does not exist on {target}"
    there = counting_on(node, target, name)
    before = uptimes(console(node, source, name))
    assert START_LINE not in there, (f"{name} was started afresh on {target} (its console there says '{START_LINE}'): "
                                     "a live migration moves it while it runs")
    print(f"{name}: last count on {source} {before[-1] if before else '-'} s, first on {target} {uptimes(there)[0]} s")


@pytest.mark.step("shared-nothing")
def test_vm1_moved_to_svr2_with_its_disk(node):
    """vm1 runs on SVR2 from a local copy of its disk, and never restarted"""
    moved_while_running(node, "vm1", "SVR1", "SVR2", shared=False)


@pytest.mark.step("shared-storage")
def test_vm3_moved_to_svr2_disk_still_on_the_share(node):
    """vm3 runs on SVR2 with its disk still on the share, and never restarted"""
    moved_while_running(node, "vm3", "SVR1", "SVR2", shared=True)


@pytest.mark.step("storage-migration")
def test_vm2_disk_moved_to_the_share_while_running(node):
    """vm2 still runs on SVR1, now from /mnt/smb/vm2.qcow2, and never restarted"""
    state = domstate(node, "SVR1", "vm2")
    assert state == "running", f"vm2 on SVR1 is {state}, expected running"
    disk = disk_of(node, "SVR1", "vm2")
    assert disk == "/mnt/smb/vm2.qcow2", f"vm2's disk is {disk or 'missing'}, expected /mnt/smb/vm2.qcow2"
    text = counting_on(node, "SVR1", "vm2")
    starts = text.count(START_LINE)
    assert starts == 1, f"vm2 was started {starts} times on SVR1: a storage migration moves its disk while it runs"
    saved = node("SVR1").sh("virsh -q dumpxml --inactive vm2 | grep -c /mnt/smb/vm2.qcow2").stdout.strip()
    assert saved not in ("", "0"), "vm2's saved definition still names the old disk: it would move back at the next start"
