"""Side-by-side benchmark: `vitals build` against the DuckDB reference
implementation of the same 11 tables (scripts/duckdb_reference.py), on the
same generated Parquet files. Usage:
    python3 benches/vs_duckdb.py [--sizes 10000,100000] [--runs 3]
        [--vitals target/release/vitals] [--as-of 2025-12-31]
        [--data-root target/bench-data]

For each size N the dataset is generated once with `vitals generate
--customers N` into DATA_ROOT/cN and reused afterwards (a marker file is
written when generation succeeded). Then `vitals build` and the DuckDB
reference, each in its own process, run --runs times each, alternating
(which goes first alternates too). Each child's wall time and peak RSS
(wait4's ru_maxrss) are recorded. vitals runs with the built-in catalog (its
working folder has no metrics.toml) and writes to a fresh target each run;
the DuckDB process uses DuckDB's defaults (all cores, 80% of RAM) and writes
every table to Parquet, as vitals publishes them. After the runs both
outputs are compared cell by cell (scripts/crosscheck_catalog.py): exit 1 when
they differ. The table is printed and saved as JSON under
target/bench-results/. Relative default paths are under the repository."""
import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = os.path.join(REPO, "scripts")
REFERENCE = os.path.join(SCRIPTS, "duckdb_reference.py")
MARKER = ".generated.json"


def ensure_duckdb():
    try:
        import duckdb  # noqa: F401
    except ImportError:
        print("installing duckdb (pip install duckdb)", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "duckdb"], check=True)
    import duckdb
    return duckdb


def run_child(cmd, cwd, log):
    """Runs cmd; returns (wall seconds, peak RSS in bytes). Exits on failure."""
    with open(log, "w") as out:
        start = time.perf_counter()
        p = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.perf_counter() - start
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        with open(log) as f:
            tail = f.read()[-3000:]
        sys.exit(f"failed (exit {p.returncode}): {' '.join(cmd)}\n{tail}")
    return wall, usage.ru_maxrss * 1024  # ru_maxrss is in KB on Linux


def dataset(vitals, root, customers):
    """DATA_ROOT/c<N>, generated once; reused when its marker exists."""
    d = os.path.join(root, f"c{customers}")
    if os.path.isfile(os.path.join(d, MARKER)):
        return d
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(root, exist_ok=True)
    cmd = [vitals, "generate", "--customers", str(customers), "--out", d]
    print(f"generating {customers} customers: {' '.join(cmd)}", flush=True)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    with open(os.path.join(d, MARKER), "w") as f:
        json.dump({"customers": customers, "command": cmd,
                   "generated_at": datetime.datetime.now(datetime.timezone.utc).isoformat()}, f)
    return d


