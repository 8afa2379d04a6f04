"""Cross-check: the independent DuckDB implementation of all 11 tables of the
shipped catalog (scripts/duckdb_reference.py) compared cell by cell with a
vitals build of the same files. Needs `pip install duckdb`. Usage:
    python3 scripts/crosscheck_catalog.py DATA_DIR TARGET_DIR AS_OF [--exact-mrr]
DATA_DIR holds one folder (Parquet files, Hive partitions allowed) per input
table; TARGET_DIR is a vitals build (its _manifest.json names the files).
Assumes the shipped catalog (reporting currency USD, gross margin 1, UTC,
health components and bands of the spec). Exit 1 when anything differs.

Rows are matched by each table's key columns (repeated keys, as identical
rejected rows, by their order); column names and types must be those of
the vitals table. Floating-point cells agree within a relative 1e-9 (an
absolute 1e-9 near 0), other cells and the columns the reference marks
exact (customer_health's score, band and raw values) must be equal.
mrr(c, M) is rounded to 9 decimals, the reading of docs/metrics.md;
--exact-mrr keeps the unrounded sum (then customer_health's mrr and
mrr_trend_raw can differ in the last bit: flagged "within 1e-9")."""
import datetime
import decimal
import json
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the repository
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import duckdb_reference  # noqa: E402

REL_TOL = 1e-9
FLOAT_TYPES = {"DOUBLE", "FLOAT", "REAL"}


def _norm(v):
    if isinstance(v, datetime.datetime) and v.tzinfo is None and v.time() == datetime.time(0):
        return v.date()
    if isinstance(v, decimal.Decimal):
        return float(v)
    return v


def _q(c):
    return '"' + c.replace('"', '""') + '"'


