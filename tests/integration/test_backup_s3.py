"""WAL archiving and backups to an S3 repository ([backup] repo_type = s3), with real PostgreSQL 15,
etcd, pgBackRest and an S3-compatible server (@20minutes/s3rver from npm, installed by
scripts/install-deps.sh, run by s3_server.js over HTTPS with a CA made here by openssl).

A 2-member cluster archives into a bucket: the stanza is created at bootstrap, WAL reaches the
bucket, a full backup taken with the member's generated config shows in `pgha ctl backups`, and
the keys are only in the 0600 config (no argv, no environment, no log). A member whose secret key
is wrong, then whose bucket is missing, keeps taking writes and its archive state names the cause;
once fixed, the WAL that piled up is archived. `agent --check` reads the key files.
"""
import json
import os
import secrets
import select
import shutil
import signal
import string
import subprocess
import tempfile
import time

import pytest

from conftest import PGHA_BIN, Cluster, module_cluster, wait_until
from test_backup import assert_nowhere, pgbackrest, switch_and_wait_archived, wait_archive_ok

S3_SERVER_DIR = os.environ.get("PGHA_S3_SERVER_DIR", "/opt/pgha-test-node")
BUCKET = "pgha-test"
ACCESS_KEY = "AKIA" + "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(16))
SECRET_KEY = "".join(secrets.choice(string.ascii_letters + string.digits + "/+") for _ in range(40))


def write_secret(path, text):
    with open(path, "w") as f:
        f.write(text + "\n")
    os.chmod(path, 0o600)


class S3Server:
    """s3_server.js on 127.0.0.1, on a port the kernel picks, with its own directory; stopped by PID."""

    def __init__(self, base):
        self.dir = base
        self.data = os.path.join(base, "s3-data")
        os.makedirs(self.data)
        self.ca = os.path.join(base, "ca.crt")
        key, cert = os.path.join(base, "server.key"), os.path.join(base, "server.crt")
        ca_key, csr, ext = os.path.join(base, "ca.key"), os.path.join(base, "server.csr"), os.path.join(base, "ext")
        # pgBackRest 2.45 matches the endpoint against DNS names only (not IP entries): name 127.0.0.1 as one.
        with open(ext, "w") as f:
            f.write("subjectAltName=DNS:127.0.0.1,IP:127.0.0.1\n")
        for cmd in (["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", self.ca,
                     "-days", "2", "-subj", "/CN=pgha test CA"],
                    ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1"],
                    ["x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", ca_key, "-CAcreateserial", "-out", cert,
                     "-days", "2", "-extfile", ext]):
            subprocess.run(["openssl", *cmd], check=True, capture_output=True, timeout=60)
        os.chmod(self.ca, 0o644)
        self.key_file = os.path.join(base, "s3.key")
        self.secret_file = os.path.join(base, "s3.secret")
        write_secret(self.key_file, ACCESS_KEY)
        write_secret(self.secret_file, SECRET_KEY)
        self.config = os.path.join(base, "s3-server.json")
        with open(self.config, "w") as f:
            json.dump({"address": "127.0.0.1", "port": 0, "directory": self.data, "tls_key": key, "tls_cert": cert,
                       "access_key_file": self.key_file, "secret_key_file": self.secret_file,
                       "buckets": [BUCKET]}, f)
        self.proc = None
        self.log = None
        self.port = None

    def start(self):
        assert os.path.exists(os.path.join(S3_SERVER_DIR, "node_modules", "@20minutes", "s3rver")), \
            f"no S3 test server in {S3_SERVER_DIR}: run scripts/install-deps.sh"
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "s3_server.js")
        self.log = open(os.path.join(self.dir, "s3-server.log"), "wb")
        self.proc = subprocess.Popen(["node", script, os.path.join(S3_SERVER_DIR, "node_modules"), self.config],
                                     stdout=subprocess.PIPE, stderr=self.log, start_new_session=True)
        t0 = time.monotonic()
        ready, _, _ = select.select([self.proc.stdout], [], [], 30)
        line = self.proc.stdout.readline().decode() if ready else ""
        assert line.startswith("listening "), f"s3_server.js said {line!r} within 30 s (log in {self.log.name})"
        self.port = int(line.split()[1])
        print(f"S3 server on 127.0.0.1:{self.port} in {time.monotonic() - t0:.2f}s")
        return self

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        if self.log is not None:
            self.log.close()

    def objects(self, prefix):
        """Keys under prefix in the bucket, from the server's own files."""
        root = os.path.join(self.data, BUCKET)
        found = []
        for d, _, files in os.walk(os.path.join(root, prefix)):
            found += [os.path.relpath(os.path.join(d, f), root)[:-len("._S3rver_object")]
                      for f in files if f.endswith("._S3rver_object")]
        return found

    def backup_options(self, secret_file=None):
        return {"backup.repo_type": "s3", "backup.s3_bucket": BUCKET, "backup.s3_endpoint": f"127.0.0.1:{self.port}",
                "backup.s3_region": "us-east-1", "backup.s3_key_file": self.key_file,
                "backup.s3_key_secret_file": secret_file or self.secret_file, "backup.s3_uri_style": "path",
                "backup.s3_ca_file": self.ca}


