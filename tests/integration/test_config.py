"""Bad configuration is refused with a message naming file, line, option and problem."""
import os
import subprocess

from conftest import PGHA_BIN, free_port, stop_process


def run(*args):
    return subprocess.run([PGHA_BIN, *args], capture_output=True, text=True, timeout=30)


def write(tmp_path, text):
    """The config file, and the password files it names under SECRETS (0600, as `pgha up` writes them)."""
    for name in ("su", "repl"):
        secret = tmp_path / name
        if not secret.exists():
            secret.write_text("pw-" + name + "\n")
        secret.chmod(0o600)
    p = tmp_path / "node.conf"
    p.write_text(text.replace("SECRETS", str(tmp_path)))
    return str(p)


GOOD = """[cluster]
name = demo
[node]
name = n1
[postgresql]
data_dir = /tmp/does-not-matter
superuser_password_file = SECRETS/su
replication_password_file = SECRETS/repl
"""


def test_good_config_passes_check(tmp_path):
    r = run("agent", "--check", "-c", write(tmp_path, GOOD))
    assert r.returncode == 0, r.stderr
    assert "OK" in r.stdout


def test_unknown_option_names_file_line_and_option(tmp_path):
    path = write(tmp_path, GOOD + "bogus_option = 1\n")
    r = run("agent", "--check", "-c", path)
    assert r.returncode == 2
    assert f"{path}:9:" in r.stderr
    assert "[postgresql] unknown option \"bogus_option\"" in r.stderr


def test_unknown_section(tmp_path):
    r = run("agent", "--check", "-c", write(tmp_path, GOOD + "[nope]\nx = 1\n"))
    assert r.returncode == 2
    assert "unknown section [nope]" in r.stderr


def test_bad_value_names_value_and_expectation(tmp_path):
    path = write(tmp_path, GOOD.replace("name = demo", "name = demo\nttl = ten"))
    r = run("agent", "--check", "-c", path)
    assert r.returncode == 2
    assert f"{path}:3:" in r.stderr
    assert '[cluster] ttl = "ten": not a duration' in r.stderr


def test_out_of_range_and_bad_bool(tmp_path):
    r = run("agent", "--check", "-c", write(tmp_path, GOOD.replace("name = n1", "name = n1\npriority = -5")))
    assert r.returncode == 2 and "out of range" in r.stderr
    r = run("agent", "--check", "-c", write(tmp_path, GOOD.replace("name = n1", "name = n1\nnofailover = maybe")))
    assert r.returncode == 2 and "not a boolean" in r.stderr


def test_missing_required_option(tmp_path):
    r = run("agent", "--check", "-c", write(tmp_path, GOOD.replace("data_dir = /tmp/does-not-matter\n", "")))
    assert r.returncode == 2
    assert "[postgresql] data_dir is required" in r.stderr


def test_ttl_relation_checked(tmp_path):
    text = GOOD.replace("name = demo", "name = demo\nttl = 5s\nloop_wait = 2s\nretry_timeout = 3s")
    r = run("agent", "--check", "-c", write(tmp_path, text))
    assert r.returncode == 2
    assert "ttl (5000ms) must be at least loop_wait + 2 * retry_timeout" in r.stderr


def test_syntax_error_and_missing_file(tmp_path):
    r = run("agent", "--check", "-c", write(tmp_path, GOOD + "this is not ini\n"))
    assert r.returncode == 2 and ":9: syntax error" in r.stderr
    r = run("agent", "-c", str(tmp_path / "absent.conf"))
    assert r.returncode == 2 and "cannot open config file" in r.stderr


def test_managed_parameter_refused(tmp_path):
    r = run("agent", "--check", "-c", write(tmp_path, GOOD + "[parameters]\nport = 5999\n"))
    assert r.returncode == 2 and "[parameters] port is managed by pgha" in r.stderr


def test_missing_secret_file_is_clear(tmp_path):
    conf = write(tmp_path, GOOD)
    os.unlink(tmp_path / "su")
    r = run("agent", "-c", conf)
    assert r.returncode == 1
    assert "superuser_password_file" in r.stderr and str(tmp_path / "su") in r.stderr


def test_check_reads_every_secret_file(tmp_path):
    """--check opens what the real start opens: a missing password or token file fails it, naming it."""
    text = (GOOD.replace("name = n1\n", "name = n1\napi_token_file = SECRETS/token\n")
            + "[etcd]\nusername = root\npassword_file = SECRETS/etcd\n")
    (tmp_path / "etcd").write_text("etcd-pw\n")
    (tmp_path / "token").write_text("t" * 32 + "\n")
    for name in ("etcd", "token"):
        (tmp_path / name).chmod(0o600)
    conf = write(tmp_path, text)
    r = run("agent", "--check", "-c", conf)
    assert r.returncode == 0 and "OK" in r.stdout, r.stderr
    for name, option in (("su", "superuser_password_file"), ("repl", "replication_password_file"),
                         ("etcd", "[etcd] password_file"), ("token", "api_token_file")):
        path = tmp_path / name
        saved = path.read_bytes()
        path.unlink()
        r = run("agent", "--check", "-c", conf)
        assert r.returncode == 2, (name, r.stdout, r.stderr)
        assert option in r.stderr and str(path) in r.stderr and "No such file" in r.stderr, r.stderr
        path.write_bytes(saved)
        path.chmod(0o600)


