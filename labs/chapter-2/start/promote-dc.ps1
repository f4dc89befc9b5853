# Start state on DC1 (seed 004: "DC1 is rolled back to the snapshot with Active Directory installed").
# Promotes DC1 to the first domain controller of kosa.vm with DNS, and prepares C:\smb with the
# instructor's VHDX; sharing the folder is the student's first step on DC1.
# Runs through the guest agent as SYSTEM; idempotent so that `lab reset` can run it again.
param(
    [string]$DomainName = 'kosa.vm',
    [string]$NetbiosName = 'KOSA',
    [string]$SafeModePasswordFile = 'C:\hyperlab\secrets\dsrm.txt'
)
$ErrorActionPreference = 'Stop'

New-Item -ItemType Directory -Force -Path 'C:\smb' | Out-Null

$role = Get-WindowsFeature -Name AD-Domain-Services
if (-not $role.Installed) {
    Install-WindowsFeature -Name AD-Domain-Services, DNS -IncludeManagementTools | Out-Null
}

$isDc = (Get-CimInstance Win32_ComputerSystem).DomainRole -ge 4
if (-not $isDc) {
    $password = Get-Content -Raw -Path $SafeModePasswordFile | ConvertTo-SecureString -AsPlainText -Force
    Install-ADDSForest -DomainName $DomainName -DomainNetbiosName $NetbiosName `
        -InstallDns -SafeModeAdministratorPassword $password -NoRebootOnCompletion -Force | Out-Null
    # The agent channel sees the reboot and waits for the agent to answer again.
    [pscustomobject]@{ state = 'promoted'; reboot = $true } | ConvertTo-Json -Compress
} else {
    [pscustomobject]@{ state = 'already-dc'; reboot = $false } | ConvertTo-Json -Compress
}
