"""Reads a vault database with an independent SQLCipher 4 build (the sqlcipher3 wheel).

Usage: read_vault_db.py DB_PATH MODE, with the raw key as 64 hex digits on stdin.
MODE is "raw-key" (open with PRAGMA key = "x'...'") or "no-key" (open with no key at all).
Prints one JSON object: {"ok": true, "cipher_version": ..., "bodies": [...]} or
{"ok": false, "error": "..."}.
"""

import json
import sys

import sqlcipher3


def main() -> None:
    path, mode = sys.argv[1], sys.argv[2]
    key_hex = sys.stdin.read().strip()
    conn = sqlcipher3.connect(path)
    try:
        if mode == "raw-key":
            if len(key_hex) != 64 or any(c not in "0123456789abcdef" for c in key_hex):
                raise ValueError("key must be 64 lowercase hex digits")
            conn.execute(f"PRAGMA key = \"x'{key_hex}'\"")
            conn.execute("PRAGMA cipher_compatibility = 4")
        version = conn.execute("PRAGMA cipher_version").fetchone()[0]
        rows = conn.execute("SELECT body FROM messages ORDER BY id").fetchall()
        print(json.dumps({"ok": True, "cipher_version": version, "bodies": [r[0] for r in rows]}))
    except Exception as exc:  # report any failure as data for the Rust test
        print(json.dumps({"ok": False, "error": type(exc).__name__ + ": " + str(exc)}))
    finally:
        conn.close()


if __name__ == "__main__":
    main()
