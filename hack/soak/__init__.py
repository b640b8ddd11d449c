"""`make soak`: short-lived EgainTokens under random faults; does anyone read an expired token?

Starts the local cluster (the kubelet syncing Pods every second), the eGain
emulator and two operator replicas sharing a Lease (`ground`), creates
`--tokens` EgainTokens in both flows, with lifetimes of 60-120 s (`--lifetimes
lead`, the default) or 5-10 s (`--lifetimes stress`), and for `--duration`
seconds injects faults on both sides (`faults`, on the `schedule`): eGain
answering 5xx, hanging past the HTTP timeout, resetting connections, rate
limiting with and without Retry-After, sending malformed and HTML bodies, one
outage longer than every lifetime (or, with the lead lifetimes, every refresh
lead); the API server stopped and restarted, etcd frozen for 10 s, the
operator SIGKILLed in the middle of a refresh, the active replica killed,
client credentials rotated, a managed Secret deleted and another edited by
hand, a spec changed. After the last fault the run stays quiet for the
recovery bound and `plan.JUDGED_TAIL` more (`run`).

A sampler reads every managed Secret once a second (one LIST) and a consumer
Pod reads its mounted copy of one of them once a second (`sampling`). A
sample is a *violation* when the token it holds is expired (by the emulator's
record of what it issued) or missing, while nothing has disturbed that token
for longer than the recovery bound: the 20 s cap on retries of an expired
token, plus one request (`--http-timeout`), plus, for the Pod's file, the
kubelet's propagation (see docs/reliability.md). The run's start disturbs
nothing: every token was Ready before it. With the lead lifetimes a fault
counts as a disturbance of a token only if it lasts at least that token's
refresh lead (a third of its lifetime) or acts on the token itself (its
Secret deleted or edited, its spec or credentials changed): a shorter fault
must be absorbed by the lead. The *judged fraction* is the share of samples
no disturbance excused. With 5-10 s tokens every fault is longer than the
lead, so every fault excuses, and most of the run before its quiet end is not
judged.

Prints the figures, writes them as JSON (`--json`; `report`), and exits
non-zero when the `verdict` finds any violation, lost token or leaked secret,
a fault that could not be injected or that no request met, a token request
by a replica that had lost the Lease, a stall of the watchdog, a disturbance
after which the tokens never all recovered, or a judged fraction below the
variant's minimum (`verdict.MIN_JUDGED`). The last line is
`violations: N, lost: N, recovery max: S s, judged: P %`.
"""
