"""`clean` goes on past a network Docker will not remove, and says why (a fake Docker client: the point is clean's
own handling; the real daemon gave "has active endpoints" for a network with no container on it)."""

from __future__ import annotations

import docker

from harness.labels import RUN_LABEL, clean


class Net:
    def __init__(self, name: str, stuck: bool):
        self.name, self.stuck, self.removed = name, stuck, False
        self.attrs = {"Labels": {RUN_LABEL: name}}
        self.containers: list = []

    def remove(self):
        if self.stuck:
            raise docker.errors.APIError("403", explanation=f"network {self.name} has active endpoints")
        self.removed = True

    def reload(self):
        pass


class Client:
    def __init__(self, nets):
        self.nets = nets
        api = type("Api", (), {})()
        api.containers = lambda all, filters: []
        api.remove_container = lambda cid, force, v: None
        self.api = api
        self.networks = type("Networks", (), {"list": lambda _, filters: self.nets})()


def test_a_network_docker_refuses_is_reported_and_the_others_are_still_removed():
    nets = [Net("a", stuck=True), Net("b", stuck=False)]
    stuck: list[str] = []
    assert clean("x", client=Client(nets), stuck=stuck) == (0, 1)
    assert nets[1].removed and stuck == ["network a cannot be removed: network a has active endpoints"]
    assert clean("x", client=Client([Net("c", stuck=True)])) == (0, 0)  # without a list to tell: no exception
