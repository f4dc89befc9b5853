@echo off
rem Reference solution, step port-forwards: run INSIDE win2003-1 after rras-nat. Public:23 to
rem win2003-2's Telnet, Public:35000 to win2003-3's RDP on 35000 (the seed's "Add" service).
netsh routing ip nat add portmapping name="Public" proto=tcp publicip=0.0.0.0 publicport=23 privateip=10.10.10.10 privateport=23
netsh routing ip nat add portmapping name="Public" proto=tcp publicip=0.0.0.0 publicport=35000 privateip=10.10.20.10 privateport=35000
