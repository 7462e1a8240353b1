"""The severity policy: defaults, durations, TOML overrides and error messages that point
at the exact line and field of a bad policy file."""

from __future__ import annotations

import itertools
import re
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from domain.functions import ReviewFunction
from domain.policy import (
    DEFAULT_POLICY_DATA,
    Duration,
    EscalationLadder,
    PolicyFileError,
    Rung,
    default_policy,
    format_duration,
    load_policy,
    parse_duration,
    policy_from_toml,
)
from domain.severity import Severity

DURATION = TypeAdapter(Duration)


def problems(text: str) -> list[str]:
    """The lines of the PolicyFileError a TOML text is rejected with."""
    with pytest.raises(PolicyFileError) as caught:
        policy_from_toml(text, source="policy.toml")
    return str(caught.value).splitlines()


def only_problem(text: str) -> str:
    lines = problems(text)
    assert len(lines) == 1, lines
    return lines[0]


# ---- defaults ----------------------------------------------------------------------------


def test_default_policy_covers_every_severity() -> None:
    policy = default_policy()
    assert set(policy.severities) == {Severity.SEV1, Severity.SEV2, Severity.SEV3, Severity.SEV4}


def test_default_policy_is_stricter_for_worse_severities() -> None:
    policy = default_policy()
    ordered = [policy.for_severity(s) for s in Severity]  # SEV1 first
    for worse, milder in itertools.pairwise(ordered):
        assert worse.acknowledge_within <= milder.acknowledge_within
        assert worse.resolve_within <= milder.resolve_within
        assert worse.review_within_business_days <= milder.review_within_business_days


def test_default_policy_values_are_parsed_durations() -> None:
    sev1 = default_policy().for_severity(Severity.SEV1)
    assert sev1.acknowledge_within == timedelta(minutes=5)
    assert sev1.resolve_within == timedelta(hours=4)
    assert sev1.escalation.owner == timedelta(0)
    assert ReviewFunction.SECURITY in sev1.required_review_functions


def test_default_policy_names_contacts_above_the_owner() -> None:
    contacts = default_policy().contacts
    assert set(contacts) == {Rung.TEAM_LEAD, Rung.MANAGER, Rung.LEADERSHIP}


def test_empty_policy_file_gives_the_defaults() -> None:
    assert policy_from_toml("") == default_policy()


def test_load_policy_without_a_path_gives_the_defaults() -> None:
    assert load_policy(None) == default_policy()


# ---- durations ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("4h", timedelta(hours=4)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1h 30m", timedelta(hours=1, minutes=30)),
        ("2d", timedelta(days=2)),
        ("1w", timedelta(weeks=1)),
        ("1D12H", timedelta(days=1, hours=12)),
        ("PT5M", timedelta(minutes=5)),
        ("P1D", timedelta(days=1)),
        ("300", timedelta(seconds=300)),
        (300, timedelta(seconds=300)),
        (0, timedelta(0)),
    ],
)
def test_durations_parse(text: str | int, expected: timedelta) -> None:
    assert DURATION.validate_python(text) == expected


@pytest.mark.parametrize("text", ["soon", "5 minutes", "1.5h", "m5", "", "-5m"])
def test_non_durations_are_rejected(text: str) -> None:
    with pytest.raises(ValidationError):
        DURATION.validate_python(text)


def test_a_toml_boolean_is_not_one_second() -> None:
    with pytest.raises(ValidationError, match="not a duration"):
        DURATION.validate_python(True)


def test_parse_duration_passes_unknown_forms_on_to_pydantic() -> None:
    assert parse_duration("PT5M") == "PT5M"
    assert parse_duration(42) == 42


@given(
    days=st.integers(0, 400),
    hours=st.integers(0, 100),
    minutes=st.integers(0, 1000),
    seconds=st.integers(0, 100_000),
)
def test_parse_duration_sums_its_parts(days: int, hours: int, minutes: int, seconds: int) -> None:
    text = f"{days}d{hours}h{minutes}m{seconds}s"
    expected = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    assert parse_duration(text) == expected


