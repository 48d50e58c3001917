#!/usr/bin/env python3
"""SQL lives in service/store/ only: fails when a .c or .h file of service/ or api/ outside
service/store/ holds SQL statement text in a string literal (tests/ may query the database).

Adjacent literals are joined first ("SELECT a " "FROM b" is one statement, also across the
backslash-continued lines of a macro), comments are skipped, and a keyword only counts when
SQL follows it (SELECT x, INSERT INTO, UPDATE t SET, DELETE FROM, LISTEN ch, CREATE TABLE,
WITH q AS (...)), so the HTTP method "DELETE" in a route table is not SQL. Our SQL is written
in capitals; the keywords are matched as written, so English in messages does not count.

Usage: scripts/check-sql.sh [ROOT]   exit 0 clean, 1 with file:line and the statement.
"""
import os
import re
import sys

SQL = re.compile(
    r"\b(?:SELECT\s+(?:DISTINCT\s+)?[\w*(\"'$]"
    r"|INSERT\s+INTO\b"
    r"|UPDATE\s+[\w.\"]+\s+(?:AS\s+\w+\s+)?SET\b|DO\s+UPDATE\s+SET\b"
    r"|DELETE\s+FROM\b"
    r"|(?:UN)?LISTEN\s+[\w\"*]|NOTIFY\s+[\w\"]"
    r"|CREATE\s+(?:OR\s+REPLACE\s+)?(?:UNIQUE\s+)?(?:TEMP(?:ORARY)?\s+)?"
    r"(?:TABLE|INDEX|FUNCTION|TRIGGER|VIEW|SCHEMA|EXTENSION|TYPE|SEQUENCE|PROCEDURE)\b"
    r"|ALTER\s+(?:TABLE|INDEX|FUNCTION|TYPE|SEQUENCE|SCHEMA|VIEW|DATABASE|SYSTEM)\b"
    r"|DROP\s+(?:TABLE|INDEX|FUNCTION|TRIGGER|VIEW|TYPE|SCHEMA)\b"
    r"|TRUNCATE\s+(?:TABLE\s+)?[\w\"]"
    r"|WITH\s+(?:RECURSIVE\s+)?\w+\s+AS\s+(?:(?:NOT\s+)?MATERIALIZED\s+)?\()"
)


def literals(text):
    """Yields (line, value) for each run of adjacent string literals in C source."""
    i, n, line = 0, len(text), 1
    run, run_line, gap_ok = [], 0, False
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            line += text.count("\n", i, j)
            i = j
            continue
        if c == '"':
            j, buf = i + 1, []
            while j < n and text[j] != '"':
                if text[j] == "\\" and j + 1 < n:
                    if text[j + 1] == "\n":
                        line += 1
                    buf.append(text[j:j + 2])
                    j += 2
                    continue
                if text[j] == "\n":  # unterminated: stop at the line's end
                    break
                buf.append(text[j])
                j += 1
            if not run:
                run_line = line
            run.append("".join(buf))
            i = j + 1
            continue
        if c == "'":
            j = i + 1
            while j < n and text[j] != "'" and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            i = j + 1
            continue
        if c.isspace() or (c == "\\" and text.startswith("\\\n", i)):
            if c == "\n":
                line += 1
            i += 1
            continue
        # Any other token ends a run of adjacent literals (also an encoding prefix such as
        # u8, which only ever precedes a literal: harmless, it just splits the run).
        if run:
            yield run_line, "".join(run)
            run = []
        i += 1
    if run:
        yield run_line, "".join(run)


def sources(root):
    for top in ("service", "api"):
        for dirpath, dirnames, filenames in os.walk(os.path.join(root, top)):
            dirnames[:] = sorted(d for d in dirnames if d != "node_modules")
            for f in sorted(filenames):
                if f.endswith((".c", ".h")):
                    rel = os.path.relpath(os.path.join(dirpath, f), root)
                    if not rel.startswith("service/store/"):
                        yield rel


def main():
    root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                           os.path.join(os.path.dirname(__file__), ".."))
    problems = []
    for rel in sources(root):
        with open(os.path.join(root, rel), encoding="utf-8", errors="replace") as fh:
            text = fh.read()
        for line, value in literals(text):
            if SQL.search(value):
                shown = re.sub(r"\s+", " ", value).strip()
                shown = shown if len(shown) <= 90 else shown[:87] + "..."
                problems.append(f'{rel}:{line}: SQL outside service/store/: "{shown}"')
    for p in problems:
        print(p)
    if problems:
        print(f"check-sql: {len(problems)} statement(s) outside service/store/", file=sys.stderr)
        return 1
    print("check-sql: no SQL outside service/store/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
