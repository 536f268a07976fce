"""`device:` the operating system around the appliance in a flashable disk image (`--format disk`).

Every value here is written into the image's files (hostname, networkd units, wpa_supplicant's
configuration, authorized_keys): each is held to a narrow character set here, and written in a form
that needs no quoting there (the Wi-Fi network name goes in as hex).
"""

from __future__ import annotations

import ipaddress
from typing import Annotated

from pydantic import AfterValidator, Field, model_validator

from ..secrets import Secret
from .base import Applies, Section, setting, word_rule
from .sync import TrustedKey

Hostname = Annotated[
    str,
    word_rule(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", "a host name is 1-63 lower-case letters, digits and `-`"),
]
TimeZone = Annotated[
    str,
    word_rule(
        r"(UTC|[A-Z][A-Za-z0-9_+-]*(/[A-Za-z0-9][A-Za-z0-9_+-]*){0,2})",
        "a time zone is a tz database name such as UTC, Europe/Paris or America/Argentina/Salta",
    ),
]
# One public key per entry, without options (`command=`, `from=` ...): the key type, the base64 blob
# and an optional plain comment.
AuthorizedKey = Annotated[
    str,
    word_rule(
        r"(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com"
        r"|sk-ecdsa-sha2-nistp256@openssh\.com) [A-Za-z0-9+/]{40,}={0,3}( [A-Za-z0-9@._+: -]{0,200})?",
        "an authorized key is `TYPE BASE64 [comment]` as in a .pub file (ssh-ed25519, ssh-rsa, ecdsa-sha2-*), "
        "without options",
    ),
]
CountryCode = Annotated[str, word_rule(r"[A-Z]{2}", "a Wi-Fi country is a two-letter ISO 3166 code such as US or DE")]


def _interface(value: str) -> str:
    try:
        interface = ipaddress.ip_interface(value)
    except ValueError:
        raise ValueError(f"`{value}` is not an address with a prefix length, such as 192.168.1.50/24") from None
    if "/" not in value:
        raise ValueError(f"`{value}` has no prefix length: write it as {value}/24 (or the network's length)")
    return str(interface)


def _address(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError(f"`{value}` is not an IP address") from None


Interface = Annotated[str, AfterValidator(_interface)]
Address = Annotated[str, AfterValidator(_address)]


class Ssh(Section):
    enabled: bool = setting(False, "Run an SSH server (key login only, as root) on the device.")
    authorized_keys: list[AuthorizedKey] = setting(
        [], "Public keys that may log in as root (the lines of a .pub file).", max_length=64
    )

    @model_validator(mode="after")
    def _keys_when_enabled(self) -> Ssh:
        if self.enabled and not self.authorized_keys:
            raise ValueError("`enabled` needs at least one key in `authorized_keys` (passwords are off)")
        return self


class DeviceNetwork(Section):
    address: Interface | None = setting(
        None, "A static address with its prefix length (192.168.1.50/24); unset: DHCP on every link."
    )
    gateway: Address | None = setting(None, "The default gateway of a static address.")
    dns: list[Address] = setting([], "Name servers of a static address.", max_length=8)

    @model_validator(mode="after")
    def _static_only(self) -> DeviceNetwork:
        if self.address is None and (self.gateway or self.dns):
            raise ValueError("gateway and dns go with a static `address`; with DHCP the network hands them out")
        return self


class Wifi(Section):
    ssid: str | None = setting(
        None, "The network to join (1-32 characters); unset: no Wi-Fi.", min_length=1, max_length=32
    )
    passphrase: Secret | None = setting(
        None,
        "WPA2 passphrase (WPA3 networks in transition mode too), a `${env:NAME}` or `${file:PATH}` reference "
        "read at build time; the image holds the derived key, not the passphrase.",
    )
    country: CountryCode | None = setting(None, "Regulatory country of the radio (two letters, e.g. US).")

    @model_validator(mode="after")
    def _complete(self) -> Wifi:
        if self.ssid is None:
            if self.passphrase is not None or self.country is not None:
                raise ValueError("passphrase and country go with an `ssid`")
            return self
        if not self.ssid.isprintable():
            raise ValueError("the Wi-Fi network name cannot hold control characters")
        if self.passphrase is None or self.country is None:
            raise ValueError("joining a Wi-Fi network needs its `passphrase` and the radio's `country`")
        return self


# An http(s) folder holding an update (SHA256SUMS, its signature, the manifest and the files it lists), or an OCI
# registry reference to the artifact `cortex build --format update --push` makes. Plain http is allowed: the
# signature is what a device trusts, never the transport.
UpdateUrl = Annotated[
    str,
    word_rule(
        r"https?://[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?(/[A-Za-z0-9._~/%+-]{0,500})?"
        r"|oci://[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?/[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*"
        r":[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}",
        "an update URL is http(s)://host[:port]/folder/ (no credentials, query or spaces), or an OCI reference "
        "oci://host[:port]/repository:tag",
    ),
]
# Local time of day, as the device's time zone reads it: 02:00-05:00, or 22:00-04:00 across midnight.
Window = Annotated[
    str,
    word_rule(
        r"([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-3]):[0-5][0-9]",
        "a maintenance window is HH:MM-HH:MM in the device's time zone, such as 02:00-05:00",
    ),
]


class Updates(Section):
    url: UpdateUrl | None = setting(
        None,
        "Where the device's signed updates are published: an http(s) folder, or an OCI reference "
        "(oci://registry/repository:tag); unset: the device never updates.",
    )
    trusted_keys: list[TrustedKey] = setting(
        [],
        "Keys whose signature an update needs: SSH public key lines or paths of OpenPGP public key files, as "
        "sync.trusted_keys (a fleet keeps one set).",
        max_length=32,
    )
    interval_s: int = setting(3600, "Seconds between checks for a newer version.", ge=10, le=604_800)
    window: Window | None = setting(
        None, "Install only in this daily window (HH:MM-HH:MM, local time); unset: any time."
    )
    ready_timeout_s: int = setting(
        900,
        "How long a newly installed version has to start and answer a chat completion on every baked model; past "
        "it the device returns to the version it ran before.",
        ge=60,
        le=7200,
    )
    registry_token: Secret | None = setting(
        None,
        "A password or access token for an oci:// `url` whose registry refuses anonymous pulls (`${file:...}` or "
        "`${env:...}`): sent with `registry_user` to that registry, or to its token service when that is the "
        "registry's own host (or Docker Hub's and GitLab's known ones), only with TLS checks on; never in the logs "
        "or /health.",
    )
    registry_user: str = setting(
        "cortex",
        "The user name sent with `registry_token` (the account's name on Docker Hub; any name on GHCR).",
        pattern=r"^[A-Za-z0-9._@+-]{1,100}$",
    )

    @model_validator(mode="after")
    def _keys_with_url(self) -> Updates:
        if self.url is not None and not self.trusted_keys:
            raise ValueError("`url` needs at least one key in `trusted_keys`: an update is installed only when signed")
        if self.registry_token is not None and not (self.url or "").startswith("oci://"):
            raise ValueError("`registry_token` is for an oci:// `url` (an http(s) folder's server decides its own)")
        return self


class Device(Section):
    applies = Applies.inert  # written into the disk image by `cortex build --format disk`
    hostname: Hostname = setting("cortex", "The device's host name.")
    timezone: TimeZone = setting("UTC", "The device's time zone (tz database name).")
    ssh: Ssh = Field(default_factory=Ssh, description="Remote login; off by default.")
    network: DeviceNetwork = Field(default_factory=DeviceNetwork, description="Wired addressing: DHCP or static.")
    wifi: Wifi = Field(default_factory=Wifi, description="A Wi-Fi network to join, on boards that have a radio.")
    image_size_mb: int | None = setting(
        None,
        "Size of the disk image in MiB; unset: what the content needs plus room. First boot grows the root "
        "file system to the whole disk either way.",
        ge=1024,
        le=1_048_576,
    )
    updates: Updates = Field(
        default_factory=Updates,
        description="Signed A/B updates of the whole image: checked on a timer, kept once they answer.",
    )
