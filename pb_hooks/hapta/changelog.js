// Hapta change log, installed inside PocketBase.
// Every write to a replicated collection table (API, batch, cascade, raw SQL in hooks) appends a row to
// _hapta_changes from a SQLite trigger that runs inside the writing transaction, so `seq` follows commit
// order and rolls back with the write. The sidecar reads the log after its last applied seq.
//
// Loaded with require() from hapta_changes.pb.js: PocketBase runs each hook handler in its own VM, so
// shared code has to live in a module.

const LOG = "_hapta_changes";
const META = "_hapta_meta";
const SAFE_NAME = /^[A-Za-z0-9_]+$/;

function envNumber(name, fallback) {
  const raw = $os.getenv(name);
  const n = Number(raw);
  return raw !== "" && isFinite(n) && n >= 0 ? n : fallback;
}

function nowMsSql() {
  return "CAST(ROUND((julianday('now') - 2440587.5) * 86400000) AS INTEGER)";
}

function exec(app, sql, params) {
  const q = app.db().newQuery(sql);
  if (params) q.bind(params);
  q.execute();
}

function ensureLog(app) {
  exec(app, `CREATE TABLE IF NOT EXISTS ${LOG} (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    coll TEXT NOT NULL,
    rid TEXT NOT NULL,
    op TEXT NOT NULL,
    at INTEGER NOT NULL)`);
  exec(app, `CREATE TABLE IF NOT EXISTS ${META} (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL)`);
  exec(app, `INSERT OR IGNORE INTO ${META} (key, value) VALUES ('instance', lower(hex(randomblob(12))))`);
  exec(app, `INSERT OR IGNORE INTO ${META} (key, value) VALUES ('pruned_through', '0')`);
  // Schema changes travel through the same log, ordered with the data changes around them.
  if (tableExists(app, "_collections")) installTriggers(app, "_collections", "_collections");
}

function tableExists(app, name) {
  const row = new DynamicModel({ n: 0 });
  app.db().newQuery("SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = {:name}").bind({ name }).one(row);
  return row.n > 0;
}

function triggerName(collId, suffix) {
  return `"_hapta_${collId}_${suffix}"`;
}

function installTriggers(app, table, collId) {
  if (!SAFE_NAME.test(table) || !SAFE_NAME.test(collId)) return false;
  const at = nowMsSql();
  const ins = (op, ref) => `INSERT INTO ${LOG} (coll, rid, op, at) VALUES ('${collId}', ${ref}.id, '${op}', ${at});`;
  exec(app, `CREATE TRIGGER IF NOT EXISTS ${triggerName(collId, "i")} AFTER INSERT ON "${table}" BEGIN ${ins("c", "NEW")} END`);
  exec(app, `CREATE TRIGGER IF NOT EXISTS ${triggerName(collId, "u")} AFTER UPDATE ON "${table}" BEGIN ${ins("u", "NEW")} END`);
  // An UPDATE that changes the primary key also makes the old id disappear.
  exec(app, `CREATE TRIGGER IF NOT EXISTS ${triggerName(collId, "k")} AFTER UPDATE OF id ON "${table}" WHEN OLD.id IS NOT NEW.id BEGIN ${ins("d", "OLD")} END`);
  exec(app, `CREATE TRIGGER IF NOT EXISTS ${triggerName(collId, "d")} AFTER DELETE ON "${table}" BEGIN ${ins("d", "OLD")} END`);
  return true;
}

function isReplicated(collection) {
  return collection && (collection.type === "base" || collection.type === "auth");
}

function hasTriggers(app, collection) {
  const row = new DynamicModel({ n: 0 });
  app.db().newQuery(`SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'trigger' AND tbl_name = {:t} AND name IN ({:a}, {:b}, {:c}, {:d})`)
    .bind({ a: `_hapta_${collection.id}_i`, b: `_hapta_${collection.id}_u`, c: `_hapta_${collection.id}_k`, d: `_hapta_${collection.id}_d`, t: collection.name })
    .one(row);
  return row.n === 4;
}

// Installs the triggers of one collection if any is missing, and records that it did: the sidecar
// re-copies a collection after this marker, which covers writes made before the triggers existed.
// Triggers follow their table through renames and column changes, so most updates find them in place.
function ensureCollection(app, collection) {
  if (!isReplicated(collection) || !SAFE_NAME.test(collection.name)) return;
  ensureLog(app);
  if (hasTriggers(app, collection)) return;
  dropTriggers(app, collection.id);
  if (!installTriggers(app, collection.name, collection.id)) return;
  exec(app, `INSERT INTO ${LOG} (coll, rid, op, at) VALUES ('_collections', {:id}, 't', ${nowMsSql()})`, { id: collection.id });
}

function ensureAll(app) {
  ensureLog(app);
  for (const c of app.findAllCollections("base", "auth")) ensureCollection(app, c);
}

function dropTriggers(app, collId) {
  if (!SAFE_NAME.test(collId)) return;
  for (const s of ["i", "u", "k", "d"]) exec(app, `DROP TRIGGER IF EXISTS ${triggerName(collId, s)}`);
}

