# Reference solution, step guests (SVR1, SVR2). On SVR1: win2003-1, -2, -3, generation 1, 512 MB;
# -1 and -2 on differencing disks whose parent is the instructor's read-only VHDX (no copy), -3 on
# \\DC1\smb\win2003-3.vhdx (prepared by DC1's start state). On SVR2: Linux01 for the replica steps,
# on a small empty disk (any VM can be replicated; the instructor may give it a real OS disk).
# The Windows Server 2003 guests then boot into the sysprep mini-setup, which the student finishes.
$ErrorActionPreference = 'Stop'
$parent = 'C:\Hyper-V\Parent\win2003.vhdx'
$vhds = 'C:\Hyper-V\VHDs'

# The adapter kind of each guest, as lab.yaml's `guests.<name>.adapter` gives it (a unit test keeps
# them equal): Windows Server 2003 has no driver for Hyper-V's synthetic adapter without
# integration services, which Hyper-V on 2016 and later no longer ships for it.
$Legacy = @{ 'win2003-1' = $true; 'win2003-2' = $true; 'win2003-3' = $true; 'Linux01' = $true }

function New-LabVM([string]$Name, [string]$Disk, [string[]]$Switches) {
    if (Get-VM -Name $Name -ErrorAction SilentlyContinue) { return }
    New-VM -Name $Name -Generation 1 -MemoryStartupBytes 512MB -VHDPath $Disk | Out-Null
    # New-VM adds one synthetic adapter of its own: replace it by the kind the guest can use
    Get-VMNetworkAdapter -VMName $Name | Remove-VMNetworkAdapter
    foreach ($switch in $Switches) {
        Add-VMNetworkAdapter -VMName $Name -SwitchName $switch -IsLegacy $Legacy[$Name]
    }
    Start-VM -Name $Name
}

if ($env:COMPUTERNAME -eq 'SVR1') {
    foreach ($name in 'win2003-1', 'win2003-2') {
        $disk = Join-Path $vhds "$name.vhdx"
        if (-not (Test-Path $disk)) { New-VHD -Path $disk -ParentPath $parent -Differencing | Out-Null }
    }
    New-LabVM -Name 'win2003-1' -Disk (Join-Path $vhds 'win2003-1.vhdx') -Switches 'External', 'Internal', 'Internal2'
    New-LabVM -Name 'win2003-2' -Disk (Join-Path $vhds 'win2003-2.vhdx') -Switches 'Internal'
    New-LabVM -Name 'win2003-3' -Disk '\\DC1\smb\win2003-3.vhdx' -Switches 'Internal2'
}
if ($env:COMPUTERNAME -eq 'SVR2') {
    $disk = Join-Path $vhds 'Linux01.vhdx'
    if (-not (Test-Path $disk)) { New-VHD -Path $disk -SizeBytes 1GB -Dynamic | Out-Null }
    New-LabVM -Name 'Linux01' -Disk $disk -Switches 'External'
}
