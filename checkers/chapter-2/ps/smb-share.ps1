# Runs on DC1 (the file server owns its shares and ACLs): the share "smb", its share permissions
# and the NTFS permissions of its folder. The checker defines $ShareName before this text.
$share = Get-SmbShare -Name $ShareName -ErrorAction SilentlyContinue
if ($null -eq $share) {
    [pscustomobject]@{ Share = $null; Access = @(); Acl = @() }
    return
}
$access = foreach ($a in Get-SmbShareAccess -Name $ShareName) {
    [pscustomobject]@{
        AccountName       = [string]$a.AccountName
        AccessControlType = $a.AccessControlType.ToString()
        AccessRight       = $a.AccessRight.ToString()
    }
}
$acl = foreach ($rule in (Get-Acl -Path $share.Path).Access) {
    [pscustomobject]@{
        IdentityReference = [string]$rule.IdentityReference.Value
        FileSystemRights  = $rule.FileSystemRights.ToString()
        AccessControlType = $rule.AccessControlType.ToString()
        IsInherited       = [bool]$rule.IsInherited
    }
}
[pscustomobject]@{
    Share  = [pscustomobject]@{ Name = [string]$share.Name; Path = [string]$share.Path; ShareState = $share.ShareState.ToString() }
    Access = @($access)
    Acl    = @($acl)
}