function readMeta(app, key) {
  const row = new DynamicModel({ value: "" });
  try {
    app.db().newQuery(`SELECT value FROM ${META} WHERE key = {:key}`).bind({ key }).one(row);
    return row.value;
  } catch (_) {
    return "";
  }
}

function head(app) {
  const row = new DynamicModel({ s: 0 });
  app.db().newQuery(`SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = '${LOG}'), 0) AS s`).one(row);
  return row.s;
}

// Positions reported by sidecars (in memory: after a PocketBase restart only the age limit prunes
// until the sidecars poll again).
function noteConsumer(app, consumer, seq) {
  if (!consumer || !SAFE_NAME.test(consumer) || consumer.length > 64) return;
  app.store().set(`hapta_consumer_${consumer}`, { seq, seen: Date.now() });
}

// Write pairs: a sidecar sends a write carrying X-Hapta-Pair and, right behind it on the same
// connection, a read of the log head naming the same pair. The write's pair is noted once its handler
// has returned (its changes committed); the head is answered only for a noted pair, so a head read that
// something between the two processes reordered or ran alongside the write is refused, never too low.
const PAIR = /^[a-f0-9]{24}$/;
const PAIR_TTL_MS = 60000;

function notePair(app, pair) {
  if (PAIR.test(pair)) app.store().set(`hapta_pair_${pair}`, Date.now());
}

// True once (the pair is forgotten as it is taken).
function takePair(app, pair) {
  if (!PAIR.test(pair)) return false;
  const key = `hapta_pair_${pair}`;
  if (!app.store().has(key)) return false;
  app.store().remove(key);
  return true;
}

// Pairs whose head read never came (the connection broke between the two).
function prunePairs(app) {
  const all = app.store().getAll();
  const now = Date.now();
  for (const key in all) {
    if (key.indexOf("hapta_pair_") === 0 && now - all[key] > PAIR_TTL_MS) app.store().remove(key);
  }
}

function consumersFloor(app) {
  const ttl = envNumber("HAPTA_LOG_CONSUMER_TTL_SECONDS", 86400) * 1000;
  let floor = null;
  const all = app.store().getAll();
  for (const key in all) {
    if (key.indexOf("hapta_consumer_") !== 0) continue;
    const v = all[key];
    if (Date.now() - v.seen > ttl) continue;
    floor = floor === null ? v.seq : Math.min(floor, v.seq);
  }
  return floor;
}

// Deletes a prefix of the log: rows older than the retention that every live sidecar has applied,
// and rows older than the hard age limit whatever the sidecars say.
function prune(app) {
  const retention = envNumber("HAPTA_LOG_RETENTION_SECONDS", 3600) * 1000;
  const maxAge = envNumber("HAPTA_LOG_MAX_AGE_SECONDS", 86400) * 1000;
  const now = Date.now();
  const floor = consumersFloor(app);
  const row = new DynamicModel({ s: 0 });
  app.db().newQuery(`SELECT COALESCE(MAX(seq), 0) AS s FROM ${LOG} WHERE at < {:cut}`).bind({ cut: now - maxAge }).one(row);
  let upTo = row.s;
  if (floor !== null) {
    const soft = new DynamicModel({ s: 0 });
    app.db().newQuery(`SELECT COALESCE(MAX(seq), 0) AS s FROM ${LOG} WHERE at < {:cut} AND seq <= {:floor}`)
      .bind({ cut: now - retention, floor }).one(soft);
    upTo = Math.max(upTo, soft.s);
  }
  if (upTo <= 0) return 0;
  app.runInTransaction((tx) => {
    exec(tx, `DELETE FROM ${LOG} WHERE seq <= {:upTo}`, { upTo });
    exec(tx, `UPDATE ${META} SET value = CAST(MAX(CAST(value AS INTEGER), {:upTo}) AS TEXT) WHERE key = 'pruned_through'`, { upTo });
  });
  return upTo;
}

function readChanges(app, after, limit) {
  const rows = arrayOf(new DynamicModel({ seq: 0, coll: "", rid: "", op: "", at: 0 }));
  app.db().newQuery(`SELECT seq, coll, rid, op, at FROM ${LOG} WHERE seq >= {:after} ORDER BY seq LIMIT {:limit}`)
    .bind({ after, limit: limit + 1 }).all(rows);
  return rows;
}

module.exports = { ensureLog, ensureAll, ensureCollection, dropTriggers, readMeta, head, noteConsumer, prune, readChanges, isReplicated };

// --- record export -------------------------------------------------------------------------------
// Records are exported exactly as the records API shows them to a superuser (hidden fields and email
// included), together with their rowid, which is PocketBase's order when a list has no sort.

