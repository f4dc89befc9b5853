"""chapter-2: every PowerShell script and snippet parses (tree-sitter-powershell), and the checkers'
queries end in ConvertTo-Json. NOT run against Windows: parsing proves syntax, not behaviour."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hyperlab.grading.target import ps_json_script
from tests.unit.chapter2_support import CHECKERS, LAB

tree_sitter = pytest.importorskip("tree_sitter", reason="pip install -e '.[test]' (tree-sitter)")
tree_sitter_powershell = pytest.importorskip("tree_sitter_powershell", reason="pip install -e '.[test]' (tree-sitter-powershell)")

PARSER = tree_sitter.Parser(tree_sitter.Language(tree_sitter_powershell.language()))
SCRIPTS = sorted([*LAB.rglob("*.ps1"), *CHECKERS.rglob("*.ps1")])


def syntax_errors(text: str) -> list[str]:
    """Where tree-sitter found ERROR or MISSING nodes, as 'line:column kind'; empty when clean."""
    tree = PARSER.parse(text.encode("utf-8"))
    found: list[str] = []

    def walk(node: tree_sitter.Node) -> None:
        if node.is_error or node.is_missing:
            found.append(f"{node.start_point[0] + 1}:{node.start_point[1] + 1} {'missing ' + node.type if node.is_missing else 'error'}")
        elif node.has_error:
            for child in node.children:
                walk(child)

    walk(tree.root_node)
    if tree.root_node.has_error and not found:
        found.append("1:1 error")
    return found


def test_there_are_scripts_to_parse() -> None:
    names = {p.name for p in SCRIPTS}
    assert {"promote-dc.ps1", "install-hyperv.ps1", "guests.ps1", "vms.ps1", "replication.ps1"} <= names


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: str(p.relative_to(p.parents[2])))
def test_script_parses(path: Path) -> None:
    assert syntax_errors(path.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("broken", [
    "if ($x { Write-Output 1 }\n",                      # unclosed parenthesis
    "$a = @{ Name = 'x'\n",                             # unclosed hashtable
    "foreach ($s in Get-VMSwitch) {\n  $s.Name\n",      # unclosed block
    "$inner = @'\nnever closed\n",                      # unterminated here-string
])
def test_a_broken_script_is_caught(broken: str) -> None:
    """The parse test can fail: these deliberately broken snippets must be reported."""
    assert syntax_errors(broken) != []


def test_every_checker_query_as_sent_parses_and_ends_in_convertto_json() -> None:
    """What Node.ps_json sends: the parameters, the ps/ script, and the ConvertTo-Json wrapper."""
    from ch2_ps import script

    params = {"ad-computers": {"Names": ["SVR1", "SVR2"]}, "delegation": {"Names": ["SVR1", "SVR2"]},
              "vms": {"Names": ["win2003-1", "it's"]}, "neighbor": {"Address": "192.168.1.111"},
              "replication": {"VMName": "Linux01"}, "smb-share": {"ShareName": "smb"}}
    for path in sorted((CHECKERS / "ps").glob("*.ps1")):
        sent = ps_json_script(script(path.stem, **params.get(path.stem, {})))
        assert syntax_errors(sent) == [], path.name
        assert re.search(r"\| ConvertTo-Json -Depth \d+ -Compress$", sent), path.name


def test_enums_are_turned_into_strings_in_the_queries() -> None:
    """Windows PowerShell 5.1 prints enums as numbers: every enum-typed property read by a query
    goes through .ToString() (the list is the enum properties the judges compare with names)."""
    enums = ["SwitchType", "State", "ControllerType", "VirtualMachineMigrationAuthenticationType",
             "AllowedAuthenticationType", "Health", "Mode", "AuthType", "AccessControlType", "AccessRight",
             "FileSystemRights", "ShareState", "Enabled", "Action", "ReplicationMode"]
    for path in sorted((CHECKERS / "ps").glob("*.ps1")):
        text = path.read_text(encoding="utf-8")
        for name in enums:
            for match in re.finditer(rf"^\s*{name}\s*=\s*(.+)$", text, re.MULTILINE):
                value = match.group(1)
                assert ".ToString()" in value or value.startswith("[bool]"), f"{path.name}: {name} = {value}"


def test_start_scripts_read_the_secrets_the_framework_writes() -> None:
    """ops/secrets.py writes each secret as C:\\hyperlab\\secrets\\<name> (no extension)."""
    from hyperlab.ops.secrets import SECRET_NAMES
    from hyperlab.guest.runner import SECRETS_DIR

    folder = SECRETS_DIR["windows"]
    for path in SCRIPTS:
        for used in re.findall(r"C:\\hyperlab\\secrets\\([\w.-]+)", path.read_text(encoding="utf-8")):
            assert used in (*SECRET_NAMES, "lab.env"), f"{path.name} reads {folder}\\{used}, which the framework never writes"


def test_start_scripts_mirror_the_lab_variables() -> None:
    """The start scripts read the guest-disk names from lab.env, with lab.yaml's values as defaults."""
    from hyperlab.core.load import load_lab

    variables = load_lab("chapter-2", LAB.parents[1]).lab.variables
    for name in ("install-hyperv.ps1", "promote-dc.ps1"):
        text = (LAB / "start" / name).read_text(encoding="utf-8")
        assert "Get-Content 'C:\\hyperlab\\secrets\\lab.env'" in text, name
        assert f"$GuestDiskLabel = Get-LabVariable 'guest_disk_label' '{variables['guest_disk_label']}'" in text, name
        assert f"$GuestDiskFile = Get-LabVariable 'guest_disk_file' '{variables['guest_disk_file']}'" in text, name
    text = (LAB / "start" / "install-hyperv.ps1").read_text(encoding="utf-8")
    assert f"$ParentPath = Get-LabVariable 'guest_parent_path' '{variables['guest_parent_path']}'" in text


