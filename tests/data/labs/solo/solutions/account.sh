#!/bin/sh
set -eu
id kosa >/dev/null 2>&1 || useradd -m -s /bin/bash kosa
