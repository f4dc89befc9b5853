# Start state on DC1 (seed 004: "DC1 is rolled back to the snapshot with Active Directory installed").
# Promotes DC1 to the first domain controller of kosa.vm with DNS, and prepares C:\smb holding
# win2003-3.vhdx (the seed's instructor-made copy of the sysprepped disk); sharing the folder is the
# student's step smb-share. Runs through the guest agent as SYSTEM; idempotent.
#
# C:\smb is the guest-disk volume itself (mounted there), so win2003-3.vhdx is the instructor's VHDX
# renamed in DC1's own overlay: no copy. The secret file is C:\hyperlab\secrets\dsrm (no extension:
# deploy.SECRETS_DIR and SECRET_NAMES). Promotion needs a reboot: the last line says "reboot": true
# (the reboot-aware runner reboots and runs this again, which then reports already-dc), and a
# reboot is also scheduled 20 s after this script has returned, for a runner that does not reboot.
param(
    [string]$DomainName = 'kosa.vm',
    [string]$NetbiosName = 'KOSA',
    [string]$SafeModePasswordFile = 'C:\hyperlab\secrets\dsrm'
)
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'

# The lab's variables as this instance has them (`lab up --var` overrides lab.yaml): lab.env holds
# NAME='VALUE' lines beside the secrets; the defaults below mirror lab.yaml (a unit test keeps them equal).
$LabEnv = @{}
Get-Content 'C:\hyperlab\secrets\lab.env' -ErrorAction SilentlyContinue | ForEach-Object {
    if ($_ -match '^(\w+)=''(.*)''$') { $LabEnv[$Matches[1]] = $Matches[2] }
}
function Get-LabVariable([string]$Name, [string]$Default) {
    if ($LabEnv.ContainsKey($Name)) { return $LabEnv[$Name] }
    return $Default
}
$GuestDiskLabel = Get-LabVariable 'guest_disk_label' 'HLGUESTS'
$GuestDiskFile = Get-LabVariable 'guest_disk_file' 'win2003.vhdx'
$SmbPath = 'C:\smb'
$SharedDisk = 'win2003-3.vhdx'

function Mount-SmbVolume {
    $volume = Get-Volume -FileSystemLabel $GuestDiskLabel -ErrorAction SilentlyContinue
    if ($null -eq $volume) {
        foreach ($disk in Get-Disk | Where-Object { $_.IsOffline -or $_.IsReadOnly }) {
            Set-Disk -Number $disk.Number -IsOffline $false
            Set-Disk -Number $disk.Number -IsReadOnly $false
        }
        $volume = Get-Volume -FileSystemLabel $GuestDiskLabel -ErrorAction SilentlyContinue
    }
    New-Item -ItemType Directory -Force -Path $SmbPath | Out-Null
    if ($null -eq $volume) { return $false }
    $partition = $volume | Get-Partition
    if (@($partition.AccessPaths) -notcontains "$SmbPath\") {
        # A mount point needs an empty folder; a fresh overlay has one.
        $partition | Add-PartitionAccessPath -AccessPath $SmbPath
    }
    $source = Join-Path $SmbPath $GuestDiskFile
    $target = Join-Path $SmbPath $SharedDisk
    if ((Test-Path $source) -and -not (Test-Path $target)) { Rename-Item -Path $source -NewName $SharedDisk }
    return (Test-Path $target)
}

$hasDisk = Mount-SmbVolume

$role = Get-WindowsFeature -Name AD-Domain-Services
if (-not $role.Installed) {
    Install-WindowsFeature -Name 'AD-Domain-Services', 'DNS' -IncludeManagementTools | Out-Null
}

$isDc = (Get-CimInstance Win32_ComputerSystem).DomainRole -ge 4
if (-not $isDc) {
    if (-not (Test-Path $SafeModePasswordFile)) { throw "no DSRM password at $SafeModePasswordFile (the framework writes it before start state)" }
    $password = (Get-Content -Raw -Path $SafeModePasswordFile).Trim() | ConvertTo-SecureString -AsPlainText -Force
    Install-ADDSForest -DomainName $DomainName -DomainNetbiosName $NetbiosName `
        -InstallDns -SafeModeAdministratorPassword $password -NoRebootOnCompletion -Force | Out-Null
    shutdown.exe /r /t 20 /d p:4:2 /c 'hyperlab: promoted to a domain controller, restarting'
    [pscustomobject]@{ state = 'promoted'; reboot = $true; shared_disk = $hasDisk } | ConvertTo-Json -Compress
} else {
    [pscustomobject]@{ state = 'already-dc'; reboot = $false; shared_disk = $hasDisk } | ConvertTo-Json -Compress
}
