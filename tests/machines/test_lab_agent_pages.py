"""Lab agents from the managers' side: the settings page's section (the token shown once,
revoking), assigning a printer on its print settings page, and the REST API for both,
with its refusals. The protocol agents speak is tested in test_lab_agents.py."""

from __future__ import annotations

import tomllib
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from machines.models import LabAgent, Machine, PrintJob
from machines.printing import agents
from tests.conftest import client_for
from tests.machines.factories import add_member, make_lab
from tests.printing.factories import make_printer, queued_job

pytestmark = pytest.mark.django_db


@pytest.fixture
def lab(alice):
    return make_lab(alice, hours="00:00-00:00")


@pytest.fixture
def printer(lab):
    return make_printer(lab, slug="mk4", name="Prusa MK4")


@pytest.fixture
def direct_printer(lab):
    return make_printer(lab, slug="direct", url="http://192.0.2.10", api_key="k" * 32)


@pytest.fixture
def agent(lab, alice):
    return agents.agent_create(lab=lab, actor=alice, name="Pi by the printers")[0]


@pytest.fixture
def alice_web(alice):
    client = Client()
    client.force_login(alice)
    return client


@pytest.fixture
def bob_web(lab, bob):
    add_member(lab, bob)
    client = Client()
    client.force_login(bob)
    return client


@pytest.fixture
def carol(db):
    from tests.factories import UserFactory

    return UserFactory(username="carol")


@pytest.fixture
def other_lab(carol):
    return make_lab(carol, slug="elsewhere")


def printing_on(printer, owner, tmp_path) -> None:
    job = queued_job(printer.machine.lab, owner, tmp_path)
    PrintJob.objects.filter(pk=job.pk).update(status=PrintJob.Status.PRINTING, machine=printer.machine)


def manage_url(lab) -> str:
    return reverse("lab-manage", args=[lab.slug])


def agents_url(lab) -> str:
    return reverse("lab-agents", args=[lab.slug])


def create(client, lab, name: str = "Pi in the print room"):
    return client.post(agents_url(lab), {"action": "create", "agent-name": name})


# -- the settings page ---------------------------------------------------------------------


def test_the_settings_page_lists_the_lab_agents_with_their_printers(alice, alice_web, lab, agent, printer):
    agents.machine_set_agent(machine=printer.machine, actor=alice, agent=agent)
    LabAgent.objects.filter(pk=agent.pk).update(
        last_seen_at=timezone.now() - timedelta(seconds=3), last_address="10.0.0.7", version="0.3.1"
    )
    page = alice_web.get(manage_url(lab)).content.decode()
    assert "Lab agents" in page
    assert "Pi by the printers" in page and agent.hint in page
    assert "10.0.0.7" in page and "0.3.1" in page
    assert "Prusa MK4" in page and " s ago" in page


def test_an_agent_never_heard_from_reads_never_and_a_quiet_one_silent(alice_web, lab, agent, settings):
    assert "never" in alice_web.get(manage_url(lab)).content.decode()
    LabAgent.objects.filter(pk=agent.pk).update(
        last_seen_at=timezone.now() - timedelta(seconds=settings.FABHUB_AGENT_SILENT_S + 60)
    )
    assert "silent since" in alice_web.get(manage_url(lab)).content.decode()


def test_a_member_gets_no_settings_page_and_cannot_make_an_agent(bob_web, lab):
    assert bob_web.get(manage_url(lab)).status_code == 403
    assert create(bob_web, lab).status_code == 403
    assert not LabAgent.objects.exists()


def test_making_an_agent_shows_its_token_once_in_that_answer_only(alice_web, lab, printer):
    response = create(alice_web, lab)
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    page = response.content.decode()
    agent = LabAgent.objects.get(name="Pi in the print room")
    token = page.split('aria-label="The new agent\'s token"')[0].rsplit('value="', 1)[1].split('"')[0]
    assert token.startswith(agent.hint) and agents.agent_for_token(token) == agent
    assert "copy it now; it is not shown again" in page
    again = alice_web.get(manage_url(lab)).content.decode()
    assert token not in again and agent.hint in again


def test_the_agent_toml_shown_is_valid_and_names_the_hub_the_token_and_the_printers(alice_web, lab, printer):
    page = create(alice_web, lab).content.decode()
    snippet = page.split('aria-label="agent.toml">')[1].split("</textarea>")[0]
    from html import unescape

    config = tomllib.loads(unescape(snippet))
    assert config["hub"]["url"].startswith("http")
    assert agents.agent_for_token(config["hub"]["token"]) is not None
    assert [p["id"] for p in config["printer"]] == [printer.pk]


