"""`egain-token-operator status | renew | check`, also the kubectl plugin `kubectl egaintoken`.

For a person, or a script, at a terminal: the cluster is reached through the
kubeconfig as kubectl reaches it (`kube/config.load_user_api_client`), and every
decision is the operator's own code (`decisions/`, `egain/`, through
`controller/observe.observe`). Nothing printed ever holds a
token or a client secret: Secrets are shown by their keys, a new token is
recognised by a digest of it, and messages are the operator's own, which are
built never to hold them.

Exit codes (docs/cli.md): 0 all Ready / success; 1 not Ready, a check failed,
or eGain refused a renewal; 2 usage; 3 not found, or the Kubernetes API
failed; 4 a renewal timed out. When `renew` renews many tokens, the worst
ending decides: 1 if any was refused, else 4 if any timed out, else 0.

Here: the parser and the entry points. Each command is a module of its own
(`status`, `renew`, `check`), on what they share (`command`: the exit codes,
the connection through the kubeconfig, the reads) and on pure views
(`views`, `clientviews`, `reports`, over `readout`) and `renewal`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime

from egain_token_operator.ctl.check import CHECK_SETTINGS, check
from egain_token_operator.ctl.command import EXIT_NOT_FOUND, CommandError
from egain_token_operator.ctl.readout import printable
from egain_token_operator.ctl.renew import renew
from egain_token_operator.ctl.status import status
from egain_token_operator.decisions.render import REFRESH_REQUESTED_AT_ANNOTATION
from egain_token_operator.kube.api import KubeError
from egain_token_operator.settings import add_options

COMMANDS = ("status", "renew", "check")


def build_parser(prog: str, environ: Mapping[str, str]) -> argparse.ArgumentParser:
    """The parser of the three commands."""
    connection = argparse.ArgumentParser(add_help=False)
    connection.add_argument(
        "--kubeconfig", help="kubeconfig file (default: KUBECONFIG, else ~/.kube/config)"
    )
    connection.add_argument("--context", help="kubeconfig context (default: the current one)")
    connection.add_argument(
        "-n", "--namespace", help="namespace (default: the context's, else default)"
    )
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Inspect, renew and check EgainTokens and the eGain clients they use. "
        "Never prints a token or a client secret. Exit codes: 0 all Ready / success, 1 not "
        "Ready / a check failed / a renewal refused, 2 usage, 3 not found or Kubernetes API "
        "error, 4 a renewal timed out.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    status_parser = commands.add_parser(
        "status",
        parents=[connection],
        help="a table of EgainTokens, or the details of one token or client",
        description="A table of the EgainTokens, or with NAME the details of one: conditions, "
        "the client it uses, the managed Secret's keys and owner (never values), recent "
        "Events. With egainclient/NAME (egc/NAME) or clusteregainclient/NAME (cegc/NAME), "
        "the client: its spec (never a credential), Ready condition, policy and the "
        "EgainTokens that use it (of every namespace for a ClusterEgainClient, unless -n is "
        "given). Exit 0 when everything shown is Ready, 1 otherwise.",
    )
    status_parser.add_argument("name", nargs="?", metavar="NAME | KIND/NAME")
    status_parser.add_argument(
        "-A", "--all-namespaces", action="store_true", help="every namespace"
    )
    renew_parser = commands.add_parser(
        "renew",
        parents=[connection],
        help="force a refresh and wait for the new token, of one EgainToken or many",
        description=f"Set {REFRESH_REQUESTED_AT_ANNOTATION} on the EgainToken NAME, or on every "
        "one selected by --all, -l or --client (in the namespace, or with -A in every one), "
        "and wait until each one's Secret holds a token obtained for that request. Exit 0 "
        "when every one does, 1 when eGain refused one for good, 4 when one timed out "
        "(1 before 4 when both happen).",
    )
    renew_parser.add_argument("name", nargs="?", metavar="NAME")
    renew_parser.add_argument("--all", action="store_true", help="every EgainToken")
    renew_parser.add_argument(
        "-l", "--selector", metavar="SELECTOR", help="the EgainTokens with these labels"
    )
    renew_parser.add_argument(
        "--client",
        metavar="KIND/NAME",
        help="the EgainTokens whose spec.clientRef names this client: egainclient/NAME "
        "(egc, in -n), clusteregainclient/NAME (cegc)",
    )
    renew_parser.add_argument(
        "-A", "--all-namespaces", action="store_true", help="select in every namespace"
    )
    renew_parser.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to wait (default 60)"
    )
    check_parser = commands.add_parser(
        "check",
        parents=[connection],
        help="what the operator would do, without writing anything",
        description="Check the spec, the credentials, the token host and the managed Secret "
        "as the operator would, and say what it would do now; with --request, also send "
        "one real token request (the token is discarded, never shown or written). Takes "
        "the operator settings below: pass the installed operator's values (docs/cli.md). "
        "Exit 0 when every check passes, 1 otherwise.",
    )
    check_parser.add_argument("name", metavar="NAME")
    check_parser.add_argument(
        "--request",
        action="store_true",
        help="send one real token request to eGain and report its outcome",
    )
    add_options(check_parser, environ, CHECK_SETTINGS)
    return parser


_RUNNERS = {"status": status, "renew": renew, "check": check}


def main(
    argv: Sequence[str],
    *,
    prog: str = "egain-token-operator",
    out: Callable[[str], None] = print,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> int:
    """Run one command; return its exit code."""
    args = build_parser(prog, os.environ).parse_args(list(argv))
    # An error quotes statuses (a refused renewal) and the API server's answers.
    try:
        return asyncio.run(_RUNNERS[args.command](args, out, now))
    except CommandError as exc:
        print(f"error: {printable(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KubeError as exc:
        print(f"error: Kubernetes API: {printable(str(exc))}", file=sys.stderr)
        return EXIT_NOT_FOUND


def plugin_main() -> None:
    """Console-script entry point of the kubectl plugin `kubectl-egaintoken`."""
    sys.exit(main(sys.argv[1:], prog="kubectl egaintoken"))
