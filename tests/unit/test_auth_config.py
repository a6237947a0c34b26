"""Access-control configuration (docs/security.md): every mistake in ``[[tokens]]``, ``[jwt]``,
``signing_key``, the booleans and ``max_link_lifetime`` stops start-up with one line naming the
setting — and never repeats a secret. One real ``python server.py --config bad.toml`` proves
the line reaches stderr alone, with exit status 2."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from tornado_files.auth.settings import startup_warnings
from tornado_files.config import ConfigError, build_config, env_settings

ROOT = Path(__file__).resolve().parents[2]
SIGNING_KEY = "a-signing-key-of-at-least-32-characters"
TOKEN = "alice-token-0123456789"
SECRET = "an-hs256-secret-of-at-least-32-bytes!!"


def token_entry(**changes: Any) -> dict[str, Any]:
    entry = {"token": TOKEN, "principal": "alice", "scopes": ["read"], **changes}
    return {k: v for k, v in entry.items() if v is not None}


def refused(toml: dict[str, Any], env: dict[str, str] | None = None) -> str:
    """The one-line message a configuration is refused with."""
    with pytest.raises(ConfigError) as caught:
        build_config(toml, env_settings(env or {}), {})
    message = str(caught.value)
    assert "\n" not in message
    assert message.strip() == message
    return message


def with_auth(**settings: Any) -> dict[str, Any]:
    return {"tokens": [token_entry()], "signing_key": SIGNING_KEY, **settings}


@pytest.fixture(scope="module")
def rsa_pem() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def test_a_good_configuration_is_accepted(tmp_path, rsa_pem):
    pem = tmp_path / "idp.pem"
    pem.write_bytes(rsa_pem)
    config = build_config(with_auth(jwt={"algorithms": ["RS256"], "public_key_file": str(pem)},
                                    private_reads=True, max_link_lifetime=3600), {}, {})
    assert config.auth.configured
    assert config.auth.private_reads
    assert config.auth.max_link_lifetime == 3600
    assert config.auth.signing_key == SIGNING_KEY.encode()


# --- [[tokens]] ------------------------------------------------------------------------------

@pytest.mark.parametrize(("entry", "expected"), [
    (token_entry(scopes=["read", "fly"]), "tokens[0].scopes: unknown scope 'fly'"),
    (token_entry(scopes="read fly"), "tokens[0].scopes: unknown scope 'fly'"),
    (token_entry(scopes=[1]), "tokens[0].scopes: expected a list"),
    (token_entry(token="short-token"), "tokens[0].token: must be at least 16 characters"),
    (token_entry(token=1234567890123456789), "tokens[0].token: must be at least 16"),
    (token_entry(token_sha256="ab" * 32), "tokens[0]: give exactly one of token and token_sha256"),
    (token_entry(token=None), "tokens[0]: give exactly one of token and token_sha256"),
    (token_entry(token=None, token_sha256="xyz"), "tokens[0].token_sha256: expected 64 hex"),
    (token_entry(token=None, token_sha256="ab" * 31), "tokens[0].token_sha256: expected 64 hex"),
    (token_entry(token=None, token_sha256="ab" * 33), "tokens[0].token_sha256: expected 64 hex"),
    (token_entry(principal=None), "tokens[0].principal: expected a name"),
    (token_entry(principal=""), "tokens[0].principal: expected a name"),
    (token_entry(principal="a\nb"), "tokens[0].principal: expected a name"),
    (token_entry(secret="x"), "tokens[0]: unknown key 'secret'"),
])
def test_a_bad_token_entry_is_one_line(entry, expected):
    message = refused({"tokens": [entry], "signing_key": SIGNING_KEY})
    assert message.startswith(expected), message
    assert TOKEN not in message  # the secret is never repeated


def test_a_bad_tokens_value_is_one_line():
    assert refused({"tokens": {"token": TOKEN}, "signing_key": SIGNING_KEY}).startswith(
        "tokens: expected [[tokens]] tables")
    assert refused({"tokens": ["x"], "signing_key": SIGNING_KEY}).startswith(
        "tokens[0]: expected a table")


def test_the_same_token_twice_is_refused_also_as_its_digest():
    digest = hashlib.sha256(TOKEN.encode()).hexdigest()
    for second in (token_entry(principal="bob"),
                   token_entry(principal="bob", token=None, token_sha256=digest.upper())):
        message = refused({"tokens": [token_entry(), second], "signing_key": SIGNING_KEY})
        assert message == "tokens: the same token appears twice"


# --- signing_key, booleans, max_link_lifetime ------------------------------------------------

def test_auth_without_a_signing_key_is_refused():
    message = refused({"tokens": [token_entry()]})
    assert message.startswith("signing_key is required when tokens or jwt are configured")
    message = refused({"jwt": {"algorithms": ["HS256"], "secret": SECRET}})
    assert message.startswith("signing_key is required")


@pytest.mark.parametrize("key", ["short", "x" * 31, 12345678901234567890123456789012345, True])
def test_a_short_or_odd_signing_key_is_refused(key):
    message = refused(with_auth(signing_key=key))
    assert message.startswith("signing_key: must be at least 32 characters")
    assert str(key) not in message or key is True


def test_signing_key_from_the_environment():
    config = build_config({"tokens": [token_entry()]},
                          env_settings({"TORNADO_FILES_SIGNING_KEY": SIGNING_KEY}), {})
    assert config.auth.signing_key == SIGNING_KEY.encode()
    assert refused({"tokens": [token_entry()]}, {"TORNADO_FILES_SIGNING_KEY": "short"}
                   ).startswith("signing_key: must be at least 32")


@pytest.mark.parametrize("name", ["private_reads", "allow_anonymous"])
@pytest.mark.parametrize("value", ["maybe", 1, 0, "", [True], "tru"])
def test_bad_booleans_are_refused(name, value):
    assert refused(with_auth(**{name: value})) == (
        f"{name}: expected true or false, got {value!r}")


@pytest.mark.parametrize(("text", "expected"), [
    ("true", True), ("TRUE", True), ("1", True), ("yes", True),
    ("false", False), ("0", False), ("no", False),
])
def test_booleans_from_the_environment(text, expected):
    env = env_settings({"TORNADO_FILES_ALLOW_ANONYMOUS": text,
                        "TORNADO_FILES_PRIVATE_READS": text})
    auth = build_config({}, env, {}).auth
    assert (auth.allow_anonymous, auth.private_reads) == (expected, expected)


def test_a_bad_boolean_from_the_environment_is_refused():
    assert refused({}, {"TORNADO_FILES_ALLOW_ANONYMOUS": "sure"}) == (
        "allow_anonymous: expected true or false, got 'sure'")


@pytest.mark.parametrize("value", [0, 0.5, -1, 400 * 86400 + 1, "forever", True, [60], "nan"])
def test_max_link_lifetime_out_of_range_is_refused(value):
    assert refused(with_auth(max_link_lifetime=value)).startswith("max_link_lifetime: ")


@pytest.mark.parametrize(("value", "seconds"), [(1, 1.0), (3600, 3600.0), ("86400", 86400.0),
                                                (400 * 86400, 400 * 86400.0)])
def test_max_link_lifetime_within_range(value, seconds):
    assert build_config(with_auth(max_link_lifetime=value), {}, {}
                        ).auth.max_link_lifetime == seconds


# --- [jwt] -----------------------------------------------------------------------------------

def jwt_refused(table: dict[str, Any]) -> str:
    return refused({"jwt": table, "signing_key": SIGNING_KEY})


def test_a_missing_key_file_is_refused(tmp_path):
    missing = tmp_path / "nowhere.pem"
    assert jwt_refused({"algorithms": ["RS256"], "public_key_file": str(missing)}) == (
        f"jwt.public_key_file: {missing} does not exist")
    assert jwt_refused({"algorithms": ["RS256"], "jwks_file": str(missing)}) == (
        f"jwt.jwks_file: {missing} does not exist")


def test_a_key_file_that_cannot_be_read_is_refused(tmp_path):
    assert jwt_refused({"algorithms": ["RS256"], "public_key_file": str(tmp_path)}
                       ).startswith(f"jwt.public_key_file: {tmp_path} cannot be read")


@pytest.mark.parametrize("content", [
    b"", b"not a key", b"-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n",
    b"\xff\xfe binary", "ключ".encode(),
])
def test_a_key_file_that_is_not_pem_is_refused(tmp_path, content):
    path = tmp_path / "key.pem"
    path.write_bytes(content)
    message = jwt_refused({"algorithms": ["RS256"], "public_key_file": str(path)})
    assert message.startswith("jwt.public_key_file: "), message


def test_a_private_key_is_not_a_public_key_file(tmp_path):
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    path = tmp_path / "private.pem"
    path.write_bytes(private)
    assert jwt_refused({"algorithms": ["RS256"], "public_key_file": str(path)}) == (
        "jwt.public_key_file: not a PEM public key")


@pytest.mark.parametrize("content", [
    "", "not json", "{", "{}", '{"keys": []}', '{"keys": "x"}', '{"keys": [1, 2]}',
    '{"keys": [{"kty": "RSA"}]}', '{"keys": [{"kty": "nope", "kid": "a"}]}',
])
def test_jwks_garbage_is_refused(tmp_path, content):
    path = tmp_path / "jwks.json"
    path.write_text(content)
    message = jwt_refused({"algorithms": ["RS256"], "jwks_file": str(path)})
    assert message.startswith("jwt.jwks_file: "), message


def test_several_jwks_keys_each_need_a_kid(tmp_path):
    keys = [ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1()).public_key(),
                               as_dict=True) for _ in range(2)]
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": keys}))
    assert jwt_refused({"algorithms": ["ES256"], "jwks_file": str(path)}) == (
        "jwt.jwks_file: with several keys, each needs a kid")


@pytest.mark.parametrize("algorithms", [["none"], ["RS256", "none"], [], "RS256", ["RS257"],
                                        ["rs256"], [256]])
def test_bad_algorithms_are_refused(algorithms):
    message = jwt_refused({"algorithms": algorithms, "secret": SECRET})
    assert message.startswith("jwt.algorithms: "), message


def test_algorithms_are_required():
    assert jwt_refused({"secret": SECRET}).startswith("jwt.algorithms: ")


@pytest.mark.parametrize("algorithms", [["HS256"], ["RS256", "HS256"], ["HS512"]])
def test_hmac_with_a_public_key_is_refused(tmp_path, rsa_pem, algorithms):
    """RFC 8725 §2.1: a public key used as an HMAC secret lets anyone forge tokens."""
    pem = tmp_path / "idp.pem"
    pem.write_bytes(rsa_pem)
    assert jwt_refused({"algorithms": algorithms, "public_key_file": str(pem)}) == (
        "jwt.algorithms: HS* needs secret, not a public key")


def test_a_secret_needs_hmac_algorithms():
    assert jwt_refused({"algorithms": ["RS256"], "secret": SECRET}) == (
        "jwt.secret: only works with HS256, HS384 or HS512")


@pytest.mark.parametrize("secret", ["short", "s" * 31, 12345, ["s" * 40]])
def test_a_short_jwt_secret_is_refused(secret):
    message = jwt_refused({"algorithms": ["HS256"], "secret": secret})
    assert message.startswith("jwt.secret: must be at least 32"), message
    assert "sss" not in message


def test_exactly_one_key_source(tmp_path, rsa_pem):
    pem = tmp_path / "idp.pem"
    pem.write_bytes(rsa_pem)
    for table in ({"algorithms": ["RS256"]},
                  {"algorithms": ["RS256"], "public_key_file": str(pem), "jwks_file": str(pem)}):
        assert jwt_refused(table) == (
            "jwt: give exactly one of public_key_file, jwks_file and secret")


@pytest.mark.parametrize("table", [
    {"issuer": 5}, {"audience": [1]}, {"audience": {"a": 1}}, {"principal_claim": ""},
    {"scope_claim": 3},
])
def test_claim_settings_must_be_strings(table):
    assert jwt_refused({"algorithms": ["HS256"], "secret": SECRET, **table}) == (
        "jwt: issuer, audience, principal_claim and scope_claim are strings")


def test_unknown_jwt_keys_are_refused():
    assert jwt_refused({"algorithms": ["HS256"], "secret": SECRET, "leeway": 60}) == (
        "jwt: unknown key 'leeway'")
    assert refused({"jwt": "HS256", "signing_key": SIGNING_KEY}) == "jwt: expected a [jwt] table"


# --- the real process ------------------------------------------------------------------------

def run_server(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TORNADO_FILES_")}
    return subprocess.run([sys.executable, str(ROOT / "server.py"),
                           "--data-dir", str(tmp_path / "data"), *args],
                          capture_output=True, text=True, timeout=30, cwd=tmp_path, env=env)


@pytest.mark.parametrize(("toml", "expected"), [
    (f'[[tokens]]\ntoken = "{TOKEN}"\nprincipal = "alice"\nscopes = ["read"]\n',
     "signing_key is required when tokens or jwt are configured"),
    (f'signing_key = "{SIGNING_KEY}"\n[[tokens]]\ntoken = "tiny"\nprincipal = "a"\n',
     "tokens[0].token: must be at least 16 characters"),
    (f'signing_key = "{SIGNING_KEY}"\n[jwt]\nalgorithms = ["RS256"]\n'
     'public_key_file = "missing.pem"\n', "jwt.public_key_file: missing.pem does not exist"),
    (f'signing_key = "{SIGNING_KEY}"\n[jwt]\nalgorithms = ["RS256"]\njwks_file = "jwks.json"\n',
     "jwt.jwks_file: expected a JWK Set"),
])
def test_a_bad_config_file_is_one_line_on_stderr_and_exit_2(tmp_path, toml, expected):
    (tmp_path / "jwks.json").write_text("[]")  # JSON, but not a JWK Set
    config = tmp_path / "bad.toml"
    config.write_text(toml)
    result = run_server(tmp_path, "--config", str(config))
    assert result.returncode == 2
    assert result.stderr.startswith(f"server.py: error: {expected}")
    assert result.stderr.count("\n") == 1
    assert result.stderr.endswith("\n")
    assert result.stdout == ""
    assert not (tmp_path / "data").exists()  # stopped before anything was prepared


# --- keys that cannot be right ---------------------------------------------------------------

def jwks_refused(tmp_path: Path, document: object, algorithms: list[str]) -> str:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(document))
    return jwt_refused({"algorithms": algorithms, "jwks_file": str(path)})


@pytest.mark.parametrize("document", [[], None, 5, "keys", [{"kty": "RSA"}], {"keys": None},
                                      {"keys": {"kid": "a"}}])
def test_a_jwks_that_is_not_an_object_with_keys_is_one_line(tmp_path, document):
    assert jwks_refused(tmp_path, document, ["RS256"]).startswith("jwt.jwks_file: ")


def test_a_jwks_kid_must_be_a_string(tmp_path):
    key = ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1()).public_key(), as_dict=True)
    assert jwks_refused(tmp_path, {"keys": [{**key, "kid": 5}]}, ["ES256"]) == (
        "jwt.jwks_file: a kid must be a string, got 5")


def test_a_jwks_with_private_key_material_is_refused(tmp_path):
    """A JWKS is public; a private key in it (``d``) would also fail every verification."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = {**RSAAlgorithm.to_jwk(private, as_dict=True), "kid": "k1"}
    assert jwks_refused(tmp_path, {"keys": [jwk]}, ["RS256"]) == (
        "jwt.jwks_file: key 'k1' holds private or secret key material; give only public keys")
    secret = {"kty": "oct", "kid": "s1", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"}
    assert jwks_refused(tmp_path, {"keys": [secret]}, ["RS256"]).startswith(
        "jwt.jwks_file: key 's1' holds private or secret key material")


def test_a_jwks_where_no_key_fits_the_algorithms_is_refused(tmp_path):
    key = ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1()).public_key(), as_dict=True)
    assert jwks_refused(tmp_path, {"keys": [{**key, "kid": "e"}]}, ["RS256"]) == (
        "jwt.jwks_file: no key in it can verify RS256")
    assert jwks_refused(tmp_path, {"keys": [{**key, "kid": "e", "alg": "ES256"}]},
                        ["ES384"]) == "jwt.jwks_file: no key in it can verify ES384"
    assert jwks_refused(tmp_path, {"keys": [{**key, "kid": "e", "use": "enc"}]},
                        ["ES256"]) == "jwt.jwks_file: no key in it can verify ES256"


