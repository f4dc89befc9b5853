# Reference solution, step smb-migration (SVR1): live-migrate win2003-3 to SVR2; its disk stays on \\DC1\smb.
# The agent runs this as SYSTEM, which SVR2 does not accept as a Hyper-V administrator; so the move
# runs as KOSA\Administrator in a one-shot scheduled task (a password logon, the way the seed's
# student is logged on to SVR1), and the Kerberos delegation of step delegation does the rest.
$ErrorActionPreference = 'Stop'
$vm = 'win2003-3'
$task = 'hyperlab-smb-migration'
$inner = @'
$ErrorActionPreference = 'Stop'
try { Move-VM -Name win2003-3 -DestinationHost SVR2.kosa.vm; 'ok' | Set-Content -Path $args[0] } catch { $_.ToString() | Set-Content -Path $args[0]; exit 1 }
'@
if (-not (Get-VM -Name $vm -ErrorAction SilentlyContinue)) { return }  # already moved
$script = "C:\hyperlab\$task.ps1"
$log = "C:\hyperlab\$task.log"
Set-Content -Path $script -Value $inner
Remove-Item -Path $log -ErrorAction SilentlyContinue
$password = (Get-Content -Raw -Path 'C:\hyperlab\secrets\domain-admin').Trim()
$action = New-ScheduledTaskAction -Execute 'powershell.exe' -Argument "-NoProfile -NonInteractive -ExecutionPolicy Bypass -File $script $log"
Register-ScheduledTask -TaskName $task -Action $action -User 'KOSA\Administrator' -Password $password -RunLevel Highest -Force | Out-Null
try {
    Start-ScheduledTask -TaskName $task
    $deadline = (Get-Date).AddMinutes(30)
    do { Start-Sleep -Seconds 5 } while ((Get-ScheduledTask -TaskName $task).State.ToString() -eq 'Running' -and (Get-Date) -lt $deadline)
    $result = Get-Content -Raw -Path $log -ErrorAction SilentlyContinue
    if ("$result".Trim() -ne 'ok') { throw "Move-VM failed: $result" }
} finally {
    Unregister-ScheduledTask -TaskName $task -Confirm:$false
}
