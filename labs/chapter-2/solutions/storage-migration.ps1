# Reference solution, step storage-migration (SVR1): move win2003-2's storage to \\DC1\smb while it
# runs. A local operation: SVR1's VMMS writes to the share as SVR1$ (step smb-permissions).
$ErrorActionPreference = 'Stop'
$target = '\\DC1\smb\win2003-2'
$disk = (Get-VMHardDiskDrive -VMName win2003-2 | Select-Object -First 1).Path
if ($disk -notlike '\\*') {
    Move-VMStorage -VMName win2003-2 -DestinationStoragePath $target
}