def median(xs):
    return statistics.median(xs) if xs else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="10000,100000", help="customers per dataset, comma separated")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--vitals", default=os.path.join(REPO, "target", "release", "vitals"))
    ap.add_argument("--as-of", default="2025-12-31")
    ap.add_argument("--data-root", default=os.path.join(REPO, "target", "bench-data"))
    a = ap.parse_args()
    sizes = [int(s) for s in a.sizes.split(",") if s.strip()]
    vitals = os.path.abspath(a.vitals)
    root = os.path.abspath(a.data_root)
    if not os.access(vitals, os.X_OK):
        sys.exit(f"no vitals binary at {vitals} (cargo build --release, or pass --vitals PATH)")
    duckdb = ensure_duckdb()
    sys.dont_write_bytecode = True  # no __pycache__ in the repository
    sys.path.insert(0, SCRIPTS)
    import crosscheck_catalog
    import duckdb_reference

    con = duckdb.connect()
    threads, memory = con.execute("SELECT current_setting('threads'), current_setting('memory_limit')").fetchall()[0]
    vitals_version = subprocess.run([vitals, "--version"], capture_output=True, text=True).stdout.strip()
    header = (f"vitals: {vitals_version} ({vitals}); DuckDB {duckdb.__version__} (Python {platform.python_version()}, "
              f"defaults: {threads} threads, memory_limit {memory}); {os.cpu_count()} cores; "
              f"runs {a.runs}; as of {a.as_of}")
    print(header, flush=True)

    results, all_same = [], True
    for n in sizes:
        data = dataset(vitals, root, n)
        usage = duckdb_reference.input_files(data, "usage")
        usage_rows = con.execute(f"SELECT count(*) FROM read_parquet({usage!r})").fetchall()[0][0] if usage else 0
        work = os.path.join(root, "runs", f"c{n}")
        shutil.rmtree(work, ignore_errors=True)
        os.makedirs(work)
        v_out, d_out = os.path.join(work, "vitals-target"), os.path.join(work, "duckdb-out")
        v_cmd = [vitals, "build", "--data", data, "--target", v_out, "--as-of", a.as_of, "--quiet"]
        d_cmd = [sys.executable, REFERENCE, data, d_out, a.as_of]
        v_runs, d_runs = [], []
        for i in range(a.runs):
            order = [("vitals", v_cmd, v_out, v_runs), ("duckdb", d_cmd, d_out, d_runs)]
            for label, cmd, out, into in (order if i % 2 == 0 else order[::-1]):
                shutil.rmtree(out, ignore_errors=True)
                load = os.getloadavg()[0]  # other work on the machine skews the times
                wall, rss = run_child(cmd, work, os.path.join(work, f"{label}-{i}.log"))
                into.append({"seconds": wall, "peak_rss_bytes": rss, "loadavg_1m_before": load})
                print(f"  c{n} run {i + 1}/{a.runs} {label:6}: {wall:8.2f} s, peak RSS {rss / 2**20:8.1f} MB"
                      f" (load average before: {load:.2f})", flush=True)
        # both outputs of the last run, cell by cell
        lines = []
        cmp = duckdb.connect()
        built, skipped = duckdb_reference.load_parquet(cmp, d_out)
        same = crosscheck_catalog.compare(cmp, built, skipped, v_out, say=lines.append)
        cmp.close()
        if same:
            print(f"  c{n}: same numbers in {len(built)} tables" + (f" ({len(skipped)} skipped by both)" if skipped else ""))
        else:
            all_same = False
            print(f"  c{n}: THE OUTPUTS DIFFER")
            print("\n".join("    " + line for line in lines))
        vs = [r["seconds"] for r in v_runs]
        ds = [r["seconds"] for r in d_runs]
        results.append({
            "customers": n, "usage_rows": usage_rows, "data": data,
            "vitals_median_s": median(vs), "duckdb_median_s": median(ds),
            "ratio_vitals_over_duckdb": median([v / d for v, d in zip(vs, ds)]),
            "vitals_peak_rss_mb": max(r["peak_rss_bytes"] for r in v_runs) / 2**20,
            "duckdb_peak_rss_mb": max(r["peak_rss_bytes"] for r in d_runs) / 2**20,
            "vitals_runs": v_runs, "duckdb_runs": d_runs,
            "same_output": same, "comparison": lines,
        })

    cols = [("customers", "customers", 9, ""), ("usage rows", "usage_rows", 11, ""),
            ("vitals s", "vitals_median_s", 9, ".2f"), ("DuckDB s", "duckdb_median_s", 9, ".2f"),
            ("vitals/DuckDB", "ratio_vitals_over_duckdb", 13, ".2f"),
            ("vitals RSS MB", "vitals_peak_rss_mb", 13, ".0f"), ("DuckDB RSS MB", "duckdb_peak_rss_mb", 13, ".0f"),
            ("same output", "same_output", 11, "")]
    print()
    print(header)
    print(f"median wall seconds of {a.runs} runs; ratio: median of the per-run vitals/DuckDB; peak RSS: max over the runs")
    print("  ".join(f"{title:>{w}}" for title, _, w, _ in cols))
    for r in results:
        print("  ".join(f"{format(r[key], f):>{w}}" for _, key, w, f in cols))
    out_dir = os.path.join(REPO, "target", "bench-results")
    os.makedirs(out_dir, exist_ok=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = os.path.join(out_dir, f"vs_duckdb-{stamp}.json")
    with open(path, "w") as f:
        json.dump({"started": stamp, "header": header, "vitals": vitals, "vitals_version": vitals_version,
                   "duckdb_version": duckdb.__version__, "duckdb_threads": threads, "duckdb_memory_limit": memory,
                   "cpu_count": os.cpu_count(), "runs": a.runs, "as_of": a.as_of, "results": results}, f, indent=1)
    print(f"\nwritten {path}")
    if not all_same:
        print("the outputs differ: see above")
        sys.exit(1)


if __name__ == "__main__":
    main()
