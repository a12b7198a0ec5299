#!/usr/bin/env python3
# SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
# SPDX-License-Identifier: Apache-2.0
"""Who sent which requests: counts an API server audit log (hack/cluster-up.sh with
AUDIT_DIR set) by client, verb and resource, per phase.

    hack/audit-summary.py "$AUDIT_DIR/target-audit.log" [--per N] [--min X]
    hack/audit-summary.py "$AUDIT_DIR/target-audit.log" --timeline [--min N] [--gap A B]

Phases are cut where the benchmark's own client starts a new burst of machine
creates or deletes (its user agent is "mcm-bench"); without such requests the
whole log is one phase. --per divides the counts (by the number of machines).

--timeline tells when each step of a machine happened in the first phase. A step is
a client, verb and resource on a machine's own objects (the Machine, and the Pod and
Node named `machine-<name>`); the n-th time one machine has the same step is `#n`.
Per step: how many machines had it (rows of fewer than --min machines are left out)
and when, in seconds after the phase began, as p5/p50/p95/max over the machines.
--gap A B adds the time from step A to step B per machine, e.g. `--gap 'kwok patch
nodes/status' 'ours patch machines/status #2'`: how long after its Node turned Ready
the controller wrote Running.
"""

import argparse
import collections
import json
import sys
from datetime import datetime


def client(event):
    """A short name for who sent the request: the user agent's program, or the user."""
    agent = event.get("userAgent", "")
    program = agent.split("/")[0].split(" ")[0]
    user = event.get("user", {}).get("username", "")
    if user.startswith("system:node:"):
        return "node"
    if user.startswith("system:serviceaccount:kube-system:"):
        return "kcm:" + user.rsplit(":", 1)[1]
    return program or user


def what(event):
    ref = event.get("objectRef", {})
    resource = ref.get("resource") or event.get("requestURI", "?").split("?")[0]
    if ref.get("subresource"):
        resource += "/" + ref["subresource"]
    return event.get("verb", "?"), resource


def phases(events):
    """Splits at the benchmark's first machine create and first machine delete."""
    cuts = []
    for i, e in enumerate(events):
        if client(e) != "mcm-bench" or e.get("objectRef", {}).get("resource") != "machines":
            continue
        verb = e.get("verb")
        if verb in ("create", "delete") and (not cuts or cuts[-1][1] != verb):
            cuts.append((i, verb))
    if not cuts:
        return [("all", events)]
    out = []
    for n, (i, verb) in enumerate(cuts):
        end = cuts[n + 1][0] if n + 1 < len(cuts) else len(events)
        out.append((f"{verb} phase {n // 2 + 1}", events[i:end]))
    return out


def seconds(event):
    stamp = event.get("stageTimestamp", "")
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def machine_steps(events):
    """Per machine, the time of each of its steps, from the first event on."""
    prefix = "machine-"
    start = seconds(events[0])
    machines = collections.defaultdict(dict)
    for e in events:
        if e.get("stage") != "ResponseComplete":
            continue
        name = e.get("objectRef", {}).get("name") or ""
        verb, resource = what(e)
        if resource.split("/")[0] in ("pods", "nodes") and name.startswith(prefix):
            machine = name[len(prefix):]
        elif resource.split("/")[0] == "machines" and name:
            machine = name
        else:
            continue
        who = client(e)
        if who.startswith("machine-controller-manager-provider-local"):
            who = "ours"
        step = f"{who} {verb} {resource}"
        code = e.get("responseStatus", {}).get("code", 0)
        if code >= 400:
            step += f" {code}"
        seen = machines[machine]
        key, n = step, 1
        while key in seen:
            n += 1
            key = f"{step} #{n}"
        seen[key] = seconds(e) - start
    return machines


def quantiles(xs):
    xs = sorted(xs)
    at = lambda p: xs[min(len(xs) - 1, int(p * len(xs)))]
    return at(0.05), at(0.5), at(0.95), xs[-1]


def timeline(events, least, gaps):
    machines = machine_steps(events)
    counts = collections.Counter(k for seen in machines.values() for k in seen)
    when = {k: [seen[k] for seen in machines.values() if k in seen] for k in counts}
    print(f"{'step':58s} {'n':>5s} {'p5':>6s} {'p50':>6s} {'p95':>6s} {'max':>6s}")
    for k in sorted(when, key=lambda k: quantiles(when[k])[1]):
        if counts[k] >= least:
            print(f"{k:58s} {counts[k]:5d} " + " ".join(f"{x:6.1f}" for x in quantiles(when[k])))
    for a, b in gaps:
        xs = [seen[b] - seen[a] for seen in machines.values() if a in seen and b in seen]
        if not xs:
            print(f"{b} after {a}: no machine has both")
            continue
        p5, p50, p95, _ = quantiles(xs)
        print(f"{b} after {a}: {len(xs)} machines, p5 {p5:.1f} s, p50 {p50:.1f} s, p95 {p95:.1f} s")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("log")
    p.add_argument("--per", type=float, default=1.0, help="divide counts by this")
    p.add_argument("--min", type=float, default=None, help="hide rows below this")
    p.add_argument("--timeline", action="store_true", help="when each machine step happened")
    p.add_argument("--gap", nargs=2, action="append", default=[], metavar=("A", "B"))
    args = p.parse_args()
    events = []
    with open(args.log) as f:
        for line in f:
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    events.sort(key=lambda e: e.get("stageTimestamp", ""))
    if args.timeline:
        timeline(phases(events)[0][1], 100 if args.min is None else args.min, args.gap)
        return 0
    if args.min is None:
        args.min = 0.05
    for name, part in phases(events):
        counts = collections.Counter((client(e),) + what(e) for e in part)
        by_client = collections.Counter()
        for (c, _, _), n in counts.items():
            by_client[c] += n
        span = f"{part[0].get('stageTimestamp', '?')} .. {part[-1].get('stageTimestamp', '?')}"
        print(f"## {name}: {len(part) / args.per:.2f} requests ({span})")
        for c, total in by_client.most_common():
            if total / args.per < args.min:
                continue
            print(f"{c:45s} {total / args.per:8.2f}")
            rows = [(k, n) for k, n in counts.items() if k[0] == c]
            for (_, verb, res), n in sorted(rows, key=lambda r: -r[1]):
                if n / args.per >= args.min:
                    print(f"    {verb:18s} {res:36s} {n / args.per:8.2f}")
        print()


if __name__ == "__main__":
    sys.exit(main())
