"""The table and JSON of scripts/bench's S3 section (scripts/lib/bench-s3.sh; standard library only).

  bench_s3_report.py RESULTS JSON SIZE WARM RUNTIME RUNS CPUS LOAD_START LOAD_END WALL VERSIONS KERNEL
                     MQNBD_ARGS MQNBD_MAX_DIRTY_MIB S3BACKER_FLAGS [BASELINE_JAR]

RESULTS holds lines "RUN s3 SERVER JOB VALUE P99_US CPU_S WALL_S PUTS GETS BYTES" ("fail" for a run that
failed; "-" where a field does not apply). Prints per job the median (min-max) of mqnbd, s3backer and the
ceiling, the ratios of mqnbd's median to s3backer's and the ceiling's, and per server the medians of PUTs and
GETs per MiB moved and of CPU seconds per GiB (MiB/s jobs) or per million requests (IOPS jobs); the JSON keeps
every run.
"""
import datetime
import json
import sys

from bench_report import CPU_UNITS, cpu_per_unit, fmt, fmt_cpu, fmt_ratio, fmt_spread, median, num, ratio, unit_of

SERVERS = ["mqnbd", "mqnbd-sdk", "mqnbd-base", "s3backer", "ceiling"]
# Servers in the table only when a run had them, each with a ratio and a CPU column of its own.
OPTIONAL = {"mqnbd-sdk": ("m/m-sdk", "cpu sdk"), "mqnbd-base": ("m/m-base", "cpu base")}
JOBS = ["seqwrite-1m-qd8", "seqread-1m-qd8-cold", "randread-4k-qd32", "randwrite-4k-qd32"]


def load(path):
    """{job: {server: [run dicts]}} of the results file; failed runs are left out."""
    out = {}
    for line in open(path):
        f = line.split()
        run, _, server, job = f[:4]
        value, p99, cpu, wall, puts, gets, moved = (num(x) for x in (f[4:] + ["-"] * 7)[:7])
        if value is None:
            continue
        mib = moved / 1048576.0 if moved else None
        out.setdefault(job, {}).setdefault(server, []).append(
            {"run": int(run), "value": value, "p99_us": p99, "cpu_s": cpu, "wall_s": wall,
             "puts": puts, "gets": gets, "mib": mib,
             "puts_per_mib": ratio(puts, mib), "gets_per_mib": ratio(gets, mib),
             "cpu_per_unit": cpu_per_unit(cpu, wall, value, unit_of(job))})
    return out


def summary(runs):
    values = [r["value"] for r in runs]
    return {"median": median(values), "min": min(values), "max": max(values),
            "p99_us": median(r["p99_us"] for r in runs),
            "puts_per_mib": median(r["puts_per_mib"] for r in runs),
            "gets_per_mib": median(r["gets_per_mib"] for r in runs),
            "cpu_per_unit": median(r["cpu_per_unit"] for r in runs), "runs": runs}


