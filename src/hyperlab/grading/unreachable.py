"""What "could not check" means: the exceptions that make a check ERROR (not the student's fault)
rather than FAIL. One list, read by the pytest plugin and by the checker API's documentation."""

from __future__ import annotations

import libvirt

from hyperlab.guest.base import ChannelError
from hyperlab.host.conn import HostProblem
from hyperlab.host.instance_files import MissingSecrets
from hyperlab.probes import NetnsError


class CheckError(Exception):
    """A check could not judge (a node answered in a way no student action explains): ERROR, not FAIL."""


COULD_NOT_CHECK: tuple[type[BaseException], ...] = (
    ChannelError, CheckError, HostProblem, MissingSecrets, NetnsError, libvirt.libvirtError)


def unreachable(exc: BaseException) -> bool:
    """Exceptions that mean "could not look", as opposed to a wrong state or a checker bug."""
    return isinstance(exc, COULD_NOT_CHECK)
