"""make install / uninstall, the systemd units they install (checked with systemd-analyze verify),
the example configs (valid, secrets only as systemd credentials) and the agent's journal lines.

systemd is not PID 1 on the test machines, so no unit is started here: what is checked is what
systemd itself checks before it starts one, and what the installed binary does with the files.
"""
import os
import pathlib
import pwd
import re
import shutil
import subprocess

import pytest

from conftest import PGHA_BIN, make_base_dir

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
UNITS = ("pgha-agent@.service", "pgha-proxy@.service")

# What `make install` puts under DESTDIR with the default PREFIX, and nothing else.
INSTALLED = {
    "usr/local/bin/pgha",
    "usr/local/lib/systemd/system/pgha-agent@.service",
    "usr/local/lib/systemd/system/pgha-proxy@.service",
    "usr/local/lib/sysusers.d/pgha.conf",
    "usr/local/share/doc/pgha/README.md",
    "usr/local/share/doc/pgha/ARCHITECTURE.md",
    "usr/local/share/doc/pgha/DEPLOY_SYSTEMD.md",
    "usr/local/share/doc/pgha/DEPLOY_3HOSTS.md",
    "usr/local/share/doc/pgha/DEPLOY_CONTAINERS.md",
    "usr/local/share/doc/pgha/ETCD.md",
    "usr/local/share/doc/pgha/METRICS.md",
    "usr/local/share/doc/pgha/READ_YOUR_WRITES.md",
    "usr/local/share/doc/pgha/BENCHMARKS.md",
    "usr/local/share/doc/pgha/TWO_REGIONS.md",
    "usr/local/share/doc/pgha/examples/agent.conf",
    "usr/local/share/doc/pgha/examples/proxy.conf",
    "usr/local/share/pgha/prometheus/pgha-alerts.yml",
}


# Where `make all` puts the binary: build/asan when SANITIZE=1 reaches make through MAKEFLAGS (make check).
BUILT = os.path.join("build", "asan") if "SANITIZE=1" in os.environ.get("MAKEFLAGS", "") else "build"


def make(*args, user=None, timeout=900):
    cmd = ["make", "-C", ROOT, *args]
    if user is not None:
        cmd = ["runuser", "-u", user, "--", *cmd]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{' '.join(cmd)}:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


def files_under(d):
    out = set()
    for dirpath, _, names in os.walk(d):
        for n in names:
            out.add(os.path.relpath(os.path.join(dirpath, n), d))
    return out


@pytest.fixture(scope="module")
def built():
    # The build `make install` copies (the release one, or build/asan under `make check`'s SANITIZE=1,
    # which reaches this make through MAKEFLAGS), made by the caller (as `sudo make install` expects).
    make("-j2", "all")


@pytest.fixture
def staging():
    """A DESTDIR owned by an unprivileged user, and that user (None: we are not root, so we are one).
    Under a 0755 directory of /tmp: pytest's own tmp_path is not reachable by another user."""
    base = make_base_dir()
    d = pathlib.Path(base) / "stage"
    d.mkdir()
    user = None
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        os.chown(d, nobody.pw_uid, nobody.pw_gid)
        user = "nobody"
    yield d, user
    shutil.rmtree(base)


