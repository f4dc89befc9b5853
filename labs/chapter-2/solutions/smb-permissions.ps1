# Reference solution, step smb-permissions (DC1): the hosts' computer accounts (and Administrators)
# get Full on the share and FullControl in NTFS: Hyper-V opens VM files on SMB as SVR1$ / SVR2$.
$ErrorActionPreference = 'Stop'
$path = (Get-SmbShare -Name smb).Path
foreach ($account in 'KOSA\SVR1$', 'KOSA\SVR2$', 'BUILTIN\Administrators') {
    Grant-SmbShareAccess -Name smb -AccountName $account -AccessRight Full -Force | Out-Null
}
$acl = Get-Acl -Path $path
foreach ($account in 'KOSA\SVR1$', 'KOSA\SVR2$') {
    $rule = New-Object System.Security.AccessControl.FileSystemAccessRule ($account, 'FullControl', 'ContainerInherit,ObjectInherit', 'None', 'Allow')
    $acl.AddAccessRule($rule)
}
Set-Acl -Path $path -AclObject $acl
