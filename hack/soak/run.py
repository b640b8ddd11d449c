"""One soak run: the samplers and the fault schedules side by side, then the quiet end."""

from __future__ import annotations

import argparse
import random
import resource
import threading
import time
from typing import Any

from soak import report
from soak.faults import Faults
from soak.ground import Ground, cpu_seconds
from soak.plan import JUDGED_TAIL, recovery_bound
from soak.sampling import Sampler
from soak.schedule import fault_plan, quiet_gap, run_faults
from soak.timeline import Timeline
from testground import controlplane


def run(ground: Ground, args: argparse.Namespace, rng: random.Random) -> dict[str, Any]:
    """Sample and inject faults for `args.duration` seconds on a started `ground`, stay
    quiet for the recovery bound and `JUDGED_TAIL` after the last fault, and report."""
    started = time.time()
    timeline = Timeline(started)
    sampler = Sampler(ground, started, args.resource_every)
    faults = Faults(ground, timeline, rng, args.lifetimes)
    # Daemons, so that a stopped soak (Ctrl-C, SIGTERM) does not wait for them.
    helpers = [
        threading.Thread(target=sampler.sample, name="sampler", daemon=True),
        threading.Thread(target=sampler.watch_resources, name="resources", daemon=True),
    ]
    for thread in helpers:
        thread.start()
    until = started + args.duration
    gap = quiet_gap(args.lifetimes, ground.lifetimes, args.http_timeout)
    schedules = [
        threading.Thread(
            target=run_faults, args=(faults.fault, kinds, until, gap, rng), daemon=True
        )
        for kinds in fault_plan(args.lifetimes, args.duration, rng)
    ]
    for thread in schedules:
        thread.start()
    for thread in schedules:
        thread.join()
    # Quiet to the end, then the recovery bound after the last fault and a stretch
    # that nothing excuses.
    time.sleep(max(until - time.time(), 0.0) + recovery_bound(args.http_timeout) + JUDGED_TAIL)
    sampler.stop.set()
    for thread in helpers:
        thread.join()
    ran = time.time() - started
    for replica in ground.replicas:
        ground.record_cpu(replica)
    for component in ("kube-apiserver", "etcd"):
        pid = controlplane.component_pid(ground.cluster_dir, component)
        ground.cpu_seconds[component] = cpu_seconds(pid)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    ground.cpu_seconds["soak (sampler, emulator)"] = round(usage.ru_utime + usage.ru_stime, 1)
    return report.build(args, ground, timeline, sampler.observed, faults, ran)
