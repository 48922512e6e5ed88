// The seed's grant on mysql2 with server-side prepared statements (execute: the binary
// protocol, COM_STMT_PREPARE and COM_STMT_EXECUTE), as a Node service would run it.
const mysql = require("mysql2/promise");

async function main() {
  const level = process.argv[2] || "REPEATABLE READ";
  const conn = await mysql.createConnection(process.env.DATABASE_URL);
  await conn.query(`SET SESSION TRANSACTION ISOLATION LEVEL ${level}`);
  await conn.beginTransaction();
  await conn.execute("SELECT id FROM orders WHERE id = ?", [7]);
  await conn.execute("SELECT id FROM orders WHERE id = ? FOR UPDATE", [7]);
  const [rows] = await conn.execute("SELECT count(*) AS n FROM red_packets WHERE order_id = ?", [7]);
  if (Number(rows[0].n) === 0) {
    await conn.execute("INSERT INTO red_packets (order_id) VALUES (?)", [7]);
  }
  await conn.commit();
  await conn.end();
}

main().catch((error) => {
  console.error(error.errno || error.code || "", error.message);
  process.exit(1);
});
