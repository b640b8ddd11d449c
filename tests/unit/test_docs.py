"""The docs say what the code does: flags, metrics and the image's build context.

Each table is read from the Markdown and compared with its source of truth, so
a flag, metric or file added to one side only fails here.
"""

from __future__ import annotations

import argparse
import re

from egain_token_operator import settings
from tests.markdown import HELM_DOC, README, REPO, section, table_rows
from tests.metric_names import documented_metric_names, exported_metric_names

DOCS = {path.name: path.read_text() for path in [REPO / "README.md", *REPO.glob("docs/*.md")]}

# The Python package, not a metric.
_PACKAGE = "egain_token_operator"
_METRIC = re.compile(r"\begain_token_\w+")


def run_flags() -> dict[str, argparse.Action]:
    """The `run` subcommand's flags, as settings.py declares them."""
    parser = settings._parser({})
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    run = commands.choices["run"]
    return {a.option_strings[0]: a for a in run._actions if a.option_strings[0] != "-h"}


def test_readme_flag_table_matches_the_settings() -> None:
    rows = table_rows(section(README, "Configuration"))
    documented = {row[0].strip("`").split()[0]: row for row in rows}
    flags = run_flags()
    assert set(documented) == set(flags)
    for flag, (_, env_cell, default_cell) in documented.items():
        action = flags[flag]
        help_text = action.help or ""
        env = re.search(r"env (EGAIN_OPERATOR_[A-Z_]+)", help_text)
        assert env, flag
        assert env_cell.startswith(f"`{env.group(1)}`"), (flag, env_cell)
        default = action.default or ""
        if default:
            assert default_cell.replace("`", "").split()[0] == default, (flag, default_cell)
        else:
            assert default_cell.startswith(("none", "all")), (flag, default_cell)


def test_every_metric_is_documented_and_every_documented_metric_exists() -> None:
    documented = documented_metric_names()
    readme_table = {
        match for row in table_rows(section(README, "Metrics")) for match in _METRIC.findall(row[0])
    }
    assert readme_table == documented
    helm_list = set(_METRIC.findall(section(HELM_DOC, "Metrics and ServiceMonitor")))
    assert documented <= helm_list
    exported = exported_metric_names()
    for name, text in DOCS.items():
        named = set(_METRIC.findall(text)) - {_PACKAGE}
        assert named <= exported | documented, (name, sorted(named - exported - documented))


def test_build_context_is_documented() -> None:
    kept = [
        line[1:].rstrip("/")
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    ]
    sentence = re.search(r"`\.dockerignore` keeps the build context to (.+?)\.\n", HELM_DOC, re.S)
    assert sentence
    assert sorted(n.rstrip("/") for n in re.findall(r"`([^`]+)`", sentence.group(1))) == sorted(
        kept
    )