@pytest.fixture(scope="module")
def s3():
    base = tempfile.mkdtemp(prefix="pgha-s3-", dir="/tmp")
    os.chmod(base, 0o755)
    server = S3Server(base)
    try:
        yield server.start()
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def two(request, s3):
    with module_cluster(request, ["n1", "n2"], s3.backup_options()) as (cluster, _):
        yield cluster


def test_stanza_created_and_wal_in_the_bucket(two, s3):
    cluster = two
    leader = cluster.leader()
    t0 = time.monotonic()
    wait_archive_ok(cluster, leader)
    print(f"archive ok {time.monotonic() - t0:.1f}s after the cluster was up")
    node = cluster.nodes[leader]
    info = json.loads(pgbackrest(node, "info", "--output=json"))
    assert info[0]["name"] == "t"
    assert info[0]["status"]["code"] == 2 and info[0]["status"]["message"] == "no valid backups", info
    assert info[0]["db"][0]["system-id"] == int(cluster.members()[leader]["system_id"]), info
    assert "pgha/backup/t/backup.info" in s3.objects("pgha/backup/t")
    node.sql("CREATE TABLE arc (i int)")
    node.sql("INSERT INTO arc SELECT generate_series(1, 1000)")
    # WAL that PostgreSQL tried to archive before the leader had created the stanza failed then (and was
    # archived once it existed): count only what follows.
    node.sql("SELECT pg_stat_reset_shared('archiver')")
    seg, took = switch_and_wait_archived(node)
    print(f"segment {seg} archived to S3 in {took:.2f}s")
    assert [o for o in s3.objects(f"pgha/archive/t/15-1/{seg[:16]}") if os.path.basename(o).startswith(seg + "-")]
    info = json.loads(pgbackrest(node, "info", "--output=json"))
    assert info[0]["archive"][0]["max"] >= seg


