"""node-postgres and pgJDBC clients for the proxy's integration tests, driven one step at a time
from Python (node_pg_session.js, JdbcSession.java): between two steps a test may look at the proxy
(SHOW CLIENTS, /metrics) while the driver's connections stay open.

    with Clients("pgjdbc", cluster) as c:
        c.connect("a", proxy.port)
        c("a", "LISTEN jobs")               # -> "" (no row)
        c("a", "SELECT $1::int + 1", "41")  # -> "42" (a bound parameter: $1, ? for pgJDBC)
        c("a", "@notifications", 2)         # -> "one|two", waiting 5 s at most
        c("a", "@readonly", "on")           # pgJDBC only: read-only transactions; also @commit, @rollback

An answer is the first row's columns as PostgreSQL's text joined by '|', or
"ERROR:<SQLSTATE>\\t<message>\\t<hint>" (see error())."""
import os
import select
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
NODE_MODULES = os.path.join(os.environ.get("PGHA_S3_SERVER_DIR", "/opt/pgha-test-node"), "node_modules")
PGJDBC = "/usr/share/java/postgresql.jar"
DRIVERS = ["node-postgres", "pgjdbc"]
COMMANDS = {
    "node-postgres": ["node", os.path.join(HERE, "node_pg_session.js"), NODE_MODULES],
    "pgjdbc": ["java", "-cp", PGJDBC, os.path.join(HERE, "JdbcSession.java")],
}


class Clients:
    """The clients of one driver process; each call is one step, answered before it returns
    (within timeout seconds; the first one also waits for the JVM to compile the script)."""

    def __init__(self, driver, cluster, host="127.0.0.1", timeout=60):
        self.driver = driver
        self.timeout = timeout
        self.stderr = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(COMMANDS[driver], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.stderr, text=True, bufsize=1)
        self._send(f"{host}\npostgres\n{cluster.su_pw}\n")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _send(self, text):
        self.proc.stdin.write(text)
        self.proc.stdin.flush()

    def _fail(self, what):
        self.stderr.seek(0)
        raise AssertionError(f"{self.driver}: {what}: {self.stderr.read()[-3000:]}")

    def __call__(self, who, sql, param=None):
        if param is not None and self.driver == "pgjdbc" and not sql.startswith("@"):
            sql = sql.replace("$1", "?")
        self._send(f"{who}\t{sql}" + (f"\t{param}" if param is not None else "") + "\n")
        # One step, one answer line: nothing else is ever buffered past it.
        deadline = time.monotonic() + self.timeout
        while not select.select([self.proc.stdout], [], [], 0.5)[0]:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self._fail(f"no answer to {sql!r}")
        line = self.proc.stdout.readline()
        if not line:
            self._fail(f"ended at {sql!r}")
        return line.rstrip("\n")

    def connect(self, who, port):
        assert self(who, "@connect", port) == "", f"{self.driver}: {who} cannot connect to port {port}"

    def close(self):
        """Close the clients (Terminate) and wait for the driver process to end, by its PID if it must."""
        try:
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        try:
            rc = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait(timeout=10)
        self.proc.stdout.close()
        if rc != 0:
            self._fail(f"exit status {rc}")
        self.stderr.close()


def error(answer):
    """(SQLSTATE, message, hint) of an error answer; None for a row."""
    if not answer.startswith("ERROR:"):
        return None
    code, message, hint = (answer[len("ERROR:"):].split("\t") + ["", ""])[:3]
    return code, message, hint
