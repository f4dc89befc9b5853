# Start state on SVR1 and SVR2 (seed 004: the Hyper-V role with its management tools, and the
# folders C:\Hyper-V and C:\Hyper-V\VHDs chosen in the role wizard), plus the instructor's guest
# disk mounted read-mostly at C:\Hyper-V\Parent. Joining the domain and the switches are the
# student's steps. Runs through the guest agent as SYSTEM.
#
# The reboot the role needs: the first run installs the role and ends with JSON "reboot": true,
# which the framework's reboot-aware runner (hyperlab.reboots, being added) answers by rebooting
# and running this script again. For a runner that only marks the script done, the first run
# also registers a one-shot startup task that runs THIS script after the reboot, and schedules
# the reboot itself 20 s later (after the agent has seen the exit). The second run (whoever
# starts it) finds the role installed and continues with the settings. Every part checks before
# it acts, so any number of runs, even two at once, end in the same state.
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
$ParentPath = Get-LabVariable 'guest_parent_path' 'C:\Hyper-V\Parent'
$ContinueTask = 'hyperlab-install-hyperv-continue'
$DoneMarker = 'C:\hyperlab\hyperv-ready'

function Mount-GuestDisk {
    # The data disk with the instructor's VHDX: Windows Server keeps new disks offline (SAN policy
    # OfflineShared), so bring it online and writable (writes go to this node's own overlay), then
    # mount its volume at $ParentPath. Returns where the VHDX is, or $null when no such disk exists.
    $volume = Get-Volume -FileSystemLabel $GuestDiskLabel -ErrorAction SilentlyContinue
    if ($null -eq $volume) {
        foreach ($disk in Get-Disk | Where-Object { $_.IsOffline -or $_.IsReadOnly }) {
            Set-Disk -Number $disk.Number -IsOffline $false
            Set-Disk -Number $disk.Number -IsReadOnly $false
        }
        $volume = Get-Volume -FileSystemLabel $GuestDiskLabel -ErrorAction SilentlyContinue
    }
    if ($null -eq $volume) { return $null }
    New-Item -ItemType Directory -Force -Path $ParentPath | Out-Null
    $partition = $volume | Get-Partition
    $mounted = @($partition.AccessPaths) -contains "$ParentPath\"
    if (-not $mounted) { $partition | Add-PartitionAccessPath -AccessPath $ParentPath }
    $file = Join-Path $ParentPath $GuestDiskFile
    if (Test-Path $file) {
        # A parent disk must never change once children exist: read-only stops accidents.
        Set-ItemProperty -Path $file -Name IsReadOnly -Value $true
        return $file
    }
    return $null
}

New-Item -ItemType Directory -Force -Path 'C:\Hyper-V\VHDs', 'C:\hyperlab' | Out-Null
$parent = Mount-GuestDisk

$feature = Get-WindowsFeature -Name Hyper-V
if (-not $feature.Installed) {
    $result = Install-WindowsFeature -Name Hyper-V -IncludeManagementTools
    if (-not $result.Success) { throw "Install-WindowsFeature Hyper-V failed: $($result.ExitCode)" }
    $action = New-ScheduledTaskAction -Execute 'powershell.exe' -Argument "-NoProfile -NonInteractive -ExecutionPolicy Bypass -File `"$PSCommandPath`""
    $trigger = New-ScheduledTaskTrigger -AtStartup
    Register-ScheduledTask -TaskName $ContinueTask -Action $action -Trigger $trigger -User 'SYSTEM' -RunLevel Highest -Force | Out-Null
    shutdown.exe /r /t 20 /d p:2:4 /c 'hyperlab: Hyper-V role installed, restarting'
    [pscustomobject]@{ state = 'role-installed'; reboot = $true; guest_disk = $parent } | ConvertTo-Json -Compress
    return
}

# After the reboot: the hypervisor must really run. On a KVM host without working nesting (no
# vmx/svm passed through, an eVMCS the CPU cannot do) the role installs and reboots fine, and only
# the student's `guests` step would find out: start a throw-away VM (New-VM alone only writes its
# configuration; HypervisorPresent is true in any KVM guest), and fail with Hyper-V's reason.
$probe = "hyperlab-probe-$PID"
$probePath = Join-Path $env:TEMP $probe
try {
    New-VM -Name $probe -MemoryStartupBytes 32MB -NoVHD -Generation 2 -Path $probePath -ErrorAction Stop | Out-Null
    Start-VM -Name $probe -ErrorAction Stop
} catch {
    throw "the Hyper-V role is installed but cannot start a VM on $env:COMPUTERNAME, so the KVM host does not pass virtualization through (see lab doctor: nested virtualization): $($_.Exception.Message)"
} finally {
    Stop-VM -Name $probe -TurnOff -Force -ErrorAction SilentlyContinue
    Remove-VM -Name $probe -Force -ErrorAction SilentlyContinue
    Remove-Item -Recurse -Force -Path $probePath -ErrorAction SilentlyContinue
}
Set-VMHost -VirtualMachinePath 'C:\Hyper-V' -VirtualHardDiskPath 'C:\Hyper-V\VHDs'
# The startup task and the framework's own re-run (hyperlab.reboots) may both get here: tolerate the other.
Unregister-ScheduledTask -TaskName $ContinueTask -Confirm:$false -ErrorAction SilentlyContinue
Set-Content -Path $DoneMarker -Value (Get-Date -Format o)
if ($null -eq $parent) {
    Write-Warning "no volume labelled $GuestDiskLabel with $GuestDiskFile: put the guest VHDX at $ParentPath\$GuestDiskFile by hand"
}
[pscustomobject]@{ state = 'ready'; reboot = $false; guest_disk = $parent } | ConvertTo-Json -Compress
