"""Shared by scripts/bench and scripts/bench-cores (standard library only).

  bench_report.py fio FIO_JSON UNIT    prints "VALUE P99_US P99_READ_US P99_WRITE_US" of one fio run: VALUE is
                                       IOPS (UNIT "IOPS") or MiB/s (UNIT "MiB/s"), both directions added;
                                       P99_US is the worse of the two directions' p99 completion latency
                                       (clat_ns percentile 99.000000); a direction without I/O prints "-"
  bench_report.py io-bytes FIO_JSON    prints the bytes the fio run moved, both directions added

Imported by the scripts' table code for reading the results file, medians with their spread, the server's
CPU per unit of work and number formatting.
"""
import json
import math
import statistics
import sys

CPU_UNITS = {"IOPS": "cpu-s/M req", "MiB/s": "cpu-s/GiB"}


def unit_of(job):
    """4 KiB jobs count requests (IOPS); every other job counts bytes (MiB/s)."""
    return "IOPS" if "-4k" in job else "MiB/s"


def fio_job(path):
    """The first (with group_reporting the only) job of a fio JSON output file; exits on a fio error."""
    text = open(path, errors="replace").read()
    # fio's nbd engine prints lines before the JSON document: start at the first line that opens it.
    start = 0 if text.startswith("{") else text.index("\n{") + 1
    job = json.JSONDecoder().raw_decode(text[start:])[0]["jobs"][0]
    if job["error"]:
        sys.exit("fio error %d" % job["error"])
    return job


def fio_summary(path, unit):
    job = fio_job(path)
    r, w = job["read"], job["write"]
    value = r["iops"] + w["iops"] if unit == "IOPS" else (r["bw_bytes"] + w["bw_bytes"]) / 1048576.0
    p99 = {}
    for name, side in (("read", r), ("write", w)):
        pct = side.get("clat_ns", {}).get("percentile", {})
        if side.get("total_ios", 0) > 0 and "99.000000" in pct:
            p99[name] = pct["99.000000"] / 1000.0
    worst = max(p99.values()) if p99 else None
    return value, worst, p99.get("read"), p99.get("write")


def num(text):
    return None if text in ("-", "fail") else float(text)


def load_results(path):
    """The lines "RUN GROUP SERVER JOB VALUE P99_US CPU_S WALL_S" as {group: {job: {server: [run dicts]}}}."""
    out = {}
    for line in open(path):
        f = line.split()
        run, group, server, job = f[:4]
        value, p99, cpu, wall = (num(x) for x in (f[4:] + ["-"] * 4)[:4])
        if value is None:
            continue
        out.setdefault(group, {}).setdefault(job, {}).setdefault(server, []).append(
            {"run": int(run), "value": value, "p99_us": p99, "cpu_s": cpu, "wall_s": wall,
             "cpu_per_unit": cpu_per_unit(cpu, wall, value, unit_of(job))})
    return out


def cpu_per_unit(cpu_s, wall_s, value, unit):
    """Server CPU seconds per million requests (IOPS) or per GiB moved (MiB/s): the CPU the server used while
    the job ran, per second of the job's wall time (ramp and connection set-up included), over the job's rate."""
    if cpu_s is None or not wall_s or not value:
        return None
    per_second = cpu_s / wall_s
    return per_second / value * 1e6 if unit == "IOPS" else per_second / (value / 1024.0)


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summary(runs):
    """The JSON entry of one server on one job: medians, the spread of the value, and every run."""
    values = [r["value"] for r in runs]
    return {"median": median(values), "min": min(values), "max": max(values),
            "p99_us": median(r["p99_us"] for r in runs), "cpu_per_unit": median(r["cpu_per_unit"] for r in runs),
            "runs": runs}


def ratio(a, b):
    return a / b if a is not None and b else None


def compare(job, by, peers, base=None):
    """The JSON row of one job from {server: [runs]}: every server's summary, the best peer (the highest median),
    and the ratios of mqnbd's median to each peer's, to the best peer's ("best") and to the base server's ("base")."""
    entries = {s: summary(runs) for s, runs in by.items()}
    med = {s: e["median"] for s, e in entries.items()}
    peer_meds = {p: med[p] for p in peers if med.get(p) is not None}
    best = max(peer_meds, key=peer_meds.get) if peer_meds else None
    ratios = {p: ratio(med.get("mqnbd"), med.get(p)) for p in peers}
    ratios["best"] = ratio(med.get("mqnbd"), med.get(best))
    if base:
        ratios["base"] = ratio(med.get("mqnbd"), med.get(base))
    return {"job": job, "unit": unit_of(job), "cpu_unit": CPU_UNITS[unit_of(job)], "servers": entries,
            "best_peer": best, "ratio_mqnbd_to": ratios}


def table_header(servers, ratio_names):
    return ("%-21s" % "job" + "".join("%25s %7s %6s" % (s, "p99", "cpu") for s in servers)
            + "".join("%*s" % (max(8, len(r) + 7), "mqnbd/" + r) for r in ratio_names))


def table_line(row, servers, ratio_names):
    """A job's line: per server "median (min-max)", the median p99 (us) and CPU per unit, then the ratios."""
    line = "%-21s" % row["job"]
    for s in servers:
        e = row["servers"].get(s, {})
        line += "%25s %7s %6s" % (fmt_spread(e or None, 0), fmt(e.get("p99_us")), fmt_cpu(e.get("cpu_per_unit"), 0))
    return line + "".join(fmt_ratio(row["ratio_mqnbd_to"].get(r), max(8, len(r) + 7)) for r in ratio_names)


def fmt(v, width=0):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "%*s" % (width, "-")
    return "%*.1f" % (width, v) if abs(v) < 100 else "%*.0f" % (width, v)


def fmt_spread(entry, width):
    """"median (min-max)" of a server's value on a job, or "-"."""
    if entry is None:
        return "%*s" % (width, "-")
    return "%*s" % (width, "%s (%s-%s)" % (fmt(entry["median"]), fmt(entry["min"]), fmt(entry["max"])))


def fmt_ratio(r, width):
    return "%*.2f" % (width, r) if r is not None else "%*s" % (width, "-")


def fmt_cpu(v, width):
    return "%*.2f" % (width, v) if v is not None and v < 10 else fmt(v, width)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "fio":
        print(" ".join("-" if v is None else "%.1f" % v for v in fio_summary(sys.argv[2], sys.argv[3])))
    elif len(sys.argv) == 3 and sys.argv[1] == "io-bytes":
        job = fio_job(sys.argv[2])
        print(job["read"]["io_bytes"] + job["write"]["io_bytes"])
    else:
        sys.exit(__doc__)
