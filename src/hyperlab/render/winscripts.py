"""The scripts Windows guests run from hyperlab's answer media (text only; no secret is ever in them).

Build (golden image), on the build's answer medium under `hyperlab\\`:

* `build.ps1` runs at the first logon (FirstLogonCommands): WinRM with its firewall rule, the
  virtio guest tools (drivers + QEMU guest agent) from the virtio-win media, then writes
  `C:\\hyperlab\\build\\tools.done` (or `tools.failed` with the reason), which the host reads through
  the guest agent. It copies `sysprep.ps1` to `C:\\hyperlab\\build\\`.
* `sysprep.ps1`, started by the host through the agent: removes the cached answer files (a cached
  `Panther\\unattend.xml` would outrank each node's medium) and runs
  `sysprep /generalize /oobe /shutdown /mode:vm`.

Node (overlay), on the node's unattend medium under `hyperlab\\`:

* `SetupComplete.cmd`, copied into `C:\\Windows\\Setup\\Scripts` by the specialize pass, runs as
  SYSTEM once setup completes and starts `firstboot.ps1` from the medium.
* `firstboot.ps1`: addresses by MAC from `node.json` (again, in case the specialize pass did not
  apply them), WinRM + firewall rule, the guest agent on and automatic, the lab's OEM files
  (`oem\\install.bat`, seed 001's convention) once, then the readiness marker `C:\\hyperlab\\ready`.
"""

from __future__ import annotations

WINRM_RULE = "hyperlab WinRM HTTP"

_COMMON = r"""
$ErrorActionPreference = 'Stop'
function Find-OnMedia([string]$Relative) {
    foreach ($drive in Get-PSDrive -PSProvider FileSystem) {
        $path = Join-Path $drive.Root $Relative
        if (Test-Path -LiteralPath $path) { return $path }
    }
    return $null
}
function Enable-HyperlabWinRM {
    Get-NetConnectionProfile -ErrorAction SilentlyContinue |
        Where-Object NetworkCategory -eq 'Public' |
        Set-NetConnectionProfile -NetworkCategory Private -ErrorAction SilentlyContinue
    Enable-PSRemoting -Force -SkipNetworkProfileCheck | Out-Null
    Set-Service -Name WinRM -StartupType Automatic
    if (-not (Get-NetFirewallRule -Name 'hyperlab-winrm-http' -ErrorAction SilentlyContinue)) {
        New-NetFirewallRule -Name 'hyperlab-winrm-http' -DisplayName '%(rule)s' -Direction Inbound `
            -Protocol TCP -LocalPort 5985 -Profile Any -Action Allow | Out-Null
    }
}
function Enable-HyperlabAgent {
    $agent = Get-Service -Name 'QEMU-GA' -ErrorAction SilentlyContinue
    if ($null -eq $agent) { return $false }
    Set-Service -Name 'QEMU-GA' -StartupType Automatic
    if ($agent.Status -ne 'Running') { Start-Service -Name 'QEMU-GA' }
    return $true
}
""" % {"rule": WINRM_RULE}

BUILD_PS1 = _COMMON + r"""
$state = 'C:\hyperlab\build'
New-Item -ItemType Directory -Force -Path $state | Out-Null
Start-Transcript -Path "$state\build.log" -Append | Out-Null
try {
    Copy-Item -Force -LiteralPath (Join-Path $PSScriptRoot 'sysprep.ps1') -Destination "$state\sysprep.ps1"
    Enable-HyperlabWinRM
    # The guest tools bundle installs every virtio driver and the QEMU guest agent.
    $tools = Find-OnMedia 'virtio-win-guest-tools.exe'
    if ($tools) {
        Start-Process -FilePath $tools -ArgumentList '/install', '/passive', '/norestart' -Wait
    } else {
        # Older virtio-win media: the driver MSI and the agent MSI separately.
        foreach ($msi in @('virtio-win-gt-x64.msi', 'guest-agent\qemu-ga-x86_64.msi')) {
            $path = Find-OnMedia $msi
            if ($path) { Start-Process msiexec.exe -ArgumentList '/i', "`"$path`"", '/qn', '/norestart' -Wait }
        }
    }
    if (-not (Enable-HyperlabAgent)) { throw 'the QEMU guest agent service (QEMU-GA) is not installed: is the virtio-win ISO attached?' }
    New-Item -ItemType File -Force -Path "$state\tools.done" | Out-Null
} catch {
    Set-Content -Path "$state\tools.failed" -Value $_.Exception.Message
    throw
} finally {
    Stop-Transcript | Out-Null
}
"""