def test_the_token_is_not_put_in_the_session_or_the_messages(alice_web, lab):
    page = create(alice_web, lab).content.decode()
    token = page.split('aria-label="The new agent\'s token"')[0].rsplit('value="', 1)[1].split('"')[0]
    assert token not in str(dict(alice_web.session.items()))
    assert token not in alice_web.get(manage_url(lab)).content.decode()


def test_a_blank_name_is_refused_on_the_form(alice_web, lab):
    response = create(alice_web, lab, name="   ")
    assert response.status_code == 200 and "This field is required" in response.content.decode()
    assert not LabAgent.objects.exists()


def test_revoking_needs_the_box_ticked_and_then_stops_the_agent(alice_web, lab, agent):
    alice_web.post(agents_url(lab), {"action": "revoke", "agent_id": agent.pk})
    agent.refresh_from_db()
    assert agent.is_active
    response = alice_web.post(agents_url(lab), {"action": "revoke", "agent_id": agent.pk, "confirm": "yes"})
    assert response.status_code == 302
    agent.refresh_from_db()
    assert not agent.is_active
    assert "revoked" in alice_web.get(manage_url(lab)).content.decode()


def test_another_labs_agent_or_a_bad_id_cannot_be_revoked_from_this_page(alice_web, lab, other_lab, carol):
    theirs = agents.agent_create(lab=other_lab, actor=carol, name="Theirs")[0]
    for bad in (theirs.pk, "x", "", "99999"):
        response = alice_web.post(agents_url(lab), {"action": "revoke", "agent_id": bad, "confirm": "yes"})
        assert response.status_code == 404, bad
    theirs.refresh_from_db()
    assert theirs.is_active


# -- assigning a printer on its print settings page -----------------------------------------


def printer_post(machine, **changes) -> dict:
    return {
        "driven_by": "",
        "accepts_jobs": "on",
        "material": "PLA",
        "colour": "",
        "nozzle_mm": "0.40",
        "after_print": "confirm",
        "profile_name": "",
        "slicer_profile": "",
        "serial_port": "",
        "baudrate": "",
        **changes,
    }


def test_a_printer_given_to_an_agent_through_the_form_forgets_its_connection(
    alice_web, lab, agent, direct_printer
):
    machine = direct_printer.machine
    assert machine.connection_secret
    url = reverse("printer-edit", args=[lab.slug, machine.slug])
    response = alice_web.post(url, printer_post(machine, driven_by=str(agent.pk)))
    assert response.status_code == 302
    machine.refresh_from_db()
    assert machine.agent_id == agent.pk and machine.connection_secret == ""
    page = alice_web.get(url).content.decode()
    assert "Pi by the printers" in page and "holds no address or key" in page


def test_the_edit_page_of_a_printer_via_agent_asks_no_url_or_key(alice, alice_web, lab, agent, printer):
    agents.machine_set_agent(machine=printer.machine, actor=alice, agent=agent)
    page = alice_web.get(reverse("machine-edit", args=[lab.slug, printer.machine.slug])).content.decode()
    assert "connection_url" not in page and "connection_api_key" not in page
    assert "holds no address or key" in page and "never" in page


def test_a_url_posted_anyway_to_the_edit_page_of_a_printer_via_agent_is_not_stored(
    alice, alice_web, lab, agent, printer
):
    machine = printer.machine
    agents.machine_set_agent(machine=machine, actor=alice, agent=agent)
    alice_web.post(
        reverse("machine-edit", args=[lab.slug, machine.slug]),
        {
            "name": machine.name,
            "kind": machine.kind,
            "capabilities": "{}",
            "requires_approval": "unknown",
            "connection_url": "http://192.0.2.99",
            "connection_api_key": "x" * 32,
        },
    )
    machine.refresh_from_db()
    assert machine.connection_secret == "" and machine.agent_id == agent.pk


