"""What goes on a Windows node's unattend medium (pure; `hyperlab.ops.windows_media` writes it).

One medium per node (`PlanNode.unattend_iso`), an ISO beside the node's overlay attached as a
read-only CD, specializes the node without touching its golden image. It holds:

* `Autounattend.xml` and `unattend.xml` (the same file under both names Windows looks for on
  removable media): computer name, static addresses by MAC, gateway, DNS, the Administrator
  password (hidden form), Remote Desktop, and a specialize command that installs
  `SetupComplete.cmd`;
* `hyperlab\\SetupComplete.cmd`, `hyperlab\\firstboot.ps1`, `hyperlab\\node.json` (no secret):
  WinRM and the guest agent on, addresses applied again by MAC, the lab's OEM files run once,
  then `C:\\hyperlab\\ready` (`hyperlab.guest.runner.READY_MARKER`), which with the agent answering is readiness;
* `hyperlab\\oem\\...`: the lab's `oem/` folder (seed 001: `install.bat` runs once), plus
  `oem/<NODE>/` for one node only.

The Administrator password is the instance's `domain-admin` secret: the DC's local Administrator
becomes the domain's, and start-state scripts read the same secret.
"""

from __future__ import annotations

import json

from hyperlab.core.load import LoadedLab
from hyperlab.core.plan import PlanNode
from hyperlab.render.unattend import MEDIA_DIR, NodeAnswer, NodeNic, node_unattend_xml, windows_mac
from hyperlab.render.winscripts import FIRSTBOOT_PS1, SETUPCOMPLETE_CMD

ADMIN_SECRET = "domain-admin"
OEM_DIR = "oem"
LABEL = "HLNODE"


def node_answer(node: PlanNode, loaded: LoadedLab, password: str) -> NodeAnswer:
    topo = loaded.topology.topology
    nics = []
    for nic in node.nics:
        if nic.ip is None or nic.set_by != "lab":
            nics.append(NodeNic(nic.mac, None))
            continue
        dns = tuple(topo.networks[nic.network].dns)
        nics.append(NodeNic(nic.mac, nic.ip, nic.gateway, dns))
    # Only the first NIC with a gateway gets the default route: two default routes confuse Windows.
    seen_gateway = False
    ordered = []
    for item in nics:
        if item.gateway is not None and seen_gateway:
            item = NodeNic(item.mac, item.address, None, item.dns)
        seen_gateway = seen_gateway or item.gateway is not None
        ordered.append(item)
    return NodeAnswer(computer_name=node.hostname, admin_password=password, nics=tuple(ordered),
                      dns_suffix=topo.domain.fqdn if topo.domain else None)


def node_json(answer: NodeAnswer) -> str:
    """What firstboot.ps1 reads: addresses by MAC. No password."""
    nics = [{"mac": windows_mac(n.mac), "ip": str(n.address.ip), "prefix": n.address.network.prefixlen,
             "gateway": str(n.gateway) if n.gateway else None, "dns": [str(d) for d in n.dns]}
            for n in answer.nics if n.address is not None]
    return json.dumps({"name": answer.computer_name, "nics": nics}, indent=2) + "\n"


def media_files(node: PlanNode, loaded: LoadedLab, password: str, oem: dict[str, bytes]) -> dict[str, bytes]:
    """The medium's files; `oem` are the lab's OEM files for this node, as `oem_files` reads them."""
    answer = node_answer(node, loaded, password)
    xml = node_unattend_xml(answer).encode()
    files = {
        "Autounattend.xml": xml,
        "unattend.xml": xml,
        f"{MEDIA_DIR}/SetupComplete.cmd": SETUPCOMPLETE_CMD.encode(),
        f"{MEDIA_DIR}/firstboot.ps1": FIRSTBOOT_PS1.replace("\n", "\r\n").encode(),
        f"{MEDIA_DIR}/node.json": node_json(answer).encode(),
    }
    files.update(oem)
    return files