@given(st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=3650)))
def test_format_duration_reads_back(value: timedelta) -> None:
    whole = timedelta(seconds=int(value.total_seconds()))
    assert parse_duration(format_duration(whole)) == whole


# ---- overrides ---------------------------------------------------------------------------


def test_file_overrides_one_field_and_keeps_the_rest() -> None:
    policy = policy_from_toml('[severities.SEV2]\nacknowledge_within = "10m"\n')
    defaults = default_policy()
    sev2 = policy.for_severity(Severity.SEV2)
    assert sev2.acknowledge_within == timedelta(minutes=10)
    expected = defaults.for_severity(Severity.SEV2).model_copy(
        update={"acknowledge_within": timedelta(minutes=10)}
    )
    assert sev2 == expected
    for other in (Severity.SEV1, Severity.SEV3, Severity.SEV4):
        assert policy.for_severity(other) == defaults.for_severity(other)
    assert policy.contacts == defaults.contacts


def test_nested_table_merges_key_by_key() -> None:
    text = '[severities.SEV3.escalation]\nteam_lead = "2h"\n'
    ladder = policy_from_toml(text).for_severity(Severity.SEV3).escalation
    default_ladder = default_policy().for_severity(Severity.SEV3).escalation
    assert ladder.team_lead == timedelta(hours=2)
    assert ladder.manager == default_ladder.manager
    assert ladder.leadership == default_ladder.leadership
    assert ladder.repeat_every == default_ladder.repeat_every


def test_lists_are_replaced_not_merged() -> None:
    text = '[severities.SEV1]\nrequired_review_functions = ["engineering"]\n'
    sev1 = policy_from_toml(text).for_severity(Severity.SEV1)
    assert sev1.required_review_functions == [ReviewFunction.ENGINEERING]


def test_dotted_keys_and_inline_tables_override_too() -> None:
    text = (
        'severities.SEV4.resolve_within = "7d"\n'
        "[severities.SEV1]\n"
        'escalation = { team_lead = "10m" }\n'
        "[contacts]\n"
        'leadership = ["cto"]\n'
    )
    policy = policy_from_toml(text)
    assert policy.for_severity(Severity.SEV4).resolve_within == timedelta(days=7)
    assert policy.for_severity(Severity.SEV1).escalation.team_lead == timedelta(minutes=10)
    assert policy.for_severity(Severity.SEV1).escalation.manager == timedelta(minutes=30)
    assert policy.contacts[Rung.LEADERSHIP] == ["cto"]
    assert policy.contacts[Rung.MANAGER] == ["engineering-manager"]


def test_overriding_does_not_touch_the_default_data() -> None:
    before = repr(DEFAULT_POLICY_DATA)
    policy_from_toml('[severities.SEV2.escalation]\nmanager = "3h"\n')
    assert repr(DEFAULT_POLICY_DATA) == before


def test_load_policy_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text('[severities.SEV1]\nacknowledge_within = "2m"\n', encoding="utf-8")
    policy = load_policy(path)
    assert policy.for_severity(Severity.SEV1).acknowledge_within == timedelta(minutes=2)


# ---- rejected files ----------------------------------------------------------------------


def test_syntax_error_names_the_line() -> None:
    line = only_problem('[severities.SEV2]\nacknowledge_within = "5m"\nresolve_within = \n')
    assert line.startswith("policy.toml: line 3: not valid TOML")


def test_unterminated_table_header_names_the_line() -> None:
    line = only_problem('# policy\n\n[severities.SEV2\nacknowledge_within = "5m"\n')
    assert line.startswith("policy.toml: line 3: not valid TOML")


def test_bad_duration_names_line_and_field() -> None:
    text = '# tighter SEV2\n[severities.SEV2]\nacknowledge_within = "soon"\n'
    line = only_problem(text)
    assert line.startswith("policy.toml: line 3: severities.SEV2.acknowledge_within: ")
    assert "'soon' is not a duration" in line
    assert "'1h30m'" in line  # the message shows the accepted forms