def test_taking_a_printer_back_from_its_agent_sends_the_manager_to_give_its_connection(
    alice, alice_web, lab, agent, printer
):
    agents.machine_set_agent(machine=printer.machine, actor=alice, agent=agent)
    url = reverse("printer-edit", args=[lab.slug, printer.machine.slug])
    response = alice_web.post(url, printer_post(printer.machine, driven_by=""))
    assert response.status_code == 302
    assert response["Location"] == reverse("machine-edit", args=[lab.slug, printer.machine.slug])
    printer.machine.refresh_from_db()
    assert printer.machine.agent_id is None


def test_the_form_offers_neither_revoked_agents_nor_another_labs(
    alice, alice_web, lab, agent, printer, other_lab, carol
):
    revoked = agents.agent_create(lab=lab, actor=alice, name="Old Pi")[0]
    agents.agent_revoke(agent=revoked, actor=alice)
    theirs = agents.agent_create(lab=other_lab, actor=carol, name="Theirs")[0]
    url = reverse("printer-edit", args=[lab.slug, printer.machine.slug])
    assert "Old Pi" not in alice_web.get(url).content.decode()
    for bad in (revoked.pk, theirs.pk, "x"):
        response = alice_web.post(url, printer_post(printer.machine, driven_by=str(bad)))
        assert response.status_code == 200 and "Select a valid choice" in response.content.decode()
    printer.machine.refresh_from_db()
    assert printer.machine.agent_id is None


def test_a_refused_assignment_saves_none_of_the_forms_other_changes(
    alice_web, lab, agent, printer, alice, tmp_path
):
    printing_on(printer, alice, tmp_path)
    url = reverse("printer-edit", args=[lab.slug, printer.machine.slug])
    response = alice_web.post(url, printer_post(printer.machine, driven_by=str(agent.pk), material="PETG"))
    assert response.status_code == 200 and "holds a print job" in response.content.decode()
    printer.refresh_from_db()
    assert printer.material == "PLA" and printer.machine.agent_id is None


def test_the_machine_page_shows_a_manager_its_agents_last_contact(alice, alice_web, lab, agent, printer):
    agents.machine_set_agent(machine=printer.machine, actor=alice, agent=agent)
    LabAgent.objects.filter(pk=agent.pk).update(last_seen_at=timezone.now())
    page = alice_web.get(reverse("machine-detail", args=[lab.slug, printer.machine.slug])).content.decode()
    assert "through the lab agent Pi by the printers" in page and " s ago" in page


# -- the REST API ------------------------------------------------------------------------------


def api_agents(lab) -> str:
    return f"/api/labs/{lab.slug}/agents/"


def api_assign(machine) -> str:
    return f"/api/labs/{machine.lab.slug}/machines/{machine.slug}/agent/"


def test_a_manager_makes_an_agent_and_gets_its_token_once(alice_api, lab):
    response = alice_api.post(api_agents(lab), {"name": "Pi"}, format="json")
    assert response.status_code == 201 and response["Cache-Control"] == "no-store"
    body = response.json()
    assert agents.agent_for_token(body["token"]).pk == body["id"]
    listed = alice_api.get(api_agents(lab)).json()
    assert [a["name"] for a in listed] == ["Pi"] and "token" not in listed[0]
    assert listed[0]["active"] is True and listed[0]["silent"] is True


def test_the_list_names_each_agents_printers(alice, alice_api, lab, agent, printer):
    agents.machine_set_agent(machine=printer.machine, actor=alice, agent=agent)
    (row,) = alice_api.get(api_agents(lab)).json()
    assert row["printers"] == [{"id": printer.pk, "machine": "mk4", "name": "Prusa MK4"}]


def test_a_manager_revokes_an_agent(alice_api, lab, agent):
    assert alice_api.delete(f"{api_agents(lab)}{agent.pk}/").status_code == 204
    agent.refresh_from_db()
    assert not agent.is_active
    assert alice_api.delete(f"{api_agents(lab)}{agent.pk}/").status_code == 204  # twice: no change


def test_a_manager_assigns_a_printer_and_takes_it_back(alice_api, lab, agent, direct_printer):
    machine = direct_printer.machine
    response = alice_api.put(api_assign(machine), {"agent": agent.pk}, format="json")
    assert response.status_code == 200
    assert response.json() == {
        "machine": "direct",
        "machine_id": machine.pk,
        "agent": agent.pk,
        "agent_name": agent.name,
    }
    machine.refresh_from_db()
    assert machine.agent_id == agent.pk and machine.connection_secret == ""
    assert alice_api.put(api_assign(machine), {"agent": None}, format="json").json()["agent"] is None
    assert Machine.objects.get(pk=machine.pk).agent_id is None


