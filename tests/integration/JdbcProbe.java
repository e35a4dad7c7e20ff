// JdbcProbe.java — pgJDBC (Debian libpostgresql-jdbc-java) driven by
// tests/integration/test_proxy_drivers.py, run as a one-file program:
//   java -cp /usr/share/java/postgresql.jar JdbcProbe.java < jobs
// Jobs on stdin, four lines each (the password never in argv or the environment):
// action (params or login), JDBC URL, user, password. One JVM runs them all (it takes
// seconds to start). Output, per job:
//   params  one "name=value" line per parameter the server reported at login
//   login   "ok", or "error <SQLSTATE> <message>"
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;

public class JdbcProbe {
    public static void main(String[] args) throws Exception {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String action;
        while ((action = in.readLine()) != null && !action.isEmpty())
            run(action, in.readLine(), in.readLine(), in.readLine());
    }

    static void run(String action, String url, String user, String password) {
        Properties props = new Properties();
        props.setProperty("user", user);
        props.setProperty("password", password);
        props.setProperty("connectTimeout", "10");
        try (Connection c = DriverManager.getConnection(url, props)) {
            if (action.equals("params")) {
                Map<String, String> params = c.unwrap(org.postgresql.PGConnection.class).getParameterStatuses();
                for (Map.Entry<String, String> e : new TreeMap<>(params).entrySet())
                    System.out.println(e.getKey() + "=" + e.getValue());
            } else {
                try (ResultSet rs = c.createStatement().executeQuery("SELECT 1")) {
                    rs.next();
                }
                System.out.println("ok");
            }
        } catch (SQLException e) {
            System.out.println("error " + e.getSQLState() + " " + e.getMessage().replace('\n', ' '));
        }
    }
}
