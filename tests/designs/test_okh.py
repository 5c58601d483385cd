"""Open Know-How manifests: one per design and per release, built from what the hub knows,
a committed okh.toml checked field by field and preferred, private designs never shown,
and the flat list of manifest addresses that OKH crawlers read."""

from __future__ import annotations

import io
import tomllib

import pytest
import trimesh
from django.core.management import call_command
from django.urls import reverse

from designs import okh, services
from designs.models import Design, Licence
from tests.api.querycounts import MANY, get_counting_queries
from tests.factories import DesignFactory, UserFactory, commit_files

pytestmark = pytest.mark.django_db

REQUIRED = ("okhv", "name", "repo", "version", "license", "licensor", "function")
TOML = "application/toml; charset=utf-8"


def box_stl(x: float, y: float, z: float) -> bytes:
    return trimesh.creation.box(extents=[x, y, z]).export(file_type="stl")


def manifest_text(client, *args: str, status: int = 200) -> str:
    name = "design-okh" if len(args) == 2 else "design-release-okh"
    response = client.get(reverse(name, args=args))
    assert response.status_code == status, response.content[:500]
    if status == 200:
        assert response["Content-Type"] == TOML
    return response.content.decode()


def manifest(client, *args: str) -> dict:
    return tomllib.loads(manifest_text(client, *args))


def flat_list(client) -> list[str]:
    response = client.get(reverse("okh-manifests"))
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    return response.content.decode().splitlines()


@pytest.fixture
def bracket(alice):
    design = DesignFactory(
        owner=alice,
        slug="bracket",
        title="Wall bracket",
        summary="Holds a shelf to a wall.",
        licence=Licence.CC_BY,
    )
    commit_files(
        design,
        {
            "README.md": "# Bracket\n",
            "bom.csv": "part,qty\nM4 screw,2\n",
            "photos/front.jpg": b"\xff\xd8\xff\xe0" + b"\0" * 16,
            "parts/arm.stl": box_stl(10, 20, 30),
            "parts/arm.scad": "cube([10, 20, 30]);\n",
        },
    )
    return Design.objects.get(pk=design.pk)


def okh_file(design: Design, text: str | bytes) -> str:
    return commit_files(design, {"okh.toml": text}, "Describe it for OKH")


# -- every demo design ----------------------------------------------------------------------


