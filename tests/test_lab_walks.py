"""The lab's rules for a DNS message's random ID and cookie (netsim.lab.compare) and the walk
comparison by capture point (netsim.lab.walks), on model traces: no root needed."""

from __future__ import annotations

from dataclasses import replace

import netsim
from netsim.cluster.dns import resolv_conf
from netsim.lab.compare import compare, dns_random_differences
from netsim.lab.exchanges import model_lookup
from netsim.lab.walks import walk_differences
from netsim.programs.dns import query
from netsim.programs.resolver import Resolve


def _lookup(name: str, seed: str):
    c = netsim.reference_cluster()
    program = Resolve(name, resolv_conf(c, "pod-a"), seed=seed)
    return c.network.run([("pod-a", program)], cold=True)


def test_another_seed_gives_other_query_ids_and_the_same_walk():
    a, _ = model_lookup(netsim.reference_cluster(), "pod-a", "web")
    b = _lookup("web", "another seed")
    ids = [{h.ip.payload.payload_bytes()[:2] for h in t.hops if h.where == "pod-a/eth0" and h.direction == "tx" and h.ip is not None}
           for t in (a, b)]
    assert ids[0] and ids[0].isdisjoint(ids[1])
    assert compare(a, b).ok
    assert walk_differences(a, b) == []


def test_another_question_is_a_difference():
    a, _ = model_lookup(netsim.reference_cluster(), "pod-a", "web")
    b = _lookup("web.default", "pod-a")
    assert any(d.field == "dns message" for d in compare(a, b).differences)
    assert any(line.startswith("pod-a/eth0/tx frame 1:") for line in walk_differences(a, b))


def test_a_reply_must_carry_its_querys_id():
    q = query(7, "web.default.svc.cluster.local")
    reply = replace(q, qr=True)
    assert dns_random_differences([q, reply], [replace(q, id=9), replace(reply, id=9)]) == []
    assert dns_random_differences([q, reply], [replace(q, id=9), replace(reply, id=10)]) == [
        ("dns id of message 2", "=0", "new")]
