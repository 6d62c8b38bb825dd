"""Log in to PostgreSQL as Mattermost does, from the host this runs on, and print what the server said.

A probe for molecule/multi-node: the application and proxy hosts have no PostgreSQL driver, so it speaks
the protocol with the release stand-in's client module (pgwire.py, copied beside it). The password comes
from PGPASSWORD, as with libpq, never from the command line. It prints one JSON object, either
{"login": true, "client_addr": ..., "ssl": ...} or {"login": false, "sqlstate": ..., "message": ...}:
a refused login is what the proxy host must get, so both are answers and both exit 0.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from urllib.parse import quote, urlencode

import pgwire


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pg_login", description=__doc__.splitlines()[0])
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, default=pgwire.DEFAULT_PORT)
    parser.add_argument("--user", required=True)
    parser.add_argument("--database", required=True)
    parser.add_argument("--sslmode", choices=pgwire.SSLMODES, default="require")
    args = parser.parse_args(argv)

    password = os.environ.get("PGPASSWORD", "")
    data_source = (
        f"postgres://{quote(args.user, safe='')}:{quote(password, safe='')}@{args.host}:{args.port}"
        f"/{quote(args.database, safe='')}?{urlencode({'sslmode': args.sslmode, 'connect_timeout': 10})}"
    )
    try:
        with pgwire.connect(data_source) as session:
            ((client_addr, ssl),) = session.query(
                "SELECT host(inet_client_addr()), ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
            )
    except pgwire.Error as exc:
        result = {"login": False, "sqlstate": exc.sqlstate, "message": exc.message}
    else:
        result = {"login": True, "client_addr": client_addr, "ssl": ssl}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
