// The seed's grant on node-postgres, as a Node service would run it: DATABASE_URL, nothing
// of the lab. Parameters go as $1 (the extended protocol: Parse, Bind, Execute, Sync).
const { Client } = require("pg");

async function main() {
  const level = process.argv[2] || "REPEATABLE READ";
  const client = new Client({ connectionString: process.env.DATABASE_URL });
  await client.connect();
  await client.query(`BEGIN ISOLATION LEVEL ${level}`);
  await client.query("SELECT id FROM orders WHERE id = $1", [7]);
  await client.query("SELECT id FROM orders WHERE id = $1 FOR UPDATE", [7]);
  const found = await client.query("SELECT count(*)::int AS n FROM red_packets WHERE order_id = $1", [7]);
  if (found.rows[0].n === 0) {
    await client.query("INSERT INTO red_packets (order_id) VALUES ($1)", [7]);
  }
  await client.query("COMMIT");
  await client.end();
}

main().catch((error) => {
  console.error(error.code || "", error.message);
  process.exit(1);
});
