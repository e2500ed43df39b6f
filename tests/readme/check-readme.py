#!/usr/bin/env python3
"""Fails if README.md no longer shows the examples the tests run."""
import sys

readme = open(sys.argv[1], encoding="utf-8").read()
missing = [path for path in sys.argv[2:]
           if open(path, encoding="utf-8").read().strip() not in readme]
for path in missing:
    print(f"README.md does not show {path} verbatim", file=sys.stderr)
sys.exit(1 if missing else 0)
