"""An eGain token endpoint emulator for tests and the demo.

It serves the two client-credentials flows of eGain exactly as documented
(`/system/auth/{TENANT}-{SUFFIX}/oauth2/token` for a client app, and
`/core/authmgr/v3/oauth2/v2.0/anonymous/token?user_type=customer&domain_hint=...`
for an anonymous customer), over HTTPS only, with its own CA. It is as strict
as the real service so that a test passing here means the operator sends
well-formed requests, and it can misbehave on demand (latency, 5xx, 429,
garbage bodies, odd `expires_in`, resets, hangs, redirects) so that every
failure path of the operator can be exercised.

Neither client secrets nor issued tokens are ever printed or logged: tests
check tokens with `is_issued_token()` / `token_info()` and log fingerprints.

The modules, from the bottom up:

- `replies`: what an answer is (`Reply`) and the JSON and text answers;
- `oauth`: the OAuth rules as pure functions: paths, flows, request parsing
  and validation, token and error answers;
- `clients`: the client registry;
- `faults`: fault kinds, the active faults and the answers they give;
- `tokens`: issued tokens (kept by digest) and finding secrets in a text;
- `records`: the request log;
- `admin`: the admin API under `/admin/`;
- `server`: the HTTPS server (certificates, TLS, connections);
- `service`: what the service knows (clients, faults, the request log,
  issued tokens) behind one lock, and the knobs tests turn;
- `endpoint`: `EgainEmulator`, the service served, answering each request;
- `cli`: the command line (`python -m testground.emulator`).
"""

from testground.emulator.admin import ADMIN_PREFIX
from testground.emulator.cli import main
from testground.emulator.endpoint import EgainEmulator
from testground.emulator.faults import REDIRECT_TARGET_PATH, Fault, FaultKind
from testground.emulator.oauth import ANONYMOUS_SCOPE_PREFIX, ANONYMOUS_TOKEN_PATH, Client, Flow
from testground.emulator.records import Concurrency, RequestRecord
from testground.emulator.tokens import IssuedToken, token_fingerprint

__all__ = [
    "ADMIN_PREFIX",
    "ANONYMOUS_SCOPE_PREFIX",
    "ANONYMOUS_TOKEN_PATH",
    "REDIRECT_TARGET_PATH",
    "Client",
    "Concurrency",
    "EgainEmulator",
    "Fault",
    "FaultKind",
    "Flow",
    "IssuedToken",
    "RequestRecord",
    "main",
    "token_fingerprint",
]