@pytest.mark.usefixtures("background_tasks_run")
def test_every_demo_design_s_manifest_parses_and_carries_the_required_fields(client, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    call_command("demo", stdout=io.StringIO())
    designs = list(Design.objects.select_related("owner"))
    assert len(designs) >= 3
    releases = 0
    for design in designs:
        data = manifest(client, design.owner.username, design.slug)
        for name in REQUIRED:
            assert isinstance(data.get(name), str) and data[name].strip(), (design, name)
        assert data["okhv"] == "2.4"
        assert data["license"] == design.licence and okh.valid_licence_expression(data["license"])
        assert data["repo"] == "http://testserver" + reverse(
            "design-detail", args=[design.owner.username, design.slug]
        )
        assert data["part"] and all(part["tsdc"] == "3DP" for part in data["part"])
        for tag in design.repo.tags():
            release = manifest(client, design.owner.username, design.slug, tag.name)
            assert release["version"] == tag.name
            assert all(isinstance(release.get(name), str) for name in REQUIRED)
            releases += 1
    assert releases >= 1, "the demo has releases, and their manifests were read"


# -- what the hub derives ---------------------------------------------------------------------


@pytest.mark.usefixtures("background_tasks_run")
def test_the_manifest_holds_readme_bom_images_and_parts_with_figures_from_the_analysis(client, bracket):
    head = bracket.repo.resolve("main")
    data = manifest(client, "alice", "bracket")
    raw = "http://testserver" + reverse("design-raw", args=["alice", "bracket", "README.md"])
    assert data["name"] == "Wall bracket"
    assert data["function"] == "Holds a shelf to a wall."  # the summary, until the owner says better
    assert data["license"] == "CC-BY-4.0"
    assert data["licensor"] == "Alice Maker <http://testserver/?owner=alice>"
    assert data["version"] == head[:10]  # no release yet: the commit
    assert data["readme"] == f"{raw}?ref={head}"
    assert data["bom"].endswith(f"/bom.csv?ref={head}")
    assert [image["location"].rsplit("/", 1)[-1] for image in data["image"]] == [f"front.jpg?ref={head}"]
    [part] = data["part"]
    assert part["name"] == "parts/arm"
    assert part["tsdc"] == "3DP"
    assert part["export"][0].endswith(f"/parts/arm.stl?ref={head}")
    assert part["source"][0].endswith(f"/parts/arm.scad?ref={head}")
    assert sorted(part["outer-dimensions"].values()) == [10.0, 20.0, 30.0]
    assert part["mass"] == pytest.approx(6.0 * 1.24, abs=0.1)  # 6 cm³ of PLA, the assumption
    assert data["mass"] == part["mass"]
    assert data["outer-dimensions"] == part["outer-dimensions"]
    assert "release" not in data and "fork-of" not in data


def test_the_owner_s_settings_fill_function_readiness_and_language(client, alice, bracket):
    services.design_update(
        design=bracket,
        okh_function="Carries 20 kg of books.",
        okh_technology_readiness="OTRL-4",
        okh_documentation_readiness="ODRL-3*",
        okh_documentation_language="en-GB",
    )
    data = manifest(client, "alice", "bracket")
    assert data["function"] == "Carries 20 kg of books."
    assert data["technology-readiness-level"] == "OTRL-4"
    assert data["documentation-readiness-level"] == "ODRL-3*"
    assert data["documentation-language"] == "en-GB"


def test_a_release_manifest_has_the_tag_as_version_and_the_release_address(client, alice, bracket):
    services.tag_create(design=bracket, user=alice, name="v1.0", target="main", notes="First")
    at_tag = manifest(client, "alice", "bracket")
    assert at_tag["version"] == "v1.0"  # the default branch's head is the release itself
    assert at_tag["release"].endswith("/tags/#v1.0")
    commit_files(bracket, {"README.md": "# Bracket, better\n"})
    head = bracket.repo.resolve("main")
    release = manifest(client, "alice", "bracket", "v1.0")
    assert release["version"] == "v1.0"
    assert (
        release["release"]
        == "http://testserver" + reverse("design-tags", args=["alice", "bracket"]) + "#v1.0"
    )
    assert release["readme"].endswith(f"?ref={bracket.repo.resolve('v1.0')}")
    past = manifest(client, "alice", "bracket")
    assert past["version"] == f"v1.0-1-g{head[:10]}"
    assert "release" not in past
    page = client.get(reverse("design-tags", args=["alice", "bracket"])).content.decode()
    assert reverse("design-release-okh", args=["alice", "bracket", "v1.0"]) in page
    manifest_text(client, "alice", "bracket", "v9.9", status=404)


def test_a_fork_names_its_public_upstream(client, bob, bracket):
    fork = services.design_fork(design=bracket, user=bob)
    data = manifest(client, "bob", fork.slug)
    assert data["fork-of"] == "http://testserver" + reverse("design-detail", args=["alice", "bracket"])


def test_the_public_address_setting_makes_every_address_absolute_on_it(client, settings, bracket):
    settings.FABHUB_PUBLIC_URL = "https://hub.example.org/"
    data = manifest(client, "alice", "bracket")
    assert data["repo"] == "https://hub.example.org/alice/bracket/"
    assert flat_list(client) == ["https://hub.example.org/alice/bracket/okh.toml"]


def test_the_design_page_links_its_manifest(client, bracket):
    page = client.get(reverse("design-detail", args=["alice", "bracket"])).content.decode()
    assert reverse("design-okh", args=["alice", "bracket"]) in page


def test_an_empty_design_has_no_manifest_and_is_not_listed(client, alice):
    DesignFactory(owner=alice, slug="empty")
    manifest_text(client, "alice", "empty", status=404)
    assert flat_list(client) == []


# -- the owner's okh.toml -------------------------------------------------------------------


def test_the_owner_s_okh_toml_wins_over_the_derived_values(client, alice, bracket):
    okh_file(
        bracket,
        """
okhv = "2.4"
name = "Heavy bracket"
version = "99"
function = "Holds heavy shelves."
license = "CERN-OHL-W-2.0 OR CC-BY-4.0"
licensor = ["Alice Maker", "Bob Builder"]
organization = "Alice's workshop"
mass = 12.5

[outer-dimensions]
width = 100
depth = 50.5
height = 3

[[part]]
name = "arm"
export = ["parts/arm.stl"]
material = "PETG"
""",
    )
    text = manifest_text(client, "alice", "bracket")
    assert "problems" not in text
    data = tomllib.loads(text)
    assert data["okhv"] == "2.4"
    assert data["name"] == "Heavy bracket"
    assert data["function"] == "Holds heavy shelves."
    assert data["license"] == "CERN-OHL-W-2.0 OR CC-BY-4.0"
    assert data["licensor"] == ["Alice Maker", "Bob Builder"]
    assert data["organization"] == "Alice's workshop"
    assert data["mass"] == 12.5
    assert data["outer-dimensions"] == {"width": 100, "depth": 50.5, "height": 3}
    assert data["version"] == bracket.repo.resolve("main")[:10]  # always the hub's
    [part] = data["part"]  # matched to the hub's part by its file
    assert part["name"] == "arm" and part["material"] == "PETG"
    assert part["printing-process"] == "FDM"
    assert part["export"] == ["parts/arm.stl"]
    assert part["tsdc"] == "3DP"  # what the owner left out, the hub fills in
    assert okh.okh_problems(bracket) == []


def test_wrong_types_in_the_owner_s_okh_toml_give_an_error_per_field(client, alice, bracket):
    okh_file(
        bracket,
        """
name = 42
function = ""
license = "my own licence"
licensor = [1, 2]
mass = "heavy"
documentation-language = "English please"
technology-readiness-level = "OTRL-9"
colour = "red"

[outer-dimensions]
width = 10
height = -1

[[part]]
material = "PLA"

[[part]]
name = "arm"
printing-process = "laser"
""",
    )
    problems = okh.okh_problems(bracket)
    assert problems == [
        "name: must be a string",
        "function: must not be empty",
        "license: must be an SPDX licence expression, e.g. CERN-OHL-S-2.0 or LicenseRef-Mine",
        "licensor: must be a string or a list of non-empty strings",
        "mass: must be a number of grams",
        "documentation-language: must be a BCP 47 language tag, e.g. en or en-GB",
        "technology-readiness-level: must be one of OTRL-1, OTRL-2, OTRL-3, OTRL-4, OTRL-5, OTRL-6, OTRL-7, OTRL-8",
        "colour: not an OKH 2.4 field; left out",
        "outer-dimensions.depth: missing (OKH needs all three, in millimetres)",
        "outer-dimensions.height: must be a number of millimetres",
        "part[1].name: required",
        "part[1]: left out",
        "part[2].printing-process: must be one of FDM, SLA, SLS, MJF, DMLS",
        "part[2]: left out",
    ]
    text = manifest_text(client, "alice", "bracket")
    assert "#   - mass: must be a number of grams" in text
    data = tomllib.loads(text)  # still a valid manifest: the hub's values stand in
    assert data["name"] == "Wall bracket"
    assert data["license"] == "CC-BY-4.0"
    assert data["function"] == "Holds a shelf to a wall."
    assert "colour" not in data
    assert [part["name"] for part in data["part"]] == ["parts/arm"]


def test_the_settings_page_lists_the_problems_of_the_committed_okh_toml(client, alice, bracket):
    okh_file(bracket, "mass = true\n")
    client.force_login(alice)
    page = client.get(reverse("design-settings", args=["alice", "bracket"])).content.decode()
    assert "mass: must be a number of grams" in page
    assert reverse("design-okh", args=["alice", "bracket"]) in page


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"name = \n", "okh.toml: not valid TOML"),
        (b"\xff\xfe name", "okh.toml: not UTF-8 text"),
        (b"x = " + b"[" * 20000 + b"]" * 20000 + b"\n", "okh.toml: "),
        (b"# " + b"x" * (70 * 1024) + b"\n", "the hub reads"),
        (b"mass = nan\n", "mass: must be a number of grams"),
        (b'"a\\nname = \\"evil\\"" = 1\n', "not an OKH 2.4 field"),
    ],
    ids=["malformed", "not-utf8", "nested-deeply", "oversized", "nan", "line-break-in-a-key"],
)
def test_a_hostile_okh_toml_gives_a_clear_problem_and_never_a_500(client, alice, bracket, content, problem):
    okh_file(bracket, content)
    problems = okh.okh_problems(bracket)
    assert problems and problem in problems[0], problems
    text = manifest_text(client, "alice", "bracket")
    data = tomllib.loads(text)
    assert data["name"] == "Wall bracket"  # nothing of the file's made it in
    assert all(line.startswith("#") for line in text.split("\n\n", 1)[0].splitlines())
    client.force_login(alice)
    assert client.get(reverse("design-settings", args=["alice", "bracket"])).status_code == 200


