"""psycopg 3 against `vitals serve`, driven by tests/suite/serve.rs.

The connection comes from libpq's environment (PGHOST, PGPORT, PGUSER,
PGPASSWORD, PGDATABASE, PGSSLMODE). Each command prints one JSON object on
stdout for the Rust test to check; any unexpected failure raises (exit 1).

    check            parameters, types, NULLs, errors, refused writes
    stream FLAG      a long query that keeps reading while FLAG is absent
    load N M         N clients running M queries each, at once
"""

import datetime
import json
import os
import sys
import threading
import time

import psycopg
from psycopg import errors


def connect():
    return psycopg.connect(autocommit=True)


def check():
    out = {}
    with connect() as conn:
        # Extended protocol with parameters (psycopg binds server-side),
        # prepared on the server from the second execution on.
        month = datetime.date(2024, 6, 1)
        rows = []
        for _ in range(3):
            rows = conn.execute(
                "SELECT k.month, k.segment, m.mrr_end, m.customers_end, k.net_negative_churn "
                "FROM saas_kpis_monthly k JOIN mrr_movements_monthly m "
                "ON k.month = m.month AND k.segment IS NOT DISTINCT FROM m.segment "
                "WHERE k.month = %s AND k.segment IS NULL",
                (month,),
                prepare=True,
            ).fetchall()
        assert len(rows) == 1, rows
        got_month, segment, mrr_end, customers_end, negative = rows[0]
        assert isinstance(got_month, datetime.date) and got_month == month, got_month
        assert segment is None
        assert isinstance(mrr_end, float), type(mrr_end)
        assert isinstance(customers_end, int), type(customers_end)
        assert isinstance(negative, bool), type(negative)
        out["total_2024_06"] = {
            "mrr_end": mrr_end,
            "customers_end": customers_end,
            "net_negative_churn": negative,
        }
        # Text parameters and the types the server describes.
        cur = conn.execute(
            "SELECT month, segment, customers_end, mrr_end FROM mrr_movements_monthly "
            "WHERE segment = %s ORDER BY month LIMIT 2",
            ("SMB",),
        )
        out["types"] = [d.type_code for d in cur.description]
        out["smb_rows"] = len(cur.fetchall())
        # An error is an error response; the connection stays usable.
        try:
            conn.execute("SELECT * FROM no_such_table")
            raise AssertionError("a query on a missing table succeeded")
        except psycopg.Error as e:
            out["missing_table"] = type(e).__name__
        assert conn.execute("SELECT 1").fetchone() == (1,)
        # Writes are refused with SQLSTATE 25006.
        refused = {}
        for sql in [
            "INSERT INTO saas_kpis_monthly (month) VALUES ('2030-01-01')",
            "DELETE FROM saas_kpis_monthly",
            "CREATE TABLE t AS SELECT 1",
            "DROP TABLE saas_kpis_monthly",
            "SET datafusion.execution.batch_size = 1",
        ]:
            try:
                conn.execute(sql)
                refused[sql] = "ACCEPTED"
            except errors.ReadOnlySqlTransaction as e:
                refused[sql] = e.sqlstate
        out["refused"] = refused
        # information_schema and pg_catalog, as BI tools introspect.
        out["columns"] = conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = 'saas_kpis_monthly' ORDER BY ordinal_position"
        ).fetchall()
        out["pg_tables"] = sorted(
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_catalog.pg_tables WHERE schemaname = 'public'"
            ).fetchall()
        )
    print(json.dumps(out, default=str))


def stream(flag):
    """Starts a query whose result is far larger than the socket buffers,
    reads one row, says so, then waits for FLAG before reading the rest:
    the server is blocked mid-query meanwhile. Then runs one more query on
    the same connection."""
    with connect() as conn:
        cur = conn.cursor()
        rows = 0
        total = 0.0
        query = (
            "SELECT a.mrr_end FROM mrr_movements_monthly a "
            "CROSS JOIN mrr_movements_monthly b "
            "CROSS JOIN (VALUES (1), (2), (3), (4), (5), (6), (7), (8), (9), (10)) AS c (k)"
        )
        for (mrr_end,) in cur.stream(query):
            if rows == 0:
                print("started", file=sys.stderr, flush=True)
                deadline = time.time() + 300
                while not os.path.exists(flag):
                    assert time.time() < deadline, "the test never released the query"
                    time.sleep(0.05)
            rows += 1
            total += mrr_end or 0.0
        # The same connection's next query.
        (after,) = conn.execute("SELECT count(*) FROM mrr_movements_monthly").fetchone()
        print(json.dumps({"rows": rows, "sum": total, "next_query_rows": after}))


def load(clients, queries):
    latencies = []
    failures = []
    lock = threading.Lock()
    barrier = threading.Barrier(clients)

    def client(index):
        mine = []
        try:
            with connect() as conn:
                months = [
                    r[0]
                    for r in conn.execute(
                        "SELECT DISTINCT month FROM saas_kpis_monthly ORDER BY month"
                    ).fetchall()
                ]
                barrier.wait()
                for i in range(queries):
                    month = months[(index + i) % len(months)]
                    started = time.perf_counter()
                    row = conn.execute(
                        "SELECT count(*), sum(mrr_end) FROM mrr_movements_monthly WHERE month = %s",
                        (month,),
                    ).fetchone()
                    mine.append(time.perf_counter() - started)
                    assert row[0] >= 1, (month, row)
        except Exception as e:  # reported, then the test fails
            with lock:
                failures.append(f"client {index}: {type(e).__name__}: {e}")
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    latencies.sort()

    def pct(p):
        return round(1000 * latencies[min(len(latencies) - 1, int(p * len(latencies)))], 2)

    print(
        json.dumps(
            {
                "clients": clients,
                "queries": len(latencies),
                "failures": failures,
                "seconds": round(elapsed, 2),
                "qps": round(len(latencies) / elapsed, 1),
                "p50_ms": pct(0.50) if latencies else None,
                "p95_ms": pct(0.95) if latencies else None,
                "p99_ms": pct(0.99) if latencies else None,
                "max_ms": round(1000 * latencies[-1], 2) if latencies else None,
            }
        )
    )


if __name__ == "__main__":
    command = sys.argv[1]
    if command == "check":
        check()
    elif command == "stream":
        stream(sys.argv[2])
    elif command == "load":
        load(int(sys.argv[2]), int(sys.argv[3]))
    else:
        sys.exit(f"unknown command {command}")
