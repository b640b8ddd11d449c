"""`make bench`: the operator measured against the physical floor, on the local test ground.

- `kube`: the benchmark's own API client, the audit log, the operator's identity;
- `process`: the operator as a local process (RSS, CPU);
- `watch`: the EgainTokens of a namespace as a watch sees them;
- `rows`: the rows, each on a namespace and an operator of its own;
- `report`: the run's record, its table and its JSON.
"""
