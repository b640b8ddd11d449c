from prometheus_client import REGISTRY

from egain_token_operator import __version__, metrics


def sample(metric: str, /, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(metric, labels)


def test_ready_reason_keeps_one_series_per_token() -> None:
    metrics.set_ready("unit-ns", "reasoned", "False", "Pending")
    metrics.set_ready("unit-ns", "reasoned", "False", "RateLimited")
    metrics.set_ready("unit-ns", "reasoned", "True", "TokenIssued")
    token = {"namespace": "unit-ns", "name": "reasoned"}
    assert sample("egain_token_ready_reason", **token, reason="TokenIssued") == 1.0
    assert sample("egain_token_ready_reason", **token, reason="Pending") is None
    assert sample("egain_token_ready_reason", **token, reason="RateLimited") is None
    assert sample("egain_token_ready_status", **token, condition="True") == 1.0
    metrics.forget("unit-ns", "reasoned")
    assert sample("egain_token_ready_reason", **token, reason="TokenIssued") is None


def test_forget_drops_every_series_of_the_token_and_only_those() -> None:
    for name in ("gone", "kept"):
        metrics.set_ready("unit-ns", name, "True", "TokenIssued")
        metrics.count_refresh("unit-ns", name, "success", "TokenIssued")
        metrics.count_refresh("unit-ns", name, "failure", "RateLimited")
        metrics.count_shared("unit-ns", name)
        metrics.set_expiration("unit-ns", name, 1.0)
    metrics.forget("unit-ns", "gone")
    for name, present in (("gone", False), ("kept", True)):
        token = {"namespace": "unit-ns", "name": name}
        found = [
            sample("egain_token_ready_status", **token, condition="True"),
            sample("egain_token_ready_reason", **token, reason="TokenIssued"),
            sample("egain_token_refresh_total", **token, result="success", reason="TokenIssued"),
            sample("egain_token_refresh_total", **token, result="failure", reason="RateLimited"),
            sample("egain_token_shared_refresh_total", **token),
            sample("egain_token_expiration_timestamp_seconds", **token),
        ]
        assert [value is not None for value in found] == [present] * len(found), name
    metrics.forget("unit-ns", "kept")


def test_build_info_names_the_installed_version() -> None:
    assert __version__
    assert sample("egain_token_operator_build_info", version=__version__) == 1.0
