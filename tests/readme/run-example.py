#!/usr/bin/env python3
"""Runs the README's Python example and checks the outcome it shows.

example.py must stay word for word what README.md shows (check-readme.py),
so the assertions live here: the interrupt reaches crunch() as
TaskInterrupted (the first line), and leaving the `with` block stops the
sleeping task: its final state is "cancelled" (the last line). Anything
else, or another exit status, fails.
"""
import subprocess
import sys

example = sys.argv[1]
run = subprocess.run([sys.executable, example], capture_output=True, text=True, timeout=60)
sys.stdout.write(run.stdout)
sys.stderr.write(run.stderr)
lines = run.stdout.splitlines()
problems = []
if run.returncode != 0:
    problems.append(f"exit status {run.returncode}")
if len(lines) != 2:
    problems.append(f"expected 2 lines of output, got {len(lines)}")
if not lines or not lines[0].startswith("interrupted: "):
    problems.append("the interrupt did not raise TaskInterrupted in crunch()")
if not lines or lines[-1] != "cancelled":
    problems.append("the task left by the with block is not cancelled")
for p in problems:
    print(f"run-example.py: {p}", file=sys.stderr)
sys.exit(1 if problems else 0)
