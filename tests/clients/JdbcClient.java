// The PostgreSQL JDBC driver against `vitals serve`, driven by
// tests/suite/serve.rs: run as `java -cp postgresql.jar JdbcClient.java URL USER`
// with the password in PGPASSWORD. Prints `key=value` lines for the test to
// check; any failure throws (exit 1).

import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.ResultSetMetaData;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.Properties;

public class JdbcClient {
    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        props.setProperty("user", args[1]);
        props.setProperty("password", System.getenv("PGPASSWORD"));
        // Server-side prepared statements from the first execution on.
        props.setProperty("prepareThreshold", "1");
        try (Connection conn = DriverManager.getConnection(args[0], props)) {
            String sql = "SELECT month, segment, mrr_end, customers_end FROM mrr_movements_monthly "
                    + "WHERE month = ? AND segment IS NULL";
            try (PreparedStatement ps = conn.prepareStatement(sql)) {
                for (int i = 0; i < 3; i++) {
                    ps.setDate(1, java.sql.Date.valueOf("2024-06-01"));
                    try (ResultSet rs = ps.executeQuery()) {
                        if (!rs.next()) {
                            throw new AssertionError("no row for 2024-06");
                        }
                        ResultSetMetaData md = rs.getMetaData();
                        StringBuilder types = new StringBuilder();
                        for (int c = 1; c <= md.getColumnCount(); c++) {
                            types.append(c > 1 ? "," : "").append(md.getColumnTypeName(c));
                        }
                        System.out.println("types=" + types);
                        System.out.println("month=" + rs.getDate(1));
                        rs.getString(2);
                        System.out.println("segment_null=" + rs.wasNull());
                        System.out.println("mrr_end=" + rs.getDouble(3));
                        System.out.println("customers_end=" + rs.getLong(4));
                    }
                }
            }
            // Streaming with a fetch size (a portal read in several Executes).
            conn.setAutoCommit(false);
            try (Statement st = conn.createStatement()) {
                st.setFetchSize(7);
                int rows = 0;
                try (ResultSet rs = st.executeQuery("SELECT month FROM mrr_movements_monthly")) {
                    while (rs.next()) {
                        rows++;
                    }
                }
                System.out.println("fetched_rows=" + rows);
            }
            conn.commit();
            conn.setAutoCommit(true);
            try (Statement st = conn.createStatement()) {
                st.executeUpdate("DROP TABLE mrr_movements_monthly");
                System.out.println("drop=ACCEPTED");
            } catch (SQLException e) {
                System.out.println("drop=" + e.getSQLState());
            }
            try (Statement st = conn.createStatement();
                    ResultSet rs = st.executeQuery("SELECT count(*) FROM mrr_movements_monthly")) {
                rs.next();
                System.out.println("rows_after=" + rs.getLong(1));
            }
            System.out.println("tables=" + String.join(",", tables(conn)));
        }
    }

    /// What a BI tool's table browser calls.
    static java.util.List<String> tables(Connection conn) throws SQLException {
        java.util.List<String> names = new java.util.ArrayList<>();
        try (ResultSet rs = conn.getMetaData().getTables(null, "public", "%", new String[] {"TABLE"})) {
            while (rs.next()) {
                names.add(rs.getString("TABLE_NAME"));
            }
        }
        java.util.Collections.sort(names);
        return names;
    }
}
