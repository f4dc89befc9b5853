@echo off
rem Reference solution, step rras-nat: run INSIDE win2003-1 after nat-addressing. The seed uses the
rem RRAS wizard (NAT, public interface Public, basic firewall off); these are the netsh equivalents.
rem Routing must be on before NAT: the wizard sets RouterType and starts the service.
reg add "HKLM\SYSTEM\CurrentControlSet\Services\RemoteAccess\Parameters" /v RouterType /t REG_DWORD /d 7 /f
reg add "HKLM\SYSTEM\CurrentControlSet\Services\Tcpip\Parameters" /v IPEnableRouter /t REG_DWORD /d 1 /f
sc config RemoteAccess start= auto
net start RemoteAccess
netsh routing ip nat install
netsh routing ip nat add interface name="Public" mode=full
netsh routing ip nat add interface name="GW1" mode=private
netsh routing ip nat add interface name="GW2" mode=private
