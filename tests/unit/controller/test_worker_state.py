"""What a worker keeps of its EgainToken, and what wakes it."""

from __future__ import annotations

from egain_token_operator.controller.observe import TokenWorker, Wake

BODY = {
    "apiVersion": "egain.cloud/v1alpha1",
    "kind": "EgainToken",
    "metadata": {"namespace": "ns", "name": "portal", "uid": "u-1", "generation": 2},
    "spec": {"scopes": ["s"]},
    "status": {"observedGeneration": 1, "conditions": [{"type": "Ready", "status": "True"}]},
}


def test_the_status_is_kept_apart_and_read_back_whole() -> None:
    worker = TokenWorker(("ns", "portal"), BODY)
    assert "status" not in worker.manifest
    assert worker.status == BODY["status"]
    assert worker.body == BODY
    assert (worker.uid, worker.generation) == ("u-1", 2)
    worker.status = {"observedGeneration": 2}
    assert worker.body == {**BODY, "status": {"observedGeneration": 2}}
    worker.body = {k: v for k, v in BODY.items() if k != "status"}  # a token not yet looked at
    assert worker.status == {} and "status" not in worker.body


def test_a_wake_set_while_asleep_resumes_once_and_is_kept_until_cleared() -> None:
    wake, resumed = Wake(), list[int]()
    wake.set()  # during a look: no resume, the flag says "look again"
    assert wake.is_set() and resumed == []
    wake.clear()
    wake.sleep(lambda: resumed.append(1))
    assert resumed == [] and not wake.is_set()
    wake.set()
    wake.set()  # resumed once: the second set only keeps the flag
    assert resumed == [1] and wake.is_set()
    wake.clear()
    wake.sleep(lambda: resumed.append(2))
    wake.sleep(None)  # no longer asleep (its timer fired, or it stood by)
    wake.set()
    assert resumed == [1]
