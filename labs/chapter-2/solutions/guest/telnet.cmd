@echo off
rem Reference solution, step telnet: run INSIDE win2003-2. Telnet service automatic and started;
rem teluser in TelnetClients (on 2003 the group must exist for the membership rule to apply).
rem The password is the lab variable teluser_password (the checker logs in with it).
sc config TlntSvr start= auto
net start TlntSvr
net user teluser Telnet-2003 /add
net localgroup TelnetClients /add
net localgroup TelnetClients teluser /add
