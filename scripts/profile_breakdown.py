#!/usr/bin/env python3
"""Buckets a `perf report --no-children --sort sym --stdio` listing by component, for the
"where the time goes" table of docs/benchmarks.md. Usage:
    perf record -F 499 -o perf.data -- target/release/pipebook bench --n 50000
    perf report -i perf.data --no-children --sort sym --stdio | python3 scripts/profile_breakdown.py
"""
import re
import sys

# SQLite's front end: tokenising, parsing and planning a statement (work a prepared-statement
# cache would do once).
PLAN = re.compile(
    r"^(where|sqlite3RunParser|yy_|resolve|sqlite3Walk|propagateConstant|exprAnalyze|tokenExpr|"
    r"keywordCode|sqlite3Expr|sqlite3Select|sqlite3Where|sqlite3Resolve|selectExpander|sqlite3Parser|"
    r"sqlite3Prepare|sqlite3Locate|sqlite3Src|sqlite3Token|lookupName|exprDup|exprNode|renumberCursor|"
    r"flattenSubquery|multiSelect|sqlite3GetToken|sqlite3Finalize|sqlite3Reset|codeEq|sqlite3Code|"
    r"sqlite3Find|findElementWithHash|sqlite3Get|sqlite3Db|sqlite3Str|sqlite3Hash|sqlite3Malloc|"
    r"dbMalloc|sqlite3_prepare|sqlite3LockAndPrepare|sqlite3Vdbe(?!Exec))"
)
SQLITE = re.compile(
    r"sqlite|^pcache|^btree|^balance|^moveTo|^getAndInitPage|^accessPayload|^fillInCell|"
    r"^insertCell|^pager|^wal|^unix|^memjrnl|^vdbe|^allocateCursor|^getPage|^getCellInfo|^libsql",
    re.I,
)
BUCKETS = [
    ("librdkafka (Pipebook's Kafka clients)", re.compile(r"^(rd_|rdk|RD_|lz4|LZ4|crc32c)")),
    ("tantivy (embedded search index)", re.compile(r"tantivy")),
    ("VADER lexicon classifier", re.compile(r"pipebook::sentiment|vader")),
    ("tansu broker, Rust side", re.compile(r"tansu")),
    ("serde / JSON", re.compile(r"serde")),
    ("malloc / free", re.compile(r"malloc|free|_int_|unlink_chunk|calloc|realloc|tcache")),
    ("memcpy / memmove", re.compile(r"mem(move|cpy|set|cmp)")),
    ("clock_gettime", re.compile(r"clock_gettime")),
    ("mutexes", re.compile(r"mutex|futex", re.I)),
]


def main() -> None:
    shares = {"plan": 0.0, "exec": 0.0, "kernel": 0.0, "other": 0.0}
    for line in sys.stdin:
        match = re.match(r"\s*([\d.]+)%\s+\[(.)\]\s+(.*)", line)
        if not match:
            continue
        share, space, symbol = float(match.group(1)), match.group(2), match.group(3).strip()
        if space == "k":
            key = "kernel"
        elif PLAN.search(symbol):
            key = "plan"
        elif SQLITE.search(symbol):
            key = "exec"
        else:
            key = next((name for name, rx in BUCKETS if rx.search(symbol)), "other")
        shares[key] = shares.get(key, 0.0) + share
    rows = [
        ("SQLite in the embedded broker: parsing and planning statements", shares["plan"]),
        ("SQLite in the embedded broker: executing them", shares["exec"]),
        *((name, shares.get(name, 0.0)) for name, _ in BUCKETS),
        ("kernel (syscalls, scheduling, loopback TCP)", shares["kernel"]),
        ("everything else in user space", shares["other"]),
    ]
    print("| share of CPU samples | where |\n| ---: | --- |")
    for name, share in rows:
        print(f"| {share:.1f}% | {name} |")


if __name__ == "__main__":
    main()
