@echo off
rem Reference solution, step telnet: run INSIDE win2003-2. Telnet service automatic and started;
rem teluser in TelnetClients (on 2003 the group must exist for the membership rule to apply).
rem Replace CHANGE-ME with the password you give the students.
sc config TlntSvr start= auto
net start TlntSvr
net user teluser CHANGE-ME /add
net localgroup TelnetClients /add
net localgroup TelnetClients teluser /add
