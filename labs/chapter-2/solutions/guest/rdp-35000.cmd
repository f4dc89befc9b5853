@echo off
rem Reference solution, step rdp-35000: run INSIDE win2003-3. RDP-Tcp PortNumber 35000 (decimal),
rem Remote Desktop on; Terminal Services reads the port at start, hence the restart.
reg add "HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server\WinStations\RDP-Tcp" /v PortNumber /t REG_DWORD /d 35000 /f
reg add "HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server" /v fDenyTSConnections /t REG_DWORD /d 0 /f
shutdown -r -t 5
