# Reference solution, step smb-share (DC1): share C:\smb as "smb", Everyone Full (the seed's lab-only
# choice). NTFS: Everyone Modify too, so that the hosts can open win2003-3.vhdx before the later
# smb-permissions step grants their computer accounts explicitly (that step checks those entries).
$ErrorActionPreference = 'Stop'
$path = 'C:\smb'
if (-not (Get-SmbShare -Name smb -ErrorAction SilentlyContinue)) {
    New-SmbShare -Name smb -Path $path -FullAccess Everyone | Out-Null
}
$acl = Get-Acl -Path $path
$rule = New-Object System.Security.AccessControl.FileSystemAccessRule ('Everyone', 'Modify', 'ContainerInherit,ObjectInherit', 'None', 'Allow')
$acl.AddAccessRule($rule)
Set-Acl -Path $path -AclObject $acl
