"""What a checker touches: one deployed instance, its nodes (through a channel) and probes.

Everything a check does through these handles is written down (command, exit code, output,
time; probe, verdict) so that the evidence file shows how each result was reached.
Connections are opened once per node and reused for every check of the run.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hyperlab import probes
from hyperlab.core.load import LoadedLab
from hyperlab.core.plan import Plan, PlanNode
from hyperlab.grading.document import now_utc
from hyperlab.grading.unreachable import CheckError
from hyperlab.guest.agent import agent_channel
from hyperlab.core.model import CHANNELS
from hyperlab.guest.base import Channel, RunResult
from hyperlab.guest.ssh import ssh_channel_for
from hyperlab.guest.winrm import winrm_channel_for
from hyperlab.host.conn import HostProblem, connect, lookup_domain, owner_of
from hyperlab.host.instance_files import instance_variables, read_secrets

GUEST_PROBES = {"tcp": ("tcp", "tcp_connect"), "telnet": ("telnet", "telnet_negotiate"), "rdp": ("rdp", "rdp_negotiate")}
GUEST_PROBE_FILES = ("__init__.py", "base.py", "netns.py", "tcp.py", "telnet.py", "rdp.py")  # standard library only
GUEST_PROBE_DIR = "/var/lib/hyperlab/guest-probes"
MAX_EVIDENCE = 16 << 10  # characters of each output stream kept in the evidence file


def _clip(text: str) -> str:
    return text if len(text) <= MAX_EVIDENCE else text[:MAX_EVIDENCE] + f"\n... ({len(text) - MAX_EVIDENCE} more characters)"


class Recorder:
    """The evidence of the check that is running now (checks run one at a time in a process)."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    def start(self) -> None:
        self.entries = []

    def command(self, node: str, channel: str, result: RunResult, started: str) -> None:
        self.entries.append({"kind": "command", "node": node, "channel": channel, "command": result.command,
                             "exit_code": result.exit_code, "timed_out": result.timed_out,
                             "stdout": _clip(result.stdout), "stderr": _clip(result.stderr),
                             "started": started, "duration": round(result.duration, 3)})

    def probe(self, result: probes.ProbeResult, started: str) -> None:
        self.entries.append({"kind": "probe", "probe": result.kind, "target": result.target,
                             "outcome": str(result.outcome), "verdict": result.verdict,
                             "observed": json.loads(json.dumps(result.observed or {}, default=str)),
                             "started": started, "duration": round(result.elapsed, 3)})