def test_unknown_key_names_line_field_and_allowed_fields() -> None:
    line = only_problem('[severities.SEV2]\nstatus_update_every = "2h"\nack_within = "5m"\n')
    assert line.startswith("policy.toml: line 3: severities.SEV2.ack_within: unknown field")
    assert "acknowledge_within" in line


def test_unknown_top_level_key_is_rejected() -> None:
    line = only_problem('[contacts]\nmanager = ["m"]\n\n[severity]\nSEV1 = 1\n')
    assert line.startswith("policy.toml: line 4: severity: unknown field 'severity'")


def test_decreasing_ladder_names_the_rung_that_is_out_of_order() -> None:
    text = (
        "[severities.SEV2]\n"
        'status_update_every = "2h"\n'
        "\n"
        "[severities.SEV2.escalation]\n"
        'team_lead = "1h"\n'
        'manager = "30m"\n'
    )
    line = only_problem(text)
    assert line.startswith("policy.toml: line 6: severities.SEV2.escalation.manager: ")
    assert "manager (30m) comes before team_lead (1h)" in line


def test_ladder_raised_past_a_default_rung_names_that_rung() -> None:
    # SEV2's default manager delay is 2h: a team lead at 3h comes after it.
    text = '[severities.SEV2.escalation]\nteam_lead = "3h"\n'
    line = only_problem(text)
    assert line.startswith("policy.toml: line 2: severities.SEV2.escalation.team_lead: ")
    assert "manager (2h) comes before team_lead (3h)" in line


def test_ladder_error_in_a_dotted_key_names_its_line() -> None:
    line = only_problem('[severities.SEV2]\nescalation.manager = "1m"\n')
    assert line.startswith("policy.toml: line 2: severities.SEV2.escalation.manager: ")


def test_ladder_error_in_an_inline_table_names_its_line() -> None:
    text = '[severities]\nSEV1 = { escalation = { manager = "1m" } }\n'
    line = only_problem(text)
    assert line.startswith("policy.toml: line 2: severities.SEV1.escalation")


def test_unknown_severity_is_one_problem_on_its_line() -> None:
    line = only_problem(
        '[severities.SEV1]\nresolve_within = "2h"\n[severities.SEV9]\nresolve_within = "1h"\n'
    )
    assert line.startswith("policy.toml: line 3: severities.SEV9: unknown key 'SEV9'")
    assert "'SEV1', 'SEV2', 'SEV3' or 'SEV4'" in line


def test_unknown_review_function_names_the_list_item() -> None:
    text = '[severities.SEV3]\nrequired_review_functions = ["engineering", "legal"]\n'
    line = only_problem(text)
    assert line.startswith("policy.toml: line 2: severities.SEV3.required_review_functions[1]: ")
    assert "'security'" in line


def test_unknown_rung_in_contacts_is_rejected() -> None:
    line = only_problem('[contacts]\nceo = ["alice"]\n')
    assert line.startswith("policy.toml: line 2: contacts.ceo: unknown key 'ceo'")


def test_owner_contacts_are_rejected_because_the_owner_is_the_commander() -> None:
    line = only_problem('[contacts]\nteam_lead = ["lead"]\nowner = ["someone"]\n')
    assert line.startswith("policy.toml: line 3: contacts.owner: ")
    assert "commander" in line


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("acknowledge_within", '"0s"'),
        ("status_update_every", "0"),
        ("resolve_within", '"-PT1H"'),
        ("review_within", '"0s"'),
    ],
)
def test_deadlines_must_be_longer_than_zero(field: str, value: str) -> None:
    line = only_problem(f"[severities.SEV4]\n{field} = {value}\n")
    assert line == f"policy.toml: line 2: severities.SEV4.{field}: must be longer than zero"


def test_negative_business_days_are_rejected() -> None:
    line = only_problem("[severities.SEV4]\nreview_within_business_days = -1\n")
    assert line.startswith("policy.toml: line 2: severities.SEV4.review_within_business_days: ")


