#!/usr/bin/env python3
"""The layer rule of ARCHITECTURE.md, checked on every #include "..." in service/ and api/.

Ranks, low to high: core(1) < store(2), delivery(2) < handlers(3) < engine(4)
< app.h/app.c(5) < api/**(6) < main.c(7). A file may include headers of its own layer or of
a lower rank; store and delivery (same rank) may not include each other. Every include of one
of our headers names its layer: "core/err.h", "store/db.h", "app.h", "api/http.h",
"api/park/waiters.h" (the include roots are service/ and the top of the tree), never a bare
sibling such as "err.h" that only resolves through the includer's own folder.

Usage: scripts/check-layers.sh [ROOT]   exit 0 clean, 1 with one line per violation.
"""
import os
import re
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"')

# (path prefix relative to the tree, layer name, rank); the first match wins.
LAYERS = [
    ("service/core/", "core", 1),
    ("service/store/", "store", 2),
    ("service/delivery/", "delivery", 2),
    ("service/handlers/", "handlers", 3),
    ("service/engine/", "engine", 4),
    ("service/app.h", "app", 5),
    ("service/app.c", "app", 5),
    ("api/", "api", 6),
    ("service/main.c", "main", 7),
]
# Same rank, still not allowed to see each other.
FORBIDDEN = {("store", "delivery"), ("delivery", "store")}


def layer_of(rel):
    for prefix, name, rank in LAYERS:
        if rel == prefix or (prefix.endswith("/") and rel.startswith(prefix)):
            return name, rank
    return None


def canonical(rel):
    """How an include of the tree file rel must be spelled."""
    return rel[len("service/"):] if rel.startswith("service/") else rel


def resolve(root, includer, name):
    """The tree-relative path a quoted include resolves to, as the compiler searches:
    the includer's folder first, then the include roots service/ and the top."""
    for base in (os.path.dirname(includer), "service", ""):
        rel = os.path.normpath(os.path.join(base, name))
        if os.path.isfile(os.path.join(root, rel)):
            return rel
    return None


def sources(root):
    for top in ("service", "api"):
        for dirpath, dirnames, filenames in os.walk(os.path.join(root, top)):
            dirnames[:] = sorted(d for d in dirnames if d != "node_modules")
            for f in sorted(filenames):
                if f.endswith((".c", ".h")):
                    yield os.path.relpath(os.path.join(dirpath, f), root)


def check_file(root, rel):
    problems = []
    mine = layer_of(rel)
    if mine is None:
        return [f"{rel}: not in any layer (see the ranks in scripts/check-layers.sh)"]
    with open(os.path.join(root, rel), encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, 1):
            m = INCLUDE.match(line)
            if not m:
                continue
            name = m.group(1)
            target = resolve(root, rel, name)
            if target is None or layer_of(target) is None:
                continue  # not one of ours (generated, third-party, tests/support)
            where = f'{rel}:{lineno}: #include "{name}"'
            if name != canonical(target):
                problems.append(f'{where}: name the layer: #include "{canonical(target)}"')
            theirs = layer_of(target)
            if theirs[1] > mine[1]:
                problems.append(f"{where}: {mine[0]}({mine[1]}) includes the higher layer "
                                f"{theirs[0]}({theirs[1]})")
            elif (mine[0], theirs[0]) in FORBIDDEN:
                problems.append(f"{where}: {mine[0]} may not include {theirs[0]} "
                                f"(both sit on core only)")
    return problems


def main():
    root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                           os.path.join(os.path.dirname(__file__), ".."))
    problems = []
    count = 0
    for rel in sources(root):
        count += 1
        problems += check_file(root, rel)
    for p in problems:
        print(p)
    if problems:
        print(f"check-layers: {len(problems)} violation(s) in {count} files", file=sys.stderr)
        return 1
    print(f"check-layers: {count} files follow the layer rule")
    return 0


if __name__ == "__main__":
    sys.exit(main())
