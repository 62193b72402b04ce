"""Runs every case of a make_cases.py directory in its own process (a
faulting kernel cannot spoil the next) through run_cases.py --bench, and
prints each one's last lines, or CRASH with the signal.

usage: run_each.py CASES_DIR
"""
import json
import os
import subprocess
import sys
import tempfile

root = sys.argv[1]
runner = os.path.join(os.path.dirname(os.path.abspath(__file__)), "run_cases.py")
for case in json.load(open(os.path.join(root, "cases.json"))):
    d = tempfile.mkdtemp()
    json.dump([case], open(os.path.join(d, "cases.json"), "w"))
    for f in os.listdir(root):
        if f.startswith(case["name"] + "."):
            os.symlink(os.path.abspath(os.path.join(root, f)), os.path.join(d, f))
    r = subprocess.run([sys.executable, runner, d, "--bench"], capture_output=True, text=True)
    lines = [l for l in (r.stdout + r.stderr).splitlines() if "cases pass" not in l]
    print("\n".join(lines[-4:]))
    if r.returncode < 0:
        print(f"CRASH {case['name']}: signal {-r.returncode}")
