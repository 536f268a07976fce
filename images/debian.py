"""One Debian root builder for every target that needs a Debian userland (the disk image, the systemd
bundle's VM test, the daemonless OCI image): debootstrap a root for an architecture and a package set,
once per machine, cached under ~/.cache/cortex/roots by a key of everything that went into it.

A foreign architecture (arm64 on an x86-64 host) runs its maintainer scripts through qemu-user and
binfmt_misc: minutes natively, about twenty under emulation, hence the cache. Roots are written under a
temporary name and renamed when complete: an interrupted build never leaves a root under its key.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from menlo_cortex.cortexfile.schema.target import DebianRelease, Target

from .architectures import machine_of

SUITE: str = Target.model_fields["release"].default.value  # target.release when the Cortexfile says nothing
PYTHONS = {DebianRelease.bookworm.value: "3.11", DebianRelease.trixie.value: "3.13"}  # each release's python3
APT_SOURCES = Path("/etc/apt")
DEBIAN_SUITES = frozenset({"bullseye", "bookworm", "trixie", "forky", "duke", "sid", "oldstable", "stable", "testing",
                           "unstable"})  # fmt: skip
# Bump when the steps below change what a root holds: the cache key includes it.
BUILDER_REVISION = "1"
DEBOOTSTRAP_TIMEOUT_S = 3600  # a foreign root under emulation takes about 20 minutes on 2 cores


class RootError(RuntimeError):
    """A Debian root could not be built; the message names the cause (mirror, emulation, space)."""


def host_mirror(sources: Path = APT_SOURCES) -> str:
    """The Debian mirror this machine's own apt sources name (deb822 `.sources` files, then the one-line
    format): a corporate or air-gapped mirror works without a setting. Security archives are passed over, and
    so are other vendors' repositories for a Debian release (Docker's, Microsoft's): they carry their own
    signing key, where Debian's archive is signed by the debian-archive-keyring (named, or apt's default).
    RootError when there is none (a host that is not Debian): `build.debian_mirror` names one then."""
    for uri, suites, signed_by in _apt_entries(sources):
        debian = any(suite.partition("-")[0] in DEBIAN_SUITES and "security" not in suite for suite in suites)
        if debian and (not signed_by or "debian-archive" in signed_by):
            return uri.rstrip("/")
    raise RootError(
        f"no Debian mirror in this machine's apt sources ({sources}/sources.list, {sources}/sources.list.d): "
        "name one in the Cortexfile's build.debian_mirror"
    )


def _apt_entries(sources: Path) -> list[tuple[str, list[str], str]]:
    """(URI, suites, the signing key apt is told to use, if any) of every enabled `deb` source."""
    entries = []
    for path in sorted((sources / "sources.list.d").glob("*.sources")):
        for stanza in re.split(r"\n\s*\n", _read(path)):
            fields = dict(re.findall(r"^([A-Za-z-]+):[ \t]*(.*)$", stanza, flags=re.MULTILINE))
            if "deb" in fields.get("Types", "").split() and fields.get("Enabled", "yes").lower() != "no":
                suites, key = fields.get("Suites", "").split(), fields.get("Signed-By", "")
                entries += [(uri, suites, key) for uri in fields.get("URIs", "").split()]
    for path in [sources / "sources.list", *sorted((sources / "sources.list.d").glob("*.list"))]:
        for raw in _read(path).splitlines():
            line = raw.split("#", 1)[0]
            options = " ".join(re.findall(r"\[([^]]*)\]", line))
            key = next((value for name, value in re.findall(r"([\w-]+)=(\S+)", options) if name == "signed-by"), "")
            words = re.sub(r"\[[^]]*\]", " ", line).split()
            if len(words) >= 3 and words[0] == "deb":
                entries.append((words[1], [words[2]], key))
    return entries


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


@dataclass(frozen=True)
class RootSpec:
    architecture: str  # amd64 | arm64, as Debian and the Cortexfile name them
    packages: tuple[str, ...]
    # Installed by apt once the base system is configured: packages whose scripts need one (systemd-resolved
    # replaces /etc/resolv.conf, which debootstrap's configure step cannot take).
    later: tuple[str, ...] = ()
    components: tuple[str, ...] = ("main",)
    suite: str = SUITE
    mirror: str = field(default_factory=host_mirror)
    # A root to start from instead of debootstrap: `packages` are then installed on a copy of it (a
    # board's firmware on top of its architecture's root), cached in turn.
    base: RootSpec | None = None
    extra_suites: tuple[str, ...] = ()  # apt also reads these (backports); a package says `name/suite` to take it

    def key(self) -> str:
        text = "|".join(
            [
                *([self.base.key()] if self.base else []),
                BUILDER_REVISION,
                self.architecture,
                self.suite,
                self.mirror,
                *self.components,
                *self.extra_suites,
                "",
                *sorted(self.packages),
                "",
                *self.later,
            ]
        )
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def cache_root(environ: dict[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    base = (
        env.get("CORTEX_ROOT_CACHE") or Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cortex" / "roots"
    )
    return Path(base)


def debian_root(spec: RootSpec, cache: Path | None = None) -> Path:
    """The cached root for `spec`, built now when absent. Never modify it: copy it (copy_root)."""
    root = (cache or cache_root()) / f"debian-{spec.suite}-{spec.architecture}-{spec.key()}"
    if (root / ".complete").is_file():
        return root
    check_builder(spec)
    partial = root.with_name(root.name + f".partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.parent.mkdir(parents=True, exist_ok=True)
    try:
        if spec.base is None:
            _debootstrap(spec, partial)
            _apt_install(spec, partial, spec.later)
        else:
            copy_root(debian_root(spec.base, cache), partial)
            _apt_install(spec, partial, spec.packages)
        _tidy(partial)
        (partial / ".complete").touch()
        shutil.rmtree(root, ignore_errors=True)
        partial.rename(root)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return root


def copy_root(source: Path, dest: Path) -> Path:
    """A private copy of a cached root (reflinks where the file system has them), owners and modes kept."""
    shutil.rmtree(dest, ignore_errors=True)
    _run(["cp", "-a", "--reflink=auto", str(source), str(dest)], "copying the Debian root", 1200)
    (dest / ".complete").unlink(missing_ok=True)
    return dest


def check_builder(spec: RootSpec) -> None:
    """What building a root needs on this host: root, debootstrap, and emulation for a foreign architecture."""
    if os.geteuid() != 0:
        raise RootError("building a Debian root needs root (debootstrap creates device nodes and owners)")
    if shutil.which("debootstrap") is None:
        raise RootError("building a Debian root needs debootstrap: apt-get install debootstrap")
    if machine_of(spec.architecture) != os.uname().machine and not runs_foreign(spec.architecture):
        raise RootError(
            f"an {spec.architecture} root on this {os.uname().machine} host runs its package scripts under "
            "emulation: apt-get install qemu-user-static binfmt-support, then "
            f"update-binfmts --enable qemu-{machine_of(spec.architecture)}"
        )


def runs_foreign(architecture: str) -> bool:
    """binfmt_misc hands this architecture's programs to a registered, enabled qemu-user."""
    entry = Path("/proc/sys/fs/binfmt_misc") / f"qemu-{machine_of(architecture)}"
    try:
        return entry.read_text(encoding="utf-8").startswith("enabled")
    except OSError:
        return False


