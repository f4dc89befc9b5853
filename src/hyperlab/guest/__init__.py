"""Inside guests: the channels (agent, ssh, winrm), the guest-script runner, reboots.
Imports core/, host/ and probes/."""