def test_the_parser_alone_refuses_oversized_input_before_reading_it():
    values, problems = okh.okh_parse(b"name = 'x'\n" * 10000)
    assert values == {} and "64 KiB" in problems[0]


# -- privacy and the flat list --------------------------------------------------------------


def test_a_private_design_s_manifest_is_a_404_to_strangers_and_never_listed(client, alice, bob):
    secret = DesignFactory(owner=alice, slug="secret", visibility=Design.Visibility.PRIVATE)
    commit_files(secret, {"README.md": "# S\n"})
    services.tag_create(design=secret, user=alice, name="v1", target="main", notes="")
    manifest_text(client, "alice", "secret", status=404)
    manifest_text(client, "alice", "secret", "v1", status=404)
    client.force_login(bob)
    manifest_text(client, "alice", "secret", status=404)
    client.force_login(alice)
    assert manifest(client, "alice", "secret")["name"] == "Secret"
    assert flat_list(client) == []


def test_the_flat_list_has_each_public_design_and_each_release_one_per_line(client, alice, bob, bracket):
    services.tag_create(design=bracket, user=alice, name="v1.0", target="main", notes="")
    services.tag_create(design=bracket, user=alice, name="v2.0", target="main", notes="")
    other = DesignFactory(owner=bob, slug="clamp")
    commit_files(other, {"README.md": "# Clamp\n"})
    base = "http://testserver"
    assert flat_list(client) == [
        base + reverse("design-okh", args=["alice", "bracket"]),
        base + reverse("design-release-okh", args=["alice", "bracket", "v1.0"]),
        base + reverse("design-release-okh", args=["alice", "bracket", "v2.0"]),
        base + reverse("design-okh", args=["bob", "clamp"]),
    ]
    for url in flat_list(client):
        assert client.get(url.removeprefix(base)).status_code == 200