def test_full_backup_shows_in_ctl_backups(two, s3):
    cluster = two
    leader = cluster.leader()
    wait_archive_ok(cluster, leader)
    node = cluster.nodes[leader]
    node.sql("CREATE TABLE big AS SELECT generate_series(1, 200000) AS i")
    passfile = os.path.join(os.path.dirname(node.data_dir), f"{leader}.pgpass")
    conf = node.data_dir + ".pgha-backup/pgbackrest.conf"
    t0 = time.monotonic()
    b = subprocess.run(["runuser", "-u", "postgres", "--", "env", f"PGPASSFILE={passfile}", "pgbackrest",
                        f"--config={conf}", "--stanza=t", "--type=full", "backup"],
                       capture_output=True, text=True, timeout=300)
    assert b.returncode == 0, b.stdout + b.stderr
    print(f"full backup to S3 in {time.monotonic() - t0:.1f}s")
    for name, member in cluster.nodes.items():
        r = subprocess.run([PGHA_BIN, "ctl", "-c", member.conf_path, "backups", "--json"], capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        info = json.loads(r.stdout)
        assert info["status"] == {"code": 0, "message": "ok"}, (name, info)
        assert [x["type"] for x in info["backups"]] == ["full"], (name, info)
        full = info["backups"][0]
        assert 0 < full["repo_size"] < full["size"] and not full["error"]
        assert info["recoverable"]["from_backup"] == full["label"]
    assert s3.objects(f"pgha/backup/t/{full['label']}")


def test_keys_nowhere_but_the_config(two, s3):
    cluster = two
    logs = assert_nowhere([ACCESS_KEY, SECRET_KEY], cluster.base)
    assert logs >= 6, logs   # agents, PostgreSQL, pgBackRest's own logs
    for node in cluster.nodes.values():
        conf = node.data_dir + ".pgha-backup/pgbackrest.conf"
        st = os.stat(conf)
        assert st.st_mode & 0o777 == 0o600 and st.st_uid != 0
        with open(conf) as f:
            lines = [l for l in f if ACCESS_KEY in l or SECRET_KEY in l]
        assert lines == [f"repo1-s3-key={ACCESS_KEY}\n", f"repo1-s3-key-secret={SECRET_KEY}\n"]


def test_wrong_secret_key_names_the_cause_and_writes_go_on(base_dir, etcd, s3):
    wrong = os.path.join(base_dir, "wrong.secret")
    write_secret(wrong, "wrong" + SECRET_KEY)
    cluster = Cluster(base_dir, etcd)
    # A path of its own in the bucket: the module's cluster, also named t, has its stanza at /pgha.
    fixed = {**s3.backup_options(), "backup.repo_path": "/other-cluster"}
    node = cluster.add("n1", {**fixed, "backup.s3_key_secret_file": wrong})
    try:
        node.start()
        cluster.wait_streaming(["n1"])

        def failing():
            m = cluster.members().get("n1")
            return m and m.get("archive", "").startswith("failing: ") and m["archive"]
        t0 = time.monotonic()
        st = wait_until("the archive state to fail", failing, timeout=60)
        print(f"archive state after {time.monotonic() - t0:.1f}s: {st}")
        assert "secret key refused, check [backup] s3_key_secret_file (S3 SignatureDoesNotMatch)" in st, st
        node.sql("CREATE TABLE w (i int)")
        for i in range(3):
            node.sql("INSERT INTO w VALUES (%s)", (i,))
            node.sql("SELECT pg_switch_wal()")
        assert node.sql("SELECT count(*) FROM w")[0][0] == 3
        assert cluster.members()["n1"]["role"] == "primary"
        log = node.log()
        assert f"the bucket {BUCKET} must exist at https://127.0.0.1:{s3.port}" in log
        # The server echoes the access key id in its error; pgha's log shows it redacted.
        assert ACCESS_KEY not in log and "<AWSAccessKeyId><redacted></AWSAccessKeyId>" in log

        # The right keys but a bucket that does not exist: named too.
        node.stop()
        node.write_conf({**fixed, "backup.s3_bucket": "no-such-bucket"})
        node.start()
        st = wait_until("a missing bucket named", lambda: (lambda a: "bucket" in a and a)(
            cluster.members().get("n1", {}).get("archive", "")), timeout=60)
        assert st.startswith("failing: pgbackrest stanza-create: bucket missing (S3 NoSuchBucket)"), st
        node.sql("INSERT INTO w VALUES (4)")

        # Fixed: archiving works, and the WAL that piled up reaches the bucket. The margin: PostgreSQL's
        # archiver rests up to 60 s after three failures in a row (the backlog fails until the stanza
        # exists), and check waits for its segment to be archived.
        node.stop()
        node.write_conf(fixed)
        node.start()
        t0 = time.monotonic()
        wait_until("archiving ok once the configuration is fixed", lambda: cluster.members().get(
            "n1", {}).get("archive") == "ok", timeout=150)
        print(f"archiving ok {time.monotonic() - t0:.1f}s after the fixed agent started")
        seg = node.sql("SELECT pg_walfile_name(pg_switch_wal())")[0][0]
        wait_until("the new segment archived", lambda: node.sql(
            "SELECT last_archived_wal FROM pg_stat_archiver")[0][0] >= seg, timeout=30)
        assert node.sql("SELECT count(*) FROM w")[0][0] == 4
        assert s3.objects("other-cluster/archive/t/15-1")
    finally:
        cluster.stop_all()


def test_check_reads_the_s3_key_files(tmp_path):
    """`agent --check` reads [backup] s3_key_file and s3_key_secret_file as the real start does."""
    for name in ("su", "repl", "key", "secret"):
        write_secret(str(tmp_path / name), "pw")
    conf = tmp_path / "node.conf"
    body = f"""[node]
name = n1
[postgresql]
data_dir = /tmp/does-not-matter
superuser_password_file = {tmp_path}/su
replication_password_file = {tmp_path}/repl
[backup]
repo_type = s3
s3_bucket = b
s3_endpoint = 127.0.0.1:9000
s3_region = us-east-1
s3_key_file = {tmp_path}/key
s3_key_secret_file = {tmp_path}/secret
"""

    def check():
        conf.write_text(body)
        return subprocess.run([PGHA_BIN, "agent", "--check", "-c", str(conf)], capture_output=True, text=True,
                              timeout=30)
    r = check()
    assert r.returncode == 0 and "OK" in r.stdout, r.stderr
    (tmp_path / "secret").chmod(0o666)
    r = check()
    assert r.returncode == 2 and "[backup] s3_key_secret_file" in r.stderr and "chmod 600" in r.stderr, r.stderr
    (tmp_path / "secret").chmod(0o600)
    (tmp_path / "key").unlink()
    r = check()
    assert r.returncode == 2 and "[backup] s3_key_file" in r.stderr and f"{tmp_path}/key" in r.stderr, r.stderr
    write_secret(str(tmp_path / "key"), " AKIA")
    r = check()
    assert r.returncode == 2 and "the access key starts or ends with a blank" in r.stderr, r.stderr
    body = body.replace("repo_type = s3\n", "")
    r = check()
    assert r.returncode == 2 and "s3_bucket is set but repo_type is posix" in r.stderr, r.stderr
