# Start state on SVR1 and SVR2 (seed 004: Hyper-V role with its management tools, and the
# folders C:\Hyper-V and C:\Hyper-V\VHDs chosen in the role wizard). Joining the domain and
# creating switches are the student's steps.
$ErrorActionPreference = 'Stop'

New-Item -ItemType Directory -Force -Path 'C:\Hyper-V\VHDs' | Out-Null

$feature = Get-WindowsFeature -Name Hyper-V
if (-not $feature.Installed) {
    $result = Install-WindowsFeature -Name Hyper-V -IncludeManagementTools
    [pscustomobject]@{ state = 'installed'; reboot = [string]$result.RestartNeeded -eq 'Yes' } | ConvertTo-Json -Compress
    return
}

# After the reboot: the default paths the seed chose in the role wizard.
Set-VMHost -VirtualMachinePath 'C:\Hyper-V' -VirtualHardDiskPath 'C:\Hyper-V\VHDs'
[pscustomobject]@{ state = 'ready'; reboot = $false } | ConvertTo-Json -Compress