def test_repeat_every_must_be_longer_than_zero() -> None:
    line = only_problem('[severities.SEV1.escalation]\nrepeat_every = "0s"\n')
    assert line.startswith("policy.toml: line 2: severities.SEV1.escalation.repeat_every: ")


def test_every_problem_is_listed_at_once_in_file_order() -> None:
    text = (
        "# several mistakes\n"  # 1
        "[severities.SEV3]\n"  # 2
        'resolve_within = "forever"\n'  # 3
        "\n"  # 4
        "[severities.SEV2]\n"  # 5
        'acknowledge_within = "soon"\n'  # 6
        "colour = 1\n"  # 7
        "\n"  # 8
        "[severities.SEV2.escalation]\n"  # 9
        'team_lead = "1h"\n'  # 10
        'manager = "30m"\n'  # 11
    )
    lines = problems(text)
    found = [re.match(r"policy\.toml: line (\d+): (\S+):", line) for line in lines]
    assert [(int(m.group(1)), m.group(2)) for m in found if m] == [
        (3, "severities.SEV3.resolve_within"),
        (6, "severities.SEV2.acknowledge_within"),
        (7, "severities.SEV2.colour"),
        (11, "severities.SEV2.escalation.manager"),
    ]


def test_line_numbers_skip_multiline_arrays_strings_and_comments() -> None:
    text = (
        "# acknowledge_within = 1\n"  # 1
        "[contacts]\n"  # 2
        "team_lead = [\n"  # 3
        '  "alice",  # [severities.SEV1]\n'  # 4
        "  [1, 2],\n"  # 5
        "]\n"  # 6
        'note = """\n'  # 7: an unknown field inside [contacts]
        "[severities.SEV2]\n"  # 8: inside the string
        'acknowledge_within = "x"\n'  # 9: inside the string
        '"""\n'  # 10
        '[ severities . "SEV2" ]  # spaced and quoted\n'  # 11
        'acknowledge_within = "soon"\n'  # 12
    )
    lines = problems(text)
    located = [line.split(": ")[1:3] for line in lines]
    assert located == [
        ["line 5", "contacts.team_lead[1]"],  # the item's own line in a multi-line array
        ["line 7", "contacts.note"],
        ["line 12", "severities.SEV2.acknowledge_within"],
    ]


def test_load_policy_names_a_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(PolicyFileError, match=r"nope\.toml: no such policy file"):
        load_policy(missing)


def test_load_policy_names_the_file_in_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text('[severities.SEV2]\nacknowledge_within = "soon"\n', encoding="utf-8")
    with pytest.raises(PolicyFileError) as caught:
        load_policy(path)
    assert str(caught.value).startswith(f"{path}: line 2: severities.SEV2.acknowledge_within")


def test_load_policy_rejects_a_binary_file(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(PolicyFileError, match="not a UTF-8 text file"):
        load_policy(path)


def test_load_policy_rejects_a_directory(tmp_path: Path) -> None:
    with pytest.raises(PolicyFileError, match="cannot read the policy file"):
        load_policy(tmp_path)


def test_ladder_model_rejects_decreasing_delays_directly() -> None:
    with pytest.raises(ValidationError, match="rung delays must not decrease"):
        EscalationLadder.model_validate(
            {"team_lead": "1h", "manager": "2h", "leadership": "1h", "repeat_every": "1h"}
        )


def test_quoted_non_ascii_key_is_located() -> None:
    line = only_problem('[contacts]\nmanager = ["m"]\n\n"sévérité" = 1\n')
    assert line.startswith("policy.toml: line 4: contacts.sévérité: unknown key 'sévérité'")


@pytest.mark.parametrize("scale", [[5, 1], [3, 3], [-1, 5], [1, 1000]])
def test_a_rubric_scale_must_run_from_low_to_high(tmp_path: Path, scale: list[int]) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(f"rubric_scale = {scale}\n")
    with pytest.raises(PolicyFileError, match="give the lowest score first"):
        load_policy(path)
