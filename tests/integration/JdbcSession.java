// JdbcSession.java — pgJDBC clients running a script of steps through the proxy, for
// tests/integration/test_proxy_session_drivers.py (run as `java -cp postgresql.jar JdbcSession.java`).
// stdin: the URL, the user and the password on three lines (never in argv or the environment),
// then one step per line: "client<TAB>sql", or "client<TAB>sql<TAB>param" (a text parameter, bound with
// a PreparedStatement). stdout: one line per step: the first row's columns joined by '|' ("" when no
// row), or "ERROR:<SQLSTATE>". The sql "@notifications" runs SELECT 1 on the client and prints the
// payloads pgJDBC received, joined by '|'.
import java.io.BufferedReader;
import java.io.InputStreamReader;
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

public class JdbcSession {
    public static void main(String[] args) throws Exception {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, "UTF-8"));
        String url = in.readLine(), user = in.readLine(), password = in.readLine();
        Map<String, Connection> conns = new HashMap<>();
        String line;
        while ((line = in.readLine()) != null) {
            if (line.isEmpty())
                continue;
            String[] f = line.split("\t", -1);
            Connection c = conns.get(f[0]);
            if (c == null) {
                Properties p = new Properties();
                p.setProperty("user", user);
                p.setProperty("password", password);
                c = DriverManager.getConnection(url, p);
                c.setAutoCommit(true);
                conns.put(f[0], c);
            }
            System.out.println(step(c, f));
        }
        for (Connection c : conns.values())
            c.close();
    }

    static String step(Connection c, String[] f) {
        try {
            if (f[1].equals("@notifications")) {
                List<String> got = new ArrayList<>();
                long until = System.currentTimeMillis() + 5000;
                int want = Integer.parseInt(f[2]);
                while (got.size() < want && System.currentTimeMillis() < until) {
                    try (Statement s = c.createStatement()) {
                        s.execute("SELECT 1");
                    }
                    org.postgresql.PGNotification[] ns = c.unwrap(org.postgresql.PGConnection.class).getNotifications();
                    if (ns != null)
                        for (org.postgresql.PGNotification n : ns)
                            got.add(n.getParameter());
                    Thread.sleep(20);
                }
                return String.join("|", got);
            }
            ResultSet rs;
            Statement s;
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
                    if (i > 1)
                        b.append('|');
                    b.append(rs.getString(i));
                }
            }
            s.close();
            return b.toString();
        } catch (SQLException e) {
            return "ERROR:" + e.getSQLState();
        } catch (InterruptedException e) {
            return "ERROR:interrupted";
        }
    }
}