def test_destdir_install_and_uninstall(built, staging):
    dest, user = staging
    make("install", f"DESTDIR={dest}/root", user=user)
    root = dest / "root"
    assert files_under(root) == INSTALLED
    st = os.stat(root / "usr/local/bin/pgha")
    assert st.st_mode & 0o777 == 0o755
    for u in UNITS:
        text = (root / "usr/local/lib/systemd/system" / u).read_text()
        assert "@BINDIR@" not in text and "@DOCDIR@" not in text
        assert re.search(r"^ExecStart=/usr/local/bin/pgha (agent|proxy) -c /etc/pgha/", text, re.M), text
    # The installed binary runs and is the one just built.
    with open(os.path.join(ROOT, BUILT, "pgha"), "rb") as a, open(root / "usr/local/bin/pgha", "rb") as b:
        assert a.read() == b.read()
    for cmd in ("agent", "proxy"):
        r = subprocess.run([str(root / "usr/local/bin/pgha"), cmd, "--help"], capture_output=True,
                           text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        assert f"Usage: pgha {cmd} -c FILE" in r.stdout

    # systemd-sysusers finds the installed sysusers.d file (PREFIX /usr/local too) and makes the
    # proxy's user: here into the staging tree's own /etc.
    (root / "etc").mkdir()
    r = subprocess.run(["systemd-sysusers", f"--root={root}"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert re.search(r"^pgha:x:\d+:\d+:pgha proxy:/nonexistent:", (root / "etc/passwd").read_text(), re.M)
    shutil.rmtree(root / "etc")

    make("uninstall", f"DESTDIR={dest}/root", user=user)
    assert files_under(root) == set()


def verify(*paths):
    """systemd-analyze verify's complaints about our files (lines about the host's own units,
    which verify loads as dependencies, are not ours to judge)."""
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", *map(str, paths)],
                       capture_output=True, text=True, timeout=120, cwd="/")
    host = re.compile(r"^/(usr/)?lib/systemd/|^/etc/systemd/|^/run/systemd/")
    ours = [ln for ln in (r.stdout + r.stderr).splitlines() if ln.strip() and not host.match(ln)]
    return r.returncode, ours


def test_units_verify_clean(built, tmp_path):
    # verify checks that ExecStart's program exists, so install where the units point to it.
    prefix = tmp_path / "prefix"
    make("install", f"PREFIX={prefix}")
    unitdir = prefix / "lib/systemd/system"
    text = (unitdir / "pgha-agent@.service").read_text()
    assert f"ExecStart={prefix}/bin/pgha agent -c /etc/pgha/%i.conf" in text
    rc, complaints = verify(*(unitdir / u for u in UNITS))
    assert rc == 0 and complaints == [], "\n".join(complaints)

    # The same check does see a mistake in one of them (so the clean result above means something).
    bad = tmp_path / "pgha-agent-bad@.service"
    bad.write_text(text.replace("KillMode=mixed", "KillMode=mixd"))
    rc, complaints = verify(bad)
    assert any("kill mode" in c.lower() for c in complaints), complaints

    # Hardening and the restart policy the guide explains, as systemd reads them.
    agent = (unitdir / "pgha-agent@.service").read_text()
    proxy = (unitdir / "pgha-proxy@.service").read_text()
    for unit in (agent, proxy):
        for line in ("NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
                     "PrivateDevices=yes", "CapabilityBoundingSet=", "KillMode=mixed",
                     "Restart=on-failure"):
            assert re.search(rf"^{re.escape(line)}$", unit, re.M), line
        assert not re.search(r"^Environment", unit, re.M), "secrets go through LoadCredential=, not the environment"
        assert re.search(r"^LoadCredential=secrets:/etc/pgha/secrets/", unit, re.M)
    assert re.search(r"^User=postgres$", agent, re.M)
    assert re.search(r"^User=pgha$", proxy, re.M)
    assert re.search(r"^LimitNOFILE=\d+$", proxy, re.M)
    # systemd's own rating of the sandbox (0 safest, 10 none): as measured when the units were
    # written (agent 2.9, proxy 1.5), so a setting dropped by mistake fails here.
    for unit, worst in (("pgha-agent@.service", 30), ("pgha-proxy@.service", 15)):
        r = subprocess.run(["systemd-analyze", "security", "--offline=yes", f"--threshold={worst}",
                            str(unitdir / unit)], capture_output=True, text=True, timeout=120, cwd="/")
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    make("uninstall", f"PREFIX={prefix}")
    assert files_under(prefix) == set()


def credentials(tmp_path, unit, files):
    """A stand-in for /run/credentials/<unit>/ as systemd fills it (mode 0400): same names, other root."""
    d = tmp_path / "run/credentials" / unit
    d.mkdir(parents=True)
    for name, content in files.items():
        p = d / f"secrets_{name}"
        p.write_text(content)
        p.chmod(0o400)
    return d


def test_example_configs_check(tmp_path):
    examples = os.path.join(ROOT, "deploy", "examples")
    agent = open(os.path.join(examples, "agent.conf")).read()
    proxy = open(os.path.join(examples, "proxy.conf")).read()
    # Every secret the examples name is a credential of their unit: no secret file elsewhere.
    # TLS private keys (key_file) are the exception, in /etc/pgha/tls/: credentials are copied
    # at start, and a reload must pick up a rotated key (docs/DEPLOY_3HOSTS.md).
    for text, unit in ((agent, "pgha-agent@main.service"), (proxy, "pgha-proxy@main.service")):
        for m in re.finditer(r"^#?\s*(\w*(password|token|pass|auth|key)\w*_file|auth_file)\s*=\s*(\S+)", text, re.M):
            if m.group(1) == "key_file":
                assert m.group(3).startswith("/etc/pgha/tls/") and m.group(3).endswith(".key"), m.group(0)
            else:
                assert m.group(3).startswith(f"/run/credentials/{unit}/secrets_"), m.group(0)

    run = tmp_path / "run"
    credentials(tmp_path, "pgha-agent@main.service",
                {"superuser.password": "su-pw\n", "replication.password": "repl-pw\n",
                 "api.token": "0123456789abcdef0123456789abcdef\n"})
    credentials(tmp_path, "pgha-proxy@main.service", {"users.txt": '"app" "app-pw"\n'})
    for name, text in (("agent", agent), ("proxy", proxy)):
        conf = tmp_path / f"{name}.conf"
        conf.write_text(text.replace("/run/credentials/", f"{run}/credentials/"))
        r = subprocess.run([PGHA_BIN, name, "--check", "-c", str(conf)],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "OK" in r.stdout
        assert "warn" not in r.stderr.lower(), r.stderr

    # pgha expands no variables in its config (the guide says so: name the directory itself).
    conf = tmp_path / "agent-env.conf"
    conf.write_text(agent.replace("/run/credentials/pgha-agent@main.service/", "${CREDENTIALS_DIRECTORY}/"))
    env = dict(os.environ, CREDENTIALS_DIRECTORY=f"{run}/credentials/pgha-agent@main.service")
    r = subprocess.run([PGHA_BIN, "agent", "--check", "-c", str(conf)], capture_output=True, text=True,
                       timeout=30, env=env)
    assert r.returncode == 2 and 'cannot open secret file "${CREDENTIALS_DIRECTORY}/secrets_' in r.stderr, r.stderr


def test_agent_lines_in_the_journal(tmp_path):
    """With stderr as systemd connects it (JOURNAL_STREAM = its device:inode) the agent's lines carry
    the syslog priority and no timestamp; the journal adds its own."""
    secret = tmp_path / "su"
    secret.write_text("pw\n")
    secret.chmod(0o600)
    conf = tmp_path / "node.conf"
    conf.write_text(f"""[node]
name = n1
[postgresql]
data_dir = {tmp_path}/data
bin_dir = {tmp_path}/no-postgresql-here
superuser_password_file = {secret}
replication_password_file = {secret}
""")
    log = tmp_path / "stderr"
    with open(log, "w") as err:
        st = os.fstat(err.fileno())
        env = dict(os.environ, JOURNAL_STREAM=f"{st.st_dev}:{st.st_ino}")
        r = subprocess.run([PGHA_BIN, "agent", "-c", str(conf)],
                           stdout=subprocess.DEVNULL, stderr=err, env=env, timeout=60)
    lines = log.read_text().splitlines()
    assert r.returncode == 1, lines
    assert lines[0].startswith("<6>INFO  [agent n1] starting: cluster pgha"), lines
    fatal = [ln for ln in lines if ln.startswith("<2>FATAL [agent n1] ")]
    assert fatal and "no executable postgres there" in fatal[0], lines
    assert not any(re.match(r"^<\d>\d{4}-\d\d-\d\d ", ln) for ln in lines), lines

    # Not the journal's stream (a file, a terminal): the timestamped lines as before.
    with open(log, "w") as err:
        env = dict(os.environ, JOURNAL_STREAM="1:1")
        subprocess.run([PGHA_BIN, "agent", "-c", str(conf)],
                       stdout=subprocess.DEVNULL, stderr=err, env=env, timeout=60)
    first = log.read_text().splitlines()[0]
    assert re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} UTC INFO  \[agent n1\] starting", first), first
