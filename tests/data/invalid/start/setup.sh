#!/bin/sh
# start script for the lab cases in tests/data/invalid/
true
