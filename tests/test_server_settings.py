"""The configuration of ``zerotrust serve`` from a file, the environment and flags:
every key from each, their precedence, one line per problem naming the key or the
variable, secrets never shown, and the published JSON Schema."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from pydantic import ValidationError

from zerotrust.cli import main
from zerotrust.policy.located import load_documents
from zerotrust.server import ServerConfig, ServerConfigError
from zerotrust.server.runner import build_config
from zerotrust.server.settings import (
    FLAG_SECRETS,
    config_schema,
    effective,
    env_name,
    flag_name,
    keys,
    printed,
    resolve,
)

ROOT = Path(__file__).resolve().parents[1]
SECRET = "settings-secret-0123456789"
PAGING = "p" * 43
#: A value for every key (as an environment variable or a flag would write it), other
#: than its default. The file takes the same text as YAML.
SAMPLES: dict[str, str] = {
    "bearer_secrets": "another-secret-0123456789",
    "bearer_secrets_file": "secrets.txt",
    "insecure_local": "true",
    "include_reasons": "false",
    "schema_validation": "enforce",
    "max_body_bytes": "2048",
    "request_timeout_seconds": "2.5",
    "max_requests_in_flight": "64",
    "max_connections": "100",
    "max_connections_per_address": "8",
    "decision_threads": "4",
    "max_evaluations": "10",
    "search_max_results": "20",
    "entities": "entities.yaml",
    "base_url": "https://pdp.example.com",
    "decision_log": "decisions.jsonl",
    "decision_log_sink": "stdout",
    "decision_log_redact": "[subject.properties.email, context.ip]",
    "decision_log_fsync": "true",
    "log_level": "DEBUG",
    "log_format": "json",
    "watch": "true",
    "watch_debounce_ms": "250",
    "tracing": "true",
    "ready_needs_store": "false",
    "behavior.store": "rediss://127.0.0.1:6380/1",
    "behavior.cluster": "true",
    "behavior.minute_window": "240",
    "behavior.hour_window": "7200",
    "behavior.day_window": "172800",
    "behavior.buckets": "120",
    "behavior.seen_lookback": "86400",
    "behavior.baseline_lookback": "86400",
    "behavior.max_subjects": "10",
    "behavior.max_resources": "11",
    "behavior.max_seen": "4",
    "behavior.ttl": "3000000",
    "behavior.on_store_error": "evaluate",
    "behavior.store_error_acr_values": "[mfa]",
    "behavior.store_error_max_age": "300",
    "behavior.connect_timeout": "0.5",
    "behavior.timeout": "0.25",
    "behavior.breaker_failures": "5",
    "behavior.breaker_reset": "4.5",
    "behavior.key_prefix": "zz",
    "behavior.defer_outcomes": "false",
    "behavior.peer_groups": "[team, [team, site]]",
    "behavior.min_peers": "3",
    "behavior.peer_days": "7",
    "behavior.peer_refresh": "30.5",
    "behavior.max_distinct": "100",
    "paging_secret": PAGING,
    "paging_secret_file": "paging.txt",
    "identity.issuer": "https://idp2.example.com",
    "identity.audience": "[a, b]",
    "identity.jwks_url": "https://idp.example.com/certs",
    "identity.jwks_file": "keys2.json",
    "identity.algorithms": "[ES256]",
    "identity.roles_from": "[realm_access.roles]",
    "identity.groups_from": "[teams]",
    "identity.required_claims": "[email]",
    "identity.leeway_seconds": "5",
    "identity.typ": "at+jwt",
    "identity.subject_type": "person",
    "identity.device.issuer": "https://mdm2.example.com",
    "identity.device.jwks_url": "https://mdm.example.com/certs",
    "identity.device.jwks_file": "mdm2.json",
    "identity.device.algorithms": "[ES256]",
    "identity.device.audience": "[zt]",
    "identity.device.max_age_seconds": "60",
    "identity.device.leeway_seconds": "1",
    "identity.device.typ": "posture+jwt",
    "identity.device.subject_claim": "uid",
    "search_database.url": "postgresql://db.example/zt",
    "search_database.resources": "{record: {table: docs, id: doc_id, properties: {owner: owner}}}",
    "search_database.pool_size": "5",
    "policies": "policies",
    "host": "10.0.0.1",
    "port": "9090",
    "workers": "3",
}
#: What every sample starts from: a usable configuration with every section.
BASE = """\
bearer_secrets: [settings-secret-0123456789]
behavior: {store: redis://127.0.0.1:6379/0, minute_window: 120}
identity:
  issuer: https://idp.example.com
  audience: zerotrust
  jwks_file: keys.json
  device: {issuer: https://mdm.example.com, jwks_file: mdm.json}
search_database: {url: "sqlite:///records.db", resources: {record: {table: records}}}
"""
PATHS = {
    "bearer_secrets_file",
    "paging_secret_file",
    "entities",
    "decision_log",
    "policies",
    "identity.jwks_file",
    "identity.device.jwks_file",
}


def yaml_value(text: str) -> Any:
    (document,) = load_documents(text)
    return document.plain()


def at(data: Any, key: str) -> Any:
    for part in key.split("."):
        data = data[part]
    return data


def base_file(tmp_path: Path, key: str) -> Path:
    """BASE, without the key source a sample of the other one would clash with."""
    (tmp_path / "secrets.txt").write_text("from-a-file-0123456789\n", encoding="utf-8")
    (tmp_path / "paging.txt").write_text(PAGING + "\n", encoding="utf-8")
    text = BASE
    if key == "identity.jwks_url":
        text = text.replace("  jwks_file: keys.json\n", "")
    if key == "identity.device.jwks_url":
        text = text.replace(", jwks_file: mdm.json", "")
    if key == "paging_secret_file":
        pass
    file = tmp_path / "server.yaml"
    file.write_text(text, encoding="utf-8")
    return file


def expected(key: str, base: Path) -> Any:
    if key == "behavior.peer_groups":  # a grouping of one property, as a list of one
        return [["team"], ["team", "site"]]
    value = yaml_value(SAMPLES[key])
    if key in PATHS:
        return str(base / value)
    return value


def check(config: ServerConfig, key: str, base: Path) -> None:
    if key == "bearer_secrets":
        assert config.bearer_secrets[-1] == "another-secret-0123456789"
    elif key == "bearer_secrets_file":
        assert config.bearer_secrets[-1] == "from-a-file-0123456789"
    elif key in ("paging_secret", "paging_secret_file"):
        assert config.paging_secret == PAGING
    else:
        assert at(effective(config), key) == expected(key, base), key


def test_the_samples_cover_every_key() -> None:
    assert sorted(SAMPLES) == sorted(".".join(map(str, path)) for path, _ in keys())


@pytest.mark.parametrize("key", sorted(SAMPLES))
def test_every_key_from_the_file(tmp_path: Path, key: str) -> None:
    file = base_file(tmp_path, key)
    data = yaml_value(file.read_text(encoding="utf-8"))
    node = data
    *sections, last = key.split(".")
    for part in sections:
        node = node.setdefault(part, {})
    node[last] = yaml_value(SAMPLES[key])
    file.write_text(json.dumps(data), encoding="utf-8")  # JSON is YAML
    check(resolve(file, environ={}), key, tmp_path)


@pytest.mark.parametrize("key", sorted(SAMPLES))
def test_every_key_from_the_environment(tmp_path: Path, key: str) -> None:
    file = base_file(tmp_path, key)
    value = SAMPLES[key]
    if key in PATHS:
        value = str(tmp_path / value)  # relative to the working directory, not the file
    variable = env_name(tuple(key.split(".")))
    assert variable == "ZEROTRUST_" + key.upper().replace(".", "__")
    check(resolve(file, environ={variable: value}), key, tmp_path)


@pytest.mark.parametrize("key", sorted(k for k in SAMPLES if k.split(".")[0] not in FLAG_SECRETS))
def test_every_key_from_a_flag(
    tmp_path: Path,
    key: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Through the command line: ``serve --print-config`` prints what each flag set."""
    monkeypatch.chdir(tmp_path)
    file = base_file(tmp_path, key)
    flag = flag_name(tuple(key.split(".")))
    value = SAMPLES[key]
    if value in ("true", "false"):
        args = [flag if value == "true" else flag.replace("--", "--no-", 1)]
    else:
        args = [flag, str(tmp_path / value) if key in PATHS else value]
    assert main(["serve", "--config", str(file), *args, "--print-config"]) == 0
    out = capsys.readouterr().out
    if key == "bearer_secrets_file":
        assert yaml_value(out)["bearer_secrets"] == ["***", "***"]
    elif key == "paging_secret_file":
        assert yaml_value(out)["paging_secret"] == "***"
    else:
        assert at(yaml_value(out), key) == expected(key, tmp_path)


def test_secrets_are_never_flags(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--bearer-secrets", SECRET, "--print-config"])
    assert "unrecognized arguments: --bearer-secrets" in capsys.readouterr().err


def test_flag_beats_environment_beats_file_beats_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    file = tmp_path / "server.yaml"
    file.write_text(
        f"bearer_secrets: [{SECRET}]\nmax_evaluations: 10\nmax_connections: 10\n"
        "decision_threads: 10\nidentity: {issuer: https://file, audience: a, jwks_file: k}\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("ZEROTRUST_MAX_CONNECTIONS", "20")
    monkeypatch.setenv("ZEROTRUST_DECISION_THREADS", "20")
    monkeypatch.setenv("ZEROTRUST_IDENTITY__ISSUER", "https://env")
    argv = ["serve", "--config", str(file), "--decision-threads", "30", "--print-config"]
    assert main(argv) == 0
    out = yaml_value(capsys.readouterr().out)
    assert out["search_max_results"] == 1000  # default
    assert out["max_evaluations"] == 10  # file
    assert out["max_connections"] == 20  # environment over file
    assert out["decision_threads"] == 30  # flag over both
    assert out["identity"]["issuer"] == "https://env"  # one key of a section
    assert out["identity"]["audience"] == ["a"]  # the rest of the section from the file
    monkeypatch.setenv("ZEROTRUST_CONFIG", str(file))
    assert main(["serve", "--print-config"]) == 0  # the file named by the environment
    assert yaml_value(capsys.readouterr().out)["max_evaluations"] == 10


def test_programmatic_construction_keeps_the_attribute_names() -> None:
    config = ServerConfig(
        bearer_secrets=(SECRET,),
        request_timeout=2,
        entities_file="e.yaml",
        behavior_redis_url="redis://localhost/0",
    )
    assert config.request_timeout == 2.0
    assert config.entities_file == "e.yaml"
    assert config.behavior_redis_url == "redis://localhost/0"
    assert config.behavior.store == "redis://localhost/0"
    with pytest.raises(ValidationError, match="frozen"):
        config.max_evaluations = 5  # type: ignore[misc]
    evolved = config.model_copy(update={"include_reasons": False})
    assert evolved.include_reasons is False and config.include_reasons is True


def test_the_behaviour_section_builds_the_behavior_config() -> None:
    config = ServerConfig(
        insecure_local=True,
        behavior={
            "store": "redis://localhost:6379/0",
            "cluster": True,
            "on_store_error": "step_up",
            "store_error_acr_values": ["mfa"],
            "peer_groups": ["team"],
        },
    )
    built = config.behavior.behavior_config()
    assert built.on_store_error.value == "step_up"
    assert built.peer_groups == (("team",),)
    assert built.store_error_step_up.acr_values == ("mfa",)
    assert config.behavior.redis_url == "redis+cluster://localhost:6379/0"
    assert ServerConfig(insecure_local=True).behavior.redis_url is None


ERRORS = [
    # (file text, environment, flags, the one expected line)
    ("max_body_bytes: 0", {}, [], "max_body_bytes: must be a positive whole number, not 0"),
    ("max_body_bytes: true", {}, [], "max_body_bytes: must be a positive whole number, not true"),
    ("max_body_bytes: '5'", {}, [], "max_body_bytes: must be a positive whole number, not '5'"),
    ("max_evaluations: 2.0", {}, [], "max_evaluations: must be a positive whole number, not 2.0"),
    (
        "request_timeout_seconds: 3601",
        {},
        [],
        "request_timeout_seconds: must be a number above 0 and at most 3600, not 3601",
    ),
    ("request_timeout_seconds: .nan", {}, [], "server.yaml:2:26: NaN and infinity are not"),
    ("include_reasons: 1", {}, [], "include_reasons: must be true or false, not 1"),
    (
        "max_conections: 5",
        {},
        [],
        "max_conections: unknown setting (did you mean 'max_connections'?)",
    ),
    ("behaviour: {}", {}, [], "behaviour: unknown setting (did you mean 'behavior'?)"),
    ("identity: {audience: a, jwks_file: k}", {}, [], "identity.issuer: is required"),
    (
        "identity: {issuer: i, audience: a}",
        {},
        [],
        "identity: needs exactly one of jwks_url and jwks_file",
    ),
    (
        "identity: {issuer: i, audience: a, jwks_file: k, leeway_seconds: x}",
        {},
        [],
        "identity.leeway_seconds: must be a number >= 0, not 'x'",
    ),
    (
        "identity: {issuer: i, audience: a, jwks_file: k, levay_seconds: 1}",
        {},
        [],
        "identity.levay_seconds: unknown setting (did you mean 'leeway_seconds'?)",
    ),
    ("behavior: {store: mysql://db}", {}, [], "behavior.store: must be memory or a redis://"),
    ("behavior: {cluster: true}", {}, [], "behavior.cluster: needs a redis:// or rediss:// store"),
    ("behavior: {timeout: 0}", {}, [], "behavior.timeout: must be a number of seconds above 0"),
    (
        "behavior: {on_store_error: allow}",
        {},
        [],
        "behavior.on_store_error: must be one of deny, step_up, evaluate, not 'allow'",
    ),
    ("behavior: {buckets: 120}", {}, [], "behavior.minute_window: (60 s) must divide into 120"),
    (
        "behavior: {store: redis://h/0}\nbehavior_redis_url: redis://h/1",
        {},
        [],
        "behavior_redis_url: the old spelling of behavior.store: give one of them",
    ),
    ("paging_secret: short", {}, [], "paging_secret: must be at least 43 printable ASCII"),
    ("port: 0", {}, [], "port: must be a whole number from 1 to 65535, not 0"),
    ("workers: 65", {}, [], "workers: must be a whole number from 1 to 64, not 65"),
    (
        "identity: {issuer: i, audience: a, jwks_file: k}",
        {"ZEROTRUST_IDENTITY__LEEWAY_SECONDS": "x"},
        [],
        "ZEROTRUST_IDENTITY__LEEWAY_SECONDS (identity.leeway_seconds): must be a number",
    ),
    (
        "",
        {"ZEROTRUST_MAX_BODY_BYTES": "[1"},
        [],
        "ZEROTRUST_MAX_BODY_BYTES: not a YAML value",
    ),
    (
        "",
        {"ZEROTRUST_MAX_CONECTIONS": "5"},
        [],
        "ZEROTRUST_MAX_CONECTIONS (max_conections): unknown setting (did you mean",
    ),
    (
        "",
        {"ZEROTRUST_BEHAVIOR__TIMEOUT": "-1"},
        [],
        "ZEROTRUST_BEHAVIOR__TIMEOUT (behavior.timeout): must be a number of seconds",
    ),
    (
        "",
        {},
        ["--max-evaluations", "0"],
        "--max-evaluations (max_evaluations): must be a positive whole number, not 0",
    ),
    (
        "",
        {},
        ["--behavior-on-store-error", "maybe"],
        "--behavior-on-store-error (behavior.on_store_error): must be one of",
    ),
]


@pytest.mark.parametrize(("text", "environ", "flags", "message"), ERRORS)
def test_every_kind_of_problem_is_one_line_naming_the_key(
    tmp_path: Path,
    text: str,
    environ: dict[str, str],
    flags: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    file = tmp_path / "server.yaml"
    file.write_text(f"insecure_local: true\n{text}\n", encoding="utf-8")
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    assert main(["serve", "--config", str(file), *flags, "--print-config"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert [line for line in lines if message in line] == lines, lines
    (line,) = lines
    assert line.startswith("zerotrust serve: ") and message in line


def test_every_problem_at_once_each_on_its_own_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "server.yaml"
    file.write_text(
        "max_body_bytes: 0\nbehavior: {timeout: 0, max_seen: x}\nidentity: {audience: 5}\n",
        encoding="utf-8",
    )
    assert main(["serve", "--config", str(file), "--print-config"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 7, lines
    keys_named = [line.split(": ")[1] for line in lines]
    assert sorted(keys_named) == sorted(
        [
            "no bearer secret configured",
            "max_body_bytes",
            "behavior.timeout",
            "behavior.max_seen",
            "identity",
            "identity.issuer",
            "identity.audience",
        ]
    )


def test_bearer_secrets_from_the_environment_are_comma_separated() -> None:
    environ = {"ZEROTRUST_BEARER_SECRETS": f"{SECRET},{SECRET}-2"}
    assert resolve(environ=environ).bearer_secrets == (SECRET, f"{SECRET}-2")
    with pytest.raises(ServerConfigError) as info:
        resolve(environ={"ZEROTRUST_BEARER_SECRETS": "[not yaml: {" + SECRET})
    (problem,) = info.value.problems
    assert problem.startswith("ZEROTRUST_BEARER_SECRETS (bearer_secrets[0]): must be an RFC")
    assert SECRET not in problem


def test_behaviour_messages_write_values_as_yaml_does(tmp_path: Path) -> None:
    file = tmp_path / "server.yaml"
    file.write_text("insecure_local: true\nbehavior: {buckets: true}\n", encoding="utf-8")
    with pytest.raises(ServerConfigError) as info:
        resolve(file, environ={})
    assert info.value.problems == (
        "behavior.buckets: must be a whole number from 1 to 2147483647, not true",
    )


def test_paths_in_the_file_are_relative_to_it(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "pep.txt").write_text(f"{SECRET}\n", encoding="utf-8")
    file = tmp_path / "conf" / "server.yaml"
    file.write_text(
        "bearer_secrets_file: pep.txt\npolicies: ../policies\n"
        "identity: {issuer: i, audience: a, jwks_file: /etc/keys.json}\n",
        encoding="utf-8",
    )
    config = resolve(file, environ={})
    assert config.bearer_secrets == (SECRET,)
    assert config.policies == str(tmp_path / "conf" / ".." / "policies")
    assert config.identity is not None and config.identity.jwks_file == "/etc/keys.json"


def test_insecure_local_from_the_environment_refuses_a_public_host() -> None:
    environ = {"ZEROTRUST_INSECURE_LOCAL": "true", "ZEROTRUST_HOST": "0.0.0.0"}
    with pytest.raises(ServerConfigError, match="loopback only"):
        build_config(environ=environ)
    assert build_config(environ={"ZEROTRUST_INSECURE_LOCAL": "true"}).host == "127.0.0.1"


# --- secrets never shown ------------------------------------------------------------------

# Marked ("Zq9"), so that no sample is also a word of the output ("baseline_lookbac").
_TOKEN = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/",
    min_size=13,
    max_size=40,
).map(lambda t: "Zq9" + t)


@settings(max_examples=60, deadline=None)
@given(
    secret=_TOKEN,
    paging=st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=40, max_size=60).map(
        lambda t: "Zq9" + t
    ),
    password=_TOKEN.map(lambda t: t.replace("/", "x").replace("+", "y")),
    spoil=st.sampled_from(["", " ", "ä", "\t", "!"]),
)
def test_no_secret_in_any_message_repr_or_printed_config(
    secret: str, paging: str, password: str, spoil: str
) -> None:
    """Secrets (valid or not), the paging secret and a Redis password appear in no
    problem, no repr and no --print-config output."""
    bad = secret[:8] + spoil + secret[8:] if spoil else secret[:15]
    raw = {
        "bearer_secrets": [bad],
        "paging_secret": paging[:20] + spoil,
        "behavior": {"store": f"redis://user:{password}@localhost:6379/0", "timeout": -1},
        "max_body_bytes": 0,
    }
    with pytest.raises(ServerConfigError) as info:
        ServerConfig(**raw)
    text = str(info.value) + repr(info.value.problems)
    for hidden in (bad, paging[:20], password):
        assert hidden not in text
    for name, value in [
        ("ZEROTRUST_BEARER_SECRETS", bad),
        ("ZEROTRUST_PAGING_SECRET", paging[:20] + spoil),
        ("ZEROTRUST_BEHAVIOR__STORE", f"redis:{password}"),
    ]:
        with pytest.raises(ServerConfigError) as info:
            resolve(environ={name: value, "ZEROTRUST_INSECURE_LOCAL": "true"})
        assert value not in str(info.value) and password not in str(info.value)
    good = ServerConfig(
        bearer_secrets=(secret,),
        paging_secret=paging,
        behavior={"store": f"redis://user:{password}@localhost:6379/0"},
    )
    for text in (repr(good), str(good), printed(good), json.dumps(effective(good))):
        for hidden in (secret, paging, password):
            assert hidden not in text


# --- the published JSON Schema ----------------------------------------------------------------

SCHEMA_FILE = ROOT / "docs" / "server-config.schema.json"


def test_the_published_schema_is_up_to_date_and_valid(capsys: pytest.CaptureFixture[str]) -> None:
    schema = config_schema()
    Draft202012Validator.check_schema(schema)
    assert json.loads(SCHEMA_FILE.read_text(encoding="utf-8")) == schema, (
        "regenerate: zerotrust serve --config-schema > docs/server-config.schema.json"
    )
    assert main(["serve", "--config-schema"]) == 0
    assert SCHEMA_FILE.read_text(encoding="utf-8") == capsys.readouterr().out


def _config_snippets() -> list[str]:
    text = (ROOT / "docs" / "server.md").read_text(encoding="utf-8")
    section = text.split("\n## Configure it\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^```yaml\n(.*?)^```", section, re.S | re.M)


def test_the_docs_config_snippets_match_the_schema_and_load(tmp_path: Path) -> None:
    snippets = _config_snippets()
    assert snippets
    validator = Draft202012Validator(config_schema())
    for snippet in snippets:
        data = yaml_value(snippet)
        assert list(validator.iter_errors(data)) == [], snippet
        (tmp_path / "pep-secrets.txt").write_text(f"{SECRET}\n", encoding="utf-8")
        (tmp_path / "paging-secret.txt").write_text(f"{PAGING}\n", encoding="utf-8")
        file = tmp_path / "server.yaml"
        file.write_text(snippet, encoding="utf-8")
        resolve(file, environ={})


def test_the_schema_refuses_what_the_model_refuses() -> None:
    validator = Draft202012Validator(config_schema())
    for bad in ({"max_body_bytes": 0}, {"port": "80"}, {"colour": 1}, {"behavior": {"x": 1}}):
        assert list(validator.iter_errors(bad)), bad


def test_print_config_output_matches_the_schema(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = base_file(tmp_path, "")
    assert main(["serve", "--config", str(file), "--print-config"]) == 0
    data = yaml_value(capsys.readouterr().out)
    data["bearer_secrets"] = [SECRET]  # shown as ***
    assert list(Draft202012Validator(config_schema()).iter_errors(data)) == []


def test_serve_help_shows_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    out = capsys.readouterr().out
    for path, _ in keys():
        if path[0] not in FLAG_SECRETS:
            assert flag_name(path) in out
            assert env_name(path) in out
    for flag in ("--config", "--print-config", "--config-schema"):
        assert flag in out


def test_the_docs_commands_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ``sh`` lines of "Configure it", run in a directory holding its YAML example."""
    text = (ROOT / "docs" / "server.md").read_text(encoding="utf-8")
    section = text.split("\n## Configure it\n", 1)[1].split("\n## ", 1)[0]
    (tmp_path / "server.yaml").write_text(_config_snippets()[0], encoding="utf-8")
    (tmp_path / "pep-secrets.txt").write_text(f"{SECRET}\n", encoding="utf-8")
    (tmp_path / "paging-secret.txt").write_text(f"{PAGING}\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    commands = [
        line
        for block in re.findall(r"^```sh\n(.*?)^```", section, re.S | re.M)
        for line in block.splitlines()
        if "zerotrust serve" in line
    ]
    assert commands
    for command in commands:
        words = shlex.split(command)
        start = words.index("zerotrust")
        with monkeypatch.context() as patch:
            for assignment in words[:start]:
                name, _, value = assignment.partition("=")
                patch.setenv(name, value)
            assert main(words[start + 1 :]) == 0, capsys.readouterr().err
        out = yaml_value(capsys.readouterr().out)
        assert out["bearer_secrets"] == ["***"] and out["paging_secret"] == "***"


def test_every_key_is_documented() -> None:
    text = (ROOT / "docs" / "server.md").read_text(encoding="utf-8")
    for path, _ in keys():
        key = ".".join(map(str, path))
        if path[0] == "identity":  # the Identity section's table, by the key's last name
            assert f"`{path[-1]}`" in text or str(path[-1]) in text, key
        else:
            assert f"`{key}`" in text, key