@pytest.mark.parametrize("who", ["member", "other_manager", "stranger"])
def test_anyone_but_the_labs_managers_is_refused(who, lab, agent, printer, bob, carol, other_lab):
    if who == "member":
        add_member(lab, bob)
    client = client_for(carol if who == "other_manager" else bob)
    assert client.get(api_agents(lab)).status_code == 403
    assert client.post(api_agents(lab), {"name": "Mine"}, format="json").status_code == 403
    assert client.delete(f"{api_agents(lab)}{agent.pk}/").status_code == 403
    assert client.put(api_assign(printer.machine), {"agent": agent.pk}, format="json").status_code == 403
    assert client.put(api_assign(printer.machine), {"agent": None}, format="json").status_code == 403
    agent.refresh_from_db()
    printer.machine.refresh_from_db()
    assert agent.is_active and printer.machine.agent_id is None
    assert list(LabAgent.objects.filter(lab=lab).values_list("name", flat=True)) == ["Pi by the printers"]


def test_anonymous_requests_are_refused(api, lab, agent):
    assert api.get(api_agents(lab)).status_code in (401, 403)
    assert api.post(api_agents(lab), {"name": "x"}, format="json").status_code in (401, 403)


def test_another_labs_agent_is_not_found(alice_api, lab, printer, other_lab, carol):
    theirs = agents.agent_create(lab=other_lab, actor=carol, name="Theirs")[0]
    assert alice_api.delete(f"{api_agents(lab)}{theirs.pk}/").status_code == 404
    assert alice_api.put(api_assign(printer.machine), {"agent": theirs.pk}, format="json").status_code == 404
    theirs.refresh_from_db()
    assert theirs.is_active and printer.machine.agent_id is None


def test_a_revoked_agent_cannot_be_given_a_printer(alice, alice_api, lab, agent, printer):
    agents.agent_revoke(agent=agent, actor=alice)
    response = alice_api.put(api_assign(printer.machine), {"agent": agent.pk}, format="json")
    assert response.status_code == 400 and "active agent" in response.json()["detail"]


@pytest.mark.parametrize(
    "body",
    [{"agent": "1"}, {"agent": "x"}, {"agent": True}, {"agent": 1.5}, {"agent": 0}, {"agent": -3},
     {"agent": 2**70}, {}, {"agent": [1]}, {"other": 1}],
)  # fmt: skip
def test_a_malformed_assignment_is_a_400(alice_api, lab, agent, printer, body):
    response = alice_api.put(api_assign(printer.machine), body, format="json")
    assert response.status_code == 400, response.content


@pytest.mark.parametrize(
    "body", [{}, {"name": ""}, {"name": "  "}, {"name": "x" * 101}, {"name": 5}, {"name": None}]
)
def test_a_malformed_new_agent_is_a_400(alice_api, lab, body):
    assert alice_api.post(api_agents(lab), body, format="json").status_code == 400
    assert not LabAgent.objects.exists()


@pytest.mark.parametrize("path", ["x/", "0/", "99999999999999999999999/", "-1/"])
def test_a_bad_agent_id_in_the_path_is_a_404(alice_api, lab, path):
    assert alice_api.delete(f"{api_agents(lab)}{path}").status_code == 404


def test_an_unknown_lab_or_machine_is_a_404(alice_api, lab, agent):
    assert alice_api.get("/api/labs/nowhere/agents/").status_code == 404
    assert (
        alice_api.put(
            f"/api/labs/{lab.slug}/machines/none/agent/", {"agent": None}, format="json"
        ).status_code
        == 404
    )


def test_a_printer_holding_a_job_keeps_its_driver(alice, alice_api, lab, agent, printer, tmp_path):
    printing_on(printer, alice, tmp_path)
    assert alice_api.put(api_assign(printer.machine), {"agent": agent.pk}, format="json").status_code == 409


def test_the_agent_list_reads_a_fixed_number_of_queries(
    alice, alice_api, lab, printer, django_assert_max_num_queries
):
    for n in range(5):
        made = agents.agent_create(lab=lab, actor=alice, name=f"Pi {n}")[0]
        if n == 0:
            agents.machine_set_agent(machine=printer.machine, actor=alice, agent=made)
    with django_assert_max_num_queries(8):
        assert len(alice_api.get(api_agents(lab)).json()) == 5