def compare(con, built, skipped, target, tables=None, say=print):
    """Compares the reference tables `built` (name -> (DuckDB relation, key
    columns, exactly compared columns)) with the vitals build at `target`.
    Prints what differs; returns True when everything agrees."""
    con.execute(f"""CREATE OR REPLACE MACRO float_differs(a, b) AS
      CASE WHEN a IS NULL OR b IS NULL THEN NOT (a IS NULL AND b IS NULL)
           WHEN isnan(a) OR isnan(b) THEN NOT (isnan(a) AND isnan(b))
           WHEN a = b THEN false
           ELSE abs(a - b) > greatest({REL_TOL} * greatest(abs(a), abs(b)), {REL_TOL}) END""")
    with open(os.path.join(target, "_manifest.json")) as f:
        published = json.load(f).get("tables", {})
    failed = False
    for name in tables or duckdb_reference.TABLES:
        say(f"== {name}")
        if name in skipped:
            if name in published:
                say(f"   skipped by the reference (input {', '.join(skipped[name])} absent) but published by vitals")
                failed = True
            else:
                say(f"   skipped: input {', '.join(skipped[name])} absent")
            continue
        ref, keys, exact = built[name]
        if name not in published:
            say(f"   MISSING from the vitals build ({con.execute(f'SELECT count(*) FROM {ref}').fetchall()[0][0]} reference rows)")
            failed = True
            continue
        files = [os.path.join(target, f) for f in published[name]["files"]]
        if files:
            con.execute(f"CREATE OR REPLACE TEMP TABLE vit AS SELECT * FROM read_parquet({files!r}, union_by_name = true)")
        else:  # an empty table has no files
            con.execute(f"CREATE OR REPLACE TEMP TABLE vit AS SELECT * FROM {ref} LIMIT 0")
        rtypes = [(r[0], r[1]) for r in con.execute(f"DESCRIBE SELECT * FROM {ref}").fetchall()]
        vtypes = [(r[0], r[1]) for r in con.execute("DESCRIBE vit").fetchall()]
        if rtypes != vtypes:
            say(f"   schema differs:\n     reference {rtypes}\n     vitals    {vtypes}")
            failed = True
        vcols = dict(vtypes)
        if any(k not in vcols for k in keys):
            say(f"   key columns missing in vitals: {[k for k in keys if k not in vcols]}")
            failed = True
            continue
        cmp_cols = [(c, t) for c, t in rtypes if c not in keys and c in vcols]
        klist = ", ".join(_q(k) for k in keys)
        order = ", ".join(_q(c) for c, _ in rtypes if c in vcols)
        numbered = (f"SELECT *, true AS __present, row_number() OVER (PARTITION BY {klist} ORDER BY {order}) AS __n FROM {{}}")
        on = " AND ".join([f"r.{_q(k)} IS NOT DISTINCT FROM v.{_q(k)}" for k in keys] + ["r.__n = v.__n"])
        sel = [f"coalesce(r.{_q(k)}, v.{_q(k)}) AS {_q(k)}" for k in keys]
        sel += ["r.__present IS NOT NULL AS in_ref", "v.__present IS NOT NULL AS in_vit", "coalesce(r.__n, v.__n) AS __n"]
        for i, (c, t) in enumerate(cmp_cols):
            tolerant = t in FLOAT_TYPES and vcols[c] in FLOAT_TYPES
            sel.append(f"r.{_q(c)} AS r{i}, v.{_q(c)} AS v{i}")
            if tolerant and c not in exact:
                sel.append(f"float_differs(r.{_q(c)}, v.{_q(c)}) AS d{i}")
            else:
                sel.append(f"r.{_q(c)} IS DISTINCT FROM v.{_q(c)} AS d{i}")
                if tolerant:  # exact, but say when it is within the tolerance
                    sel.append(f"NOT float_differs(r.{_q(c)}, v.{_q(c)}) AS near{i}")
        con.execute(f"""CREATE OR REPLACE TEMP TABLE cmp AS SELECT {', '.join(sel)}
            FROM ({numbered.format(ref)}) r FULL JOIN ({numbered.format('vit')}) v ON {on}""")
        counts = [f"count(*) FILTER (in_ref AND NOT in_vit)", f"count(*) FILTER (in_vit AND NOT in_ref)",
                  "count(*) FILTER (in_ref AND in_vit)", "count(*) FILTER (in_ref AND __n > 1)",
                  "count(*) FILTER (in_vit AND __n > 1)"]
        counts += [f"count(*) FILTER (in_ref AND in_vit AND d{i})" for i in range(len(cmp_cols))]
        near_cols = [i for i, (c, t) in enumerate(cmp_cols) if c in exact and t in FLOAT_TYPES and vcols[c] in FLOAT_TYPES]
        counts += [f"count(*) FILTER (in_ref AND in_vit AND d{i} AND near{i})" for i in near_cols]
        got = con.execute(f"SELECT {', '.join(counts)} FROM cmp").fetchall()[0]
        only_ref, only_vit, both, rep_ref, rep_vit = got[:5]
        per_col = {cmp_cols[i][0]: n for i, n in enumerate(got[5:5 + len(cmp_cols)]) if n}
        near = sum(got[5 + len(cmp_cols):])
        n_ref, n_vit = only_ref + both, only_vit + both
        say(f"   rows: reference {n_ref}, vitals {n_vit}, compared {both}, missing in vitals {only_ref}, extra in vitals {only_vit}")
        if rep_ref or rep_vit:
            say(f"   rows with a repeated key (matched in order): reference {rep_ref}, vitals {rep_vit}")
        ndiff = sum(per_col.values())
        say(f"   differing cells: {ndiff}" + (f" by column {per_col}" if per_col else "")
            + (f" ({near} of them within {REL_TOL} on a column compared exactly)" if near else ""))
        keyname = lambda row: ", ".join(f"{k}={_norm(row[j])}" for j, k in enumerate(keys))  # noqa: E731
        for i, (c, _) in enumerate(cmp_cols):
            if c not in per_col:
                continue
            for row in con.execute(f"SELECT {klist}, r{i}, v{i} FROM cmp WHERE in_ref AND in_vit AND d{i} ORDER BY ALL LIMIT 5").fetchall():
                say(f"     {c} at ({keyname(row)}): reference {_norm(row[-2])!r} vitals {_norm(row[-1])!r}")
        for label, side, cond in (("missing in vitals", "r", "in_ref AND NOT in_vit"), ("extra in vitals", "v", "in_vit AND NOT in_ref")):
            cols = ", ".join(f"{side}{i}" for i in range(len(cmp_cols)))
            for row in con.execute(f"SELECT {klist}{', ' + cols if cols else ''} FROM cmp WHERE {cond} ORDER BY ALL LIMIT 10").fetchall():
                vals = ", ".join(f"{c}={_norm(v)}" for (c, _), v in zip(cmp_cols, row[len(keys):]))
                say(f"     {label}: {keyname(row)}, {vals}")
        if only_ref or only_vit or ndiff:
            failed = True
    for name in published:
        if name not in duckdb_reference.TABLES and (tables is None or name in tables):
            say(f"== {name}: published by vitals, not in the reference (not compared)")
    say("RESULT: " + ("differences found" if failed else "all compared tables agree"))
    return not failed


def main(argv):
    args = [a for a in argv if a != "--exact-mrr"]
    if len(args) != 3:
        sys.exit(__doc__)
    import duckdb
    data, target, as_of = args
    con = duckdb.connect()
    built, skipped = duckdb_reference.build(con, data, as_of, exact_mrr=len(args) != len(argv))
    sys.exit(0 if compare(con, built, skipped, target) else 1)


if __name__ == "__main__":
    main(sys.argv[1:])