def _debootstrap(spec: RootSpec, into: Path) -> None:
    command = [
        "debootstrap",
        f"--arch={spec.architecture}",
        "--variant=minbase",
        f"--components={','.join(spec.components)}",
        f"--include={','.join(sorted(spec.packages))}",
        spec.suite,
        str(into),
        spec.mirror,
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=DEBOOTSTRAP_TIMEOUT_S)
    if done.returncode != 0:
        why = _why(done, into / "debootstrap" / "debootstrap.log")
        raise RootError(f"debootstrap of Debian {spec.suite} ({spec.architecture}) from {spec.mirror} failed: {why}")


def _apt_install(spec: RootSpec, root: Path, packages: tuple[str, ...]) -> None:
    """apt-get install `packages` inside the root, from the spec's components, with /proc mounted (package
    scripts ask it whether they run in a chroot)."""
    if not packages:
        return
    sources = root / "etc" / "apt" / "sources.list"
    components = " ".join(spec.components)
    lines = [f"deb {spec.mirror} {suite} {components}\n" for suite in (spec.suite, *spec.extra_suites)]
    sources.write_text("".join(lines), encoding="utf-8")
    apt = ["chroot", str(root), "apt-get", "-q", "-y", "-o", "Dpkg::Use-Pty=0"]
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C.UTF-8"}
    resolv = root / "etc" / "resolv.conf"
    kept = resolv.with_name("resolv.conf.cortex-build")
    if resolv.is_symlink() or resolv.exists():
        resolv.rename(kept)  # systemd-resolved's stub link leads nowhere in a chroot
    shutil.copyfile("/etc/resolv.conf", resolv)
    _run(["mount", "-t", "proc", "proc", str(root / "proc")], "mounting /proc in the root", 60)
    try:
        for step in (["update", "--error-on=any"], ["install", "--no-install-recommends", *packages]):
            done = subprocess.run([*apt, *step], capture_output=True, text=True, check=False, env=env, timeout=3600)
            if done.returncode != 0:
                lines = [line for line in (done.stderr + done.stdout).splitlines() if line.startswith(("E:", "dpkg"))]
                why = " / ".join(lines[-4:]) or done.stderr[-500:]
                raise RootError(
                    f"apt-get {step[0]} in the {spec.architecture} root failed (mirror {spec.mirror}): {why}"
                )
    finally:
        subprocess.run(["umount", "-l", str(root / "proc")], capture_output=True, check=False, timeout=60)
        if resolv.is_symlink():  # a package (systemd-resolved) put its own: keep it
            kept.unlink(missing_ok=True)
        elif kept.is_symlink() or kept.exists():
            kept.replace(resolv)


