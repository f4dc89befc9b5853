@echo off
rem Reference solution, step nat-addressing: run INSIDE win2003-1 (Windows Server 2003 has no channel
rem hyperlab can use). First rename the three connections to Public, GW1 and GW2 by their MAC
rem addresses (ipconfig /all; the MACs are in Hyper-V Manager > win2003-1 > Network Adapter).
rem win2003-2: netsh interface ip set address "Local Area Connection" static 10.10.10.10 255.255.255.0 10.10.10.1 1
rem win2003-3: netsh interface ip set address "Local Area Connection" static 10.10.20.10 255.255.255.0 10.10.20.1 1
netsh interface ip set address name="Public" source=static addr=192.168.1.111 mask=255.255.255.0 gateway=192.168.1.2 gwmetric=1
netsh interface ip set dns name="Public" source=static addr=8.8.8.8
netsh interface ip set address name="GW1" source=static addr=10.10.10.1 mask=255.255.255.0
netsh interface ip set address name="GW2" source=static addr=10.10.20.1 mask=255.255.255.0
