#!/usr/bin/env python3
"""Adds `// expect-<severity>@+1 [kind]` annotations to negative test files from what
gyrus reports now, for writing new tests. Read the result: the annotations state what
the test expects, so they must be what you meant, not just what gyrus does.

    python3 scripts/annotate_expectations.py build/bin/gyrus tests/golden/fail_new.gy
"""
import json
import re
import subprocess
import sys


def annotate(gyrus, path):
    lines = open(path).read().split("\n")
    args = []
    if lines and lines[0].startswith("// args: "):
        args = lines[0][len("// args: "):].split()
    if any("expect-" in l for l in lines):
        print(f"{path}: already annotated")
        return
    out = subprocess.run([gyrus, "check", path, "--diagnostics=json", *args], capture_output=True, text=True)
    by_line, anywhere = {}, []
    for row in out.stderr.splitlines():
        if not row.startswith("{"):
            continue
        d = json.loads(row)
        tag = f"expect-{d['severity']}"
        if d.get("file") == path and "line" in d:
            by_line.setdefault(d["line"], []).append((tag, d["kind"]))
        else:
            anywhere.append((tag, d["kind"]))
    for line in sorted(by_line, reverse=True):
        tags = by_line[line]
        sev = {t for t, _ in tags}
        parts = []
        for s in sorted(sev):
            kinds = " ".join(f"[{k}]" for t, k in tags if t == s)
            parts.append(f"{s}@+1 {kinds}")
        indent = re.match(r"\s*", lines[line - 1]).group(0)
        lines.insert(line - 1, indent + "// " + "  ".join(parts))
    if anywhere:
        at = 1 if args else 0
        for tag, kind in anywhere:
            lines.insert(at, f"// {tag}@* [{kind}]")
    open(path, "w").write("\n".join(lines))
    print(f"{path}: {sum(len(v) for v in by_line.values()) + len(anywhere)} expectations")


for p in sys.argv[2:]:
    annotate(sys.argv[1], p)
