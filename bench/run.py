"""Benchmarks: request cost, throughput and memory of the importer at 1k to 100k objects.

``make bench SIZE=10000`` (or ``python bench/run.py --size 10000``): scenarios (a)–(e) for the
importer and the naive baseline at that size, and (f) at ``--f-size`` (1,000 by default, so the
run fits in a few minutes; ``--size all`` runs 1k, 10k and 100k and (f) at 10,000, as the issue
specifies, which takes more than 40 minutes). Prints Markdown; writes ``bench/results-<size>.json``,
``bench/results-f-<size>.json`` and ``bench/RESULTS.md`` (rebuilt from every results file present).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import report
from bench.scenarios import run_baseline, run_f, run_importer, speedup

NOTES = """
Produced by `make bench SIZE=...` (`bench/run.py`); `make bench SIZE=all` reproduces every table
below. Each size's section carries the date, commit and machine load of its own run.

**How it is measured.** The sandbox (`importer.sandbox.Sandbox`, seed 7, half users, half devices)
runs in the benchmark driver's process; the importer (`importer sync`) and the baseline each run as
a separate child process (`bench/child.py`), which records its own user+system CPU with
`getrusage(RUSAGE_SELF)` and its peak RSS from `/proc/self/status` `VmHWM` at exit (Linux keeps
`ru_maxrss` across exec, so a child of the driver, which holds the sandbox, would report the
driver's high-water mark: 313 MB for a 13 MB child of a 300 MB parent). Wall time is spawn-to-exit
seen by the driver (interpreter start and imports included). **Request counts are the sandbox's**
(`/_sandbox/stats` counters, reset before each run), never the importer's own. "Atlassian" means
everything the sandbox's `assets` service answered: Assets REST plus Jira's user search;
"Graph+login" is Graph and the Entra authority (MSAL). For (a)–(e) the importer's limiter is raised
to 100,000/min (the config's maximum; the sandbox config sets 20,000/min) so that it is not what is
measured; the sandbox enforces no limit there. `http.max_concurrency` is 8 (the default). (b) and
(d) change nothing, so they run three times (`--repeat`) and the median run is shown.

**Scenarios**, in order on one sandbox: (a) initial sync after `schema apply` (not counted); (b)
incremental, no change; (c) incremental after `mutate` updated 0.5% of users (job title, department)
and 0.5% of devices (OS version); (d) full resync (`--full`), no change; (e) full resync after
another such 1% mutation. (f) initial sync on a fresh sandbox with 50 ms added to every Assets
request, at `max_concurrency` 1 and 8, with the sandbox's 1,000/min Assets limit and the importer's
`requests_per_minute: 1000` (as specified), and again without any limit. (f) runs at 1,000 objects
by default, so that `make bench SIZE=10000` stays under 10 minutes (6.5 here): at 1,000 requests a
minute, each of the two limited (f) runs at 10,000 objects takes more than 10 minutes on its own.
`--size all` (or `--f-size 10000`) runs (f) at 10,000 objects, as the issue specifies.

**Lower bound** (Atlassian requests): one write per changed object, plus, when the run must read the
target (initial and full runs), one AQL page of 500 per 500 objects per type (one page at least per
type, so an initial sync into empty types reads two pages). An incremental run needs no read (the id
map knows the object ids). The targets use **Atlassian requests / bound**, because that is what
Atlassian's limits count; "all / bound" adds Graph and login requests over the same bound, for the
whole cost. Schema resolution (4 requests a run) and account look-ups are outside the bound, so
small tenants and small changes sit further above it.

**Baseline** (`bench/baseline.py`): what a simple script does: plain Graph lists, one
`registeredOwners` request per device, one AQL query per record, then a create or an update of every
attribute; no state, no delta, sequential. It writes the same values (it reuses the importer's
mapping and value rules). It has no incremental mode, so its (b)/(d) and (c)/(e) are the same runs,
made on a second sandbox with the same seed and mutations.
"""


HEADLINE = """\
Requests are the sandbox's counts. "Atlassian" = Assets REST + Jira user search (what Atlassian's
limits count; the targets use Atlassian requests / lower bound). For (a)-(e) the importer's own
limiter is raised to 100,000/min (override of http.requests_per_minute) so that it is not what is
measured. (f) ran at {f_size:,} objects (default 1,000 so that SIZE=10000 fits in 10 minutes;
SIZE=all runs it at 10,000). Method and notes: bench/RESULTS.md.
"""


def _sizes(value: str) -> list[int]:
    if value == "all":
        return [1_000, 10_000, 100_000]
    return [int(value)]


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks; print Markdown; write the JSON files and RESULTS.md."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", default="10000", help="objects: 1000, 10000, 100000 or all (default 10000)")
    parser.add_argument(
        "--f-size", type=int, default=None, help="(f) size; 0 skips (f) (default 1000, all: 10000)"
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs of the idempotent (b) and (d) (default 3)"
    )
    parser.add_argument("--no-baseline", action="store_true", help="skip the naive baseline")
    parser.add_argument(
        "--no-write", action="store_true", help="print only; leave the JSON files and RESULTS.md"
    )
    parser.add_argument(
        "--report",
        action="store_true",
        help="run nothing: rebuild bench/RESULTS.md from the JSON files present",
    )
    args = parser.parse_args(argv)
    if args.report:
        (report.BENCH / "RESULTS.md").write_text(report.render_results(NOTES), encoding="utf-8")
        print("wrote bench/RESULTS.md", file=sys.stderr)
        return 0
    sizes = _sizes(args.size)
    f_size = args.f_size if args.f_size is not None else (10_000 if args.size == "all" else 1_000)

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    started = time.monotonic()
    docs, f_docs = {}, {}
    for size in sizes:
        load = os.getloadavg()
        log(f"== {size:,} objects")
        rows = run_importer(size, repeat=args.repeat, log=log)
        if not args.no_baseline:
            run_baseline(size, rows, log=log)
        docs[size] = {"size": size, "env": report.environment(load), "rows": [r.as_dict() for r in rows]}
        if not args.no_write:
            report.write_json(f"results-{size}", docs[size])
    if f_size:
        load = os.getloadavg()
        log(f"== (f) at {f_size:,} objects (four initial syncs under 50 ms latency)")
        results = run_f(f_size, log=log)
        f_docs[f_size] = {
            "size": f_size,
            "env": report.environment(load),
            "results": [r.as_dict() for r in results],
            "speedup_limited": speedup(results, limited=True),
            "speedup_unlimited": speedup(results, limited=False),
        }
        if not args.no_write:
            report.write_json(f"results-f-{f_size}", f_docs[f_size])
    print(HEADLINE.format(f_size=f_size))
    print("\n".join(report.markdown_size(docs[s]) for s in sorted(docs)))
    print("\n".join(report.markdown_f(f_docs[s]) for s in sorted(f_docs)))
    print("| target | measured | | why |\n|---|---|---|---|")
    print("\n".join("| " + " | ".join(c) + " |" for c in report.targets(docs, f_docs)))
    if not args.no_write:
        (report.BENCH / "RESULTS.md").write_text(report.render_results(NOTES), encoding="utf-8")
        log("wrote bench/RESULTS.md and the results-*.json files")
    log(f"done in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
