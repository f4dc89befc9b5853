# Reference solution, step replica-server (SVR1, SVR2): Replica server with Kerberos over HTTP (80),
# from any authenticated server, and the built-in listener firewall rule enabled.
$ErrorActionPreference = 'Stop'
New-Item -ItemType Directory -Force -Path 'C:\Hyper-V\Replica' | Out-Null
Set-VMReplicationServer -ReplicationEnabled $true -AllowedAuthenticationType Kerberos -KerberosAuthenticationPort 80 `
    -ReplicationAllowedFromAnyServer $true -DefaultStorageLocation 'C:\Hyper-V\Replica' -Force
Enable-NetFirewallRule -Name 'VIRT-HVRHTTPL-In-TCP-NoScope'