def _why(done: subprocess.CompletedProcess[str], log: Path) -> str:
    """debootstrap's own error lines, else the end of its log inside the root (where dpkg's errors go)."""
    lines = [line for line in (done.stderr + done.stdout).splitlines() if line.strip()]
    failing = [line for line in lines if line.startswith(("E:", "W: Couldn't"))]
    if not failing and log.is_file():
        logged = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
        failing = [line for line in logged if "error" in line.lower()] or logged
    return " / ".join(dict.fromkeys((failing or lines)[-4:])) or f"exit status {done.returncode}"


def _tidy(root: Path) -> None:
    """Nothing a copy should inherit: downloaded packages, apt lists, logs, this host's machine id."""
    for folder in ("var/cache/apt/archives", "var/lib/apt/lists", "var/log"):
        for path in (root / folder).glob("*"):
            if path.is_file() or path.is_symlink():
                path.unlink()
    (root / "etc" / "machine-id").write_text("", encoding="utf-8")
    (root / "var" / "lib" / "dbus" / "machine-id").unlink(missing_ok=True)


def _run(command: list[str], what: str, timeout: int) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=timeout)
    if done.returncode != 0:
        raise RootError(f"{what} failed: {done.stderr.strip()[-1000:]}")


@dataclass(frozen=True)
class InstalledPackage:
    """A package as dpkg recorded it in a root; `files_sha256` hashes its list of file checksums, so two
    roots holding the same version built differently still differ."""

    name: str
    version: str
    architecture: str
    files_sha256: str


def installed_packages(root: Path) -> list[InstalledPackage]:
    """Every package dpkg's status in `root` says is installed, sorted by name."""
    found = []
    for fields in installed_paragraphs(root):
        name, arch = fields["Package"], fields.get("Architecture", "")
        found.append(InstalledPackage(name, fields.get("Version", ""), arch, _files_sha256(root, name, arch)))
    return sorted(found, key=lambda package: package.name)


def installed_paragraphs(root: Path) -> list[dict[str, str]]:
    """The fields of each package dpkg's status in `root` says is installed (continuation lines left out)."""
    status = (root / "var" / "lib" / "dpkg" / "status").read_text(encoding="utf-8", errors="replace")
    fields = [control_fields(paragraph) for paragraph in status.split("\n\n")]
    return [f for f in fields if f.get("Status", "").endswith(" installed") and "Package" in f]


def control_fields(paragraph: str) -> dict[str, str]:
    pairs = {}
    for line in paragraph.splitlines():
        key, sep, value = line.partition(":")
        if sep and not line.startswith((" ", "\t")):
            pairs[key] = value.strip()
    return pairs


def _files_sha256(root: Path, name: str, architecture: str) -> str:
    info = root / "var" / "lib" / "dpkg" / "info"
    for candidate in (info / f"{name}:{architecture}.md5sums", info / f"{name}.md5sums"):
        if candidate.is_file():
            return hashlib.sha256(candidate.read_bytes()).hexdigest()
    return ""