SYSPREP_PS1 = r"""
$ErrorActionPreference = 'Stop'
# A cached answer file outranks the node's unattend medium at the next boot: remove them all.
foreach ($path in @('C:\Windows\Panther\unattend.xml', 'C:\Windows\Panther\autounattend.xml',
                    'C:\Windows\Panther\Unattend', 'C:\Windows\System32\Sysprep\unattend.xml')) {
    Remove-Item -Recurse -Force -LiteralPath $path -ErrorAction SilentlyContinue
}
Remove-ItemProperty -Path 'HKLM:\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Winlogon' `
    -Name AutoAdminLogon, DefaultPassword -ErrorAction SilentlyContinue
Remove-Item -Recurse -Force -LiteralPath 'C:\hyperlab' -ErrorAction SilentlyContinue
Start-Process -FilePath 'C:\Windows\System32\Sysprep\sysprep.exe' `
    -ArgumentList '/generalize', '/oobe', '/shutdown', '/mode:vm', '/quiet'
"""

SETUPCOMPLETE_CMD = "\r\n".join([
    "@echo off",
    r"if not exist C:\hyperlab mkdir C:\hyperlab",
    r"for %%d in (D E F G H I J K L M N O P Q R S T U V W X Y Z) do if exist %%d:\hyperlab\firstboot.ps1 (",
    r"  powershell.exe -NoProfile -ExecutionPolicy Bypass -File %%d:\hyperlab\firstboot.ps1 >> C:\hyperlab\firstboot.log 2>&1",
    "  exit /b 0",
    ")",
    "",
])

FIRSTBOOT_PS1 = _COMMON + r"""
$state = 'C:\hyperlab'
New-Item -ItemType Directory -Force -Path $state | Out-Null
$node = Get-Content -Raw -LiteralPath (Join-Path $PSScriptRoot 'node.json') | ConvertFrom-Json

foreach ($nic in $node.nics) {
    $adapter = Get-NetAdapter | Where-Object { $_.MacAddress -eq $nic.mac }
    if ($null -eq $adapter) { Write-Warning "no adapter with MAC $($nic.mac)"; continue }
    $have = Get-NetIPAddress -InterfaceIndex $adapter.ifIndex -AddressFamily IPv4 -ErrorAction SilentlyContinue |
        Where-Object IPAddress -eq $nic.ip
    if (-not $have) {
        Set-NetIPInterface -InterfaceIndex $adapter.ifIndex -Dhcp Disabled
        $params = @{ InterfaceIndex = $adapter.ifIndex; IPAddress = $nic.ip; PrefixLength = $nic.prefix }
        if ($nic.gateway) { $params.DefaultGateway = $nic.gateway }
        New-NetIPAddress @params | Out-Null
    }
    if ($nic.dns.Count -gt 0) { Set-DnsClientServerAddress -InterfaceIndex $adapter.ifIndex -ServerAddresses $nic.dns }
}

Enable-HyperlabWinRM
if (-not (Enable-HyperlabAgent)) { Write-Warning 'QEMU-GA is not installed in this image' }

# OEM files of the lab (seed 001: /oem/install.bat runs once after Windows is installed).
$oem = Join-Path $PSScriptRoot 'oem'
if ((Test-Path -LiteralPath $oem) -and -not (Test-Path "$state\oem.done")) {
    Copy-Item -Recurse -Force -Path $oem -Destination $state
    $install = Join-Path "$state\oem" 'install.bat'
    if (Test-Path -LiteralPath $install) {
        $run = Start-Process -FilePath cmd.exe -ArgumentList '/c', "`"$install`"" -WorkingDirectory "$state\oem" -Wait -PassThru
        if ($run.ExitCode -ne 0) { throw "oem\install.bat exited with $($run.ExitCode)" }
    }
    New-Item -ItemType File -Force -Path "$state\oem.done" | Out-Null
}
# Readiness marker (deploy.READY_MARKER): written last, so "ready" means specialization finished.
New-Item -ItemType File -Force -Path 'C:\hyperlab\ready' | Out-Null
"""