class Node:
    """One node of the instance as checkers use it: `run`, `sh`, `ps`, `ps_json`, `read_file`."""

    def __init__(self, plan_node: PlanNode, opener: Callable[[], Channel], recorder: Recorder) -> None:
        self.name = plan_node.name
        self.os = plan_node.os
        self.plan = plan_node
        self._opener = opener
        self._channel: Channel | None = None
        self._recorder = recorder
        self._probes_shipped = False

    @property
    def channel(self) -> Channel:
        if self._channel is None:
            self._channel = self._opener()
        return self._channel

    def run(self, command: str | list[str], timeout: float = 120) -> RunResult:
        """A string runs in the node's shell (sh -c, or PowerShell on Windows); a list runs as an argv."""
        started = now_utc()
        result = self.channel.run(command, timeout=timeout)
        self._recorder.command(self.name, self.channel.name, result, started)
        return result

    def sh(self, command: str, timeout: float = 120) -> RunResult:
        if self.os != "linux":
            raise CheckError(f"{self.name} runs {self.os}: use .ps() there, not .sh()")
        return self.run(command, timeout=timeout)

    def ps(self, script: str, timeout: float = 120) -> RunResult:
        if self.os != "windows":
            raise CheckError(f"{self.name} runs {self.os}: use .sh() there, not .ps()")
        return self.run(script, timeout=timeout)

    def ps_json(self, script: str, timeout: float = 120) -> Any:
        """Run PowerShell whose output goes through ConvertTo-Json, and return the parsed value.

        Convert enums to strings in the query itself (`[string]$_.State`): Windows PowerShell 5.1's
        ConvertTo-Json has no -EnumsAsStrings and would hand back numbers.
        """
        result = self.ps(ps_json_script(script), timeout=timeout)
        return parse_ps_json(self.name, result)

    def read_file(self, path: str) -> bytes:
        return self.channel.read_file(path)

    def probe(self, kind: str, host: str, port: int, timeout: float = probes.DEFAULT_TIMEOUT) -> probes.ProbeResult:
        """Run one of hyperlab's own probes (tcp, telnet, rdp) from inside this Linux node: for
        services only reachable from a lab network the host side has no leg in (the inner hosts
        behind ROUTER). The probe's code is copied into the guest once per run."""
        if kind not in GUEST_PROBES:
            raise ValueError(f"guest probes: {', '.join(GUEST_PROBES)}")
        if self.os != "linux":
            raise CheckError(f"{self.name} runs {self.os}: guest probes need Linux (python3)")
        if not self._probes_shipped:
            mkdir = self.channel.run(["mkdir", "-p", f"{GUEST_PROBE_DIR}/hlprobes"])
            if not mkdir.ok:
                raise CheckError(f"cannot copy the probes into {self.name}:\n{mkdir.summary()}")
            for name in GUEST_PROBE_FILES:
                source = Path(probes.__file__).with_name(name).read_bytes() if name != "__init__.py" else b""
                self.channel.write_file(f"{GUEST_PROBE_DIR}/hlprobes/{name}", source)
            self._probes_shipped = True
        module, function = GUEST_PROBES[kind]
        script = (f"import json, sys; sys.path.insert(0, '{GUEST_PROBE_DIR}'); "
                  f"from hlprobes.{module} import {function} as probe; r = probe(sys.argv[1], int(sys.argv[2]), timeout=float(sys.argv[3])); "
                  "print(json.dumps({'outcome': str(r.outcome), 'detail': r.detail, 'target': r.target, "
                  "'observed': r.observed, 'elapsed': r.elapsed}, default=str))")
        started = now_utc()
        result = self.channel.run(["python3", "-c", script, host, str(port), str(timeout)], timeout=timeout + 30)
        if not result.ok:
            raise CheckError(f"the {kind} probe could not run on {self.name}:\n{result.summary()}")
        data = json.loads(result.stdout)
        answer = probes.ProbeResult(kind=kind, target=f"{data['target']} from {self.name}", outcome=probes.Outcome(data["outcome"]),
                                    detail=data["detail"], observed=data["observed"], elapsed=data["elapsed"])
        self._recorder.probe(answer, started)
        return answer

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None


def ps_json_script(script: str) -> str:
    # The script runs in a script block so that its whole output, not its last statement, is converted;
    # -Depth 6 keeps nested objects (the default 2 silently flattens them to type names).
    return f"$ProgressPreference = 'SilentlyContinue'\n& {{\n{script}\n}} | ConvertTo-Json -Depth 6 -Compress"


def parse_ps_json(node: str, result: RunResult) -> Any:
    if not result.ok:
        raise CheckError(f"PowerShell failed on {node}:\n{result.summary()}")
    text = result.stdout.strip().lstrip("\ufeff")
    if not text:
        return None  # ConvertTo-Json prints nothing for an empty pipeline
    try:
        return json.loads(text)
    except ValueError:
        raise CheckError(f"PowerShell on {node} did not print JSON:\n{result.summary()}") from None


class Probe:
    """Outside-in probes from the instance's own network namespace (where its lab addresses live)."""

    def __init__(self, netns: str, recorder: Recorder, timeout: float = probes.DEFAULT_TIMEOUT) -> None:
        self.netns = netns
        self.timeout = timeout
        self._recorder = recorder

    def _run(self, fn: Callable[..., probes.ProbeResult], *args: Any, **kwargs: Any) -> probes.ProbeResult:
        kwargs.setdefault("timeout", self.timeout)
        kwargs.setdefault("netns", self.netns)
        started = now_utc()
        result = fn(*args, **kwargs)
        self._recorder.probe(result, started)
        return result

    def tcp(self, host: str, port: int, **kw: Any) -> probes.ProbeResult:
        return self._run(probes.tcp_connect, host, port, **kw)

    def rdp(self, host: str, port: int = 3389, **kw: Any) -> probes.ProbeResult:
        return self._run(probes.rdp_negotiate, host, port, **kw)

    def telnet(self, host: str, port: int = 23, **kw: Any) -> probes.ProbeResult:
        return self._run(probes.telnet_negotiate, host, port, **kw)

    def telnet_login(self, host: str, port: int, user: str, password: str, **kw: Any) -> probes.ProbeResult:
        return self._run(probes.telnet_login, host, port, user, password, **kw)

    def ldap_rootdse(self, host: str, **kw: Any) -> probes.ProbeResult:
        return self._run(probes.ldap_rootdse, host, **kw)

    def ldap_search(self, host: str, user: str, password: str, **kw: Any) -> probes.ProbeResult:
        return self._run(probes.ldap_search, host, user, password, **kw)

    def dns_srv(self, server: str, name: str, **kw: Any) -> probes.ProbeResult:
        return self._run(probes.dns_srv, server, name, **kw)

    def dns_a(self, server: str, name: str, **kw: Any) -> probes.ProbeResult:
        return self._run(probes.dns_a, server, name, **kw)

    def dc_locator(self, server: str, domain: str, **kw: Any) -> probes.ProbeResult:
        return self._run(probes.dc_locator, server, domain, **kw)

    def smb_shares(self, host: str, **kw: Any) -> probes.ProbeResult:
        return self._run(probes.smb_shares, host, **kw)

    def winrm(self, host: str, **kw: Any) -> probes.ProbeResult:
        return self._run(probes.winrm_alive, host, **kw)


