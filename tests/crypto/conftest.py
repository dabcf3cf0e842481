"""A SoftHSM2 token for the PKCS#11 provider, and ``keyring``: the same tests over both
providers.

A PKCS#11 library reads its configuration once per process, so each test process makes one
token (in a temp dir: ``SOFTHSM2_CONF`` names a ``softhsm2.conf`` whose tokendir is there) and
every test starts with that token emptied. Under ``CI=true`` a missing SoftHSM2 fails the tests
(``.ci/run`` installs Debian's ``softhsm2``); locally they are skipped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from vault.config import Settings
from vault.crypto import pkcs11
from vault.crypto.keys import KeyMaterial, load_key_material, rotate_kek

SOFTHSM_MODULE = Path("/usr/lib/softhsm/libsofthsm2.so")
TOKEN_LABEL = "cv-test"
PIN = "4711-test-pin"
IN_CI = os.environ.get("CI", "").lower() == "true"


@dataclass(frozen=True)
class Token:
    module: Path
    label: str
    pin: str

    def env(self) -> dict[str, str]:
        return {
            "VAULT_KEY_PROVIDER": "pkcs11",
            "VAULT_PKCS11_MODULE": str(self.module),
            "VAULT_PKCS11_TOKEN_LABEL": self.label,
            "VAULT_PKCS11_PIN": self.pin,
        }

    def wipe(self) -> None:
        """Destroy every object on the token and forget this process's providers."""
        import pkcs11 as p11

        tok = p11.lib(str(self.module)).get_token(token_label=self.label)
        try:
            session = tok.open(user_pin=self.pin, rw=True)
        except p11.UserAlreadyLoggedIn:
            session = tok.open(rw=True)
        with session:
            for obj in list(session.get_objects()):
                obj.destroy()
        pkcs11.forget_providers()


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> Token:
    util = shutil.which("softhsm2-util")
    if util is None or not SOFTHSM_MODULE.exists():
        if IN_CI:
            pytest.fail("SoftHSM2 is required in CI (.ci/run installs softhsm2 with apt-get)")
        pytest.skip("SoftHSM2 is not installed (apt-get install softhsm2)")
    root = tmp_path_factory.mktemp("softhsm")
    (root / "tokens").mkdir()
    conf = root / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    os.environ["SOFTHSM2_CONF"] = str(conf)  # before this process first loads the library
    subprocess.run(
        [util, "--init-token", "--free", "--label", TOKEN_LABEL, "--pin", PIN, "--so-pin", PIN],
        check=True,
        capture_output=True,
        env={**os.environ, "SOFTHSM2_CONF": str(conf)},
    )
    return Token(SOFTHSM_MODULE, TOKEN_LABEL, PIN)


@pytest.fixture
def token(softhsm: Token, monkeypatch: pytest.MonkeyPatch) -> Token:
    """An empty token, and the environment that selects it (for the CLI and Settings())."""
    softhsm.wipe()
    for name, value in softhsm.env().items():
        monkeypatch.setenv(name, value)
    return softhsm


def provider_settings(provider: str, data_dir: Path, token: Token | None, **kw) -> Settings:
    extra = {}
    if provider == "pkcs11":
        assert token is not None
        extra = {
            "key_provider": "pkcs11",
            "pkcs11_module": token.module,
            "pkcs11_token_label": token.label,
            "pkcs11_pin": token.pin,
        }
    return Settings(data_dir=data_dir, _env_file=None, **extra, **kw)


class Keyring:
    """One provider's keys in a test: load them, rotate them."""

    def __init__(self, settings: Settings):
        self.settings = settings

    @property
    def provider(self) -> str:
        return self.settings.key_provider

    def material(self) -> KeyMaterial:
        return load_key_material(self.settings)

    def rotate(self) -> KeyMaterial:
        rotate_kek(self.settings)
        return load_key_material(self.settings, create=False)


@pytest.fixture(params=["file", "pkcs11"])
def keyring(request: pytest.FixtureRequest, tmp_path: Path) -> Keyring:
    tok = request.getfixturevalue("token") if request.param == "pkcs11" else None
    return Keyring(provider_settings(request.param, tmp_path / "keys", tok))