function exportRecords(app, collection, pairs) {
  const byId = {};
  if (pairs.length > 0) {
    const records = app.findRecordsByIds(collection.id, pairs.map((p) => p.id));
    const names = collection.fields.fieldNames();
    for (const rec of records) {
      rec.unhide(...names);
      rec.ignoreEmailVisibility(true);
      byId[rec.id] = rec;
    }
  }
  const rowids = [];
  const records = [];
  for (const p of pairs) {
    const rec = byId[p.id];
    if (!rec) continue; // deleted between the two reads: its delete is in the log
    rowids.push(p.r);
    records.push(rec);
  }
  return { rowids, records };
}

function rowidsAfter(app, collection, after, limit) {
  const rows = arrayOf(new DynamicModel({ r: 0, id: "" }));
  app.db().newQuery(`SELECT _rowid_ AS r, id FROM "${collection.name}" WHERE _rowid_ > {:after} ORDER BY _rowid_ LIMIT {:limit}`)
    .bind({ after, limit }).all(rows);
  return rows;
}

function rowidsOf(app, collection, ids) {
  const rows = arrayOf(new DynamicModel({ r: 0, id: "" }));
  if (ids.length === 0) return rows;
  app.db().select("_rowid_ AS r", "id").from(collection.name).where($dbx.in("id", ...ids)).all(rows);
  return rows;
}

function findReplicated(app, idOrName) {
  try {
    const c = app.findCollectionByNameOrId(idOrName);
    return isReplicated(c) && SAFE_NAME.test(c.name) ? c : null;
  } catch (_) {
    return null;
  }
}

// Current state of the records touched by a batch of changes, per collection id.
function lookupChanged(app, changes) {
  const idsByColl = {};
  for (const ch of changes) {
    if (ch.coll === "_collections") continue;
    (idsByColl[ch.coll] = idsByColl[ch.coll] || {})[ch.rid] = true;
  }
  const out = {};
  for (const collId in idsByColl) {
    const c = findReplicated(app, collId);
    if (!c) continue;
    out[collId] = exportRecords(app, c, rowidsOf(app, c, Object.keys(idsByColl[collId])));
  }
  return out;
}

// The SQL PocketBase's own planner works from: the definitions of the replicated collections' tables
// and indexes as SQLite holds them, and their planner statistics (none unless someone ran ANALYZE). The
// sidecar plans PocketBase's statements against an empty copy of this schema to know the order
// PocketBase returns rows in where a list leaves it to the plan.
function plannerSchema(app) {
  const tables = {};
  for (const c of app.findAllCollections("base", "auth")) if (SAFE_NAME.test(c.name)) tables[c.name] = true;
  const rows = arrayOf(new DynamicModel({ type: "", name: "", tbl: "", sql: "" }));
  app.db().newQuery("SELECT type, name, tbl_name AS tbl, sql FROM sqlite_master WHERE type IN ('table', 'index') AND sql IS NOT NULL ORDER BY type DESC, rowid")
    .all(rows);
  const schema = [];
  for (const r of rows) if (tables[r.tbl]) schema.push({ type: r.type, name: r.name, tbl: r.tbl, sql: r.sql });
  const stats = [];
  if (tableExists(app, "sqlite_stat1")) {
    const st = arrayOf(new DynamicModel({ tbl: "", idx: "", stat: "" }));
    app.db().newQuery("SELECT tbl, COALESCE(idx, '') AS idx, stat FROM sqlite_stat1").all(st);
    for (const r of st) if (tables[r.tbl]) stats.push({ tbl: r.tbl, idx: r.idx, stat: r.stat });
  }
  return { schema, stats };
}

module.exports.plannerSchema = plannerSchema;
module.exports.rowidsAfter = rowidsAfter;
module.exports.findReplicated = findReplicated;
module.exports.lookupChanged = lookupChanged;

// --- wake-ups -------------------------------------------------------------------------------------
// After a record write commits, realtime clients subscribed to "hapta/changes" (the sidecars) get the
// log head: a sidecar that has already read that far ignores it, others read the log now. Writes that
// bypass records (raw SQL) announce nothing; the sidecars' poll finds them.
//
// Only clients authenticated as a superuser get it: the head moves with every write to every
// collection (drafts and superuser-only collections included), so anyone else could learn when and how
// much is written. Anyone may subscribe to a custom topic, so the check is made here, per client, on
// the auth PocketBase captured for the connection when it subscribed ("auth" in the client's context,
// apis.RealtimeClientAuthKey). Per write: one pass over the connected clients with in-memory checks;
// the head is read only when a superuser listens.
const TOPIC = "hapta/changes";

function isSuperuserClient(client) {
  const auth = client.get("auth");
  return !!auth && typeof auth.isSuperuser === "function" && auth.isSuperuser() === true;
}

function announce(app) {
  const clients = app.subscriptionsBroker().clients();
  let msg = null;
  for (const id in clients) {
    const client = clients[id];
    if (!client.hasSubscription(TOPIC) || !isSuperuserClient(client)) continue;
    if (msg === null) msg = new SubscriptionMessage({ name: TOPIC, data: JSON.stringify({ seq: head(app) }) });
    client.send(msg);
  }
}

module.exports.announce = announce;
module.exports.notePair = notePair;
module.exports.takePair = takePair;
module.exports.prunePairs = prunePairs;
