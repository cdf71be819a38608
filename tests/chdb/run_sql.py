#!/usr/bin/env python3
"""Runs SQL statements on modern ClickHouse, in process, through chdb (PyPI `chdb-core`).

Usage: run_sql.py STATEMENTS.json
The file holds a JSON list of [name, sql] pairs, run in order in one fresh session (so DDL is
followed by inserts and queries). Prints one JSON object: the engine version and, per statement,
whether it ran and its result (JSONEachRow) or error. Exit status 0 even when statements fail:
the caller decides; exit status 2 when chdb itself is missing.
"""
import json
import sys
import tempfile

try:
    import chdb
    from chdb import session
except ImportError as e:  # pragma: no cover - environment problem, reported clearly
    print(json.dumps({"error": f"chdb is not installed ({e}); run scripts/install-deps.sh"}))
    sys.exit(2)


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as f:
        statements = json.load(f)
    results = []
    with tempfile.TemporaryDirectory(prefix="parta-chdb-") as path:
        sess = session.Session(path)
        version = str(sess.query("SELECT version()", "TabSeparated")).strip()
        for name, sql in statements:
            try:
                out = sess.query(sql, "JSONEachRow")
                results.append({"name": name, "ok": True, "rows": str(out)})
            except Exception as e:  # chdb raises its own error types; report any failure
                results.append({"name": name, "ok": False, "error": str(e)})
        sess.close()
    print(json.dumps({"version": version, "results": results}))


if __name__ == "__main__":
    main()
