#!/bin/sh
set -eu
mkdir -p /srv/hello
echo "hello from S1" > /srv/hello/index.html
cat > /etc/systemd/system/hello-web.service <<'UNIT'
[Unit]
Description=hello web
After=network-online.target

[Service]
User=kosa
WorkingDirectory=/srv/hello
ExecStart=/usr/bin/python3 -m http.server 8080
Restart=on-failure

[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable --now hello-web.service
