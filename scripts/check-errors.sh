#!/usr/bin/env python3
"""README's table of error codes is the error table of the code: every code of OQ_ERR_CODES
(service/core/err.h, which service/core/err.c turns into the status and wire code that
reply_err() sends) has one row with its HTTP status, and the table has no other rows. ERR_NONE
("none") is not an error and has no row.

The table sits between <!-- errors:begin --> and <!-- errors:end --> in README.md; a row is
"| `code` | status | when |". `--table` prints the rows from the code with an empty "when"
column, to start a new row from.

Usage: scripts/check-errors.sh [ROOT] [--table]   exit 0 in step, 1 with what differs.
"""
import os
import re
import sys

ENTRY = re.compile(r'X\(\s*(ERR_\w+)\s*,\s*(\d{3})\s*,\s*"([a-z_]+)"\s*\)')
ROW = re.compile(r"^\|\s*`([a-z_]+)`\s*\|\s*(\d{3})\s*\|")


def code_table(root):
    with open(os.path.join(root, "service/core/err.h"), encoding="utf-8") as fh:
        text = fh.read()
    start = text.index("#define OQ_ERR_CODES(X)")
    block = text[start:text.index("\n\n", start)]
    return [(code, int(status)) for name, status, code in ENTRY.findall(block)
            if name != "ERR_NONE"]


def readme_rows(root):
    with open(os.path.join(root, "README.md"), encoding="utf-8") as fh:
        text = fh.read()
    m = re.search(r"<!-- errors:begin -->(.*?)<!-- errors:end -->", text, re.S)
    if m is None:
        return None
    return [(r.group(1), int(r.group(2))) for line in m.group(1).splitlines()
            if (r := ROW.match(line))]


def main(argv):
    args = [a for a in argv[1:] if a != "--table"]
    root = args[0] if args else os.path.join(os.path.dirname(__file__), "..")
    codes = code_table(root)
    if "--table" in argv:
        print("| code | HTTP | when |\n|---|---|---|")
        for code, status in codes:
            print(f"| `{code}` | {status} | |")
        return 0
    rows = readme_rows(root)
    if rows is None:
        print("README.md: no <!-- errors:begin --> ... <!-- errors:end --> table")
        return 1
    problems = []
    want, have = dict(codes), {}
    for code, status in rows:
        if code in have:
            problems.append(f"README.md: `{code}` has two rows")
        have[code] = status
    for code, status in codes:
        if code not in have:
            problems.append(f"README.md: no row for `{code}` ({status}, service/core/err.h)")
        elif have[code] != status:
            problems.append(f"README.md: `{code}` says {have[code]}, the code answers {status}")
    for code in have:
        if code not in want:
            problems.append(f"README.md: `{code}` is not a code of service/core/err.h")
    for p in problems:
        print(p)
    if not problems:
        print(f"README.md lists the {len(codes)} error codes of service/core/err.h")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
