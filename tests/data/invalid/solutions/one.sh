#!/bin/sh
# reference solution for the lab cases in tests/data/invalid/
true
