from collections.abc import Callable
from pathlib import Path

import pytest

from dialer.config.loader import (
    DATABASE_URL_ENV,
    ConfigError,
    ConfigFileError,
    ConfigIssue,
    ConfigValidationError,
    config_files,
    load_campaign,
    load_campaign_dir,
    load_config,
    validate_paths,
)
from dialer.config.models import CampaignType, DialingMode

REPO = Path(__file__).resolve().parents[2]

CAMPAIGN = """\
name: {name}
type: survey
trunk: PJSIP/{{number}}@carrier
caller_id: "+15550100"
queue: sales
"""

CONFIG = """\
ami:
  - username: dialer
    secret: s3cret
"""


@pytest.fixture(autouse=True)
def _no_database_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DATABASE_URL_ENV, raising=False)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def issues_of(load: Callable[[Path], object], path: Path) -> list[ConfigIssue]:
    with pytest.raises(ConfigError) as caught:
        load(path)
    return caught.value.issues


def test_shipped_sample_files_are_valid() -> None:
    config = load_config(REPO / "config" / "dialer.yaml")
    assert config.ami[0].host == "127.0.0.1" and config.ami[0].port == 5038
    assert config.ami[0].username == "dialer" and config.ami[0].secret_env == "DIALER_AMI_SECRET"
    assert config.campaign_dir == REPO / "campaigns"
    assert config.database.url == f"sqlite+aiosqlite:///{REPO}/var/dialer.db"
    campaign = load_campaign(REPO / "campaigns" / "sample.yaml")
    assert campaign.type is CampaignType.telemarketing
    assert campaign.dial_string("5551234") == "PJSIP/5551234@carrier"
    assert campaign.queue == "sales"
    assert campaign.dialing.mode is DialingMode.progressive
    assert (campaign.dialing.ring_timeout, campaign.dialing.max_lines) == (20, 10)
    assert validate_paths([REPO / "config", REPO / "campaigns"]) == []


def test_issue_renders_file_line_field_message() -> None:
    assert str(ConfigIssue(Path("c.yaml"), 4, "dialing.max_lines", "too big")) == (
        "c.yaml:4: dialing.max_lines: too big"
    )
    assert str(ConfigIssue(Path("c.yaml"), 2, "", "duplicate key")) == "c.yaml:2: duplicate key"
    assert str(ConfigIssue(Path("d"), None, "", "not a directory")) == "d: not a directory"