class Instance:
    """A deployed lab instance, reached through libvirt at `uri` (local or remote)."""

    def __init__(self, loaded: LoadedLab, plan: Plan, uri: str, channel: str | None, recorder: Recorder) -> None:
        if channel is not None and channel not in CHANNELS:
            raise ValueError(f"channel must be one of {', '.join(CHANNELS)}")
        self.loaded = loaded
        self.plan = plan
        self.uri = uri
        self.channel = channel
        self.recorder = recorder
        self._conn: Any = None
        self._nodes: dict[str, Node] = {}

    @property
    def lab(self) -> str:
        return self.plan.lab

    @property
    def instance(self) -> str:
        return self.plan.instance

    @property
    def netns(self) -> str:
        return self.plan.host_side.netns

    @property
    def variables(self) -> dict[str, str | int | bool]:
        """The lab's variables as this instance has them (`lab up --var` overrides the lab's defaults)."""
        return instance_variables(self.plan.pool_path, self.loaded.lab.variables)

    def secret(self, name: str) -> str:
        """A password of the instance (domain-admin, dsrm), read on the host, never from a guest."""
        return read_secrets(self.plan.pool_path)[name]

    def conn(self) -> Any:
        if self._conn is None:
            self._conn = connect(self.uri)
        return self._conn

    def missing(self) -> str | None:
        """Why checks cannot start at all (libvirt unreachable, the instance not deployed), or None."""
        try:
            conn = self.conn()
        except HostProblem as exc:
            return str(exc)
        ours = 0
        for node in self.plan.nodes:
            domain = lookup_domain(conn, node.domain)
            owner = owner_of(domain.XMLDesc(0)) if domain is not None else None
            if owner is not None and (owner.lab, owner.instance) == (self.lab, self.instance):
                ours += 1
        if ours == 0:
            flag = "" if self.instance == "default" else f" --instance {self.instance}"
            return (f"lab {self.lab} instance {self.instance} is not deployed at {self.uri}; "
                    f"start it with `lab up {self.lab}{flag}`")
        return None

    def domain_uuids(self) -> dict[str, str]:
        result = {}
        for node in self.plan.nodes:
            domain = lookup_domain(self.conn(), node.domain)
            if domain is not None:
                result[node.name] = domain.UUIDString()
        return result

    def ip(self, node: str, network: str | None = None) -> str:
        """A node's address as the topology (or the student's expected configuration) gives it."""
        plan_node = self.plan.node(node)
        for nic in plan_node.nics:
            if (network is None or nic.network == network) and nic.ip is not None:
                return str(nic.ip.ip)
        raise KeyError(f"{node} has no address{' on ' + network if network else ''}")

    def node(self, name: str) -> Node:
        if name not in self._nodes:
            plan_node = self.plan.node(name)
            self._nodes[name] = Node(plan_node, lambda: self._open(plan_node), self.recorder)
        return self._nodes[name]

    def _open(self, plan_node: PlanNode) -> Channel:
        kind = self.channel or plan_node.channel
        if kind == "agent":
            return agent_channel(self.conn(), plan_node)
        if kind == "ssh":
            return ssh_channel_for(self.plan, plan_node.name)
        # the lab's Administrator, whose password is the instance's domain-admin secret
        return winrm_channel_for(self.plan, plan_node, read_secrets(self.plan.pool_path)["domain-admin"])

    def close(self) -> None:
        for node in self._nodes.values():
            node.close()
        if self._conn is not None:
            self._conn.close()
            self._conn = None

