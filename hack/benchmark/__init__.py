"""`make bench`: the operator measured against the physical floor, on the local test ground.

- `settings`: the sizes, durations and limits of a run;
- `kube`: the benchmark's own API client, the audit log, the operator's identity;
- `watch`: the EgainTokens of a namespace as a watch sees them;
- `ground`: the cluster, the emulator, and the operators (`testground.operatorprocess`)
  and watches the rows start;
- `rows`: the rows, one function each, each on a namespace and an operator of its own;
- `events`: i), the synthetic per-event row;
- `figures`: percentiles;
- `record`: the run: every row in order, with the date, machine, versions and settings;
- `report`: its table, one renderer per row.
"""
