"""`cophub dns` (up to the exec into the resolver, and for real), and the demo's filter."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.core.management import call_command

from cophub.netfilter import demo, services
from cophub.netfilter.management.commands import dns as dns_command
from cophub.netfilter.models import ClientGroup, FilterList, ListSource, ListStatus


@pytest.fixture(autouse=True)
def _state(settings, tmp_path):
    settings.COPHUB_NETFILTER_DIR = tmp_path / "netfilter"
    return services.state_dir()


class _Exec(Exception):
    pass


@pytest.fixture
def execv(monkeypatch):
    """Stop at the exec boundary and keep the argv the resolver would have been started with."""
    calls = []

    def fake_exec(argv):
        calls.append((argv[0], list(argv)))
        raise _Exec

    monkeypatch.setattr(dns_command, "exec_resolver", fake_exec)
    return calls


def test_dns_compiles_publishes_and_execs_the_resolver(units, execv):
    with pytest.raises(_Exec):
        call_command("dns")
    [(path, argv)] = execv
    state = str(services.state_dir())
    assert path == sys.executable
    assert argv == [sys.executable, "-m", "cophub.netfilter.resolver", "--state-dir", state, "--host", "::", "--port", "53"]
    # The hub's list is made for the home unit and compiled; the policy names the table.
    hub = FilterList.objects.get(source=ListSource.HUB)
    assert hub.status == ListStatus.OK
    policy = json.loads((services.state_dir() / "policy.json").read_text())
    assert policy["rules"]["bin"] == services.current_compiled()["bin"]


def test_dns_options_and_a_second_start_only_publishes(units, execv, tmp_path, settings):
    other = tmp_path / "elsewhere"
    with pytest.raises(_Exec):
        call_command("dns", "--host", "127.0.0.1", "--host", "::1", "--port", "5353", "--block-page-port", "8081",
                     "--state-dir", str(other))
    argv = execv[-1][1]
    assert argv[3:] == ["--state-dir", str(other.resolve()), "--host", "127.0.0.1", "--host", "::1", "--port", "5353",
                        "--block-page-port", "8081"]
    first = json.loads((other / "policy.json").read_text())
    compiled = services.current_compiled()
    with pytest.raises(_Exec):
        call_command("dns", "--state-dir", str(other))
    second = json.loads((other / "policy.json").read_text())
    assert second["version"] != first["version"]
    assert services.current_compiled() == compiled  # not compiled again


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_published_snapshot_runs_the_real_resolver(units, tmp_path):
    """What `cophub dns` execs, on what it published: the resolver starts from the state folder and answers.

    (The command itself cannot run in a subprocess here: the test database is
    in this process's memory.)"""
    import dns.exception
    import dns.message
    import dns.query
    import dns.rcode

    demo.seed(units["school_a"])
    state = services.state_dir()
    port = _free_udp_port()
    env = dict(os.environ, COPHUB_NETFILTER_DIR=str(state))
    process = subprocess.Popen(
        [sys.executable, "-m", "cophub.netfilter.resolver", "--state-dir", str(state), "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 15
        answer = None
        while time.monotonic() < deadline:
            try:
                answer = dns.query.udp(dns.message.make_query("adult-example.test", "A"), "127.0.0.1", port=port, timeout=0.5)
                break
            except (dns.exception.Timeout, ConnectionRefusedError, OSError):
                if process.poll() is not None:
                    break
                time.sleep(0.2)
        assert answer is not None, process.stderr.read().decode() if process.poll() is not None else "no answer"
        assert answer.rcode() == dns.rcode.NXDOMAIN  # the guests' (default) group blocks adult content
    finally:
        process.terminate()
        process.wait(10)


def test_demo_seed_is_safe_to_run_again(units):
    school = units["school_b"]
    made = demo.seed(school)
    assert made["lists"] == 2 and made["groups"] == 4
    names = set(ClientGroup.objects.filter(unit=school).values_list("name", flat=True))
    assert names == {"Khối 6", "Khối 9", "Giáo viên", "Khách"}
    k6 = ClientGroup.objects.get(unit=school, name="Khối 6")
    assert {(s.start.hour, s.end.hour, s.block_all) for s in k6.slots.all()} == {(22, 6, True), (7, 17, False)}
    assert [r.cidr for r in k6.ranges.all()] == ["10.6.0.0/16"]
    lists = {fl.category: fl for fl in FilterList.objects.all()}
    assert lists["adult"].status == ListStatus.OK and lists["adult"].rule_count == 6
    assert lists["gambling"].rule_count == 6 and lists["harmful"].source == ListSource.HUB
    policy = services.published_policy()
    assert policy["rules"] and len(policy["groups"]) == 4
    assert policy["settings"]["default_group"] == ClientGroup.objects.get(unit=school, name="Khách").pk
    again = demo.seed(school)
    assert again["lists"] == 0 and again["groups"] == 0
    assert FilterList.objects.count() == 3 and ClientGroup.objects.count() == 4
    assert Path(services.state_dir() / policy["rules"]["bin"]).exists()


def test_netfilter_lists_command(units, capsys):
    services.ensure_hub_list(units["school_a"])
    call_command("netfilter_lists", "--compile", "--ingest", "--expire", "--refresh")
    out = capsys.readouterr().out
    assert "compiled " in out and "ingested: {'files': 0" in out and "refreshed: nothing due" in out
    assert services.current_compiled() is not None
    call_command("netfilter_lists")
    assert "published " in capsys.readouterr().out
