# Registers two Scheduled Tasks for the current user (run once, in PowerShell):
#   qmt-mcp worker          starts scripts\windows\run-worker.ps1 at logon and keeps it running
#   qmt-mcp nightly restart restarts that task every trading morning at 08:50, before the 09:15 auction:
#                           xtquant's quote cache can wedge across a market close, and a fresh worker
#                           reconnects and reconciles its orders at start.
# Remove them with:  Unregister-ScheduledTask -TaskName "qmt-mcp worker","qmt-mcp nightly restart"

$ErrorActionPreference = "Stop"
$script = Join-Path $PSScriptRoot "run-worker.ps1"
$user = "$env:USERDOMAIN\$env:USERNAME"

$run = New-ScheduledTaskAction -Execute "powershell.exe" `
    -Argument "-NoProfile -ExecutionPolicy Bypass -WindowStyle Hidden -File `"$script`""
$atLogon = New-ScheduledTaskTrigger -AtLogOn -User $user
# Restart if it ever ends, and do not stop it after the default 72 hours.
$settings = New-ScheduledTaskSettingsSet -RestartCount 999 -RestartInterval (New-TimeSpan -Minutes 1) `
    -ExecutionTimeLimit ([TimeSpan]::Zero) -StartWhenAvailable
Register-ScheduledTask -TaskName "qmt-mcp worker" -Action $run -Trigger $atLogon -Settings $settings `
    -User $user -Force | Out-Null

$restart = New-ScheduledTaskAction -Execute "powershell.exe" -Argument (
    "-NoProfile -Command `"Stop-ScheduledTask -TaskName 'qmt-mcp worker'; Start-Sleep 5; " +
    "Start-ScheduledTask -TaskName 'qmt-mcp worker'`"")
$mornings = New-ScheduledTaskTrigger -Weekly -DaysOfWeek Monday,Tuesday,Wednesday,Thursday,Friday -At 08:50
Register-ScheduledTask -TaskName "qmt-mcp nightly restart" -Action $restart -Trigger $mornings -User $user `
    -Force | Out-Null

Write-Host "Registered 'qmt-mcp worker' (at logon) and 'qmt-mcp nightly restart' (08:50 on weekdays)."
Write-Host "Start it now with:  Start-ScheduledTask -TaskName 'qmt-mcp worker'"