def test_wrong_type_nested_field_has_exact_line(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", CAMPAIGN.format(name="c") + "dialing:\n  mode: ratio\n  max_lines: ten\n")
    [issue] = issues_of(load_campaign, path)
    assert (issue.file, issue.line, issue.field) == (path, 8, "dialing.max_lines")
    assert issue.message == (
        "Input should be a valid integer, unable to parse string as an integer (got 'ten')"
    )


def test_out_of_range_nested_value(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", CAMPAIGN.format(name="c") + "dialing:\n  ring_timeout: 500\n")
    [issue] = issues_of(load_campaign, path)
    assert str(issue) == f"{path}:7: dialing.ring_timeout: Input should be less than or equal to 120 (got 500)"


def test_missing_required_key_points_at_the_parent_mapping(tmp_path: Path) -> None:
    path = write(tmp_path / "d.yaml", "# daemon\nami:\n  - host: 10.0.0.1\n    secret: x\n")
    [issue] = issues_of(load_config, path)
    assert (issue.line, issue.field, issue.message) == (3, "ami.0.username", "Field required")


def test_missing_top_level_key_points_at_the_first_key(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", "\n\nname: c\ntype: survey\ntrunk: PJSIP/{number}@x\ncaller_id: '1'\n")
    [issue] = issues_of(load_campaign, path)
    assert (issue.line, issue.field) == (3, "queue")


def test_unknown_key_points_at_that_key(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", CAMPAIGN.format(name="c") + "dialing:\n  mode: ratio\n  max_line: 4\n")
    [issue] = issues_of(load_campaign, path)
    assert (issue.line, issue.field, issue.message) == (8, "dialing.max_line", "Extra inputs are not permitted")


def test_bad_enum_value(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", CAMPAIGN.format(name="c").replace("type: survey", "type: robocall"))
    [issue] = issues_of(load_campaign, path)
    assert (issue.line, issue.field) == (2, "type")
    assert issue.message == "Input should be 'telemarketing', 'survey' or 'callback' (got 'robocall')"


def test_validator_message_loses_pydantic_prefix(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", CAMPAIGN.format(name="c").replace("PJSIP/{number}@carrier", "PJSIP/x"))
    [issue] = issues_of(load_campaign, path)
    assert (issue.line, issue.field) == (3, "trunk")
    assert issue.message.startswith("must contain {number}")


def test_two_errors_in_one_file_are_both_reported(tmp_path: Path) -> None:
    path = write(
        tmp_path / "c.yaml",
        CAMPAIGN.format(name="bad name") + "dialing:\n  ring_timeout: 1\n  agent_wait: x\n",
    )
    issues = issues_of(load_campaign, path)
    assert [(i.line, i.field) for i in issues] == [
        (1, "name"), (7, "dialing.ring_timeout"), (8, "dialing.agent_wait"),
    ]


def test_list_item_field_line(tmp_path: Path) -> None:
    path = write(
        tmp_path / "d.yaml",
        CONFIG
        + "agents:\n"
        + "  - id: a1\n    interface: PJSIP/a1\n    queues: [sales]\n"
        + "  - id: 'has space'\n    interface: PJSIP/a2\n    queues: [sales]\n",
    )
    [issue] = issues_of(load_config, path)
    assert (issue.line, issue.field) == (8, "agents.1.id")
    assert issue.message.startswith("String should match pattern")


def test_list_index_in_ami_field(tmp_path: Path) -> None:
    path = write(tmp_path / "d.yaml", CONFIG + "    port: 99999\n")
    [issue] = issues_of(load_config, path)
    assert (issue.line, issue.field) == (4, "ami.0.port")


def test_model_level_error_points_at_the_list_item(tmp_path: Path) -> None:
    path = write(tmp_path / "d.yaml", "ami:\n  - username: d\n    secret: a\n    secret_env: B\n")
    [issue] = issues_of(load_config, path)
    assert (issue.line, issue.field) == (2, "ami.0")
    assert issue.message == "give exactly one of secret, secret_file, secret_env"


def test_secret_values_are_never_echoed(tmp_path: Path) -> None:
    path = write(tmp_path / "d.yaml", "ami:\n  - username: d\n    secret: [hunter2]\n")
    [issue] = issues_of(load_config, path)
    assert issue.field == "ami.0.secret"
    assert "hunter2" not in str(issue)


def test_database_url_with_password_is_not_echoed(tmp_path: Path) -> None:
    path = write(tmp_path / "d.yaml", CONFIG + "database:\n  url: 'no good hunter2'\n")
    [issue] = issues_of(load_config, path)
    assert (issue.line, issue.field) == (5, "database.url")
    assert "hunter2" not in str(issue)


def test_number_where_text_is_needed_suggests_quotes(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", CAMPAIGN.format(name="c").replace('"+15550100"', "5550100"))
    [issue] = issues_of(load_campaign, path)
    assert (issue.line, issue.field) == (4, "caller_id")
    assert issue.message == "Input should be a valid string; put it in quotes"


def test_duplicate_key_is_a_file_error_with_both_lines(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", CAMPAIGN.format(name="c") + "queue: support\n")
    with pytest.raises(ConfigFileError) as caught:
        load_campaign(path)
    assert [str(i) for i in caught.value.issues] == [
        f"{path}:6: duplicate key 'queue': already given on line 5"
    ]


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [("", 1, "empty"), ("- a\n- b\n", 1, "list"), ("a: 1\n\tb: 2\n", 2, "tab")],
)
def test_unusable_yaml_is_a_file_error(tmp_path: Path, text: str, line: int, words: str) -> None:
    path = write(tmp_path / "c.yaml", text)
    with pytest.raises(ConfigFileError) as caught:
        load_campaign(path)
    [issue] = caught.value.issues
    assert issue.line == line and words in issue.message


def test_validation_errors_have_their_own_type(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", "name: c\n")
    with pytest.raises(ConfigValidationError):
        load_campaign(path)


def test_relative_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    path = write(
        tmp_path / "etc" / "dialer.yaml",
        "ami:\n  - username: d\n    secret_file: secrets/ami\n"
        "campaign_dir: ../campaigns\n"
        "database:\n  url: sqlite+aiosqlite:///var/d.db\n",
    )
    config = load_config(path)
    assert config.ami[0].secret_file == tmp_path / "etc" / "secrets" / "ami"
    assert config.campaign_dir == tmp_path / "campaigns"
    assert config.database.url == f"sqlite+aiosqlite:///{tmp_path}/etc/var/d.db"


def test_defaults_are_relative_to_the_config_file_too(tmp_path: Path) -> None:
    config = load_config(write(tmp_path / "dialer.yaml", CONFIG))
    assert config.campaign_dir == tmp_path / "campaigns"
    assert config.database.url == f"sqlite+aiosqlite:///{tmp_path}/var/dialer.db"


@pytest.mark.parametrize(
    "url",
    [
        "sqlite+aiosqlite:////srv/dialer.db",
        "sqlite+aiosqlite://",
        "sqlite+aiosqlite:///:memory:",
        "postgresql+asyncpg://u:p@db.example/dialer",
    ],
)
def test_absolute_memory_and_server_urls_are_kept(tmp_path: Path, url: str) -> None:
    path = write(tmp_path / "dialer.yaml", CONFIG + f"database:\n  url: '{url}'\n")
    assert load_config(path).database.url == url


def test_absolute_paths_are_kept(tmp_path: Path) -> None:
    path = write(tmp_path / "dialer.yaml", CONFIG + "campaign_dir: /srv/campaigns\n")
    assert load_config(path).campaign_dir == Path("/srv/campaigns")


def test_environment_overrides_the_database_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DATABASE_URL_ENV, "sqlite+aiosqlite:///:memory:")
    path = write(tmp_path / "dialer.yaml", CONFIG + "database:\n  url: sqlite+aiosqlite:///x.db\n")
    assert load_config(path).database.url == "sqlite+aiosqlite:///:memory:"


def test_environment_override_is_validated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DATABASE_URL_ENV, "nonsense")
    [issue] = issues_of(load_config, write(tmp_path / "dialer.yaml", CONFIG))
    assert issue.field == "database.url"


def test_campaign_dir_loads_every_yaml_and_skips_editor_files(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", CAMPAIGN.format(name="a"))
    write(tmp_path / "b.yml", CAMPAIGN.format(name="b"))
    for junk in (".#a.yaml", "a.yaml~", ".a.yaml.swp", "#a.yaml#", ".hidden.yaml", "notes.txt"):
        write(tmp_path / junk, "not: [valid\n")
    write(tmp_path / "sub" / "c.yaml", CAMPAIGN.format(name="c"))
    campaigns, issues = load_campaign_dir(tmp_path)
    assert issues == []
    assert sorted(campaigns) == ["a", "b"]


def test_campaign_dir_reports_broken_files_and_keeps_the_rest(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", CAMPAIGN.format(name="a"))
    broken = write(tmp_path / "b.yaml", CAMPAIGN.format(name="b") + "enabled: perhaps\n")
    campaigns, issues = load_campaign_dir(tmp_path)
    assert list(campaigns) == ["a"]
    assert [(i.file, i.line, i.field) for i in issues] == [(broken, 6, "enabled")]


def test_same_campaign_name_in_two_files_names_both(tmp_path: Path) -> None:
    first = write(tmp_path / "a.yaml", CAMPAIGN.format(name="same"))
    second = write(tmp_path / "b.yaml", "# copy\n" + CAMPAIGN.format(name="same"))
    campaigns, issues = load_campaign_dir(tmp_path)
    assert list(campaigns) == ["same"]
    assert [str(i) for i in issues] == [
        f"{second}:2: name: campaign 'same' is also defined in {first}:1"
    ]


def test_missing_campaign_dir_is_an_issue(tmp_path: Path) -> None:
    campaigns, issues = load_campaign_dir(tmp_path / "nope")
    assert campaigns == {} and [i.message for i in issues] == ["not a directory"]


def test_validate_paths_tells_config_from_campaign(tmp_path: Path) -> None:
    config = write(tmp_path / "dialer.yaml", CONFIG + "tick_interval: 60\n")
    campaign = write(tmp_path / "c" / "x.yaml", CAMPAIGN.format(name="x") + "tick_interval: 1\n")
    issues = validate_paths([config, tmp_path / "c"])
    assert [(i.file, i.line, i.field) for i in issues] == [
        (config, 4, "tick_interval"),
        (campaign, 6, "tick_interval"),
    ]


def test_validate_paths_reports_missing_paths_and_empty_dirs(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    issues = validate_paths([tmp_path / "absent.yaml", tmp_path / "empty"])
    assert [i.message for i in issues] == [
        "no such file or directory",
        "no *.yaml or *.yml files in this directory",
    ]


def test_validate_paths_finds_duplicate_names_across_arguments(tmp_path: Path) -> None:
    first = write(tmp_path / "one" / "a.yaml", CAMPAIGN.format(name="same"))
    second = write(tmp_path / "two" / "a.yaml", CAMPAIGN.format(name="same"))
    issues = validate_paths([tmp_path / "one", second])
    assert [str(i) for i in issues] == [f"{second}:1: name: campaign 'same' is also defined in {first}:1"]


def test_a_file_named_twice_is_checked_once(tmp_path: Path) -> None:
    path = write(tmp_path / "a.yaml", CAMPAIGN.format(name="a"))
    assert validate_paths([path, tmp_path]) == []
    assert config_files([path, tmp_path]) == ([path, path], [])


def test_issues_come_in_line_order_with_plain_words(tmp_path: Path) -> None:
    path = write(tmp_path / "d.yaml", "logging: debug\n" + CONFIG.replace("secret:", "secret_file:") + "    port: 0\n")
    issues = issues_of(load_config, path)
    assert [(i.line, i.field, i.message) for i in issues] == [
        (1, "logging", "Input should be a mapping (key: value lines, indented under this key) (got 'debug')"),
        (5, "ami.0.port", "Input should be greater than or equal to 1 (got 0)"),
    ]
    path = write(tmp_path / "e.yaml", "ami:\n  - username: d\n    secret_file: 5\n")
    [issue] = issues_of(load_config, path)
    assert (issue.line, issue.field, issue.message) == (3, "ami.0.secret_file", "Input should be a file or directory path")
