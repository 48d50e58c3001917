#!/usr/bin/env python3
"""One owner for each kind of state: fails when our compiled objects define a mutable global
(file-scope or function-level static, or an exported variable) whose name is not allowed in
ARCHITECTURE.md.

The objects are the ones CMake built for offlineq and offlineq_core (BUILD/CMakeFiles/...),
so every symbol found comes from our code, never from libc or the toolchain. `nm` alone
cannot tell a `static const struct x t = {"a", ptr}` (placed in .data.rel.ro because of the
pointers, shown by nm as d/D) from a real variable, so the sections come from `objdump -t`:
mutable means .data, .bss, .tdata, .tbss (and their sub-sections) or a common symbol, never
.rodata or .data.rel.ro.

The allow-list: in ARCHITECTURE.md, the section headed "## Process-wide state", the first
name in backticks of each bullet ("- `min_level` and `sink` in core/log.c: ..."). A
function-level static shows up as name.N; it is matched as name.

Usage: scripts/check-globals.sh BUILD_DIR [ARCHITECTURE.md]
"""
import os
import re
import subprocess
import sys

MUTABLE = re.compile(r"^(?:\.data(?!\.rel\.ro)|\.bss|\.tdata|\.tbss|\*COM\*)(?:\..*)?$")
SYMBOL = re.compile(r"^[0-9a-f]+\s(.{7})\s(\S+)\s+[0-9a-f]+\s+(\S+)$")


def allowed_names(md_path):
    names, inside = set(), False
    if not os.path.isfile(md_path):
        return names, False
    with open(md_path, encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("#"):
                inside = re.match(r"^##\s+Process-wide state\s*$", line.strip()) is not None
                continue
            m = re.match(r"^\s*[-*]\s+`([^`]+)`", line) if inside else None
            if m:
                names.add(m.group(1).strip())
    return names, True


def objects(build, root):
    """(object, source) for each object of ours whose source still exists: an object left
    behind by a deleted or moved file is not part of the binary any more."""
    for target in ("offlineq_core.dir", "offlineq.dir"):
        top = os.path.join(build, "CMakeFiles", target)
        for dirpath, _, filenames in os.walk(top):
            for f in sorted(filenames):
                if not f.endswith(".o"):
                    continue
                path = os.path.join(dirpath, f)
                source = os.path.relpath(path, top)[:-len(".o")]
                if any(os.path.isfile(os.path.join(base, source)) for base in (root, build)):
                    yield path, source


def mutable_symbols(path):
    out = subprocess.run(["objdump", "-t", path], check=True, capture_output=True,
                         text=True).stdout
    for line in out.splitlines():
        m = SYMBOL.match(line)
        if not m:
            continue
        flags, section, name = m.groups()
        if "O" not in flags or not MUTABLE.match(section):
            continue
        if name.startswith(("__", ".")):  # sanitizer and compiler bookkeeping
            continue
        yield name, section


def main():
    if len(sys.argv) < 2:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    build = sys.argv[1]
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    md = sys.argv[2] if len(sys.argv) > 2 else os.path.join(root, "ARCHITECTURE.md")
    allowed, has_md = allowed_names(md)
    found = list(objects(build, root))
    if not found:
        print(f"check-globals: no objects under {build}/CMakeFiles: build offlineq first",
              file=sys.stderr)
        return 2
    problems = []
    for path, source in found:
        for name, section in mutable_symbols(path):
            if re.sub(r"\.\d+$", "", name) not in allowed:
                problems.append(f"{source}: {name} ({section})")
    for p in problems:
        print(p)
    if problems:
        why = "" if has_md else f" ({md} not found: nothing is allowed)"
        print(f"check-globals: {len(problems)} mutable global(s) not listed under "
              f"'## Process-wide state' in ARCHITECTURE.md{why}", file=sys.stderr)
        return 1
    print(f"check-globals: {len(found)} objects, no mutable global beyond "
          f"{sorted(allowed) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