def main(argv):
    (path, out, size, warm, runtime, runs, cpus, load_start, load_end, wall, versions, kernel, mqnbd_args,
     max_dirty, s3backer_flags, baseline_jar, cpu_split) = (argv[1:18] + ["", ""])[:17]
    values = load(path)
    present = {s for job in values.values() for s in job}
    servers = [s for s in SERVERS if s in present or s not in OPTIONAL]
    optional = [s for s in servers if s in OPTIONAL]
    print("%s, S3 export of %s (+%s for warm-up) in S3Proxy on this machine, %s s per random job, median (min-max)"
          " of %s runs, %s CPUs, load average %s at start and %s at end"
          % (datetime.date.today().isoformat(), size, warm, runtime, runs, cpus, load_start, load_end))
    print("MiB/s for 1m jobs (over the whole job, flush or drain included), IOPS for 4k jobs; ceiling: curl, 16 PUTs"
          " or GETs of distinct 1 MiB objects in flight")
    print("PUTs, GETs: block requests to the store per MiB moved (randwrite: until all is stored); cpu: the server's"
          " CPU seconds per GiB (1m jobs) or per million requests (4k jobs)")
    print("mqnbd: its defaults (dirty bound %s MiB)%s; s3backer %s" % (
        max_dirty, (", serve " + mqnbd_args) if mqnbd_args else "", s3backer_flags))
    if baseline_jar:
        print("mqnbd-base: %s with the same flags" % baseline_jar)
    print("CPUs: " + (cpu_split or "all shared by the store, the servers, fio and curl"))
    print()
    header = ("%-20s" % "job" + "".join("%24s" % s for s in servers) + "%16s%15s" % ("mqnbd/s3backer", "mqnbd/ceiling")
              + "%19s%19s%19s" % ("PUTs/MiB m / s3b", "GETs/MiB m / s3b", "cpu m / s3b")
              + "".join("%12s%10s" % OPTIONAL[s] for s in optional))
    print(header)
    rows = []
    for job in JOBS + sorted(set(values) - set(JOBS)):
        if job not in values:
            continue
        entries = {s: summary(r) for s, r in values[job].items()}
        med = {s: e["median"] for s, e in entries.items()}
        row = {"job": job, "unit": unit_of(job), "cpu_unit": CPU_UNITS[unit_of(job)], "servers": entries,
               "ratio_mqnbd_to": {"s3backer": ratio(med.get("mqnbd"), med.get("s3backer")),
                                  "ceiling": ratio(med.get("mqnbd"), med.get("ceiling"))}}
        rows.append(row)
        line = "%-20s" % job + "".join(fmt_spread(entries.get(s), 24) for s in servers)
        line += fmt_ratio(row["ratio_mqnbd_to"]["s3backer"], 16) + fmt_ratio(row["ratio_mqnbd_to"]["ceiling"], 15)
        m, b = entries.get("mqnbd", {}), entries.get("s3backer", {})
        for key, f in (("puts_per_mib", pair_fmt), ("gets_per_mib", pair_fmt), ("cpu_per_unit", pair_fmt)):
            line += "%19s" % f(m.get(key), b.get(key))
        for s in optional:
            row["ratio_mqnbd_to"][s] = ratio(med.get("mqnbd"), med.get(s))
            line += fmt_ratio(row["ratio_mqnbd_to"][s], 12) + "%10s" % fmt_cpu(entries.get(s, {}).get("cpu_per_unit"), 0)
        print(line)
    print()
    print("%s; %s s wall" % (versions, wall))
    report = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"), "export_size": size,
              "warm_up": warm, "runtime_s": int(runtime), "runs": int(runs), "cpus": int(cpus), "kernel": kernel,
              "load_average_start": load_start, "load_average_end": load_end, "wall_s": int(wall),
              "versions": versions, "mqnbd_args": mqnbd_args, "baseline_jar": baseline_jar or None, "mqnbd_max_dirty_mib": int(max_dirty),
              "s3backer_flags": s3backer_flags,
              "store": "S3Proxy (mqnbd-s3:latest, filesystem store) in a container on loopback",
              "cpu_split": cpu_split or None,
              "ceiling": "curl, 16 parallel PUTs then GETs of distinct 1 MiB objects, SigV4 with UNSIGNED-PAYLOAD",
              "value": "MiB/s (1m jobs: bytes over the job's wall time, flush or drain included) or IOPS (4k jobs,"
                       " fio's)",
              "requests": "block PUTs and GETs to the store during the job (mqnbd: /metrics"
                          " mqnbd_s3_http_requests_total; s3backer: its stats file, 404 GETs included), per MiB moved",
              "cpu_per_unit": "server utime+stime per second of the job's wall time, over the job's rate: "
                              "CPU seconds per million requests (IOPS jobs) or per GiB (MiB/s jobs)",
              "jobs": rows}
    json.dump(report, open(out, "w"), indent=2)
    print("json: " + out)


def pair_fmt(a, b):
    return "%s / %s" % (fmt_cpu(a, 0), fmt_cpu(b, 0))


if __name__ == "__main__":
    main(sys.argv)