def test_lab_env_lines_are_what_the_start_scripts_match() -> None:
    """hyperlab.core.variables writes NAME='VALUE'; the scripts' pattern reads exactly that (same regex in .NET)."""
    import re

    from hyperlab.core.variables import env_text

    pattern = re.compile(r"^(\w+)='(.*)'$")
    lines = env_text({"guest_disk_file": "win2003.vhdx", "guest_parent_path": "C:\\Hyper-V\\Parent"}).splitlines()
    assert [pattern.match(line).groups() for line in lines] == [  # type: ignore[union-attr]
        ("guest_disk_file", "win2003.vhdx"), ("guest_parent_path", "C:\\Hyper-V\\Parent")]
    text = (LAB / "start" / "install-hyperv.ps1").read_text(encoding="utf-8")
    assert "-match '^(\\w+)=''(.*)''$'" in text


def test_replication_is_read_through_the_classes_own_property_names() -> None:
    """`State`, `Health`, `Mode`, `FrequencySec`... are the column labels of Get-VMReplication's
    default table; the objects' properties are ReplicationState, ReplicationHealth, ... Every
    property read from a VMReplication object, in the checker and the solutions, must be one."""
    import json

    ROOT = LAB.parents[1]
    facts = json.loads((ROOT / "tests" / "data" / "recorded" / "windows" / "hyperv-classes.json").read_text())
    known = set(facts["Microsoft.HyperV.PowerShell.VMReplication"]["properties"])
    read = set(re.findall(r"\$r\.(\w+)", (ROOT / "checkers" / "chapter-2" / "ps" / "replication.ps1").read_text()))
    for script in sorted((ROOT / "labs" / "chapter-2" / "solutions").glob("*.ps1")):
        text = script.read_text()
        read |= set(re.findall(r"\(Get-VMReplication[^)]*\)\.(\w+)", text))
        if re.search(r"\$r\s*=\s*Get-VMReplication", text):
            read |= set(re.findall(r"\$r\.(\w+)", text))
    assert read and read <= known, sorted(read - known)
    emitted = set(re.findall(r"^\s+(\w+)\s+=\s+(?:\[\w+\])?\$r\.", (ROOT / "checkers" / "chapter-2" / "ps" / "replication.ps1").read_text(), re.M))
    emitted |= {"VMName"}
    for recorded in sorted((ROOT / "tests" / "data" / "recorded" / "chapter-2" / "replication").glob("*.json")):
        for entry in json.loads(recorded.read_text()).get("Replication") or []:
            assert set(entry) <= known and set(entry) <= emitted, (recorded.name, sorted(set(entry) - known))


def test_the_hyperv_start_state_proves_the_hypervisor_runs_before_it_says_ready() -> None:
    """A host whose KVM passes no virtualization through installs the role and reboots fine; only
    a running VM shows it. The second run must start (then remove) a throw-away VM before it writes
    its done marker, and fail with the reason otherwise. (Not run on Windows.)"""
    text = (LAB / "start" / "install-hyperv.ps1").read_text(encoding="utf-8")
    after_reboot = text[text.index("if (-not $feature.Installed)"):]
    order = [after_reboot.index(s) for s in ("return\n}", "New-VM -Name $probe", "Start-VM -Name $probe", "Remove-VM -Name $probe",
                                               "Set-Content -Path $DoneMarker")]
    assert order == sorted(order), order
    probe = after_reboot[after_reboot.index("try {"):after_reboot.index("Set-VMHost")]
    cleanup = probe.split("finally {", 1)[1]
    assert "Stop-VM" in cleanup and "Remove-VM" in cleanup and "Remove-Item" in cleanup  # even when it fails
    assert 'throw "the Hyper-V role is installed but cannot start a VM' in after_reboot
    root = PARSER.parse(text.encode("utf-8")).root_node
    assert not root.has_error


def test_the_guests_solution_gives_each_guest_the_adapter_lab_yaml_names() -> None:
    """One setting, three readers: lab.yaml's guests.<name>.adapter, the checker (through the lab)
    and the reference solution, which cannot read lab.yaml in the guest and so repeats it."""
    from hyperlab.core.load import load_lab

    guests = load_lab("chapter-2", LAB.parents[1]).lab.guests
    text = (LAB / "solutions" / "guests.ps1").read_text(encoding="utf-8")
    listed = dict(re.findall(r"'([\w-]+)' = \$(true|false)", text.split("$Legacy = @{", 1)[1].split("}", 1)[0]))
    assert listed == {name: "true" if guest.adapter == "legacy" else "false" for name, guest in guests.items()}
    assert "Remove-VMNetworkAdapter" in text and "-IsLegacy $Legacy[$Name]" in text
