// The lock-first fix of Grant.java: the order locked FOR UPDATE as the transaction's first
// statement, then the existence check and the insert. On InnoDB a locking read takes no
// snapshot, so the check (the first plain read) sees what the lock's holder committed; on
// PostgreSQL at REPEATABLE READ the snapshot is fixed by the first statement, the lock
// itself, and the fix does not hold there.
// DATABASE_URL is the proxy's URL (postgresql://user@host:port/db or mysql://...); the
// driver's own JDBC URL is made from it. pgjdbc and MariaDB Connector/J send their
// start-up queries first: the proxy glues them to the first step.
import java.net.URI;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;

public final class GrantLockFirst {
    public static void main(String[] args) throws Exception {
        URI url = new URI(System.getenv("DATABASE_URL"));
        String level = args.length > 0 ? args[0] : "REPEATABLE READ";
        String kind = url.getScheme().startsWith("postgres") ? "postgresql" : "mariadb";
        String user = url.getUserInfo() == null ? "" : url.getUserInfo().split(":", 2)[0];
        String jdbc = "jdbc:" + kind + "://" + url.getHost() + ":" + url.getPort() + url.getPath()
            + "?user=" + user + (kind.equals("postgresql") ? "&sslmode=disable" : "");
        try (Connection conn = DriverManager.getConnection(jdbc)) {
            conn.setAutoCommit(false);
            conn.setTransactionIsolation(
                level.equals("READ COMMITTED") ? Connection.TRANSACTION_READ_COMMITTED
                    : Connection.TRANSACTION_REPEATABLE_READ);
            run(conn, "SELECT id FROM orders WHERE id = ? FOR UPDATE");  // the lock, first
            boolean absent;
            try (PreparedStatement check = conn.prepareStatement(
                    "SELECT count(*) FROM red_packets WHERE order_id = ?")) {
                check.setInt(1, 7);
                try (ResultSet rows = check.executeQuery()) {
                    rows.next();
                    absent = rows.getLong(1) == 0;
                }
            }
            if (absent) {
                try (PreparedStatement insert = conn.prepareStatement(
                        "INSERT INTO red_packets (order_id) VALUES (?)")) {
                    insert.setInt(1, 7);
                    insert.executeUpdate();
                }
            }
            conn.commit();
        }
    }

    private static void run(Connection conn, String sql) throws Exception {
        try (PreparedStatement statement = conn.prepareStatement(sql)) {
            statement.setInt(1, 7);
            statement.executeQuery().close();
        }
    }
}
