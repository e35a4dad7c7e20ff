"""Bad configuration is refused with a message naming file, line, option and problem."""
import os
import subprocess

from conftest import PGHA_BIN


def run(*args):
    return subprocess.run([PGHA_BIN, *args], capture_output=True, text=True, timeout=30)


def write(tmp_path, text):
    p = tmp_path / "node.conf"
    p.write_text(text)
    return str(p)


GOOD = """[cluster]
name = demo
[node]
name = n1
[postgresql]
data_dir = /tmp/does-not-matter
superuser_password_file = /tmp/su
replication_password_file = /tmp/repl
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
    r = run("agent", "-c", write(tmp_path, GOOD))
    assert r.returncode == 1
    assert "superuser_password_file" in r.stderr and "/tmp/su" in r.stderr


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
