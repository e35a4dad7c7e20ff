// JdbcSession.java — pgJDBC clients taking SQL steps one at a time, for the driver tests of the proxy
// (tests/integration/drivers.py; run as `java -cp postgresql.jar JdbcSession.java`). It speaks the
// protocol node_pg_session.js speaks:
// stdin: the host, the user and the password on three lines (never in argv or the environment), then
// one step per line, "client<TAB>sql" or "client<TAB>sql<TAB>param" (a text parameter, bound with a
// PreparedStatement). stdout: each step's answer on one line, as soon as it is known: the first row's
// columns joined by '|' (NULL as ""; "" when no row), or "ERROR:<SQLSTATE><TAB><message><TAB><hint>".
// Steps that are not SQL: "@connect" opens the client on the port given as param (database postgres);
// "@notifications" waits, 5 s at most, until the client has param notifications it has not answered
// yet (pgJDBC's getNotifications(timeout) reads them while the client sends nothing), and answers
// their payloads joined by '|'. pgJDBC's own (node-postgres has no such calls): "@readonly" "on" turns
// autocommit off and the connection read-only, as a transaction manager does for a read-only
// transaction (pgJDBC then begins each transaction with BEGIN READ ONLY), and answers the connection's
// readOnlyMode; "off" turns both back; "@commit" and "@rollback" end the transaction.
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import org.postgresql.PGConnection;
import org.postgresql.PGNotification;
import org.postgresql.PGProperty;
import org.postgresql.util.PSQLException;
import org.postgresql.util.ServerErrorMessage;

public class JdbcSession {
    static String host;
    static final Properties login = new Properties();
    static final Map<String, Connection> conns = new HashMap<>();

    public static void main(String[] args) throws Exception {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        host = in.readLine();
        login.setProperty("user", in.readLine());
        login.setProperty("password", in.readLine());
        String line;
        while ((line = in.readLine()) != null) {
            if (line.isEmpty())
                continue;
            System.out.println(step(line.split("\t", -1)));
            System.out.flush();
        }
        for (Connection c : conns.values())
            c.close();
    }

    static String step(String[] f) {
        try {
            if (f[1].equals("@connect")) {
                Connection c = DriverManager.getConnection("jdbc:postgresql://" + host + ":" + f[2] + "/postgres", login);
                c.setAutoCommit(true);
                conns.put(f[0], c);
                return "";
            }
            Connection c = conns.get(f[0]);
            if (f[1].equals("@notifications"))
                return notifications(c.unwrap(PGConnection.class), Integer.parseInt(f[2]));
            if (f[1].equals("@readonly")) {
                boolean on = f[2].equals("on");
                c.setAutoCommit(!on);
                c.setReadOnly(on);
                return on ? PGProperty.READ_ONLY_MODE.getOrDefault(login) : "";
            }
            if (f[1].equals("@commit") || f[1].equals("@rollback")) {
                if (f[1].equals("@commit"))
                    c.commit();
                else
                    c.rollback();
                return "";
            }
            Statement s;
            ResultSet rs;
            if (f.length > 2) {
                PreparedStatement ps = c.prepareStatement(f[1]);
                ps.setString(1, f[2]);
                s = ps;
                rs = ps.execute() ? ps.getResultSet() : null;
            } else {
                s = c.createStatement();
                rs = s.execute(f[1]) ? s.getResultSet() : null;
            }
            StringBuilder b = new StringBuilder();
            if (rs != null && rs.next()) {
                int n = rs.getMetaData().getColumnCount();
                for (int i = 1; i <= n; i++) {
                    String v = rs.getString(i);
                    b.append(i > 1 ? "|" : "").append(v == null ? "" : v);
                }
            }
            s.close();
            return b.toString();
        } catch (SQLException e) {
            ServerErrorMessage m = e instanceof PSQLException ? ((PSQLException) e).getServerErrorMessage() : null;
            String message = m != null ? m.getMessage() : e.getMessage();
            String hint = m != null && m.getHint() != null ? m.getHint() : "";
            return "ERROR:" + e.getSQLState() + "\t" + oneLine(message) + "\t" + oneLine(hint);
        }
    }

    static String notifications(PGConnection c, int want) throws SQLException {
        List<String> got = new ArrayList<>();
        long until = System.currentTimeMillis() + 5000;
        while (got.size() < want) {
            long left = until - System.currentTimeMillis();
            if (left <= 0)
                break;
            PGNotification[] ns = c.getNotifications((int) left);
            if (ns != null)
                for (PGNotification n : ns)
                    got.add(n.getParameter());
        }
        return String.join("|", got);
    }

    static String oneLine(String s) {
        return s == null ? "" : s.replaceAll("[\t\r\n]", " ");
    }
}