def test_a_public_key_that_fits_no_listed_algorithm_is_refused(tmp_path):
    pem = tmp_path / "ec.pem"
    pem.write_bytes(ec.generate_private_key(ec.SECP384R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    for algorithms in (["RS256"], ["ES256"], ["RS256", "PS512"]):
        assert jwt_refused({"algorithms": algorithms, "public_key_file": str(pem)}) == (
            f"jwt.public_key_file: the key cannot verify {', '.join(algorithms)}")


def test_rsa_keys_below_2048_bits_are_refused(tmp_path):
    """RFC 7518 §3.3: RS* and PS* keys MUST be 2048 bits or larger."""
    # A key too small is what is refused here.
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()  # noqa: S505
    pem = tmp_path / "small.pem"
    pem.write_bytes(small.public_bytes(serialization.Encoding.PEM,
                                       serialization.PublicFormat.SubjectPublicKeyInfo))
    assert jwt_refused({"algorithms": ["RS256"], "public_key_file": str(pem)}) == (
        "jwt.public_key_file: the RSA key has 1024 bits; at least 2048 are needed "
        "(RFC 7518 §3.3)")
    jwk = {**RSAAlgorithm.to_jwk(small, as_dict=True), "kid": "old"}
    assert jwks_refused(tmp_path, {"keys": [jwk]}, ["RS256"]) == (
        "jwt.jwks_file: key 'old': the RSA key has 1024 bits; at least 2048 are needed "
        "(RFC 7518 §3.3)")


@pytest.mark.parametrize(("algorithms", "least"), [
    (["HS256"], 32), (["HS384"], 48), (["HS512"], 64), (["HS256", "HS512"], 64),
])
def test_a_jwt_secret_is_at_least_its_hash_output(algorithms, least):
    """RFC 7518 §3.2: an HMAC key at least as long as the hash output, counted in bytes."""
    assert build_config(with_auth(jwt={"algorithms": algorithms, "secret": "s" * least}),
                        {}, {}).auth.jwt is not None
    message = jwt_refused({"algorithms": algorithms, "secret": "s" * (least - 1)})
    assert message == (f"jwt.secret: must be at least {least} bytes for "
                       f"{algorithms[-1]} (RFC 7518 §3.2)")
    # 31 characters of which some take two bytes in UTF-8: 32 bytes, enough for HS256
    if least == 32:
        assert build_config(with_auth(jwt={"algorithms": algorithms, "secret": "é" + "s" * 30}),
                            {}, {}).auth.jwt is not None


@pytest.mark.parametrize("token", [
    " alice-token-0123456789", "alice-token-0123456789 ", "alice-token-0123456789\n",
    "alice token 0123456789", "alice\ttoken-0123456789", "alice-tökén-0123456789",
    "alice-token-0123456789\x00",
])
def test_a_token_a_header_cannot_carry_is_refused(token):
    """A header value loses its surrounding whitespace (RFC 9110 §5.5) and carries only
    ASCII intact: such a token could never be presented, so it stops start-up instead."""
    message = refused({"tokens": [token_entry(token=token)], "signing_key": SIGNING_KEY})
    assert message == ("tokens[0].token: use only visible ASCII characters (letters, digits, "
                       "punctuation), no spaces")


def test_none_in_algorithms_is_named():
    for algorithms in (["none"], ["RS256", "None"]):
        assert jwt_refused({"algorithms": algorithms, "secret": SECRET}) == (
            "jwt.algorithms: 'none' (unsigned tokens) is never accepted (RFC 8725 §3.1)")


def test_a_certificate_as_public_key_file_says_how_to_get_the_key(tmp_path):
    """Providers often hand out a certificate; its key is one openssl command away."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "idp.example")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1).not_valid_before(now)
            .not_valid_after(now + timedelta(days=1)).sign(key, hashes.SHA256()))
    path = tmp_path / "idp.crt"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    assert jwt_refused({"algorithms": ["ES256"], "public_key_file": str(path)}) == (
        "jwt.public_key_file: a certificate, not a public key (extract it: openssl x509 "
        "-pubkey -noout -in CERT > key.pem)")


def test_start_up_warns_when_open_or_when_jwt_has_no_audience():
    """RFC 7519 §4.1.3, RFC 8725 §3.9: without ``audience`` a token the identity provider
    issued for any other service is accepted too. Allowed (the setting is optional), but said."""
    open_mode = build_config({}, {}, {}).auth
    assert startup_warnings(open_mode) == (
        "no tokens or jwt are configured: the server is open to anyone who can reach it",)
    tokens_only = build_config(with_auth(), {}, {}).auth
    assert startup_warnings(tokens_only) == ()
    table = {"algorithms": ["HS256"], "secret": SECRET}
    no_audience = build_config(with_auth(jwt=table), {}, {}).auth
    assert startup_warnings(no_audience) == (
        "jwt.audience is not set: a JWT from the identity provider is accepted whichever "
        "service it was issued for (set audience to this server's name)",)
    audience = build_config(with_auth(jwt={**table, "audience": "files"}), {}, {}).auth
    assert startup_warnings(audience) == ()


@pytest.mark.parametrize("alg", ["none", ["RS256"], 5, "HS256", "RS384"])
def test_a_jwk_whose_alg_is_not_listed_is_skipped_not_a_traceback(tmp_path, alg):
    key = RSAAlgorithm.to_jwk(rsa.generate_private_key(public_exponent=65537, key_size=2048)
                              .public_key(), as_dict=True)
    assert jwks_refused(tmp_path, {"keys": [{**key, "kid": "a", "alg": alg}]}, ["RS256"]) == (
        "jwt.jwks_file: no key in it can verify RS256")


def test_a_symmetric_jwk_without_its_k_is_skipped_not_a_traceback(tmp_path):
    """Found by fuzzing the loader: PyJWT reads ``k`` of an ``oct`` key unguarded."""
    key = ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1()).public_key(), as_dict=True)
    document = {"keys": [{"kty": "oct", "kid": "s"}, {**key, "kid": "e"}]}
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(document))
    config = build_config(with_auth(jwt={"algorithms": ["ES256"], "jwks_file": str(path)}),
                          {}, {})
    assert config.auth.jwt is not None
    assert [key.kid for key in config.auth.jwt.keys] == ["e"]
    assert jwks_refused(tmp_path, {"keys": [{"kty": "oct", "kid": "s"}]}, ["ES256"]) == (
        "jwt.jwks_file: no key in it can verify ES256")
