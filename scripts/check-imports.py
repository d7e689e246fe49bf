#!/usr/bin/env python3
"""Checks that Package.swift declares every module each target imports (a module reached only
through another target's dependencies builds today and breaks when that target changes).
Prints the missing ones and exits 1; exits 0 when every import is declared."""
import glob
import os
import re
import sys

SYSTEM = {"Foundation", "Dispatch", "Glibc", "Darwin", "Synchronization", "Testing", "XCTest", "_Concurrency"}
root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
package = open(os.path.join(root, "Package.swift")).read()
targets = {}
for m in re.finditer(r'\.(?:target|executableTarget|testTarget)\(\s*name:\s*"([^"]+)"', package):
    depth, i = 1, m.end()
    while depth:  # the target's whole argument list, to its matching parenthesis
        depth += {"(": 1, ")": -1}.get(package[i], 0)
        i += 1
    targets[m.group(1)] = package[m.end():i]
missing_any = False
for target, body in sorted(targets.items()):
    folder = next((d for d in (f"Sources/{target}", f"Tests/{target}") if os.path.isdir(os.path.join(root, d))), None)
    if folder is None:
        continue
    imports = set()
    for path in glob.glob(os.path.join(root, folder, "**", "*.swift"), recursive=True):
        for line in open(path, encoding="utf-8"):
            m = re.match(r"\s*(?:@testable\s+)?import\s+(\w+)", line)
            if m:
                imports.add(m.group(1))
    declared = set(re.findall(r'"(\w+)"', body))
    missing = sorted(i for i in imports - declared - SYSTEM if i != target)
    if missing:
        missing_any = True
        print(f"{target}: imports {', '.join(missing)} without declaring it in Package.swift")
if not targets:
    print("check-imports: no targets found in Package.swift")
    sys.exit(2)
print("check-imports: every import is declared" if not missing_any else "check-imports: missing declarations")
sys.exit(1 if missing_any else 0)