def test_the_flat_list_takes_the_same_queries_for_one_design_as_for_many(client):
    def add(n: int) -> None:
        for _ in range(n):
            design = DesignFactory(owner=UserFactory())
            commit_files(design, {"README.md": "# x\n"})

    add(1)
    one, response = get_counting_queries(client, reverse("okh-manifests"))
    assert len(response.content.decode().splitlines()) == 1
    add(MANY - 1)
    many, response = get_counting_queries(client, reverse("okh-manifests"))
    assert len(response.content.decode().splitlines()) == MANY
    assert many == one


# -- settings and API -----------------------------------------------------------------------


def test_the_settings_form_saves_the_okh_fields_and_refuses_a_bad_language(client, alice, bracket):
    client.force_login(alice)
    url = reverse("design-settings", args=["alice", "bracket"])
    form = {
        "action": "update",
        "title": "Wall bracket",
        "licence": "CC-BY-4.0",
        "visibility": "public",
        "default_branch": "main",
        "okh_function": "Holds shelves.",
        "okh_technology_readiness": "OTRL-5",
        "okh_documentation_readiness": "",
        "okh_documentation_language": "de",
    }
    assert client.post(url, form).status_code == 302
    bracket.refresh_from_db()
    assert (bracket.okh_function, bracket.okh_technology_readiness, bracket.okh_documentation_language) == (
        "Holds shelves.",
        "OTRL-5",
        "de",
    )
    response = client.post(url, {**form, "okh_documentation_language": "not a language"})
    assert response.status_code == 200
    assert "is not a BCP 47 language tag" in response.content.decode()


def test_the_api_reads_and_writes_the_okh_fields_and_gives_the_manifest_address(alice_api, bracket):
    url = reverse("api-design-detail", args=["alice", "bracket"])
    response = alice_api.patch(
        url,
        {
            "okh_function": "Holds shelves.",
            "okh_documentation_readiness": "ODRL-2",
            "okh_documentation_language": "fr",
        },
        format="json",
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["okh_function"] == "Holds shelves."
    assert body["okh_documentation_readiness"] == "ODRL-2"
    assert body["okh_documentation_language"] == "fr"
    assert body["okh_technology_readiness"] == ""
    assert body["okh_url"] == "http://testserver" + reverse("design-okh", args=["alice", "bracket"])
    refused = alice_api.patch(url, {"okh_documentation_language": "x y"}, format="json")
    assert refused.status_code == 400
    assert alice_api.patch(url, {"okh_technology_readiness": "OTRL-12"}, format="json").status_code == 400