def test_secret_file_modes_and_nul(tmp_path):
    """Writable by group or others: refused with the mode and a HINT; readable by others: a warning; NUL: refused."""
    conf = write(tmp_path, GOOD)
    su = tmp_path / "su"
    for mode in (0o666, 0o660, 0o602):
        su.chmod(mode)
        r = run("agent", "--check", "-c", conf)
        assert r.returncode == 2, (oct(mode), r.stderr)
        assert f"{str(su)}\" has mode {mode:04o}" in r.stderr and f"HINT: chmod 600 {su}" in r.stderr, r.stderr
        r = run("agent", "-c", conf)   # the real start refuses it too, before touching anything
        assert r.returncode == 1 and f"mode {mode:04o}" in r.stderr, r.stderr
    su.chmod(0o644)
    r = run("agent", "--check", "-c", conf)
    assert r.returncode == 0, r.stderr
    assert "WARN" in r.stderr and "mode 0644" in r.stderr and "every user of this machine can read it" in r.stderr
    su.write_bytes(b"abc\0def\n")
    su.chmod(0o600)
    r = run("agent", "--check", "-c", conf)
    assert r.returncode == 2 and "NUL byte" in r.stderr and str(su) in r.stderr, r.stderr


def proxy_conf(tmp_path, users_mode, users=b'"app" "app-pw"\n', etcd=""):
    users_path = tmp_path / "users.txt"
    users_path.write_bytes(users)
    users_path.chmod(users_mode)
    conf = tmp_path / "proxy.conf"
    conf.write_text(f"[etcd]\nendpoints = http://127.0.0.1:{free_port()}\n{etcd}"
                    f"[proxy]\nlisten = 127.0.0.1:{free_port()}\n[auth]\nauth_file = {users_path}\n")
    return str(conf), str(users_path)


def test_proxy_refuses_unsafe_users_file(tmp_path):
    """A users file anyone may write (0666) or holding a NUL byte: the proxy does not start, and says why."""
    conf, users = proxy_conf(tmp_path, 0o666)
    proc = subprocess.Popen([PGHA_BIN, "proxy", "-c", conf], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        _, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        stop_process(proc)
        raise AssertionError("the proxy started with a world-writable users file")
    assert proc.returncode == 2, err
    assert f"{users}\" has mode 0666" in err and f"HINT: chmod 600 {users}" in err, err
    r = run("proxy", "--check", "-c", conf)
    assert r.returncode == 2 and "has mode 0666" in r.stderr, r.stderr
    conf, users = proxy_conf(tmp_path, 0o600, users=b'"app" "app\0pw"\n')
    r = run("proxy", "--check", "-c", conf)
    assert r.returncode == 2 and "NUL byte" in r.stderr and users in r.stderr, r.stderr
    conf, users = proxy_conf(tmp_path, 0o600)
    r = run("proxy", "--check", "-c", conf)
    assert r.returncode == 0 and "OK (1 users)" in r.stdout, r.stderr


def test_proxy_check_reads_the_etcd_password_file(tmp_path):
    conf, _ = proxy_conf(tmp_path, 0o600, etcd=f"username = u\npassword_file = {tmp_path}/etcd-pw\n")
    r = run("proxy", "--check", "-c", conf)
    assert r.returncode == 2 and "[etcd] password_file" in r.stderr and f"{tmp_path}/etcd-pw" in r.stderr, r.stderr


def test_help_lists_modes_and_every_option():
    r = run("--help")
    assert r.returncode == 0
    for mode in ("agent", "ctl", "up"):
        assert mode in r.stdout
    r = run("agent", "--help")
    assert r.returncode == 0
    for opt in ("ttl", "loop_wait", "retry_timeout", "endpoints", "password_file", "data_dir",
                "superuser_password_file", "replication_password_file", "run_as", "nofailover",
                "priority", "allowed_networks", "[parameters]"):
        assert opt in r.stdout, opt
    for mode in ("up", "ctl"):
        r = run(mode, "--help")
        assert r.returncode == 0 and "Usage: pgha " + mode in r.stdout
    r = run("nonsense")
    assert r.returncode == 2 and "unknown mode" in r.stderr
